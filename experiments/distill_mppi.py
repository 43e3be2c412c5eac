"""Distil the sampling MPC into the tracker: DAgger (Ross et al. 2011) with an MPPI teacher.

The teacher is :class:`lowlevel.mpc.MPPI` (the simulator as its model, smooth joint-target
perturbations over a short horizon, warm-started plan) on the tracker's own task.  Each round,
worker processes (one per core) run episodes from random starts of the decoded training walks;
every control step the teacher plans from the current state and its action is the label, and the
executed action is the teacher's with probability ``beta`` (else the student's), so later rounds
visit the student's own states.  The student, the tracker's actor (initialised from ``--init``,
its observation statistics kept), is then fitted to all labels so far by least squares on the mean
action.  An episode ends at a fall (pelvis below 0.6 m or tilted over 1 rad), not at the task's
tracking terminations: the teacher may stray from the reference to stay up.

Writes ``RUN/data_rK.npz`` per round, ``RUN/checkpoint.pt`` (a tracker checkpoint that
``daps lowlevel eval-tracker`` reads) and ``RUN/log.csv``; a rerun skips rounds whose data exist.

Example (2-core machine)::

    python experiments/distill_mppi.py --run-dir runs/distill --rounds 3 --minutes 12
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import torch

from daps.io import append_csv_row
from envs.lafan1 import split_clips
from envs.mimic.config import MimicConfig
from envs.mimic.env import MimicVecEnv
from envs.mimic.observations import observation_layout
from lowlevel.mpc import MPPI, MPPIConfig
from mppi_mimic import add_mppi_options, mppi_settings
from lowlevel.tracker import (check_motion_vae, evaluate_tracker, load_tracker, make_library, read_checkpoint,
                              save_checkpoint)


def collect(args: dict) -> dict:
    """One worker: episodes from random starts for ``minutes``; returns obs, teacher actions, stats."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(args["seed"])
    ck = read_checkpoint(args["init"])  # its task and motion VAE; the weights are not needed
    task = MimicConfig.from_dict(ck["task"])
    lib = make_library(args["clips"], task, motion_vae=check_motion_vae(ck, None))
    env = MimicVecEnv(lib, 1, task, seed=args["seed"], adaptive=False, auto_reset=False)
    teacher = MPPI(env, MPPIConfig(**args["mppi"], seed=args["seed"]))
    student = None
    if args["beta"] < 1.0:
        from lowlevel.tracker import policy_actor

        model, sck = load_tracker(args["student"])
        student = policy_actor(model, sck)
    obs_l, act_l, ep_s = [], [], []
    t_end = time.time() + 60 * args["minutes"]
    steps = int(args["seconds"] / task.control_dt)
    while time.time() < t_end:
        c = int(rng.integers(lib.num_clips))
        f = int(rng.integers(max(1, lib.last_frame(c) - steps)))
        obs = env.reset_to([c], [f], noise=True)
        teacher.reset()
        t = 0
        for t in range(steps):
            a_t = teacher.act()
            obs_l.append(obs[0].copy())
            act_l.append(a_t)
            a = a_t if student is None or rng.random() < args["beta"] else student(obs)[0]
            obs, _, _, _ = env.step(np.asarray(a)[None])
            if env.fallen()[0] or time.time() > t_end + 60:
                break
        ep_s.append((t + 1) * task.control_dt)
    return {"obs": np.asarray(obs_l, np.float32), "act": np.asarray(act_l, np.float32), "episode_s": ep_s}


def prev_action_slice(dim: int) -> slice:
    """Where the previous action sits in the tracker's observation (dim numbers)."""
    start = 0
    for name, size in observation_layout(MimicConfig().reference_offsets):
        if name == "prev_action":
            return slice(start, start + size)
        start += size
    raise ValueError(f"no prev_action block in an observation of {dim}")


