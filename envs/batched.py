"""N H1 tracking environments stepped in one process, vectorised in numpy, as an SB3 ``VecEnv``.

:class:`H1BatchedVecEnv` holds N :class:`envs.tracking.H1TrackingEnv` instances (one MuJoCo
model and data each) and steps them together:

* physics: one ``mj_step(model, data, nstep=frame_skip)`` per environment (PD runs inside MuJoCo
  as position actuators, :func:`envs.tracking.use_position_actuators`), then the kinematics the
  observation needs (``mj_kinematics``, ``mj_comPos``, ``mj_comVel``), exactly as the single
  environment does;
* everything else at once for all N, in numpy: actions to controls, the instability checks,
  the DeepMimic reward (:func:`envs.rewards.imitation_reward_batch`), termination, truncation
  and the observation, with the reference clips concatenated into one table per quantity so
  that every per-environment lookup is one fancy index.

Resets (the first one, and the automatic reset when an episode ends) call the single
environment's own :meth:`~envs.tracking.H1TrackingEnv.reset`, so reference state
initialisation draws from each environment's ``np_random`` as in SB3's ``DummyVecEnv``: N
``H1TrackingEnv`` seeded ``seed + i`` give the same episodes, observations, rewards and
``info`` step for step (``tests/test_batched_env.py``; equal up to float rounding).

VecEnv contract (stable-baselines3 ``VecEnv``, as ``DummyVecEnv``): ``step_wait`` returns
``(obs, rewards (N,) float32, dones (N,) bool, infos)``; a finished environment is reset at once,
its last observation is in ``infos[i]["terminal_observation"]`` and ``infos[i]["TimeLimit.truncated"]``
is True when it was truncated, not terminated.  ``infos[i]`` also holds the reward terms
(:data:`envs.rewards.REWARD_TERMS`), ``termination``, ``truncation``, ``clip`` and ``frame`` of the
single environment (with ``goal="decoded"`` also ``decoded_joint_error``).  Observations: an (N, D)
float32 array for ``goal="reference"`` and ``goal="decoded"``, a dict of (N, ...) arrays for
``goal="latent"``.  ``seed(s)`` applies ``s + i`` at the next ``reset()``.  ``root_velocity_obs=True``
appends the root's heading-frame linear velocity and height to every proprio (63 -> 67), vectorised
as the rest.

``goal="decoded"``: the decoded motions are concatenated like the clips (their own row offsets:
a decoded motion may be longer than its clip); each environment's root anchor (the planar map
decoded -> robot of :class:`~envs.tracking.H1TrackingEnv`) is copied from the single env at a
reset and recomputed, vectorised, for the environments whose frame entered a new 32-frame segment.

During stepping the episode state (clip, reference frame, step count, previous action) lives in
the batch; the per-environment instances are used for their MuJoCo data, their resets and
``get_attr`` / ``env_method``.  Write to their ``data`` only through ``env_method`` between a
reset and the next step.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import mujoco
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

from envs.lafan1 import FPS

from .model import JOINT_NAMES
from .reference import ReferenceMotion
from .rewards import REWARD_TERMS, imitation_reward_batch
from .tracking import NOMINAL_POSE, SEGMENT_FRAMES, H1TrackingEnv

__all__ = ["H1BatchedVecEnv"]

_NJ = len(JOINT_NAMES)


class _ClipTable:
    """The clips of an env concatenated along time: row ``offset[c] + k`` is frame k of clip c."""

    def __init__(self, env: H1TrackingEnv):
        clips = env._clips  # noqa: SLF001 - the batch shares the single env's clip cache
        lengths = np.array([c.qpos.shape[0] for c in clips])
        self.offset = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        self.last = np.array([c.last for c in clips])
        self.qpos = np.concatenate([c.qpos for c in clips])  # (sum T, 26)
        self.qvel = np.concatenate([c.qvel for c in clips])  # (sum T, 25)
        self.ee_rel = np.concatenate([c.ee_rel for c in clips])  # (sum T, 4, 3)
        self.com = np.concatenate([c.com for c in clips])  # (sum T, 3)
        self.tilt = np.concatenate([c.tilt for c in clips])  # (sum T,)
        self.goal_rows = np.concatenate([c.goal_rows for c in clips])  # (sum T, 28)
        if env.goal == "latent":
            nseg = np.array([c.codes.shape[0] for c in clips])
            self.code_offset = np.concatenate([[0], np.cumsum(nseg)[:-1]])
            self.nseg = nseg
            self.codes = np.concatenate([c.codes for c in clips])  # (sum segments, 64) float32
        if env.goal == "decoded":
            dec_len = np.array([c.dec_rows.shape[0] for c in clips])
            self.dec_offset = np.concatenate([[0], np.cumsum(dec_len)[:-1]])
            self.dec_rows = np.concatenate([c.dec_rows for c in clips])  # (sum T_dec, 28)
            self.dec_yaw = np.concatenate([c.dec_yaw for c in clips])  # (sum T_dec,) rad


class H1BatchedVecEnv(VecEnv):
    """``num_envs`` H1 tracking environments in one process (see the module docstring).

    Args:
        num_envs: N >= 1.
        clips, **env_kwargs: passed to every :class:`envs.tracking.H1TrackingEnv`
            (goal, action_mode, latent_codes, pd_target, thresholds, ...).
        threads: threads that step the physics (each a contiguous share of the environments;
            MuJoCo releases the GIL inside ``mj_step``, so 2 threads use 2 cores).  Results do not
            depend on it: every environment's physics is its own.
    """

    def __init__(self, num_envs: int, clips: Sequence[str | ReferenceMotion] | None = None, *, threads: int = 1,
                 **env_kwargs: Any):
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if int(threads) < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if env_kwargs.get("render_mode") is not None:
            raise ValueError("H1BatchedVecEnv does not render; use H1TrackingEnv(render_mode='rgb_array')")
        self.envs = [H1TrackingEnv(clips, **env_kwargs) for _ in range(int(num_envs))]
        e0 = self.envs[0]
        super().__init__(len(self.envs), e0.observation_space, e0.action_space)
        self._table = _ClipTable(e0)
        n = self.num_envs
        self._clip_idx = np.zeros(n, dtype=np.int64)
        self._frame = np.zeros(n, dtype=np.int64)
        self._steps = np.zeros(n, dtype=np.int64)
        self._prev_action = np.zeros((n, _NJ))
        # state gathered from the N MjData after each step / reset
        self._qpos = np.zeros((n, e0.model.nq))
        self._qvel = np.zeros((n, e0.model.nv))
        self._site_xpos = np.zeros((n, e0.model.nsite, 3))
        self._imu_xmat = np.zeros((n, 9))
        self._pelvis_xmat = np.zeros((n, 9))
        self._torso_angvel = np.zeros((n, 3))
        self._com = np.zeros((n, 3))
        self._torque = np.zeros((n, _NJ))
        self._warn = np.zeros((n, mujoco.mjtWarning.mjNWARNING), dtype=np.int64)  # warning counts
        self._site_ids = e0._site_ids  # noqa: SLF001
        self._bad = e0._bad_warnings  # noqa: SLF001
        self._anchor = np.tile([1.0, 0.0, 0.0, 0.0], (n, 1))  # goal="decoded": (cos, sin, tx, ty) per env
        self._anchor_seg = np.full(n, -1, dtype=np.int64)
        self._actions: np.ndarray | None = None
        self.threads = min(int(threads), self.num_envs)
        self._pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None

    # ------------------------------------------------------------------ gathering
    def _gather(self, i: int) -> None:
        """Copy env i's state and the kinematic quantities of its MjData into the batch arrays."""
        e = self.envs[i]
        self._qpos[i] = e._qpos  # noqa: SLF001 - views into e.data (see H1TrackingEnv.__init__)
        self._qvel[i] = e._qvel  # noqa: SLF001
        self._site_xpos[i] = e._site_xpos  # noqa: SLF001
        self._imu_xmat[i] = e._imu_xmat  # noqa: SLF001
        self._pelvis_xmat[i] = e._pelvis_xmat  # noqa: SLF001
        self._torso_angvel[i] = e._torso_angvel  # noqa: SLF001
        self._com[i] = e._pelvis_subtree_com  # noqa: SLF001
        self._warn[i] = e._warning_numbers  # noqa: SLF001

    def _reset_one(self, i: int, seed: int | None = None, options: dict | None = None) -> dict:
        e = self.envs[i]
        _, info = e.reset(seed=seed, options=options)
        self._clip_idx[i] = e._clips.index(e._clip)  # noqa: SLF001 - same clip order in every env
        self._frame[i] = e._frame  # noqa: SLF001
        self._steps[i] = 0
        self._prev_action[i] = 0.0
        self._torque[i] = 0.0
        self._gather(i)
        if e.goal == "decoded":
            self._anchor[i] = e._anchor  # noqa: SLF001 - fixed by the single env's reset
            self._anchor_seg[i] = e._anchor_seg  # noqa: SLF001
        return info

    # ------------------------------------------------------------------ VecEnv API
    def reset(self):
        for i in range(self.num_envs):
            opts = self._options[i] or None
            self.reset_infos[i] = self._reset_one(i, seed=self._seeds[i], options=opts)
        self._reset_seeds()
        self._reset_options()
        return self._observe(np.arange(self.num_envs))

    def step_async(self, actions: np.ndarray) -> None:
        a = np.asarray(actions, dtype=np.float64)
        if a.shape != (self.num_envs, _NJ):
            raise ValueError(f"actions must have shape ({self.num_envs}, {_NJ}), got {a.shape}")
        self._actions = a

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait called without step_async")
        a, self._actions = self._actions, None
        t, e0 = self._table, self.envs[0]
        last = t.last[self._clip_idx]
        k = np.minimum(self._frame + 1, last)
        self._frame = k
        self._steps += 1
        rows = t.offset[self._clip_idx] + k  # reference rows of frame k
        # a non-finite action or state ends the episode as "unstable" without stepping (single env)
        stepped = np.isfinite(a).all(1) & np.isfinite(self._qpos).all(1) & np.isfinite(self._qvel).all(1)
        self._prev_action = np.nan_to_num(np.clip(a, -1.0, 1.0))
        dec_rows = t.dec_offset[self._clip_idx] + k if e0.goal == "decoded" else None  # decoded rows of frame k
        ctrl = self._controls(self._prev_action, rows, dec_rows)
        warn_changed = self._physics(np.flatnonzero(stepped), ctrl)
        with np.errstate(invalid="ignore"):
            too_fast = np.abs(self._qvel).max(1) > e0.max_qvel
        unstable = (~stepped | warn_changed | ~np.isfinite(self._qpos).all(1) | ~np.isfinite(self._qvel).all(1)
                    | too_fast)

        reward, terms = self._reward(rows, unstable)
        reason = self._termination(rows, unstable)
        terminated = reason != ""
        trunc_clip = ~terminated & (k >= last)
        trunc_time = ~terminated & ~trunc_clip & (self._steps >= e0.max_episode_steps)
        truncated = trunc_clip | trunc_time
        if e0.goal == "decoded":
            seg = np.floor(k * FPS / (SEGMENT_FRAMES * e0.control_hz) + 1e-9).astype(np.int64)
            self._set_anchor(np.flatnonzero(seg != self._anchor_seg), seg)
            err = np.abs(self._qpos[:, 7:] - t.dec_rows[dec_rows, :_NJ])
            dec_err = (err.sum(1) / _NJ).tolist()
        obs = self._observe(np.arange(self.num_envs))

        infos = []
        names = [c.name for c in e0._clips]  # noqa: SLF001
        term_lists = {name: terms[name].tolist() for name in REWARD_TERMS}
        for i in range(self.num_envs):
            info = {name: term_lists[name][i] for name in REWARD_TERMS}
            info.update(clip=names[self._clip_idx[i]], frame=int(k[i]), termination=reason[i] or None,
                        truncation="clip_end" if trunc_clip[i] else ("time_limit" if trunc_time[i] else None))
            if e0.goal == "decoded":
                info["decoded_joint_error"] = dec_err[i]
            infos.append(info)
        dones = terminated | truncated
        for i in np.flatnonzero(dones):
            infos[i]["TimeLimit.truncated"] = bool(truncated[i])
            infos[i]["terminal_observation"] = _row(obs, i)
            self.reset_infos[i] = self._reset_one(i)
            _set_row(obs, i, self._observe(np.array([i])))
        return obs, reward.astype(np.float32), dones, infos

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        for e in self.envs:
            e.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self.envs[i], attr_name) for i in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        for i in self._get_indices(indices):
            setattr(self.envs[i], attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        return [getattr(self.envs[i], method_name)(*method_args, **method_kwargs) for i in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]  # plain H1TrackingEnv instances, no gym wrappers

    # ------------------------------------------------------------------ pieces
    def _controls(self, a: np.ndarray, rows: np.ndarray, dec_rows: np.ndarray | None = None) -> np.ndarray:
        """(N, 19) MuJoCo ctrl of the clipped actions: torques (N m) or PD targets (rad)."""
        e0 = self.envs[0]
        if e0.action_mode == "torque":
            return a * e0._limits  # noqa: SLF001
        if e0.pd_target == "reference":
            return self._table.qpos[rows, 7:] + e0.pd_action_scale * a
        if e0.pd_target == "decoded":
            return self._table.dec_rows[dec_rows, :_NJ] + e0.pd_action_scale * a
        if e0.pd_target == "nominal":
            return NOMINAL_POSE + e0.pd_action_scale * a
        return e0._range_mid + e0._range_half * a  # noqa: SLF001

    def _physics(self, idx: np.ndarray, ctrl: np.ndarray) -> np.ndarray:
        """Step environments ``idx`` and gather their new state; returns (N,) bool: MuJoCo raised
        a bad-state warning (bad qpos / qvel / qacc / ctrl; it then reset that data itself)."""
        before = self._warn.copy()  # counts after the last step or reset of each env
        if self._pool is None or len(idx) < 2:
            self._step_envs(idx, ctrl)
        else:  # disjoint rows of the batch arrays per thread
            list(self._pool.map(lambda part: self._step_envs(part, ctrl), np.array_split(idx, self.threads)))
        if self.envs[0].action_mode == "torque":
            self._torque[idx] = ctrl[idx]
        changed = np.zeros(self.num_envs, dtype=bool)
        changed[idx] = (self._warn[idx][:, self._bad] != before[idx][:, self._bad]).any(1)
        return changed

    def _step_envs(self, idx: np.ndarray, ctrl: np.ndarray) -> None:
        """The only per-environment Python: MuJoCo calls and copies into the batch arrays."""
        nstep, pd = self.envs[0].frame_skip, self.envs[0].action_mode == "pd"
        step, kin, com_pos, com_vel = mujoco.mj_step, mujoco.mj_kinematics, mujoco.mj_comPos, mujoco.mj_comVel
        for i in idx:
            e = self.envs[i]
            m, d = e.model, e.data
            d.ctrl[:] = ctrl[i]
            step(m, d, nstep=nstep)
            kin(m, d)
            com_pos(m, d)
            com_vel(m, d)
            self._gather(i)
            if pd:
                self._torque[i] = d.actuator_force

    def _reward(self, rows: np.ndarray, unstable: np.ndarray):
        """DeepMimic reward (N,) and terms against reference rows; 0 for unstable environments."""
        t, e0 = self._table, self.envs[0]
        ee_rel = self._site_xpos[:, self._site_ids] - self._qpos[:, None, :3]
        tau = self._torque / e0._limits if e0.torque_penalty_weight else None  # noqa: SLF001
        with np.errstate(invalid="ignore", over="ignore"):
            reward, terms = imitation_reward_batch(
                self._qpos, self._qvel, ee_rel, self._com,
                t.qpos[rows], t.qvel[rows], t.ee_rel[rows], t.com[rows], tau, e0.torque_penalty_weight)
        reward[unstable] = 0.0
        for v in terms.values():
            v[unstable] = 0.0
        return reward, terms

    def _termination(self, rows: np.ndarray, unstable: np.ndarray) -> np.ndarray:
        """(N,) termination reasons ("" for none), checked in the single env's order."""
        t, e0 = self._table, self.envs[0]
        z = self._qpos[:, 2]
        with np.errstate(invalid="ignore"):
            fell = (z < e0.min_pelvis_height) & (z < t.qpos[rows, 2] - 0.2)
            tilt = np.arccos(np.clip(self._imu_xmat[:, 8], -1.0, 1.0))
            tilted = (tilt > e0.max_tilt) & (tilt > t.tilt[rows] + 0.5)
            joint_err = np.abs(self._qpos[:, 7:] - t.qpos[rows, 7:]).sum(1) / _NJ
            diverged = joint_err > e0.max_mean_joint_error
        return np.select([unstable, fell, tilted, diverged], ["unstable", "fell", "tilted", "diverged"], "")

    def _set_anchor(self, idx: np.ndarray, seg: np.ndarray) -> None:
        """Re-base the decoded root of environments ``idx`` on the robot at their current frame
        (:meth:`envs.tracking.H1TrackingEnv._set_anchor`, vectorised); ``seg`` (N,) their segments."""
        if len(idx) == 0:
            return
        t = self._table
        r = t.dec_offset[self._clip_idx[idx]] + self._frame[idx]
        xm = self._pelvis_xmat[idx]
        dyaw = np.arctan2(xm[:, 3], xm[:, 0]) - t.dec_yaw[r]
        ca, sa = np.cos(dyaw), np.sin(dyaw)
        x, y = t.dec_rows[r, 19], t.dec_rows[r, 20]
        self._anchor[idx] = np.stack([ca, sa, self._qpos[idx, 0] - (ca * x - sa * y),
                                      self._qpos[idx, 1] - (sa * x + ca * y)], axis=1)
        self._anchor_seg[idx] = seg[idx]

    def _observe(self, idx: np.ndarray):
        """Observations of environments ``idx`` (float32; latent goal: a dict of arrays)."""
        e0 = self.envs[0]
        n = len(idx)
        R_imu = self._imu_xmat[idx].reshape(n, 3, 3)
        parts = [
            self._qpos[idx, 7:], self._qvel[idx, 6:],
            -R_imu[:, 2],  # gravity direction in the imu frame: R^T (0, 0, -1)
            np.einsum("ni,nij->nj", self._torso_angvel[idx], R_imu),  # R^T w_world
            self._prev_action[idx],
        ]
        if e0.root_velocity_obs:  # root linear velocity in the heading frame (3) and root height (1)
            xm = self._pelvis_xmat[idx]
            yaw = np.arctan2(xm[:, 3], xm[:, 0])
            cy, sy = np.cos(yaw), np.sin(yaw)
            v = self._qvel[idx, :3]  # free joint: world-frame linear velocity
            parts.append(np.stack([cy * v[:, 0] + sy * v[:, 1], -sy * v[:, 0] + cy * v[:, 1], v[:, 2],
                                   self._qpos[idx, 2]], axis=1))
        proprio = np.concatenate(parts, axis=1)
        flat = e0.goal != "latent"
        if flat:
            blocks = [proprio, self._reference_goal(idx).reshape(n, -1)]
            if e0.critic_reference_obs:  # the asymmetric critic's true-reference block
                blocks.append(self._reference_goal(idx, true_reference=True).reshape(n, -1))
            obs = np.concatenate(blocks, axis=1)
        else:
            obs = proprio
        if not np.isfinite(obs).all():  # non-finite numbers (unstable state) are observed as 0
            np.nan_to_num(obs, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        obs = obs.astype(np.float32)
        if flat:
            return obs
        latent, phase = self._latent_goal(idx)
        return {"proprio": obs, "latent": latent, "phase": phase}

    def _reference_goal(self, idx: np.ndarray, true_reference: bool = False) -> np.ndarray:
        """(n, offsets, 28) "reference" / "decoded" goal numbers (see envs.tracking's module
        docstring); true_reference: the true clip's even with goal="decoded" (critic_reference_obs)."""
        t, e0 = self._table, self.envs[0]
        c = self._clip_idx[idx]
        fs = np.minimum(self._frame[idx, None] + e0.reference_offsets, t.last[c, None])
        if e0.goal == "decoded" and not true_reference:
            g = t.dec_rows[t.dec_offset[c, None] + fs]  # (n, O, 28)
            ca, sa, tx, ty = (v[:, None] for v in self._anchor[idx].T)
            for j, (ox, oy) in ((19, (tx, ty)), (22, (0.0, 0.0)), (25, (0.0, 0.0))):  # about z, as the single env
                x, y = g[:, :, j].copy(), g[:, :, j + 1].copy()
                g[:, :, j] = ca * x - sa * y + ox
                g[:, :, j + 1] = sa * x + ca * y + oy
        else:
            g = t.goal_rows[t.offset[c, None] + fs]  # (n, O, 28)
        R = self._pelvis_xmat[idx].reshape(-1, 3, 3)
        yaw = np.arctan2(R[:, 1, 0], R[:, 0, 0])
        cy, sy = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
        dp = g[:, :, 19:22] - self._qpos[idx, None, :3]  # reference root - current root (world)
        g[:, :, 19] = cy * dp[:, :, 0] + sy * dp[:, :, 1]  # (x, y) rotated by -yaw: heading frame
        g[:, :, 20] = -sy * dp[:, :, 0] + cy * dp[:, :, 1]
        g[:, :, 21] = dp[:, :, 2]
        cols = g[:, :, 22:28].reshape(len(idx), -1, 2, 3)
        g[:, :, 22:28] = (cols @ R[:, None]).reshape(len(idx), -1, 6)  # rows c_j^T R = (R^T c_j)^T
        return g

    def _latent_goal(self, idx: np.ndarray):
        """Latent indices (n, 2, 64) of the current and next segment and the phase (n, 1), float32."""
        t, e0 = self._table, self.envs[0]
        c = self._clip_idx[idx]
        s = self._frame[idx] * FPS / (SEGMENT_FRAMES * e0.control_hz)
        seg = np.floor(s + 1e-9).astype(np.int64)
        phase = np.minimum(np.maximum(s - seg, 0.0), 0.999999)
        nseg = t.nseg[c]
        seg = np.minimum(seg, nseg - 1)
        base = t.code_offset[c]
        latent = np.stack([t.codes[base + seg], t.codes[base + np.minimum(seg + 1, nseg - 1)]], axis=1)
        return latent, phase[:, None].astype(np.float32)


def _row(obs, i: int):
    """Observation of environment i (a copy) from a batch observation."""
    if isinstance(obs, dict):
        return {key: val[i].copy() for key, val in obs.items()}
    return obs[i].copy()


def _set_row(obs, i: int, one) -> None:
    """Write a one-environment batch observation into row i of ``obs``."""
    if isinstance(obs, dict):
        for key, val in obs.items():
            val[i] = one[key][0]
    else:
        obs[i] = one[0]

