"""The H1 motion-tracking task as a batched stable-baselines3 VecEnv (N MuJoCo simulations).

One control step (``cfg.control_dt``, 0.02 s) of every environment: the actions become PD targets
(:mod:`.actions`), MuJoCo runs ``decimation`` physics steps, the reference advances one frame,
then the reward terms (:mod:`.rewards`), terminations (:mod:`.terminations`) and the observation
(:mod:`.observations`) are computed for all N at once.  Ended episodes reset in place (SB3's
convention: ``infos[i]["terminal_observation"]``, ``"TimeLimit.truncated"``, ``"episode"``).

Episodes start at a reference frame drawn by :class:`.motion.AdaptiveSampler` (or fixed by
:meth:`MimicVecEnv.reset_to`), from the reference state with small joint and velocity noise.
``infos[i]`` after each step holds every reward term (name -> float), ``termination`` (the first
term that fired, or None), ``truncation`` ("time_limit", "clip_end" or None), ``clip`` and ``frame``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from envs.model import JOINT_NAMES, load_h1_model
from envs.reference import FOOT_GEOMS
from envs.tracking import PD_KD, PD_KP, use_position_actuators

from . import actions as act
from .config import MimicConfig
from .motion import AdaptiveSampler, MotionLibrary, body_state
from .observations import obs_dim, observation
from .rewards import REWARD_TERMS, reward_terms, total_reward
from .state import BodyFrames, anchored, reference_frames
from .terminations import TERMINATIONS, termination_terms


def foot_corners(model: mujoco.MjModel) -> np.ndarray:
    """(8, 3) corners (m) of the foot box in its ankle body's frame (both feet are the same box);
    ValueError if the model's feet are not boxes aligned with the ankle frame."""
    g = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, FOOT_GEOMS[0])
    if g < 0 or model.geom_type[g] != mujoco.mjtGeom.mjGEOM_BOX or not np.allclose(model.geom_quat[g], [1, 0, 0, 0]):
        raise ValueError(f"H1 model: {FOOT_GEOMS[0]} must be a box aligned with its ankle body")
    signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
    return model.geom_pos[g] + signs * model.geom_size[g]

__all__ = ["MimicVecEnv"]

_BAD_WARNINGS = [int(w) for w in (mujoco.mjtWarning.mjWARN_BADQPOS, mujoco.mjtWarning.mjWARN_BADQVEL,
                                  mujoco.mjtWarning.mjWARN_BADQACC, mujoco.mjtWarning.mjWARN_BADCTRL)]


