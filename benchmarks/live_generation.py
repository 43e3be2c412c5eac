"""Generation time per segment of `daps live` (the producer's `LiveMotion.step`), per path.

    python benchmarks/live_generation.py [--segments 12] [--prompt "walk forward"]

Kinematic, physics balanced by the sampling MPC (the default) and physics driven by the learned
policy (models/lowlevel.pt, `--policy`), each with the text alone and with a COM goal
(1.0 m/s, 0.3 rad/s; 16 candidates). The first two segments are not timed (warm-up); after a
physics fall the motion is reset, as the page's "Stand up after a fall" does. Prints the mean and
median wall time per segment and the real-time factor (segment length 32/30 s / mean time): above
1 the page plays without waiting.
"""
import argparse

import numpy as np

from highlevel.live import SEG_SECONDS, load_live_motion


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--segments", type=int, default=12)
    ap.add_argument("--prompt", default="walk forward")
    args = ap.parse_args()
    print("| path | COM goal | s per segment (mean / median) | real-time factor |\n|---|---|---|---|")
    for kinematic, mpc in ((True, None), (None, None), (None, False)):
        motion, _ = load_live_motion(kinematic=kinematic, mpc=mpc)
        motion.text.encode([args.prompt])
        for goal in (None, (1.0, 0.3)):
            motion.reset()
            times = []
            while len(times) < args.segments:
                if motion.done():
                    motion.reset()
                times.append(motion.step(args.prompt, goal).seconds)
            t = np.array(times[2:])
            print(f"| {motion.mode} | {'off' if goal is None else '1.0 m/s, 0.3 rad/s'} "
                  f"| {t.mean():.2f} / {np.median(t):.2f} | {SEG_SECONDS / t.mean():.2f} |", flush=True)
        motion.close()


if __name__ == "__main__":
    main()