def fit(init: str, student_out: Path, obs: np.ndarray, act: np.ndarray, epochs: int, lr: float,
        seed: int) -> tuple[float, float]:
    """Least squares of the actor's mean action on the labels (5 %, in 2 s blocks, held out); writes a tracker checkpoint;
    returns the final training and held-out MSE (action units^2)."""
    torch.manual_seed(seed)
    model, ck = load_tracker(init)
    pol = model.policy
    # The teacher's labels follow its previous action closely (a warm-started plan), so a student that
    # sees its own previous action learns to copy it and drifts (the copycat problem of behaviour
    # cloning).  A huge variance for that block makes its normalised input ~0: the interface stays.
    var = ck["obs_var"].clone()
    var[prev_action_slice(len(var))] = 1e8
    ck = dict(ck, obs_var=var)
    mean, std = ck["obs_mean"].numpy(), np.sqrt(ck["obs_var"].numpy() + 1e-8)
    x = torch.as_tensor(np.clip((obs - mean) / std, -10, 10), dtype=torch.float32)
    y = torch.as_tensor(act, dtype=torch.float32)
    held = torch.as_tensor(np.arange(len(x)) // 100 % 20 == 0)  # 2 s blocks: neighbouring frames look alike
    xv, yv, x, y = x[held], y[held], x[~held], y[~held]
    params = list(pol.mlp_extractor.policy_net.parameters()) + list(pol.action_net.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    n = len(x)

    def mean_action(xb):
        return pol.action_net(pol.mlp_extractor.forward_actor(pol.extract_features(xb, pol.pi_features_extractor)))

    loss = torch.tensor(0.0)
    for _ in range(epochs):
        perm = torch.randperm(n)
        for b in range(0, n, 512):
            i = perm[b:b + 512]
            loss = torch.mean((mean_action(x[i]) - y[i]) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        val = float(torch.mean((mean_action(xv) - yv) ** 2)) if len(xv) else float("nan")
    ck = dict(ck, policy=pol.state_dict(), distilled={"samples": int(n), "epochs": epochs, "teacher": "mppi"})
    save_checkpoint(student_out, ck)
    return float(loss.detach()), val


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--init", default="models/lowlevel.pt", help="the student's start (and the task, motion VAE)")
    p.add_argument("--clips", default="walk", help="training-split clips whose name starts with this")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--minutes", type=float, default=12.0, help="collection wall time per round and worker")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--betas", default="1,0.5,0.2", help="teacher share of executed actions, per round")
    add_mppi_options(p)  # the teacher's settings
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--lr", type=float, default=3e-4)
    a = p.parse_args()
    a.run_dir.mkdir(parents=True, exist_ok=True)
    clips = [c for c in split_clips()[0] if c.startswith(a.clips)]
    betas = [float(b) for b in a.betas.split(",")]
    student = a.run_dir / "checkpoint.pt"
    log = a.run_dir / "log.csv"
    for r in range(a.rounds):
        data = a.run_dir / f"data_r{r}.npz"
        if not data.exists():
            beta = betas[min(r, len(betas) - 1)]
            jobs = [dict(seed=1000 * r + w, init=a.init, student=str(student), clips=clips, beta=beta,
                         minutes=a.minutes, seconds=a.seconds, mppi=mppi_settings(a)) for w in range(a.workers)]
            with mp.get_context("fork").Pool(a.workers) as pool:
                outs = pool.map(collect, jobs)
            np.savez(data, obs=np.concatenate([o["obs"] for o in outs]), act=np.concatenate([o["act"] for o in outs]),
                     episode_s=np.concatenate([o["episode_s"] for o in outs]), beta=beta)
        all_data = [np.load(a.run_dir / f"data_r{k}.npz") for k in range(r + 1)]
        obs = np.concatenate([d["obs"] for d in all_data])
        act = np.concatenate([d["act"] for d in all_data])
        mse, val = fit(a.init, student, obs, act, a.epochs, a.lr, seed=r)
        rep = evaluate_tracker(student, ["walk2_subject4"], starts=8, seconds=10.0)["clips"]["walk2_subject4"]
        this = np.load(data)
        row = {"round": r, "beta": float(this["beta"]), "labels": len(obs),
               "round_episode_s": round(float(np.mean(this["episode_s"])), 2),
               "round_up_10s": int(np.sum(this["episode_s"] >= a.seconds - 1e-6)), "episodes": len(this["episode_s"]),
               "label_var": round(float(this["act"].var(0).mean()), 2),
               "label_step": round(float(np.abs(np.diff(this["act"], axis=0)).mean()), 2), "fit_mse": round(mse, 4), "held_out_mse": round(val, 4),
               "eval_s": round(rep["seconds_tracked"], 2), "finished": rep["finished"],
               "joint_err": round(rep["joint_error_rad"], 3), "sat": round(rep["actions_saturated"], 3)}
        append_csv_row(log, row)
        print(row, flush=True)


if __name__ == "__main__":
    main()
