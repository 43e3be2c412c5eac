"""Evaluation of a low-level policy against two controllers without a learned policy.

For every selected clip, three controllers run from reference frame 0 (state = reference frame 0)
over the same horizon (the part of the clip the policy's goal covers, optionally capped):

    policy      the trained PPO policy, deterministic actions (mean), observations normalised
                with the checkpoint's VecNormalize statistics
    hold_pose   (a) PD control holding the initial pose: env action_mode="pd",
                pd_target="absolute", targets = the joint angles of reference frame 0
    pd_tracking (b) PD tracking of the reference joint angles, no learned policy: env
                action_mode="pd", pd_target="reference", zero action (targets = reference)

Metrics per clip and controller:
    seconds_tracked   control steps before the episode terminated (fell / tilted / diverged /
                      unstable, see envs.tracking) / control rate; equals the horizon if none
    horizon_s         clip length evaluated (s)
    joint_error_rad   mean over steps and joints of |q - q_ref| (rad)
    root_error_m      mean over steps of ||root position - reference root position|| (m)
    reward_per_step   mean DeepMimic imitation reward per control step (no torque penalty)
    finished          1 if the horizon was reached without termination, else 0
    termination       reason, or null
and per controller the means over clips, with ``finished`` averaged into the fraction of clips
finished without falling.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from daps.io import atomic_write

__all__ = ["evaluate_lowlevel", "run_episode", "plot_training_curve", "format_table", "CONTROLLERS"]

CONTROLLERS = ("policy", "hold_pose", "pd_tracking")
METRICS = ("seconds_tracked", "joint_error_rad", "root_error_m", "reward_per_step", "finished")


def run_episode(env, act: Callable[[Any], np.ndarray], clip: str, max_steps: int, on_step=None) -> dict[str, Any]:
    """Run one episode of ``env`` on ``clip`` from frame 0 for at most ``max_steps`` control steps."""
    obs, _ = env.reset(options={"clip": clip, "frame": 0})
    ref = env._clip.qpos  # noqa: SLF001 - reference qpos at the control rate
    d = env.data
    jerr, rerr, rew = [], [], []
    reason = None
    steps = 0
    for _ in range(max_steps):
        obs, r, term, trunc, info = env.step(act(obs))
        steps += 1
        k = info["frame"]
        if on_step is not None:
            on_step(env, k)
        jerr.append(float(np.mean(np.abs(d.qpos[7:] - ref[k, 7:]))))
        rerr.append(float(np.linalg.norm(d.qpos[:3] - ref[k, :3])))
        rew.append(float(r))
        if term:
            reason = info["termination"]
            break
        if trunc:
            break
    hz = env.control_hz
    return {
        "seconds_tracked": steps / hz if reason is None else (steps - 1) / hz,
        "horizon_s": max_steps / hz,
        "joint_error_rad": float(np.mean(jerr)) if jerr else float("nan"),
        "root_error_m": float(np.mean(rerr)) if rerr else float("nan"),
        "reward_per_step": float(np.mean(rew)) if rew else float("nan"),
        "finished": float(reason is None and steps >= max_steps),
        "termination": reason,
        "steps": steps,
    }


def policy_actor(model, vecnorm) -> Callable[[Any], np.ndarray]:
    def act(obs):
        o = vecnorm.normalize_obs(obs) if vecnorm is not None else obs
        a, _ = model.predict(o, deterministic=True)
        return a
    return act


def _hold_pose_actor(env, clip: str) -> Callable[[Any], np.ndarray]:
    import mujoco

    from envs.model import JOINT_NAMES

    m = env.model
    jids = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, j) for j in JOINT_NAMES]
    lo, hi = m.jnt_range[jids, 0], m.jnt_range[jids, 1]
    q0 = env._clips[env.clip_names.index(clip)].qpos[0, 7:]  # noqa: SLF001
    a = np.clip((q0 - 0.5 * (lo + hi)) / (0.5 * (hi - lo)), -1.0, 1.0).astype(np.float32)
    return lambda obs: a


def make_policy_env(ck: dict, clip: str, codes: dict | None, max_episode_steps: int, **extra):
    from envs.tracking import H1TrackingEnv
    from lowlevel.train import env_kwargs

    cfg = ck["config"]
    kw = env_kwargs(cfg)
    kw["max_episode_steps"] = max_episode_steps
    kw.update(extra)
    return H1TrackingEnv([clip], latent_codes=codes, **kw)


def codes_for(ck: dict, clips: list[str], motion_vae: str | Path | None = None, data_root=None) -> dict | None:
    """Latent codes of ``clips``: stored in the checkpoint or encoded with its motion VAE."""
    from daps.trainer import CheckpointError
    from lowlevel.train import encode_clips, file_sha256

    cfg = ck["config"]
    if cfg["goal"] != "latent":
        return None
    stored = ck.get("codes") or {}
    missing = [c for c in clips if c not in stored]
    out = {c: stored[c] for c in clips if c in stored}
    if missing:
        info = cfg["motion_vae"]
        path = Path(motion_vae) if motion_vae is not None else Path(info["path"])
        if not path.is_file():
            raise FileNotFoundError(f"{path}: motion VAE checkpoint of this policy not found (needed to encode "
                                    f"{', '.join(missing)}); pass --motion-vae")
        if file_sha256(path) != info["sha256"]:
            raise CheckpointError(f"{path}: not the motion VAE this policy was trained with (sha256 differs)")
        new, _ = encode_clips(path, missing, data_root, seed=info.get("seed", 0))
        out.update(new)
    return out


def evaluate_lowlevel(
    ckpt: str | Path,
    clips_pattern: str = "walk2_subject4",
    out: str | Path | None = None,
    split: str = "all",
    max_seconds: float | None = None,
    motion_vae: str | Path | None = None,
    data_root=None,
    controllers: tuple[str, ...] = CONTROLLERS,
) -> dict[str, Any]:
    """Evaluate the checkpoint's policy and the two references on the matching clips.

    Writes ``out/eval_lowlevel.json`` when ``out`` is given.  Returns
    {"clips": {clip: {controller: metrics}}, "summary": {controller: mean metrics}, "config": ...}.
    """
    import torch

    from envs.tracking import H1TrackingEnv
    from lowlevel.train import load_lowlevel, select_clips

    torch.set_num_threads(1)
    bad = [c for c in controllers if c not in CONTROLLERS]
    if bad:
        raise ValueError(f"unknown controller(s) {bad}; choose from {CONTROLLERS}")
    model, vecnorm, ck = load_lowlevel(ckpt)
    cfg = ck["config"]
    clips = select_clips(clips_pattern, split, data_root)
    codes = codes_for(ck, clips, motion_vae, data_root)
    results: dict[str, dict] = {}
    for clip in clips:
        penv = make_policy_env(ck, clip, None if codes is None else {clip: codes[clip]}, 10**9)
        horizon = penv._clip.last  # noqa: SLF001 - last usable frame; steps from frame 0
        if max_seconds is not None:
            horizon = max(1, min(horizon, int(round(max_seconds * penv.control_hz))))
        res = {}
        if "policy" in controllers:
            res["policy"] = run_episode(penv, policy_actor(model, vecnorm), clip, horizon)
        penv.close()
        for name, target in (("hold_pose", "absolute"), ("pd_tracking", "reference")):
            if name not in controllers:
                continue
            env = H1TrackingEnv([clip], goal="reference", action_mode="pd", pd_target=target,
                                max_episode_steps=10**9, data_root=cfg.get("data_root"))
            actor = _hold_pose_actor(env, clip) if name == "hold_pose" else (lambda obs: np.zeros(19, np.float32))
            res[name] = run_episode(env, actor, clip, horizon)
            env.close()
        results[clip] = res
    summary = {}
    for name in controllers:
        summary[name] = {m: float(np.mean([results[c][name][m] for c in clips])) for m in METRICS}
        summary[name]["clips"] = len(clips)
    report = {"checkpoint": str(ckpt), "num_timesteps": int(ck["num_timesteps"]), "config": cfg,
              "max_seconds": max_seconds, "clips": results, "summary": summary}
    if out is not None:
        path = Path(out) / "eval_lowlevel.json"
        atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(report, indent=2)))
    return report


def format_table(report: dict[str, Any]) -> str:
    """Plain-text table: one row per clip and controller, then the means."""
    head = f"{'clip':<18} {'controller':<12} {'tracked_s':>9} {'horizon_s':>9} {'joint_err':>9} {'root_err':>8} {'rew/step':>8} {'finished':>8}  termination"
    lines = [head, "-" * len(head)]
    for clip, res in report["clips"].items():
        for name, m in res.items():
            lines.append(f"{clip:<18} {name:<12} {m['seconds_tracked']:9.2f} {m['horizon_s']:9.2f} {m['joint_error_rad']:9.3f} "
                         f"{m['root_error_m']:8.3f} {m['reward_per_step']:8.3f} {m['finished']:8.0f}  {m['termination'] or '-'}")
    lines.append("-" * len(head))
    for name, m in report["summary"].items():
        lines.append(f"{'mean (' + str(m['clips']) + ' clips)':<18} {name:<12} {m['seconds_tracked']:9.2f} {'':9} {m['joint_error_rad']:9.3f} "
                     f"{m['root_error_m']:8.3f} {m['reward_per_step']:8.3f} {m['finished']:8.2f}")
    return "\n".join(lines)


def plot_training_curve(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """PNG of the training curve from run_dir/progress.csv: mean episode length (s) and mean
    imitation reward per step against environment steps.  Returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    src = run_dir / "progress.csv"
    if not src.is_file():
        raise FileNotFoundError(f"{src}: no training log (progress.csv) in {run_dir}")
    with src.open() as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{src}: training log is empty")
    x = np.array([float(r["timesteps"]) for r in rows])
    ep_len = np.array([float(r["ep_len_mean"]) for r in rows]) / 100.0
    rps = np.array([float(r["reward_per_step"]) for r in rows])
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    ax[0].plot(x, ep_len)
    ax[0].set(xlabel="environment steps", ylabel="mean episode length (s)", title="survival (RSI episodes)")
    ax[1].plot(x, rps)
    ax[1].set(xlabel="environment steps", ylabel="imitation reward / step", title="DeepMimic reward")
    for a in ax:
        a.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(out) if out is not None else run_dir / "training_curve.png"
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path
