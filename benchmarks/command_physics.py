"""Seconds before a fall of `daps command`'s physics path, per prompt, over seeds (README figures).

Runs what `daps command PROMPT --seed S` runs (high-level prior -> codes per segment -> decoded
goal -> low-level policy in MuJoCo), in one process so the models load once:

    python benchmarks/command_physics.py --prompts "walk forward|stand still|run forward|dance|turn left" --seeds 10
    python benchmarks/command_physics.py --prompts "walk forward|stand still|turn left" --seeds 10 --segments 10 --mpc --text-goal

Defaults: the shipped models/highlevel.pt and models/lowlevel.pt, nominal standing start,
at most 6 segments (6.4 s). Prints one line per rollout and the mean per prompt.
"""
import argparse
import time

import numpy as np
import torch

from highlevel.command import generate_batch
from highlevel.follower import KinematicFollower
from highlevel.physics import PhysicsFollower, load_command_policy
from highlevel.sampling import Sampling
from highlevel.ship import load_highlevel
from highlevel.text import EmbeddingCache
from lowlevel.mpc import MPPIConfig
from daps.shipped import LOWLEVEL, shipped_path
from motion_vae.models import load_motion_vae


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", default="walk forward|stand still|run forward|dance|turn left", help="'|'-separated")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--segments", type=int, default=6)
    ap.add_argument("--start", default="nominal", help="nominal | decoded | zero")
    ap.add_argument("--highlevel", default=None, help="default: models/highlevel.pt")
    ap.add_argument("--lowlevel", default=str(shipped_path(LOWLEVEL)))
    ap.add_argument("--text-cache", default="runs/highlevel_cache/text_embeddings.npz")
    ap.add_argument("--guidance", type=float, default=Sampling.guidance, help="classifier-free guidance on the text (1 = none)")
    ap.add_argument("--text-goal", action="store_true",
                    help="steer by the goal each prompt's text implies (highlevel/goal.py), as daps command does by default")
    ap.add_argument("--mpc", action="store_true", help="the sampling MPC (lowlevel/mpc.py) acts instead of the policy")
    ap.add_argument("--mpc-threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(1)
    prior, _, _, vae_path = load_highlevel(a.highlevel)
    vae, _, stats, _ = load_motion_vae(vae_path, "cpu")
    policy, vecnorm, ck = load_command_policy(a.lowlevel, vae_path)
    prompts = a.prompts.split("|")
    mpc = MPPIConfig(threads=a.mpc_threads) if a.mpc else None
    goals = [None] * len(prompts)
    if a.text_goal:
        from highlevel.goal import prompt_goals

        goals = prompt_goals(prompts, a.text_cache)
    for prompt, emb, goal in zip(prompts, EmbeddingCache(a.text_cache).encode(prompts), goals):
        kw = {} if goal is None else dict(zip(("speed", "turn", "direction", "height"), goal),
                                          preview=KinematicFollower(vae, stats))  # candidates judged kinematically
        before, turns, fell, speeds = [], [], [], []
        for seed in range(a.seeds):
            follower = PhysicsFollower(policy, vecnorm, ck, vae, stats, a.start, stop_at_fall=True, mpc=mpc)  # the rest is not needed
            t = time.time()
            generate_batch(prior, follower, emb, a.segments, seed=seed, guidance=a.guidance, **kw)
            r = follower.record()["physics"]
            before.append(r["seconds_before_fall"])
            fell.append(r["fell"])
            up = [g for g in r["segments"] if not g["fell"]]  # segments the robot got through standing
            turn = float(np.mean([g["achieved"]["turn_rate_rad_s"] for g in up])) if up else float("nan")
            turns.append(turn)
            speeds.append(r["com_speed_m_s"])
            asked = float(np.mean([g["decoded"]["root_speed_m_s"] for g in r["segments"]]))  # what the codes decode to
            print(f"{prompt!r:24} seed {seed}: {r['seconds_before_fall']:.2f} s before a fall ({r['termination'] or 'none'}), "
                  f"COM speed {r['com_speed_m_s']} m/s (decoded root {asked:.2f} m/s), turn {turn:.2f} rad/s, "
                  f"{time.time() - t:.1f} s wall", flush=True)
        print(f"== {prompt!r}: mean {np.mean(before):.2f} s before a fall over {a.seeds} seeds, {len(fell) - sum(fell)} up the whole run, "
              f"{sum(not f and v >= 0.3 for f, v in zip(fell, speeds))} of them with a COM speed >= 0.3 m/s, "
              f"mean turn {np.nanmean(turns):.2f} rad/s", flush=True)


if __name__ == "__main__":
    main()
