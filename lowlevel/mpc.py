"""A sampling MPC that keeps the H1 up on the tracking task: MPPI with the simulator as its model.

Model-predictive path integral control (Williams et al. 2017) on the task of :mod:`envs.mimic`
(50 Hz control, PD targets = reference joint angles + a residual).  Every control step:

1. ``samples`` perturbations of the planned residual (rad, (horizon, 19)) are drawn, piecewise
   linear through ``knots`` values N(0, ``sigma``) (smooth in time), and clipped so that every
   candidate stays inside what the task can execute (``action_clip`` x the action scale);
2. each candidate is rolled out over ``horizon`` control steps from the current MuJoCo state with
   ``mujoco.rollout`` (``threads`` worker datas) on a coarser copy of the model (``plan_substeps``
   physics steps of 0.01 s per control step instead of the task's 4 of 0.005 s: half the cost, the
   same time up);
3. each rollout's cost (:func:`tracking_cost`, plus the hands' and feet's height errors at
   ``ee_points`` steps, :meth:`MPPI.end_effector_cost`, the pelvis' horizontal velocity error and,
   optionally, the residual's size) is summed over the horizon, the candidates are
   averaged with weights exp(-(cost - min cost) / (``temperature`` x horizon)), the first residual
   is applied and the plan shifted by one step (warm start).

The temperature sets the smoothness: at 0.01 the average is nearly the single best candidate and the
applied residual jumps by ~2.6 action units per step; at 1.0 many candidates share the weight (0.6
units per step) and the robot stays up as long.  The end-effector cost keeps the task's own
terminations from firing: without it the robot stays up by letting a forearm stray 0.25 m from the
reference (the task ends after 1-3 s); with it held-out walks run their whole 10 s.  The velocity
cost stops a slow walk away from a standing reference (2.3 m in 8 s without it, docs/tracking.md).
The cost of one step is ``samples x horizon x plan_substeps`` physics steps: at the defaults about
0.9 s of wall time per simulated second on both cores of the 2-core reference machine (real time);
32 samples run at 0.5 s.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import mujoco
import mujoco.rollout
import numpy as np

__all__ = ["MPPIConfig", "MPPI", "tracking_cost", "smooth_noise"]


@dataclass(frozen=True)
class MPPIConfig:
    """Settings of :class:`MPPI`.  Units: control steps (50 Hz), rad.

    Raises ValueError (``__post_init__``) for a non-positive count, sigma or temperature, or
    fewer than 2 knots / more knots than horizon steps."""

    samples: int = 64           # candidate plans per control step
    horizon: int = 20           # control steps planned ahead (0.4 s)
    knots: int = 5              # values of each perturbation, linearly interpolated over the horizon
    sigma: float = 0.25         # rad, std of the perturbation at the knots
    temperature: float = 1.0    # of the weights exp(-cost / (temperature x horizon))
    threads: int = 1            # MuJoCo datas rolling out in parallel
    plan_substeps: int = 2      # physics steps per control step in the rollouts (0: the task's own);
                                # fewer = a coarser, cheaper planning model (timestep x decimation / this)
    joint_weight: float = 100.0  # cost per rad^2 of mean squared joint-angle error
    vel_weight: float = 5.0     # cost per (m/s)^2 of pelvis horizontal velocity error (against drift)
    action_weight: float = 5.0  # cost per rad^2 of mean squared residual (the least-effort plan)
    ee_weight: float = 20.0     # cost per m^2 of hand/foot height error (the task's end-effector term)
    ee_points: int = 4          # planned steps, evenly spread, at which those heights are computed
    smooth_start: bool = False  # perturbations start at 0 on the step about to be applied: the action
                                # moves by a fraction of sigma per step (smoother, one step slower)
    seed: int = 0

    def __post_init__(self):
        for name in ("samples", "horizon", "threads"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"MPPIConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        if int(self.plan_substeps) < 0:
            raise ValueError(f"MPPIConfig.plan_substeps must be >= 0, got {self.plan_substeps!r}")
        if not (2 <= self.knots <= self.horizon):
            raise ValueError(f"MPPIConfig.knots must lie in [2, horizon], got {self.knots!r}")
        for name in ("joint_weight", "vel_weight", "action_weight", "ee_weight"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"MPPIConfig.{name} must be >= 0, got {v!r}")
        if not (1 <= self.ee_points <= self.horizon):
            raise ValueError(f"MPPIConfig.ee_points must lie in [1, horizon], got {self.ee_points!r}")
        for name in ("sigma", "temperature"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"MPPIConfig.{name} must be positive, got {v!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def smooth_noise(rng: np.random.Generator, n: int, horizon: int, knots: int, sigma: float,
                 zero_start: bool = False) -> np.ndarray:
    """(n, horizon, 19) perturbations (rad), piecewise linear through ``knots`` N(0, sigma) values
    (the first knot 0 with ``zero_start``)."""
    kv = rng.normal(0.0, sigma, (n, knots, 19))
    if zero_start:
        kv[:, 0] = 0.0
    w = np.interp(np.arange(horizon), np.linspace(0, horizon - 1, knots), np.arange(knots))
    lo = np.floor(w).astype(int).clip(0, knots - 2)
    frac = (w - lo)[None, :, None]
    return kv[:, lo] * (1 - frac) + kv[:, lo + 1] * frac


def tracking_cost(qp: np.ndarray, rq: np.ndarray, joint_weight: float = 5.0) -> np.ndarray:
    """(n, H) cost of rolled-out qpos (n, H, 26) against the reference qpos (1, H, 26): joint angles
    (``joint_weight`` x mean squared error, rad^2), pelvis height (10 x m^2) and xy (5 x m^2), pelvis orientation
    (50 x (1 - |<q, q_ref>|)) and 100 per step with the pelvis 0.25 m below the reference's."""
    return (joint_weight * np.mean((qp[..., 7:] - rq[..., 7:]) ** 2, -1) + 10 * (qp[..., 2] - rq[..., 2]) ** 2
            + 5 * np.sum((qp[..., :2] - rq[..., :2]) ** 2, -1)
            + 50 * (1 - np.abs(np.sum(qp[..., 3:7] * rq[..., 3:7], -1))) + 100 * (qp[..., 2] < rq[..., 2] - 0.25))


