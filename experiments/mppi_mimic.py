"""How long does the sampling MPC (lowlevel.mpc) keep the H1 up on a clip, and at what cost?

:class:`lowlevel.mpc.MPPI` on the tracker's own task (50 Hz control, 0.005 s physics, 3x Unitree
gains) from starts spread over the clip's decoding (or the clip, for a clip-trained tracker); per
start the seconds to the task's first tracking termination and to a fall (the episode runs on past
the termination), the joint error, the mean |a_t - a_(t-1)| (action units) and the wall time per simulated second.

Example (the figures in docs/tracking.md; 2-core machine)::

    python experiments/mppi_mimic.py --starts 8 --seconds 10 --threads 2
"""

from __future__ import annotations

import argparse
import time
from dataclasses import fields

import numpy as np

from envs.mimic.config import MimicConfig
from envs.mimic.env import MimicVecEnv
from lowlevel.mpc import MPPI, MPPIConfig
from lowlevel.tracker import check_motion_vae, eval_starts, make_library, read_checkpoint


def mppi_episode(env: MimicVecEnv, clip: int, frame: int, seconds: float, cfg: MPPIConfig) -> dict:
    """One episode of MPPI control on env 0 of ``env`` (1 env, no auto-reset) from (clip, frame):
    seconds to the task's first termination and to a fall (pelvis below 0.6 m or tilted over 1 rad;
    the episode runs on past a termination until the fall), joint error until the fall, wall time."""
    env.reset_to([clip], [frame])
    mpc = MPPI(env, cfg)
    d, lib = env.datas[0], env.lib
    jerr, acts, t0, steps = [], [], time.time(), int(seconds / env.cfg.control_dt)
    term, fall = None, None
    for t in range(steps):
        acts.append(mpc.act())
        _, _, _, info = env.step(acts[-1][None])
        jerr.append(float(np.abs(d.qpos[7:] - lib.qpos[env._g(0)[0], 7:]).mean()))  # noqa: SLF001
        if term is None and info[0]["termination"]:
            term = ((t + 1) * env.cfg.control_dt, info[0]["termination"])
        if env.fallen()[0]:
            fall = (t + 1) * env.cfg.control_dt
            break
    up = fall or steps * env.cfg.control_dt
    return {"seconds": term[0] if term else up, "end": term[1] if term else None, "fall_s": up,
            "joint_err": float(np.mean(jerr)), "wall_s": time.time() - t0,
            "action_step": float(np.abs(np.diff(acts, axis=0)).mean()) if len(acts) > 1 else 0.0}


def add_mppi_options(p: argparse.ArgumentParser, threads: int | None = None) -> None:
    """One option per :class:`MPPIConfig` setting (``--plan-substeps`` for ``plan_substeps``), its
    default the config's; ``--threads`` only when a default is given (workers use one each)."""
    for f in fields(MPPIConfig):
        if f.name == "seed" or (f.name == "threads" and threads is None):
            continue
        flag, default = "--" + f.name.replace("_", "-"), threads if f.name == "threads" else f.default
        if isinstance(default, bool):
            p.add_argument(flag, action="store_true", help=f"MPPIConfig.{f.name} (lowlevel/mpc.py)")
        else:
            p.add_argument(flag, type=type(default), default=default, help=f"MPPIConfig.{f.name} (lowlevel/mpc.py)")


def mppi_settings(a: argparse.Namespace) -> dict:
    """The :class:`MPPIConfig` settings among parsed options (``add_mppi_options``)."""
    return {f.name: getattr(a, f.name) for f in fields(MPPIConfig) if hasattr(a, f.name)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clip", default="walk2_subject4")
    p.add_argument("--tracker", default="models/lowlevel.pt", help="its task settings and motion VAE are used")
    p.add_argument("--starts", type=int, default=8)
    p.add_argument("--seconds", type=float, default=10.0)
    add_mppi_options(p, threads=2)
    a = p.parse_args()
    ck = read_checkpoint(a.tracker)  # its task and motion VAE; the weights are not needed
    task = MimicConfig.from_dict(ck["task"])
    lib = make_library([a.clip], task, motion_vae=check_motion_vae(ck, None))  # the goal the tracker follows
    env = MimicVecEnv(lib, 1, task, seed=0, auto_reset=False)
    clips, frames = eval_starts(lib, a.starts, int(a.seconds / task.control_dt))
    cfg = MPPIConfig(**mppi_settings(a))
    print(f"MPPI on {a.clip} ({'decoded' if ck.get('motion_vae') else 'clip'}), {cfg}")
    print("| start frame | s to a termination | termination | s to a fall | joint err (rad) | wall s per simulated s | mean abs action step |")
    print("|---|---|---|---|---|---|---|")
    out = []
    for c, f in zip(clips, frames):
        r = mppi_episode(env, c, f, a.seconds, cfg)
        out.append(r)
        print(f"| {f} | {r['seconds']:.2f} | {r['end'] or 'none'} | {r['fall_s']:.2f} | {r['joint_err']:.3f} | "
              f"{r['wall_s'] / r['fall_s']:.1f} | {r['action_step']:.2f} |", flush=True)
    print(f"mean {np.mean([r['seconds'] for r in out]):.2f} s to a termination, {np.mean([r['fall_s'] for r in out]):.2f} s "
          f"to a fall; {sum(r['fall_s'] >= a.seconds for r in out)} of {len(out)} up for {a.seconds:g} s")


if __name__ == "__main__":
    main()
