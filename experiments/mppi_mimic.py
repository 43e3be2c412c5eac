"""Can a cheap sampling MPC keep the H1 up on the tracking task (envs.mimic), and at what cost?

Model-predictive path integral control (Williams et al. 2017) with the simulator as its model, on
the tracker's own task (50 Hz control, 0.005 s physics, 3x Unitree gains, mjlab's terminations):
every control step, N smooth perturbations (piecewise linear through K knots) of the planned
joint-target residual over H control steps are rolled out with ``mujoco.rollout`` from the current
state, scored by a tracking cost (joint angles, pelvis height, pelvis xy, pelvis orientation, a
fall penalty) and averaged with weights exp(-cost / (lambda H)); the first residual is applied and
the plan shifted (warm start).  A teacher for distillation would have to be both reliable and
cheap; this prints, per start, the seconds tracked, the termination, the joint error and the
wall time per simulated second.

Example (the figures in docs/tracking.md; 2-core machine)::

    python experiments/mppi_mimic.py --samples 64 --horizon 25 --starts 8 --seconds 10
"""

from __future__ import annotations

import argparse
import time

import mujoco
import mujoco.rollout
import numpy as np

from envs.mimic.config import MimicConfig
from envs.mimic.env import MimicVecEnv
from lowlevel.tracker import check_motion_vae, eval_starts, load_tracker, make_library


def smooth_noise(rng: np.random.Generator, n: int, horizon: int, knots: int, sigma: float) -> np.ndarray:
    """(n, horizon, 19) perturbations (rad), piecewise linear through ``knots`` N(0, sigma) values."""
    kv = rng.normal(0.0, sigma, (n, knots, 19))
    w = np.interp(np.arange(horizon), np.linspace(0, horizon - 1, knots), np.arange(knots))
    lo = np.floor(w).astype(int).clip(0, knots - 2)
    frac = (w - lo)[None, :, None]
    return kv[:, lo] * (1 - frac) + kv[:, lo + 1] * frac


def tracking_cost(qp: np.ndarray, rq: np.ndarray) -> np.ndarray:
    """(n, H) cost of rolled-out qpos (n, H, 26) against the reference qpos (1, H, 26)."""
    return (5 * np.mean((qp[..., 7:] - rq[..., 7:]) ** 2, -1) + 10 * (qp[..., 2] - rq[..., 2]) ** 2
            + 5 * np.sum((qp[..., :2] - rq[..., :2]) ** 2, -1)
            + 50 * (1 - np.abs(np.sum(qp[..., 3:7] * rq[..., 3:7], -1))) + 100 * (qp[..., 2] < rq[..., 2] - 0.25))


def mppi_episode(env: MimicVecEnv, clip: int, frame: int, seconds: float, n: int, horizon: int, sigma: float,
                 lam: float, knots: int, threads: int, rng: np.random.Generator) -> dict:
    """One episode of MPPI control on env 0 of ``env`` (1 env, no auto-reset) from (clip, frame)."""
    env.reset_to([clip], [frame])
    m, d, lib, fs = env.model, env.datas[0], env.lib, env.cfg.decimation
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    state = np.empty(mujoco.mj_stateSize(m, spec))
    datas = [mujoco.MjData(m) for _ in range(threads)]
    u = np.zeros((horizon, 19))
    last = lib.clip_start[clip] + lib.clip_len[clip] - 1
    jerr, t0, steps = [], time.time(), int(seconds / env.cfg.control_dt)
    for t in range(steps):
        idx = np.minimum(env._g(0)[0] + 1 + np.arange(horizon), last)  # noqa: SLF001
        eps = smooth_noise(rng, n, horizon, knots, sigma)
        eps[0] = 0.0  # the current plan stays among the candidates
        ctrl = np.repeat(lib.qpos[idx, 7:][None] + u[None] + eps, fs, axis=1)
        mujoco.mj_getState(m, d, state, spec)
        st, _ = mujoco.rollout.rollout(m, datas, state[None], ctrl)
        total = tracking_cost(st[:, fs - 1::fs, 1:1 + m.nq], lib.qpos[idx][None]).sum(1)
        w = np.exp(-(total - total.min()) / (lam * horizon))
        u = u + np.einsum("n,nhj->hj", w / w.sum(), eps)
        _, _, done, info = env.step((u[0] / env.scale)[None])
        jerr.append(float(np.abs(d.qpos[7:] - lib.qpos[env._g(0)[0], 7:]).mean()))  # noqa: SLF001
        u = np.concatenate([u[1:], u[-1:]])
        if done[0]:
            return {"seconds": (t + 1) * env.cfg.control_dt, "end": info[0]["termination"] or info[0]["truncation"],
                    "joint_err": float(np.mean(jerr)), "wall_s": time.time() - t0}
    return {"seconds": steps * env.cfg.control_dt, "end": None, "joint_err": float(np.mean(jerr)),
            "wall_s": time.time() - t0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clip", default="walk2_subject4")
    p.add_argument("--tracker", default="models/lowlevel.pt", help="its task settings and motion VAE are used")
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--horizon", type=int, default=25, help="control steps (50 Hz)")
    p.add_argument("--sigma", type=float, default=0.15, help="rad, at the knots")
    p.add_argument("--knots", type=int, default=4)
    p.add_argument("--temperature", type=float, default=0.01)
    p.add_argument("--starts", type=int, default=8)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    _, ck = load_tracker(a.tracker)
    task = MimicConfig.from_dict(ck["task"])
    lib = make_library([a.clip], task, motion_vae=check_motion_vae(ck, None))  # the goal the tracker follows
    env = MimicVecEnv(lib, 1, task, seed=0, auto_reset=False)
    clips, frames = eval_starts(lib, a.starts, int(a.seconds / task.control_dt))
    rng = np.random.default_rng(0)
    print(f"MPPI on {a.clip} ({'decoded' if ck.get('motion_vae') else 'clip'}), N {a.samples}, H {a.horizon}, {a.knots} knots, sigma {a.sigma} rad")
    print("| start frame | s tracked | end | joint err (rad) | wall s per simulated s |")
    print("|---|---|---|---|---|")
    out = []
    for c, f in zip(clips, frames):
        r = mppi_episode(env, c, f, a.seconds, a.samples, a.horizon, a.sigma, a.temperature, a.knots, a.threads, rng)
        out.append(r)
        print(f"| {f} | {r['seconds']:.2f} | {r['end'] or 'none'} | {r['joint_err']:.3f} | {r['wall_s'] / r['seconds']:.1f} |",
              flush=True)
    print(f"mean {np.mean([r['seconds'] for r in out]):.2f} s tracked")


if __name__ == "__main__":
    main()