class MPPI:
    """MPPI on environment ``i`` of a :class:`envs.mimic.env.MimicVecEnv` (module docstring).

    ``act()`` plans from that environment's current state and reference and returns the action
    (19,) in the task's action units (|a| <= ``action_clip``); ``reset()`` forgets the plan (call it
    when the environment is reset).  The environment's balance feedback and assist are not modelled
    (the MPC replaces them); ValueError for a task with either.
    """

    def __init__(self, env, cfg: MPPIConfig | None = None, i: int = 0):
        self.env, self.cfg, self.i = env, cfg or MPPIConfig(), i
        if env.cfg.balance or env.cfg.assist:
            raise ValueError("MPPI: the task's balance feedback / assist would act outside the rollouts; "
                             "use a task without them")
        m = env.model
        fs = env.cfg.decimation
        self.substeps = self.cfg.plan_substeps or fs
        if fs % self.substeps:
            raise ValueError(f"MPPIConfig.plan_substeps ({self.substeps}) must divide the task's decimation ({fs})")
        self.plan_model = m
        if self.substeps != fs:  # a coarser copy of the model: same state layout, larger timestep
            self.plan_model = copy.deepcopy(m)
            self.plan_model.opt.timestep = m.opt.timestep * fs / self.substeps
        self.rng = np.random.default_rng(self.cfg.seed)
        self.spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
        self.state = np.empty(mujoco.mj_stateSize(m, self.spec))
        self.datas = [mujoco.MjData(self.plan_model) for _ in range(self.cfg.threads)]
        self.bound = env.cfg.action_clip * env.scale  # (19,) rad: what the task can execute
        self.plan = np.zeros((self.cfg.horizon, 19))
        h, p = self.cfg.horizon, self.cfg.ee_points
        self.ee_steps = np.round(np.linspace(0, h - 1, p + 1)[1:]).astype(int)  # (P,) where heights are costed
        self.ee_ids = env.body_ids[env.ee]
        self.fk = mujoco.MjData(m)

    def reset(self) -> None:
        self.plan[:] = 0.0

    def act(self) -> np.ndarray:
        env, c, i = self.env, self.cfg, self.i
        lib, m, fs = env.lib, env.model, self.substeps
        clip = env.clip[i]
        last = lib.clip_start[clip] + lib.clip_len[clip] - 1
        rows = np.minimum(env._g(0)[i] + 1 + np.arange(c.horizon), last)  # noqa: SLF001 - the env's own frame map
        eps = smooth_noise(self.rng, c.samples, c.horizon, c.knots, c.sigma, zero_start=c.smooth_start)
        eps[0] = 0.0  # the current plan stays a candidate
        cand = np.clip(self.plan[None] + eps, -self.bound, self.bound)  # (n, H, 19) residuals, rad
        eps = cand - self.plan[None]
        ctrl = np.repeat(lib.joint_pos[rows][None] + cand, fs, axis=1)
        mujoco.mj_getState(m, env.datas[i], self.state, self.spec)
        states, _ = mujoco.rollout.rollout(self.plan_model, self.datas, self.state[None], ctrl)
        qp = states[:, fs - 1::fs, 1:1 + m.nq]
        cost = tracking_cost(qp, lib.qpos[rows][None], c.joint_weight).sum(1)
        if c.action_weight > 0:
            cost += c.action_weight * np.mean(cand ** 2, -1).sum(1)
        if c.vel_weight > 0:  # qvel[:2]: the free joint's world-frame horizontal velocity (m/s)
            v = states[:, fs - 1::fs, 1 + m.nq:3 + m.nq]
            cost += c.vel_weight * np.sum((v - lib.qvel[rows][None, :, :2]) ** 2, -1).sum(1)
        if c.ee_weight > 0:
            cost += self.end_effector_cost(qp[:, self.ee_steps], lib.body_pos[rows[self.ee_steps]][:, env.ee, 2])
        w = np.exp(-(cost - cost.min()) / (c.temperature * c.horizon))
        self.plan = self.plan + np.einsum("n,nhj->hj", w / w.sum(), eps)
        action = self.plan[0] / env.scale
        self.plan = np.concatenate([self.plan[1:], self.plan[-1:]])
        return action

    def end_effector_cost(self, qp: np.ndarray, z_ref: np.ndarray) -> np.ndarray:
        """(n,) cost of the hands' and feet's heights: qpos (n, P, 26) at the costed steps against the
        reference heights z_ref (P, E) m; ``ee_weight`` x squared error (m^2) summed over bodies, plus 100
        where the task's end-effector termination would fire, scaled from P steps to the horizon."""
        n, p = qp.shape[:2]
        z = np.empty((n * p, len(self.ee_ids)))
        d, m = self.fk, self.env.model
        for k, q in enumerate(qp.reshape(n * p, -1)):  # forward kinematics only: ~2 us each
            d.qpos[:] = q
            mujoco.mj_kinematics(m, d)
            z[k] = d.xpos[self.ee_ids, 2]
        err = np.abs(z.reshape(n, p, -1) - z_ref[None])
        per_step = self.cfg.ee_weight * (err ** 2).sum(-1) + 100 * (err > self.env.cfg.max_end_effector_z_error).any(-1)
        return per_step.sum(1) * (self.cfg.horizon / p)
