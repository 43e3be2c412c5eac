"""The model card of a shipped tracker (``models/lowlevel.pt`` made by ``train-tracker``).

The card holds the command, commit, clips, steps, wall time, machine, the evaluation of
``daps lowlevel eval-tracker`` and a short slice that ``tests/test_shipped_models.py`` reruns:
:data:`SLICE_CLIP` decoded, :data:`SLICE_STARTS` start frames, :data:`SLICE_SECONDS` each.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from daps.shipped import write_card as write_card_file

__all__ = ["slice_metrics", "write_tracker_card", "SLICE_CLIP", "SLICE_STARTS", "SLICE_SECONDS"]

SLICE_CLIP = "walk2_subject4"
SLICE_STARTS = 3
SLICE_SECONDS = 2.0


def slice_metrics(path: str | Path, data_root=None, motion_vae: str | Path | None = None) -> dict[str, Any]:
    """Seconds tracked and joint error (rad) of the deterministic policy on the slice (module docstring)."""
    from lowlevel.tracker import evaluate_tracker

    rep = evaluate_tracker(path, [SLICE_CLIP], starts=SLICE_STARTS, seconds=SLICE_SECONDS, data_root=data_root,
                           motion_vae=motion_vae)
    r = rep["clips"][SLICE_CLIP]
    return {"slice_clip": SLICE_CLIP, "slice_starts": SLICE_STARTS, "slice_seconds": SLICE_SECONDS,
            "slice_goal": rep["goal"], "slice_seconds_tracked": r["seconds_tracked"],
            "slice_joint_error_rad": r["joint_error_rad"]}


def write_tracker_card(model_path: str | Path, eval_json: str | Path, command: str, out: str | Path, commit: str,
                       machine: str, notes: str = "") -> dict[str, Any]:
    """Write the card (Markdown with a JSON block) of an exported tracker; returns the JSON."""
    from lowlevel.tracker import read_checkpoint

    ck = read_checkpoint(model_path)
    ev = json.loads(Path(eval_json).read_text())
    card = {
        "model_file": Path(model_path).name, "size_bytes": Path(model_path).stat().st_size, "format": ck["format"],
        "command": command, "commit": commit, "machine": machine, "train_clips": ck["clips"],
        "env_steps": int(ck["num_timesteps"]), "train_wall_s": round(float(ck.get("wall_s", 0.0)), 1),
        "task": ck["task"], "ppo": ck["ppo"], "init_from": ck.get("init_from"),
        "motion_vae_sha256": (ck.get("motion_vae") or {}).get("sha256"),
        "evaluation": ev, **slice_metrics(model_path),
    }
    rows = "\n".join(
        f"| {name} | {r['seconds_tracked']:.2f} | {r['finished']} / {r['episodes']} | {r['joint_error_rad']:.3f} "
        f"| {r['root_xy_error_m']:.3f} | {100 * r['actions_saturated']:.1f} % | {r['mean_abs_action_delta']:.3f} |"
        for name, r in ev["clips"].items())
    text = f"""# Model card: `{card['model_file']}`

The default low-level policy: a PPO (stable-baselines3) tracker of the H1 in MuJoCo
(`envs.mimic`, 50 Hz policy on 0.005 s physics) that follows the motion VAE's decoded motions.
Made by the project's own commands.

- **Command:** `{command}`, then `daps lowlevel export-tracker` ({card['size_bytes'] / 1e6:.2f} MB, tensors only)
- **Commit:** `{commit}`
- **Training clips:** {', '.join(ck['clips'])} and their mirrors (held out: {SLICE_CLIP}, run2_subject1)
- **Budget:** {card['env_steps']:,} environment steps, {card['train_wall_s'] / 3600:.2f} h of training wall time; {machine}
- **Motion VAE:** sha256 `{card['motion_vae_sha256']}` (must equal models/motion_vae.pt's)

Evaluation (`daps lowlevel eval-tracker`, goal `{ev['goal']}`, {ev['seconds']} s episodes from start frames
spread over each clip, deterministic policy, no assist):

| clip | seconds tracked | finished | joint error (rad) | root xy error (m) | actions at the limit | mean abs delta a |
|---|---|---|---|---|---|---|
{rows}

{notes}
The JSON below is read by `tests/test_shipped_models.py`, which reruns the slice
(`slice_*`: {SLICE_CLIP}, {SLICE_STARTS} starts, {SLICE_SECONDS} s each).
"""
    return write_card_file(out, text, card)
