"""Is the tracking task feasible for our H1, and what keeps a controller up?

Four checks that need no learned policy, each printing one table:

1. ``stand``: the H1 on its nominal standing pose (a constant reference), zero PD residual, for
   several multiples of Unitree's PD gains: seconds before the episode ends.  With Unitree's gains
   the stand is passively unstable (ankle kp 40 N m/rad per foot against a toppling stiffness
   m g h of about 500 N m/rad).
2. ``pd``: zero-residual PD tracking of a clip from evenly spread start frames, per gain multiple.
3. ``mppi``: model-predictive path integral control (Williams et al. 2017) with the exact simulator
   as its model: every control step, N perturbed residual sequences over a horizon of H control
   steps are rolled out with ``mujoco.rollout`` from the current state, scored by a tracking cost
   (joint angles, root height, root xy, root orientation, a fall penalty) and averaged with weights
   exp(-cost / lambda); the first residual is applied.  Perturbations are white (independent per
   step) or smooth (piecewise linear through 5 random knots over the horizon).
4. ``stand-mppi``: smooth MPPI on the standing reference with the residual's authority at Unitree's
   0.25 rad per unit action (the env clips actions to [-1, 1]) and at 1 rad.

Example (the README's figures; 2-core machine, ~3 min)::

    python experiments/tracking_feasibility.py --clip walk2_subject4 --frame 5950 --seconds 5
"""

from __future__ import annotations

import argparse
import math
import time

import mujoco
import mujoco.rollout
import numpy as np

from envs.reference import ReferenceMotion, make_reference
from envs.model import JOINT_NAMES
from envs.tracking import NOMINAL_POSE, PD_KD, PD_KP, H1TrackingEnv, use_position_actuators

ANKLES = np.array(["ankle" in j for j in JOINT_NAMES])


def _survive(env: H1TrackingEnv, clip: str, frame: int, steps: int) -> float:
    """Seconds until termination with zero residual (``steps`` / control_hz if none)."""
    env.reset(options={"clip": clip, "frame": frame})
    zero = np.zeros(19, np.float32)
    for t in range(steps):
        if env.step(zero)[2]:
            return t / env.control_hz
    return steps / env.control_hz


def standing_reference(seconds: float) -> ReferenceMotion:
    """The nominal standing pose held for ``seconds`` (100 Hz), feet on the floor."""
    q = np.zeros((int(seconds * 100) + 10, 26))
    q[:, 2], q[:, 3], q[:, 7:] = 1.0, 1.0, NOMINAL_POSE
    return make_reference("stand", q, 100.0, ground_feet=True)


def stand_table(gains: list[float], seconds: float) -> None:
    stand = standing_reference(seconds)
    print("\nstand: nominal pose, zero residual")
    print("| kp, kd multiple | all joints: s standing | ankles only: s standing |\n|---|---|---|")
    for g in gains:
        row = []
        for ankles_only in (False, True):
            env = H1TrackingEnv([stand], action_mode="pd", pd_target="reference", max_episode_steps=10**6)
            mult = np.where(ANKLES | (not ankles_only), g, 1.0)  # every joint, or the two ankles only
            use_position_actuators(env.model, PD_KP * mult, PD_KD * mult)
            row.append(_survive(env, "stand", 0, int(seconds * 100)))
        print(f"| {g:g} | {row[0]:.2f} | {row[1]:.2f} |")


def pd_table(clip: str, gains: list[float], starts: int, seconds: float) -> None:
    print(f"\npd: zero-residual PD tracking of {clip}, {starts} starts x {seconds:g} s")
    print("| kp, kd multiple | mean s tracked | per start |\n|---|---|---|")
    for g in gains:
        env = H1TrackingEnv([clip], action_mode="pd", pd_target="reference", pd_gain_scale=g, max_episode_steps=10**6)
        steps = int(seconds * env.control_hz)
        frames = np.linspace(0, env.last_frame(clip) - steps - 1, starts).astype(int)
        s = [_survive(env, clip, int(f), steps) for f in frames]
        print(f"| {g:g} | {np.mean(s):.2f} | {' '.join(f'{x:.2f}' for x in s)} |")


