"""Can PPO learn to keep the H1 standing?  A fast check of the low-level learning setup.

The reference is the nominal standing pose held still (``experiments.tracking_feasibility``'s
``standing_reference``); everything else is the ``cpu`` preset's teacher setup: 32 batched
environments, PD residual around the reference (``--scale`` rad per unit action), [256, 256] ELU,
fixed exploration std (``--std``, action units), SB3 PPO with the preset's arguments, VecNormalize.
Zero residual falls after 2.0 s with Unitree's gains (the ankle's kp 40 is far softer than the
robot's toppling stiffness), so the policy has to learn to balance.  Prints the mean episode length
(control steps at 100 Hz, 1000 = 10 s, the cap) every 65,536 environment steps.

Example (2-core machine, ~5 min each)::

    python experiments/stand_ppo.py --gain-scale 1 --std 0.5
    python experiments/stand_ppo.py --gain-scale 5 --std 0.5
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

from tracking_feasibility import standing_reference  # sibling script (experiments/ is on sys.path)
from envs.batched import H1BatchedVecEnv
from lowlevel import policy as pol


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--scale", default="0.25", help="PD residual, rad per unit action, or 'torque-range'")
    p.add_argument("--std", type=float, default=0.5, help="fixed exploration std (action units)")
    p.add_argument("--gain-scale", type=float, default=1.0, help="multiple of Unitree's kp and kd")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(1)
    scale = a.scale if a.scale == "torque-range" else float(a.scale)
    venv = VecMonitor(H1BatchedVecEnv(32, [standing_reference(30.0)], goal="reference", action_mode="pd",
                                      pd_target="reference", pd_action_scale=scale, pd_gain_scale=a.gain_scale,
                                      max_episode_steps=1000))
    venv.seed(a.seed)
    cfg = pol.preset("cpu")
    cfg["log_std_init"] = math.log(a.std)
    vecnorm = VecNormalize(venv, norm_obs=True, norm_reward=True, clip_obs=10.0, gamma=cfg["ppo"]["gamma"])
    model = PPO("MlpPolicy", vecnorm, policy_kwargs=pol.policy_kwargs(cfg, "reference"), seed=a.seed,
                device="cpu", verbose=0, **cfg["ppo"])
    model.policy.log_std.requires_grad_(False)
    print(f"stand: scale {a.scale}, std {a.std}, gains x{a.gain_scale:g}")
    print("| env steps | wall (s) | mean episode (control steps) |\n|---|---|---|")
    t0 = time.time()
    while model.num_timesteps < a.steps:
        model.learn(total_timesteps=65_536, reset_num_timesteps=False)
        lengths = [e["l"] for e in model.ep_info_buffer]
        print(f"| {model.num_timesteps} | {time.time() - t0:.0f} | {np.mean(lengths):.1f} |", flush=True)
    venv.close()


if __name__ == "__main__":
    main()
