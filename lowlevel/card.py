"""The model card of a shipped low-level policy (an export of ``daps lowlevel export``,
:mod:`lowlevel.checkpoint`).

The card is Markdown for people with one fenced JSON block for programs (as the motion VAE's,
:mod:`motion_vae.card`); :func:`slice_metrics` is the short, deterministic evaluation that both the
card writer and ``tests/test_shipped_models.py`` run, so a model file and its card cannot drift.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from daps.shipped import write_card as write_card_file
from lowlevel.checkpoint import load_exported
from lowlevel.environment import make_policy_env
from lowlevel.evaluate import codes_for, decoded_for, policy_actor, run_episode, start_frames
from lowlevel.train import training_wall_s

__all__ = ["slice_metrics", "write_card", "SLICE_CLIP", "SLICE_STARTS", "SLICE_SECONDS"]

SLICE_CLIP = "walk2_subject4"  # held out from every training split of this project
SLICE_STARTS = 8               # the evaluation's start frames; the slice runs those below
SLICE_USE = (1, 2, 3)          # start frames 1-3 of 8 (frame 0 is LAFAN1's T-pose)
SLICE_SECONDS = 1.0


def slice_metrics(path: str | Path, data_root=None) -> dict[str, Any]:
    """The short deterministic check of a shipped policy: :data:`SLICE_CLIP` from start frames
    :data:`SLICE_USE` of :data:`SLICE_STARTS`, :data:`SLICE_SECONDS` each; mean seconds tracked
    (s) and joint error against the true clip (rad).  Seconds; the test reruns it."""
    policy, vecnorm, raw = load_exported(path)
    codes = codes_for(raw, [SLICE_CLIP], None, data_root)
    env = make_policy_env(raw, SLICE_CLIP, codes, 10**9, decoded=decoded_for(raw, codes, None, data_root))
    frames = start_frames(env.last_frame(SLICE_CLIP), SLICE_STARTS)
    horizon = int(round(SLICE_SECONDS * env.control_hz))
    eps = [run_episode(env, policy_actor(policy, vecnorm), SLICE_CLIP, horizon, frame=frames[i]) for i in SLICE_USE]
    env.close()
    return {"slice_clip": SLICE_CLIP, "slice_starts": [int(i) for i in SLICE_USE], "slice_seconds": SLICE_SECONDS,
            "slice_seconds_tracked": float(np.mean([e["seconds_tracked"] for e in eps])),
            "slice_joint_error_rad": float(np.mean([e["joint_error_rad"] for e in eps]))}


def _num(x) -> str:
    """3 decimals, or "-" for a metric a controller does not have (None / NaN)."""
    return "-" if x is None or x != x else f"{x:.3f}"


def _training_wall_s(run_dir: Path, steps: int) -> float | None:
    """Training wall time (s, all sittings) at progress.csv's last row at or before ``steps``
    (a run stopped between checkpoints logged rollouts the checkpoint does not hold), or None."""
    return training_wall_s(run_dir / "progress.csv", steps)


def write_card(model_path: str | Path, eval_json: str | Path, command: str, out: str | Path, run_dir: str | Path,
               commit: str, machine: str, notes: str = "") -> dict:
    """Write the card of an exported policy: command, commit, clips, env steps, wall time,
    machine, the evaluation of ``daps lowlevel eval`` (eval_json: policy against both PD
    references) and :func:`slice_metrics`."""
    _, _, raw = load_exported(model_path)
    cfg = raw["config"]
    ev = json.loads(Path(eval_json).read_text())
    wall = _training_wall_s(Path(run_dir), int(raw["num_timesteps"]))
    card = {
        "model_file": Path(model_path).name, "size_bytes": Path(model_path).stat().st_size,
        "command": command, "commit": commit, "machine": machine,
        "goal": cfg["goal"], "action_mode": cfg["action_mode"], "pd_target": cfg["pd_target"],
        "preset": cfg["preset"], "train_clips": cfg["clips"], "env_steps": int(raw["num_timesteps"]),
        "train_wall_s": wall, "init_from": cfg.get("init_from"),
        "motion_vae_sha256": (cfg.get("motion_vae") or {}).get("sha256"),
        "evaluation": {"clips": list(ev["clips"]), "starts": ev["starts"], "max_seconds": ev["max_seconds"],
                       "summary": ev["summary"]},
        **slice_metrics(model_path),
    }
    rows = "\n".join(
        f"| {name} | {m['seconds_tracked']:.2f} | {m['joint_error_rad']:.3f} | {m.get('joint_error_common_rad', float('nan')):.3f} "
        f"| {_num(m.get('decoded_joint_error_rad'))} | {m['root_error_m']:.3f} | {m['reward_per_step']:.3f} "
        f"| {m['return_fraction']:.3f} | {m['finished'] * m['episodes']:.0f} / {m['episodes']} |"
        for name, m in ev["summary"].items())
    hours = "?" if wall is None else f"{wall / 3600:.2f} h"
    text = f"""# Model card: `{card['model_file']}`

The default low-level policy of this project: PPO (stable-baselines3) imitation policy for the
Unitree H1 in MuJoCo (`daps/H1Tracking-v0`), goal `{cfg['goal']}`, actions `{cfg['action_mode']}`
(PD target `{cfg['pd_target']}`). Made by the project's own commands.

- **Command:** `{command}`, then `daps lowlevel export` ({card['size_bytes'] / 1e6:.2f} MB, tensors only)
- **Commit:** `{commit}`
- **Training clips:** {', '.join(cfg['clips'])} (held-out evaluation clip: {SLICE_CLIP})
- **Budget:** {card['env_steps']:,} environment steps, {hours} of training wall time; {machine}
- **Motion VAE:** sha256 `{card['motion_vae_sha256']}` (must equal models/motion_vae.pt's)

Evaluation (`daps lowlevel eval`, {', '.join(ev['clips'])}, {ev['starts']} starts x {ev['max_seconds']} s;
joint error against the true clip; `decoded` = against the motion VAE's decoded motion):

| controller | seconds tracked | joint error (rad) | common window (rad) | vs decoded (rad) | root error (m) | reward / step | return fraction | finished |
|---|---|---|---|---|---|---|---|---|
{rows}

{notes}
The JSON below is read by `tests/test_shipped_models.py`, which reruns the short slice
(`slice_*`: {SLICE_CLIP}, start frames {list(SLICE_USE)} of {SLICE_STARTS}, {SLICE_SECONDS} s each).
"""
    return write_card_file(out, text, card)