def mppi(clip: str | ReferenceMotion, frame: int, seconds: float, n: int, horizon: int, sigma: float, lam: float,
         knots: int, scale: float, threads: int, seed: int = 0) -> dict:
    """Track ``clip`` (a name or a ReferenceMotion) from ``frame`` with MPPI; ``scale``: the residual's
    authority (rad per unit action, the env clips actions to [-1, 1]).  Returns seconds survived,
    mean joint error (rad), mean root xy error (m), wall time (s) and the termination reason."""
    env = H1TrackingEnv([clip], action_mode="pd", pd_target="reference", pd_action_scale=scale,
                        max_episode_steps=10**6)
    clip = clip if isinstance(clip, str) else clip.name
    env.reset(options={"clip": clip, "frame": frame})
    m, d, ref, fs = env.model, env.data, env._clip.qpos, env.frame_skip  # noqa: SLF001
    last = env.last_frame(clip)
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    state = np.empty(mujoco.mj_stateSize(m, spec))
    datas = [mujoco.MjData(m) for _ in range(threads)]
    rng = np.random.default_rng(seed)
    u = np.zeros((horizon, 19))  # planned residual (rad) on the reference joint angles
    steps = int(seconds * env.control_hz)
    jerr, xyerr, t0 = [], [], time.time()
    for t in range(steps):
        idx = np.minimum(env._frame + 1 + np.arange(horizon), last)  # noqa: SLF001
        if knots:  # smooth: piecewise linear through `knots` random values over the horizon
            kv = rng.normal(0.0, sigma, (n, knots, 19))
            w = np.interp(np.arange(horizon), np.linspace(0, horizon - 1, knots), np.arange(knots))
            lo = np.floor(w).astype(int).clip(0, knots - 2)
            frac = (w - lo)[None, :, None]
            eps = kv[:, lo] * (1 - frac) + kv[:, lo + 1] * frac
        else:
            eps = rng.normal(0.0, sigma, (n, horizon, 19))
        eps[0] = 0.0  # keep the current plan among the candidates
        ctrl = np.repeat(ref[idx, 7:][None] + u[None] + eps, fs, axis=1)
        mujoco.mj_getState(m, d, state, spec)
        st, _ = mujoco.rollout.rollout(m, datas, state[None], ctrl)
        qp = st[:, fs - 1::fs, 1:1 + m.nq]  # state after each control step
        rq = ref[idx][None]
        cost = (5 * np.mean((qp[..., 7:] - rq[..., 7:]) ** 2, axis=-1) + 10 * (qp[..., 2] - rq[..., 2]) ** 2
                + 20 * np.sum((qp[..., :2] - rq[..., :2]) ** 2, axis=-1)
                + 50 * (1 - np.abs(np.sum(qp[..., 3:7] * rq[..., 3:7], axis=-1))) + 100 * (qp[..., 2] < 0.6))
        total = cost.sum(axis=1)
        wts = np.exp(-(total - total.min()) / (lam * horizon))
        u = u + np.einsum("n,nhj->hj", wts / wts.sum(), eps)
        _, _, term, _, info = env.step(np.clip(u[0] / scale, -1, 1).astype(np.float32))
        k = info["frame"]
        jerr.append(float(np.mean(np.abs(d.qpos[7:] - ref[k, 7:]))))
        xyerr.append(float(np.linalg.norm(d.qpos[:2] - ref[k, :2])))
        u = np.concatenate([u[1:], u[-1:]])
        if term:
            return {"seconds": t / env.control_hz, "joint_err": np.mean(jerr), "xy_err": np.mean(xyerr),
                    "wall_s": time.time() - t0, "end": info["termination"]}
    return {"seconds": steps / env.control_hz, "joint_err": np.mean(jerr), "xy_err": np.mean(xyerr),
            "wall_s": time.time() - t0, "end": None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clip", default="walk2_subject4")
    p.add_argument("--frame", type=int, default=5950, help="MPPI start frame (control rate)")
    p.add_argument("--seconds", type=float, default=5.0, help="MPPI horizon of the episode (s)")
    p.add_argument("--gains", default="1,2,5,10", help="PD gain multiples for the stand and pd tables")
    p.add_argument("--starts", type=int, default=8)
    p.add_argument("--samples", type=int, default=128, help="MPPI rollouts per control step (N)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", choices=("stand", "pd", "mppi", "stand-mppi"), default=None)
    a = p.parse_args()
    gains = [float(g) for g in a.gains.split(",")]
    if a.only in (None, "stand"):
        stand_table(gains, 10.0)
    if a.only in (None, "pd"):
        pd_table(a.clip, gains, a.starts, 10.0)
    if a.only in (None, "mppi"):
        print(f"\nmppi: {a.clip} from frame {a.frame}, N {a.samples}, Unitree's gains, residual authority 2 rad")
        print("| perturbations | horizon (steps) | s tracked | joint err (rad) | root xy err (m) | end | wall (s) |")
        print("|---|---|---|---|---|---|---|")
        for label, knots, horizon, lam in (("white", 0, 25, 0.01), ("smooth, 5 knots", 5, 40, 0.01)):
            r = mppi(a.clip, a.frame, a.seconds, a.samples, horizon, 0.15, lam, knots, 2.0, a.threads)
            print(f"| {label} | {horizon} | {r['seconds']:.2f} | {r['joint_err']:.3f} | {r['xy_err']:.3f} | "
                  f"{r['end'] or 'none'} | {r['wall_s']:.0f} |", flush=True)
    if a.only in (None, "stand-mppi"):  # can any controller hold the stand with the residual's authority?
        print(f"\nstand-mppi: nominal pose for 6 s, smooth MPPI (5 knots, horizon 40), N {a.samples // 2}, Unitree's gains")
        print("| residual authority (rad per unit action) | s standing | joint err (rad) | end | wall (s) |")
        print("|---|---|---|---|---|")
        for scale, sigma in ((0.25, 0.05), (1.0, 0.15)):
            r = mppi(standing_reference(7.0), 0, 6.0, a.samples // 2, 40, sigma, 0.01, 5, scale, a.threads)
            print(f"| {scale:g} | {r['seconds']:.2f} | {r['joint_err']:.3f} | {r['end'] or 'none'} | {r['wall_s']:.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
