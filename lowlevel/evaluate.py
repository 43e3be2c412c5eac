"""Evaluation of a low-level policy against two controllers without a learned policy.

For every selected clip, three controllers run from the same ``starts`` start frames, spread
evenly over the clip (frame 0 first; the state is set to the reference frame, as in RSI), each
episode lasting at most ``max_seconds`` (default 10 s) or until the clip's usable end:

    policy      the trained PPO policy, deterministic actions (mean), observations normalised
                with the checkpoint's VecNormalize statistics (a ``goal="decoded"`` policy gets the
                motion VAE's decoding of the clip's codes, rebuilt from the checkpoint's codes and
                motion VAE file, sha256-checked; ``lowlevel.motions.decoded_motions``)
    hold_pose   (a) PD control holding the start pose: env action_mode="pd",
                pd_target="absolute", targets = the joint angles of the start frame
    pd_tracking (b) PD tracking of the reference joint angles, no learned policy: env
                action_mode="pd", pd_target="reference", zero action (targets = reference)

Several starts, not only frame 0: LAFAN1 clips begin with a T-pose calibration frame, which says
little about tracking the motion itself.

Metrics per episode (then averaged over the starts of a clip, and over clips):
    seconds_tracked   control steps before the episode terminated (fell / tilted / diverged /
                      unstable, see envs.tracking) / control rate; equals the horizon if none
    horizon_s         episode length asked for (s)
    joint_error_rad   mean over the episode's steps (a terminal one included) and the 19 joints
                      of |q - q_ref| (rad)
    decoded_joint_error_rad
                      ``goal="decoded"`` policies only (else NaN): the same mean of |q - q_decoded|,
                      against the decoded motion the policy was asked to follow (how well it follows
                      its goal; joint_error_rad is against the true clip)
    joint_error_common_rad
                      the same mean over the first n steps only, n = the fewest steps any of the
                      evaluated controllers ran from this start frame (rad): the errors of all
                      controllers over the same stretch of motion, since a controller that falls
                      early is otherwise averaged over the easy first steps after RSI only
    root_error_m      mean over the episode's steps of ||root position - reference root position|| (m)
    reward_per_step   mean DeepMimic imitation reward per control step of the episode (no torque
                      penalty)
    return_fraction   sum of the imitation reward over the horizon / horizon steps: the reward
                      of each tracked step, 0 from the terminal step on (survival and accuracy in
                      one number; 1 = perfect tracking over the whole horizon)
    finished          1 if the horizon was reached without termination, else 0 (its mean is the
                      fraction of episodes finished without falling)
    termination       reason, or null
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Callable

import mujoco
import numpy as np
import torch
from tqdm import tqdm

from daps.io import atomic_write, atomic_write_json, file_sha256
from daps.trainer import CheckpointError
from envs.model import JOINT_NAMES
from envs.tracking import H1TrackingEnv
from lowlevel.checkpoint import checkpoint_codes, load_lowlevel
from lowlevel.environment import make_policy_env
from lowlevel.motions import decoded_motions, encode_clips, select_clips

__all__ = ["evaluate_lowlevel", "run_episode", "add_common_window_error", "plot_training_curve", "format_table",
           "CONTROLLERS"]

CONTROLLERS = ("policy", "hold_pose", "pd_tracking")
METRICS = ("seconds_tracked", "horizon_s", "joint_error_rad", "decoded_joint_error_rad", "joint_error_common_rad",
           "root_error_m", "reward_per_step", "return_fraction", "finished")
DEFAULT_STARTS = 8
DEFAULT_MAX_SECONDS = 10.0


def run_episode(env, act: Callable[[Any], np.ndarray], clip: str, max_steps: int, on_step=None,
                frame: int = 0) -> dict[str, Any]:
    """Run one episode of ``env`` on ``clip`` from reference ``frame`` for at most ``max_steps``
    control steps (fewer if the clip ends first); returns the metrics of the module docstring."""
    max_steps = max(1, min(int(max_steps), env.last_frame(clip) - frame))
    obs, _ = env.reset(options={"clip": clip, "frame": frame})
    ref = env._clip.qpos  # noqa: SLF001 - reference qpos at the control rate
    d = env.data
    jerr, rerr, rew, derr = [], [], [], []
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
        if "decoded_joint_error" in info:
            derr.append(info["decoded_joint_error"])
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
        "decoded_joint_error_rad": float(np.mean(derr)) if derr else float("nan"),
        "root_error_m": float(np.mean(rerr)) if rerr else float("nan"),
        "reward_per_step": float(np.mean(rew)) if rew else float("nan"),
        "return_fraction": float(np.sum(rew[:-1] if reason is not None else rew)) / max_steps,
        "finished": float(reason is None and steps >= max_steps),
        "termination": reason,
        "steps": steps,
        "control_hz": hz,
        "joint_error_per_step": jerr,  # consumed by add_common_window_error, not written to JSON
    }


def add_common_window_error(per_controller: dict[str, list[dict[str, Any]]]) -> None:
    """Set ``joint_error_common_rad`` on every episode of ``per_controller`` ({controller: episodes,
    the same start times in the same order}) and drop their ``joint_error_per_step`` lists.

    The common window is the shortest episode of each start, in seconds: controllers may run at
    different control rates (each episode's ``control_hz``, default 100 Hz).

    Raises:
        ValueError: the controllers' episode lists differ in length.
    """
    runs = list(per_controller.values())
    if len({len(r) for r in runs}) > 1:
        raise ValueError("every controller needs one episode per start frame")
    for eps in zip(*runs):
        hz = [float(e.get("control_hz", 100.0)) for e in eps]
        window = min(len(e["joint_error_per_step"]) / h for e, h in zip(eps, hz))  # seconds
        for e, h in zip(eps, hz):
            errs = e.pop("joint_error_per_step")
            n = int(round(window * h))
            e["joint_error_common_rad"] = float(np.mean(errs[:n])) if n else float("nan")


def policy_actor(model, vecnorm) -> Callable[[Any], np.ndarray]:
    """obs (n_envs, obs_dim) -> deterministic actions (n_envs, act_dim) of a PPO model, through
    VecNormalize's observation statistics when given."""
    def act(obs):
        o = vecnorm.normalize_obs(obs) if vecnorm is not None else obs
        a, _ = model.predict(o, deterministic=True)
        return a
    return act


def _reference_actor(env, name: str, clip: str, frame: int) -> Callable[[Any], np.ndarray]:
    if name == "hold_pose":
        return _hold_pose_actor(env, clip, frame)
    zero = np.zeros(19, np.float32)  # pd_target="reference": zero action = the reference angles
    return lambda obs: zero


def _hold_pose_actor(env, clip: str, frame: int = 0) -> Callable[[Any], np.ndarray]:
    m = env.model
    jids = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, j) for j in JOINT_NAMES]
    lo, hi = m.jnt_range[jids, 0], m.jnt_range[jids, 1]
    q0 = env._clips[env.clip_names.index(clip)].qpos[frame, 7:]  # noqa: SLF001
    a = np.clip((q0 - 0.5 * (lo + hi)) / (0.5 * (hi - lo)), -1.0, 1.0).astype(np.float32)
    return lambda obs: a


