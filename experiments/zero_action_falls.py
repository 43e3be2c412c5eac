"""How long does the H1 stay up under a task's base controller alone (zero policy action)?

For each task preset (optionally with settings, as JSON), the robot follows the PD targets of the
reference plus the preset's feedback (capture point, SIMBICON terms) with zero action from 8 starts
spread over each clip, and the seconds until it falls (pelvis below 0.6 m or tilted over 1 rad;
the task's tracking terminations are ignored) are averaged.  A base controller that keeps it up
longer gives the policy on top less to learn.

Example (the figures in docs/tracking.md; ~2 s per preset on one core)::

    python experiments/zero_action_falls.py mimic balance simbicon 'simbicon:{"balance_limit": 0.5}'
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from envs.mimic.config import MimicConfig, preset
from envs.mimic.env import MimicVecEnv
from lowlevel.tracker import make_library, spread_frames


def seconds_up(clip: str, cfg: MimicConfig, starts: int = 8, seconds: float = 6.0) -> float:
    """Mean seconds (over ``starts`` evenly spread starts) before a fall under zero action."""
    lib = make_library([clip], cfg)
    env = MimicVecEnv(lib, starts, cfg, adaptive=False, auto_reset=False)
    env.reset_to([0] * starts, spread_frames(lib, starts, int(seconds * cfg.control_hz)))
    t = np.full(starts, seconds)
    for k in range(int(seconds * cfg.control_hz)):
        env.step(np.zeros((starts, 19)))
        t = np.where(env.fallen() & (t == seconds), (k + 1) * cfg.control_dt, t)
        if (t < seconds).all():
            break
    return float(t.mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("presets", nargs="+", help="NAME or NAME:{json settings}")
    p.add_argument("--clips", default="walk1_subject1,walk2_subject4")
    a = p.parse_args()
    clips = a.clips.split(",")
    print("| preset | " + " | ".join(clips) + " | mean |\n|---|" + "---|" * (len(clips) + 1))
    for spec in a.presets:
        name, _, kw = spec.partition(":")
        cfg = preset(name, mirror=False, **json.loads(kw or "{}"))
        r = [seconds_up(c, cfg) for c in clips]
        print(f"| {spec} | " + " | ".join(f"{x:.2f}" for x in r) + f" | {np.mean(r):.2f} |", flush=True)


if __name__ == "__main__":
    main()
