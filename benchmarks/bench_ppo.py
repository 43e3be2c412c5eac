"""Low-level PPO throughput, side by side in one run: the batched VecEnv against 4 subprocesses.

Prints, on the walking clips of the training split, latent goals (random code indices: the
throughput does not depend on them, no motion VAE needed) and the chosen action mode:

  1. bare environment: control steps/s of one ``H1TrackingEnv`` stepped with random actions in a
     plain loop (no policy, no vector env): the ceiling per core;
  2. for each setup, SB3 PPO built exactly as ``lowlevel.train`` builds it (``build_vec_env``,
     VecMonitor, VecNormalize, the ``cpu`` preset's network), ``--rollouts`` rounds of one rollout +
     one update per setup, the setups interleaved round by round (a changing load on a shared
     machine then hits all of them alike), after a warm-up round:
       * collection steps/s (env stepping + policy forward, over the rollout phases),
       * update steps/s (rollout size / time of the PPO update phase),
       * overall steps/s (environment steps / time of the measured rollouts + updates);
     setups: ``subproc-4``: today's 4-subprocess setup with the previous cpu preset's PPO
     (n_steps 512, batch 512, 5 epochs); ``batched-N/Tt``: ``envs.batched.H1BatchedVecEnv`` with
     the cpu preset (32 environments, n_steps 128, batch 1024, 4 epochs), physics on T threads.
     All setups use the same policy network code (the latent extractor's convolutions as matrix
     products), so the subproc row is today's setup with today's network.
and the ratios the issue asks for: collection / bare environment, overall batched / overall subproc.
The last column, environment steps per CPU-second of all the setup's processes and threads
(overall), does not depend on what else runs on the machine: on a loaded machine the scheduler
gives the 5 processes of ``subproc-4`` a larger share of the cores than the one process of the
batched env, which the wall-clock ratio then understates.

Usage: ``OMP_NUM_THREADS=1 python benchmarks/bench_ppo.py [--rollouts 4] [--action-mode torque|pd]``
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

#: The cpu preset before the batched env (4 subprocess environments), for the side-by-side run.
OLD_CPU = dict(n_envs=4, vec="subproc", ppo=dict(n_steps=512, batch_size=512, n_epochs=5))


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def bare_env_steps_per_s(clips, codes, action_mode: str, seconds: float) -> float:
    """Control steps/s of one H1TrackingEnv with uniform random actions, resets included."""
    from envs.tracking import H1TrackingEnv

    env = H1TrackingEnv(clips, goal="latent", latent_codes=codes, action_mode=action_mode, pd_target="nominal")
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(4096, 19)).astype(np.float32)
    steps = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        _, _, term, trunc, _ = env.step(actions[steps % 4096])
        steps += 1
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - t0)


class PPOSetup:
    """SB3 PPO on ``cfg``'s vector env, run one rollout + update at a time (``round``)."""

    def __init__(self, name: str, cfg: dict, ppo_kw: dict, p: dict, codes):
        from stable_baselines3 import PPO
        from stable_baselines3.common.callbacks import BaseCallback
        from stable_baselines3.common.vec_env import VecNormalize

        from lowlevel.policy import policy_kwargs
        from lowlevel.train import build_vec_env, fix_exploration_std

        self.name, self.n_envs = name, cfg["n_envs"]
        self.ppo = {k: ppo_kw[k] for k in ("n_steps", "batch_size", "n_epochs")}
        self.rollout = cfg["n_envs"] * ppo_kw["n_steps"]
        self.venv = VecNormalize(build_vec_env(cfg, codes, cfg["n_envs"], 0), norm_obs_keys=["proprio"],
                                 gamma=ppo_kw["gamma"])
        self.model = PPO("MultiInputPolicy", self.venv, policy_kwargs=policy_kwargs(p, "latent"), device="cpu",
                         seed=0, **ppo_kw)
        fix_exploration_std(self.model, p)
        self.marks: list[float] = []
        marks = self.marks

        class Timer(BaseCallback):
            def _on_rollout_start(self):
                marks.append(time.perf_counter())

            def _on_rollout_end(self):
                marks.append(time.perf_counter())

            def _on_step(self):
                return True

        self.timer = Timer()
        self.collect: list[float] = []
        self.update: list[float] = []
        self.cpu: list[float] = []
        inner = self.venv.venv.venv  # VecNormalize -> VecMonitor -> the vector env
        self.workers = [proc.pid for proc in getattr(inner, "processes", [])]

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of this process and the setup's worker processes so far."""
        total = time.process_time()
        for pid in self.workers:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
        return total

    def round(self, record: bool = True) -> None:
        """One rollout and one PPO update (SB3's learn for exactly one rollout)."""
        self.marks.clear()
        cpu0 = self.cpu_seconds()
        self.model.learn(self.rollout, callback=self.timer, reset_num_timesteps=False)
        t_end = time.perf_counter()
        if record:
            self.collect.append(self.marks[1] - self.marks[0])
            self.update.append(t_end - self.marks[1])
            self.cpu.append(self.cpu_seconds() - cpu0)

    def result(self) -> dict:
        n = len(self.collect) * self.rollout
        return {"name": self.name, "ppo": self.ppo, "collection": n / sum(self.collect),
                "update": n / sum(self.update), "overall": n / (sum(self.collect) + sum(self.update)),
                "per_cpu_s": n / sum(self.cpu)}

    def close(self) -> None:
        self.venv.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rollouts", type=int, default=4, help="measured rollouts per setup (after a warm-up one)")
    ap.add_argument("--n-envs", type=int, default=None, help="environments of the batched setup (default: the cpu preset's)")
    ap.add_argument("--action-mode", default="torque", choices=("torque", "pd"))
    ap.add_argument("--bare-seconds", type=float, default=10.0)
    ap.add_argument("--clips", default="walk*")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="physics threads of the batched setups")
    ap.add_argument("--skip-subproc", action="store_true", help="measure the batched setups only")
    args = ap.parse_args()

    from envs.reference import load_reference
    from lowlevel.policy import preset
    from lowlevel.motions import select_clips

    torch.set_num_threads(1)
    p = preset("cpu")
    clips = select_clips(args.clips, "train")
    rng = np.random.default_rng(0)
    codes = {c: rng.integers(0, 1024, size=(max(int(load_reference(c).duration * 30 // 32), 1), 64)) for c in clips}
    base = {"clips": clips, "goal": "latent", "action_mode": args.action_mode, "pd_target": "nominal",
            "max_episode_steps": 1000, "motion_vae": {"vocab_size": 1024, "block_size": 64}}

    print(f"machine: {os.cpu_count()} cores (nproc), {cpu_model()}; torch threads {torch.get_num_threads()}; "
          f"{len(clips)} clips, latent goal, {args.action_mode} actions, cpu preset network {p['net_arch']} ELU")
    bare = bare_env_steps_per_s(clips, codes, args.action_mode, args.bare_seconds)
    print(f"bare H1TrackingEnv (one env, random actions, no policy): {bare:8.0f} control steps/s")

    n_new = args.n_envs or p["n_envs"]
    setups = [PPOSetup(f"batched-{n_new}/{t}t", dict(base, n_envs=n_new, vec="batched", threads=t), p["ppo"], p, codes)
              for t in args.threads]
    if not args.skip_subproc:
        setups.append(PPOSetup("subproc-4", dict(base, n_envs=OLD_CPU["n_envs"], vec=OLD_CPU["vec"]),
                               dict(p["ppo"], **OLD_CPU["ppo"]), p, codes))
    # Interleaved rounds (one rollout + update of each setup in turn), so that a change in the
    # load of a shared machine hits every setup alike; the first round warms up and is not counted.
    for r in range(args.rollouts + 1):
        for su in setups:
            su.round(record=r > 0)
    rows = [su.result() for su in setups]
    for su in setups:
        su.close()
    print(f"{'setup':<14} {'n_steps/batch/epochs':>20} {'collection':>11} {'update':>9} {'overall':>9}  (env steps/s)"
          f"  {'per CPU-s':>9}")
    for r in rows:
        q = r["ppo"]
        print(f"{r['name']:<14} {q['n_steps']:>8}/{q['batch_size']}/{q['n_epochs']:<6} {r['collection']:11.0f} "
              f"{r['update']:9.0f} {r['overall']:9.0f}  {r['per_cpu_s']:20.0f}")
    old = rows[-1] if not args.skip_subproc else None
    for new in rows[: len(args.threads)]:
        line = f"{new['name']}: collection / bare env {new['collection'] / bare:.2f} (target >= 0.5)"
        if old is not None:
            line += (f", overall / subproc-4 {new['overall'] / old['overall']:.2f}x (target >= 3x, aim 5x)"
                     f", per CPU-second {new['per_cpu_s'] / old['per_cpu_s']:.2f}x")
        print(line + f", {3600 * new['overall'] / 1e6:.1f} M env steps per hour")


if __name__ == "__main__":
    main()