def codes_for(ck: dict, clips: list[str], motion_vae: str | Path | None = None, data_root=None) -> dict | None:
    """Latent codes of ``clips`` (goal "latent" or "decoded"; else None): stored in the checkpoint or
    encoded with its motion VAE."""
    cfg = ck["config"]
    if cfg["goal"] not in ("latent", "decoded"):
        return None
    stored = checkpoint_codes(ck) or {}
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
        new, _ = encode_clips(path, missing, data_root, seed=info.get("seed", 0), greedy=info.get("greedy", False))
        out.update(new)
    return out


def decoded_for(ck: dict, codes: dict | None, motion_vae: str | Path | None = None, data_root=None) -> dict | None:
    """{clip: decoded motion} of ``codes`` for a goal="decoded" checkpoint (else None), decoded with
    the motion VAE it was trained with (:func:`lowlevel.motions.decoded_motions`, sha256-checked)."""
    if ck["config"]["goal"] != "decoded":
        return None
    return decoded_motions(ck["config"], codes, motion_vae, data_root)


def start_frames(last: int, starts: int) -> list[int]:
    """``starts`` distinct start frames spread evenly over [0, last), frame 0 first."""
    if starts < 1:
        raise ValueError(f"starts must be >= 1, got {starts}")
    return sorted({int(i * last / starts) for i in range(starts)})