class MimicVecEnv(VecEnv):
    """N H1 simulations tracking the clips of ``library`` (module docstring).

    Args:
        library: the reference motions at ``cfg.control_hz``.
        num_envs: N.  cfg: the task.  seed: of the start sampler and the noise.
        assist_scale: initial curriculum factor of the assist (used only with ``cfg.assist``).
        adaptive: draw starts by failure rate (False: uniformly; evaluation uses :meth:`reset_to`).
        auto_reset: reset ended episodes in place (SB3's convention).  False: a terminated
            environment keeps running (its terminations are only reported), and a clip's end
            holds its last reference frame; for following a motion stream (:meth:`set_library`).

    Attributes: ``assist_scale`` (float, set by the training callback), ``sampler``.
    """

    render_mode = None

    def __init__(self, library: MotionLibrary, num_envs: int, cfg: MimicConfig, seed: int = 0,
                 assist_scale: float = 1.0, adaptive: bool = True, auto_reset: bool = True):
        self.lib, self.cfg = library, cfg
        self.model = load_h1_model()
        self.model.opt.timestep = cfg.physics_dt
        self.kp, self.kd = PD_KP * cfg.kp_scale, PD_KD * cfg.kp_scale
        use_position_actuators(self.model, self.kp, self.kd)
        self.datas = [mujoco.MjData(self.model) for _ in range(num_envs)]
        m = self.model
        self.body_ids = np.array([mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, b) for b in cfg.tracked_bodies])
        self.anchor = library.anchor
        self.anchor_id = int(self.body_ids[self.anchor])
        self.ee = np.array([cfg.tracked_bodies.index(b) for b in cfg.end_effector_bodies])
        self.feet = (cfg.tracked_bodies.index("left_ankle_link"), cfg.tracked_bodies.index("right_ankle_link"))
        self.sole_corners = foot_corners(m)
        jids = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, j) for j in JOINT_NAMES]
        lo, hi = m.jnt_range[jids, 0], m.jnt_range[jids, 1]
        mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo) * cfg.soft_joint_limit
        self.soft_lo, self.soft_hi = mid - half, mid + half
        self.scale = act.action_scale(cfg, self.kp)
        self.offsets = np.asarray(cfg.reference_offsets, dtype=np.int64)
        self.max_steps = int(round(cfg.max_episode_s / cfg.control_dt))
        self.rng = np.random.default_rng(seed)
        self.sampler = AdaptiveSampler(library, cfg, self.rng)
        self.adaptive = adaptive
        self.auto_reset = auto_reset
        self.assist_scale = float(assist_scale) if cfg.assist else 0.0
        n = num_envs
        self.clip = np.zeros(n, np.int64)
        self.frame = np.zeros(n, np.int64)
        self.steps = np.zeros(n, np.int64)
        self.prev_action = np.zeros((n, len(JOINT_NAMES)))
        self.ep_return = np.zeros(n)
        self.robot = BodyFrames.empty(n, len(self.body_ids))
        self._actions = np.zeros((n, len(JOINT_NAMES)))
        obs_space = gym.spaces.Box(-np.inf, np.inf, shape=(obs_dim(len(self.offsets)),), dtype=np.float32)
        act_space = gym.spaces.Box(-cfg.action_clip, cfg.action_clip, shape=(len(JOINT_NAMES),), dtype=np.float32)
        super().__init__(n, obs_space, act_space)

    # ------------------------------------------------------------------ frames
    def _g(self, offset: int = 0) -> np.ndarray:
        """Library rows of each env's current frame + offset (clamped to the clip's last frame)."""
        c = self.clip
        k = np.minimum(self.frame + offset, self.lib.clip_len[c] - 1)
        return self.lib.clip_start[c] + k

    def _read(self, i: int) -> None:
        d, r = self.datas[i], self.robot
        r.qpos[i], r.qvel[i] = d.qpos, d.qvel
        body_state(d, self.body_ids, r.body_pos[i], r.body_mat[i], r.body_lin_vel[i], r.body_ang_vel[i])
        r.com[i] = d.subtree_com[1]

    def _observe(self) -> np.ndarray:
        goals = [reference_frames(self.lib, self._g(int(o))) for o in self.offsets]
        return observation(self.robot, goals, self.anchor, self.prev_action)

    # ------------------------------------------------------------------ resets
    def _reset_env(self, i: int, clip: int, frame: int, noise: bool = True) -> None:
        d = self.datas[i]
        g = self.lib.clip_start[clip] + frame
        mujoco.mj_resetData(self.model, d)
        d.qpos[:], d.qvel[:] = self.lib.qpos[g], self.lib.qvel[g]
        if noise:
            d.qpos[7:] += self.rng.uniform(-1, 1, 19) * self.cfg.start_noise_rad
            d.qvel[:3] += self.rng.uniform(-1, 1, 3) * self.cfg.start_noise_vel
        mujoco.mj_forward(self.model, d)
        self.clip[i], self.frame[i], self.steps[i] = clip, frame, 0
        self.prev_action[i] = 0.0
        self.ep_return[i] = 0.0
        self._read(i)

    def _draw_starts(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if self.adaptive:
            return self.sampler.sample(n)
        clip = self.rng.integers(self.lib.num_clips, size=n)
        frame = (self.rng.random(n) * (self.lib.clip_len[clip] - 1)).astype(np.int64)
        return clip, frame

    def reset(self) -> np.ndarray:
        clip, frame = self._draw_starts(self.num_envs)
        for i in range(self.num_envs):
            self._reset_env(i, int(clip[i]), int(frame[i]))
        return self._observe()

    def reset_to(self, clips: Sequence[int], frames: Sequence[int], noise: bool = False) -> np.ndarray:
        """Start env i at clip ``clips[i]``, frame ``frames[i]`` (evaluation); ValueError if out of range."""
        if len(clips) != self.num_envs or len(frames) != self.num_envs:
            raise ValueError(f"reset_to: need {self.num_envs} clips and frames")
        for i, (c, k) in enumerate(zip(clips, frames)):
            if not (0 <= c < self.lib.num_clips and 0 <= k < self.lib.last_frame(c)):
                raise ValueError(f"reset_to: clip {c} frame {k} out of range")
            self._reset_env(i, int(c), int(k), noise=noise)
        return self._observe()

    def set_library(self, library: MotionLibrary) -> np.ndarray:
        """Replace the motions, keeping each env's simulator state, clip number and frame (a motion
        stream that grows while it is followed); returns the new observation.  ValueError if an
        env's clip or frame is not in the new library."""
        for c, k in zip(self.clip, self.frame):
            if c >= library.num_clips or k >= library.clip_len[c]:
                raise ValueError(f"set_library: clip {c} frame {k} is not in the new library")
        self.lib = library
        self.sampler = AdaptiveSampler(library, self.cfg, self.rng)
        return self._observe()

    def reset_state(self, i: int, qpos: np.ndarray, qvel: np.ndarray | None = None) -> np.ndarray:
        """Put env i in the given state (qpos (26,), qvel (25,), default zeros); returns the observation."""
        d = self.datas[i]
        d.qpos[:] = qpos
        d.qvel[:] = 0.0 if qvel is None else qvel
        mujoco.mj_forward(self.model, d)
        self.prev_action[i] = 0.0
        self._read(i)
        return self._observe()

    # ------------------------------------------------------------------ step
    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.float64).reshape(self.num_envs, -1)

    def step_wait(self):
        cfg, n = self.cfg, self.num_envs
        a = self._actions
        bad_action = ~np.isfinite(a).all(1)
        a = np.clip(np.nan_to_num(a), -cfg.action_clip, cfg.action_clip)
        targets = act.pd_targets(self.lib.joint_pos[self._g(1)], a, self.scale)
        wrench = None
        if cfg.balance or cfg.assist:  # both act on the reference anchored to the robot before the step
            rel_now = anchored(self.robot, reference_frames(self.lib, self._g(0)), self.anchor)
            if cfg.balance:
                targets += act.balance_offsets(self.robot, rel_now, self.anchor, self.feet, cfg)
            if cfg.assist:
                wrench = act.assist_wrench(self.robot, rel_now, self.anchor, self.assist_scale, cfg)
        unstable = bad_action.copy()
        for i, d in enumerate(self.datas):
            warn0 = sum(d.warning[w].number for w in _BAD_WARNINGS)
            d.ctrl[:] = targets[i]
            if wrench is not None:
                d.xfrc_applied[self.anchor_id] = wrench[i]
            mujoco.mj_step(self.model, d, nstep=cfg.decimation)
            mujoco.mj_kinematics(self.model, d)
            mujoco.mj_comPos(self.model, d)
            mujoco.mj_comVel(self.model, d)
            if sum(d.warning[w].number for w in _BAD_WARNINGS) != warn0:
                unstable[i] = True
            self._read(i)
        self.frame += 1
        self.steps += 1
        r = self.robot
        unstable |= ~(np.isfinite(r.qpos).all(1) & np.isfinite(r.qvel).all(1)) | (np.abs(r.qvel).max(1) > 1000.0)
        ref = reference_frames(self.lib, self._g(0))
        rel = anchored(r, ref, self.anchor)
        terms = reward_terms(r, ref, rel, self.anchor, a, self.prev_action, self.soft_lo, self.soft_hi, cfg,
                             self.feet, self.sole_corners)
        reward = np.where(unstable, 0.0, total_reward(terms, cfg))
        ends = termination_terms(r, ref, rel, self.anchor, self.ee, cfg)
        ends = {"unstable": unstable, **ends}
        terminated = np.zeros(n, bool)
        for name in TERMINATIONS:
            terminated |= ends[name]
        clip_end = self.frame >= self.lib.clip_len[self.clip] - 1
        time_limit = self.steps >= self.max_steps
        truncated = ~terminated & (clip_end | time_limit)
        self.prev_action = a
        self.ep_return += reward
        dones = terminated | truncated
        obs = self._observe()
        infos: list[dict[str, Any]] = []
        for i in range(n):
            info = {name: float(terms[name][i]) for name in REWARD_TERMS}
            info.update(clip=self.lib.names[self.clip[i]], frame=int(self.frame[i]),
                        termination=next((t for t in TERMINATIONS if ends[t][i]), None),
                        truncation=None if not truncated[i] else ("clip_end" if clip_end[i] else "time_limit"))
            infos.append(info)
        if not self.auto_reset:
            self.frame = np.minimum(self.frame, self.lib.clip_len[self.clip] - 1)
            return obs, reward.astype(np.float32), dones, infos
        if dones.any():
            idx = np.flatnonzero(dones)
            self.sampler.update(self.clip[idx], self.frame[idx], terminated[idx])
            clip, frame = self._draw_starts(len(idx))
            for j, i in enumerate(idx):
                infos[i]["terminal_observation"] = obs[i].copy()
                infos[i]["TimeLimit.truncated"] = bool(truncated[i])
                infos[i]["episode"] = {"r": float(self.ep_return[i]), "l": int(self.steps[i]),
                                       "t": float(self.steps[i] * cfg.control_dt)}
                self._reset_env(i, int(clip[j]), int(frame[j]))
            obs[idx] = self._observe()[idx]
        return obs, reward.astype(np.float32), dones, infos

    def fallen(self) -> np.ndarray:
        """(N,) bool: the robot is down, whatever the reference does: pelvis below 0.6 m or its z axis
        tilted over 1 rad from vertical (the studies' fall, unlike the tracking terminations)."""
        return (self.robot.qpos[:, 2] < 0.6) | (self.robot.body_mat[:, self.anchor, 2, 2] < np.cos(1.0))

    # ------------------------------------------------------------------ VecEnv plumbing
    def close(self) -> None:
        self.datas = []

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self, attr_name)] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        return [getattr(self, method_name)(*method_args, **method_kwargs)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * len(self._get_indices(indices))
