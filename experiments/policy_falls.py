"""Seconds to a fall (not to the task's first tracking termination) of a tracker on a held-out clip.

The tracker's deterministic policy follows the clip's decoding (or the clip, for a clip-trained
tracker) from 8 starts spread over it, for up to 10 s, running on past the task's terminations
until the robot falls (``MimicVecEnv.fallen``); prints the mean seconds to a fall and to the first
termination, and until the fall the joint error, the share of actions at |a| >= 4 and the mean
|a_t - a_(t-1)|.  The comparison figure for the sampling MPC (`experiments/mppi_mimic.py`) in
docs/tracking.md::

    python experiments/policy_falls.py models/lowlevel.pt [walk2_subject4]
"""
from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np

from envs.mimic.config import MimicConfig
from envs.mimic.env import MimicVecEnv
from lowlevel.tracker import check_motion_vae, load_tracker, make_library, policy_actor, spread_frames


def main(path: str, clip: str = "walk2_subject4", starts: int = 8, seconds: float = 10.0) -> None:
    model, ck = load_tracker(path)
    task = replace(MimicConfig.from_dict(ck["task"]), assist=False, mirror=False)
    lib = make_library([clip], task, motion_vae=check_motion_vae(ck, None))
    steps = int(seconds * task.control_hz)
    env = MimicVecEnv(lib, starts, task, adaptive=False, auto_reset=False)
    obs = env.reset_to([0] * starts, spread_frames(lib, starts, steps))
    act = policy_actor(model, ck)
    fall, term = np.full(starts, seconds), np.full(starts, seconds)
    err, sat, da = [], [], []
    prev = np.zeros((starts, 19))
    for k in range(steps):
        a = act(obs)
        up = fall == seconds
        rows = env._g(1)  # noqa: SLF001 - the reference frame this step is scored against
        obs, _, _, infos = env.step(a)
        if up.any():
            sat.append((np.abs(a[up]) >= 4).mean())
            da.append(np.abs(a - prev)[up].mean())
            err.append(np.abs(env.robot.qpos[up, 7:] - lib.qpos[rows[up], 7:]).mean())
        prev = a
        t = (k + 1) * task.control_dt
        fall = np.where(env.fallen() & up, t, fall)
        ended = np.array([i["termination"] is not None for i in infos])
        term = np.where(ended & (term == seconds), t, term)
    print(f"{path}: fall {fall.mean():.2f} s ({(fall >= seconds).sum()}/{starts} up {seconds:g} s) {np.round(fall, 1)}; "
          f"first termination {term.mean():.2f} s; joint err {np.mean(err):.3f}; sat {np.mean(sat):.3f}; |da| {np.mean(da):.2f}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