def _mean_metrics(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {m: float(np.mean([e[m] for e in episodes])) for m in METRICS}
    out["episodes"] = len(episodes)
    out["terminations"] = {}
    for e in episodes:
        key = e["termination"] or "none"
        out["terminations"][key] = out["terminations"].get(key, 0) + 1
    return out


def evaluate_lowlevel(
    ckpt: str | Path,
    clips_pattern: str = "walk2_subject4",
    out: str | Path | None = None,
    split: str = "all",
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    starts: int = DEFAULT_STARTS,
    motion_vae: str | Path | None = None,
    data_root=None,
    controllers: tuple[str, ...] = CONTROLLERS,
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate the checkpoint's policy and the two references on the matching clips.

    Every controller runs the same episodes: ``starts`` start frames per clip (:func:`start_frames`),
    each at most ``max_seconds`` long (None: up to the clip's end).  Writes ``out/eval_lowlevel.json``
    (atomically) when ``out`` is given.  Returns {"clips": {clip: {controller: mean metrics and
    "episodes"}}, "summary": {controller: metrics averaged over clips}, "config": ..., ...}.

    Raises:
        CheckpointError / FileNotFoundError: unreadable checkpoint or motion VAE.
        ValueError: no clip matches, unknown controller, ``starts`` < 1 or ``max_seconds`` <= 0.
    """
    torch.set_num_threads(1)
    bad = [c for c in controllers if c not in CONTROLLERS]
    if bad:
        raise ValueError(f"unknown controller(s) {bad}; choose from {CONTROLLERS}")
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be > 0, got {max_seconds}")
    model, vecnorm, ck = load_lowlevel(ckpt)
    cfg = ck["config"]
    clips = select_clips(clips_pattern, split, data_root)
    codes = codes_for(ck, clips, motion_vae, data_root)
    decoded = decoded_for(ck, codes, motion_vae, data_root)
    results: dict[str, dict] = {}
    bar = tqdm(total=len(clips) * len(controllers) * starts, desc="eval episodes", disable=not progress)
    for clip in clips:
        envs = {}
        if "policy" in controllers:
            envs["policy"] = (make_policy_env(ck, clip, None if codes is None else {clip: codes[clip]}, 10**9,
                                              decoded=decoded), policy_actor(model, vecnorm))
        for name, target in (("hold_pose", "absolute"), ("pd_tracking", "reference")):
            if name in controllers:
                env = H1TrackingEnv([clip], goal="reference", action_mode="pd", pd_target=target,
                                    max_episode_steps=10**9, data_root=cfg.get("data_root"))
                envs[name] = (env, None)
        # start times and horizon in seconds: a policy may run at another control rate than the
        # references' 100 Hz (its config's control_hz); frames are then mapped per env
        any_env = next(iter(envs.values()))[0]
        hz0 = any_env.control_hz
        times = [f / hz0 for f in start_frames(any_env.last_frame(clip), starts)]
        runs = {}
        for name, (env, actor) in envs.items():
            hz, last = env.control_hz, env.last_frame(clip)
            horizon = last if max_seconds is None else max(1, int(round(max_seconds * hz)))
            episodes = []
            for t0 in times:
                f = min(int(round(t0 * hz)), last - 1)
                act = actor if actor is not None else _reference_actor(env, name, clip, f)
                ep = run_episode(env, act, clip, horizon, frame=f)
                ep["start_frame"] = f
                episodes.append(ep)
                bar.update()
            runs[name] = episodes
            env.close()
        add_common_window_error(runs)
        results[clip] = {name: {**_mean_metrics(eps), "per_start": eps} for name, eps in runs.items()}
    bar.close()
    summary = {}
    for name in controllers:
        summary[name] = {m: float(np.mean([results[c][name][m] for c in clips])) for m in METRICS}
        summary[name]["clips"] = len(clips)
        summary[name]["episodes"] = int(sum(results[c][name]["episodes"] for c in clips))
    report = {"checkpoint": str(ckpt), "num_timesteps": int(ck["num_timesteps"]), "config": cfg,
              "max_seconds": max_seconds, "starts": starts, "clips": results, "summary": summary}
    if out is not None:
        path = Path(out) / "eval_lowlevel.json"
        atomic_write_json(path, report, indent=2)
    return report


def format_table(report: dict[str, Any]) -> str:
    """Plain-text table: one row per clip and controller (means over its start frames), then the
    means over clips.  ``jerr_dec``: joint error against the decoded motion ("-" where none)."""
    head = (f"{'clip':<18} {'controller':<12} {'tracked_s':>9} {'horizon_s':>9} {'joint_err':>9} {'jerr_dec':>8} "
            f"{'jerr_common':>11} {'root_err':>8} {'rew/step':>8} {'return':>7} {'finished':>8}")
    lines = [head, "-" * len(head)]

    def row(label, name, m):
        dec = m.get("decoded_joint_error_rad", float("nan"))  # reports written before it existed lack it
        dec = f"{dec:8.3f}" if dec == dec else f"{'-':>8}"
        return (f"{label:<18} {name:<12} {m['seconds_tracked']:9.2f} {m['horizon_s']:9.2f} {m['joint_error_rad']:9.3f} "
                f"{dec} {m['joint_error_common_rad']:11.3f} {m['root_error_m']:8.3f} {m['reward_per_step']:8.3f} "
                f"{m['return_fraction']:7.3f} {m['finished']:8.2f}")

    for clip, res in report["clips"].items():
        for name, m in res.items():
            lines.append(row(clip, name, m))
    lines.append("-" * len(head))
    for name, m in report["summary"].items():
        lines.append(row(f"mean ({m['clips']} clips)", name, m))
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
