"""PPO collection + update throughput (environment steps/s) of the low-level policy presets.

Runs SB3 PPO exactly as ``lowlevel.train`` builds it (SubprocVecEnv of H1TrackingEnv with latent
goals, VecMonitor, VecNormalize, the preset's policy and PPO hyper-parameters) for a few rollouts
on the walking clips, and prints:
  * collection steps/s  (env stepping + policy forward, measured over the rollout phases),
  * update steps/s      (rollout size / time of the PPO update phase),
  * overall steps/s     (total environment steps / wall time, what training sees).
The latent codes are random indices (throughput does not depend on them; no motion VAE needed).

Usage: ``python benchmarks/bench_ppo.py [--preset cpu] [--rollouts 3] [--n-envs N]``
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--rollouts", type=int, default=3)
    ap.add_argument("--n-envs", type=int, default=None)
    ap.add_argument("--clips", default="walk*")
    args = ap.parse_args()

    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import VecNormalize

    from envs.reference import load_reference
    from lowlevel.policy import policy_kwargs, preset
    from lowlevel.train import build_vec_env, select_clips

    torch.set_num_threads(1)
    p = preset(args.preset)
    n_envs = args.n_envs or p["n_envs"]
    clips = select_clips(args.clips, "train")
    rng = np.random.default_rng(0)
    codes = {}
    for c in clips:
        n_seg = int(load_reference(c, 100.0).duration * 30 // 32)
        codes[c] = rng.integers(0, 1024, size=(max(n_seg, 1), 64))
    cfg = {"clips": clips, "goal": "latent", "action_mode": "pd", "pd_target": "reference", "max_episode_steps": 1000,
           "motion_vae": {"vocab_size": 1024, "block_size": 64}}
    venv = VecNormalize(build_vec_env(cfg, codes, n_envs, 0), norm_obs_keys=["proprio"], gamma=p["ppo"]["gamma"])
    model = PPO("MultiInputPolicy", venv, policy_kwargs=policy_kwargs(p, "latent"), device="cpu", seed=0, **p["ppo"])

    marks: list[tuple[str, float]] = []

    class Timer(BaseCallback):
        def _on_rollout_start(self):
            marks.append(("rollout_start", time.perf_counter()))

        def _on_rollout_end(self):
            marks.append(("rollout_end", time.perf_counter()))

        def _on_step(self):
            return True

    rollout = n_envs * p["ppo"]["n_steps"]
    total = rollout * (args.rollouts + 1)  # the first rollout warms up
    t0 = time.perf_counter()
    model.learn(total, callback=Timer())
    wall = time.perf_counter() - t0
    venv.close()
    starts = [t for k, t in marks if k == "rollout_start"]
    ends = [t for k, t in marks if k == "rollout_end"]
    collect = [e - s for s, e in zip(starts, ends)][1:]
    update = [s - e for e, s in zip(ends, starts[1:])][1:] + ([t0 + wall - ends[-1]] if len(ends) > 1 else [])
    net = p["net_arch"]
    print(f"preset {args.preset}: MLP {net} ELU, n_envs {n_envs}, n_steps {p['ppo']['n_steps']}, batch "
          f"{p['ppo']['batch_size']}, n_epochs {p['ppo']['n_epochs']}, torch threads {torch.get_num_threads()}")
    print(f"  collection : {rollout / np.mean(collect):8.0f} env steps/s  ({np.mean(collect):.2f} s per {rollout}-step rollout)")
    print(f"  update     : {rollout / np.mean(update):8.0f} env steps/s  ({np.mean(update):.2f} s per update)")
    print(f"  overall    : {total / wall:8.0f} env steps/s  ({total} steps in {wall:.1f} s, first rollout included)")
    print(f"  -> {3600 * total / wall / 1e6:.2f} M env steps per hour")


if __name__ == "__main__":
    main()
