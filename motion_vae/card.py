"""Model cards of shipped motion VAEs: what made the file, and figures a test re-measures.

A card is Markdown for people with one fenced JSON block for programs (`daps.shipped`). `slice_metrics` is the
check both the card writer and tests/test_shipped_models.py run, so a model file and its card
cannot drift apart: joint RMSE and log p on the first `SLICE` of the fixed validation segments,
one seeded sampled code each.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from daps.provenance import describe_machine, git_commit
from daps.shipped import write_card as write_card_file
from envs.lafan1 import resolve_clip_dir
from motion_vae.dataset import MIRROR_SUFFIX, SegmentSampler, clip_features, recorded_clips
from motion_vae.evaluate import evaluate_segments
from motion_vae.models import load_motion_vae

SLICE = 128  # validation segments re-scored by the test (a few seconds on a CPU)


def slice_metrics(model_path: str | Path, data_root: str | Path | None = None) -> dict[str, float]:
    """Joint RMSE (rad) and log p (nats) of the model on the first SLICE fixed validation segments."""
    model, cfg, stats, ckpt = load_motion_vae(model_path, "cpu")
    clip_dir, L = resolve_clip_dir(data_root), cfg.model.segment_length
    val = SegmentSampler({n: stats.standardise(clip_features(clip_dir / f"{n}.csv", L)) for n in ckpt["extra"]["val_clips"]}, L)
    x = torch.from_numpy(val.fixed(1000, seed=0)[:SLICE])
    m = evaluate_segments(model, x, stats, beta_final=cfg.beta_final)
    return {"slice_segments": SLICE, "slice_joint_rmse_rad": m["joint_rmse_rad"], "slice_log_p": m["log_p"]}


def _describe_train_clips(names: list[str]) -> str:
    """"36 clips" or "36 clips + 36 mirror images + 72 speed replays" (the name suffixes of
    `motion_vae.dataset`)."""
    recorded = recorded_clips(names)
    mirrored = sum(n.endswith(MIRROR_SUFFIX) for n in names)
    replays = len(names) - len(recorded) - mirrored
    text = f"{len(recorded)} clips"
    text += f" + {mirrored} mirror images" if mirrored else ""
    return text + (f" + {replays} speed replays" if replays else "")


def write_card(
    model_path: str | Path, eval_json: str | Path, command: str, out: str | Path, notes: str = "",
    train_commit: str | None = None, machine: str | None = None,
) -> dict:
    """Write the card of an exported model: command, commit, split, steps, wall time, machine,
    the validation metrics of `daps motion-vae eval` (eval_json) and the slice check.

    The commit and machine are those the training run recorded (train_commit / machine
    override them for runs that recorded none)."""
    _, cfg, _, ckpt = load_motion_vae(model_path, "cpu")
    extra = ckpt["extra"]
    card = {
        "model_file": Path(model_path).name,
        "size_bytes": Path(model_path).stat().st_size,
        "command": command,
        "commit": train_commit or extra.get("commit") or git_commit(),
        "preset": cfg.preset,
        "method": {"ar": "daps", "na": "daps-na", "fsq": "fsq"}[cfg.model.recognition],
        "steps": ckpt["step"],
        "train_seconds": round(ckpt.get("train_seconds", 0.0), 1),
        "machine": machine or extra.get("machine") or describe_machine(),
        "train_clips": ckpt["extra"]["train_clips"],
        "val_clips": ckpt["extra"]["val_clips"],
        "validation": json.loads(Path(eval_json).read_text()),
        **slice_metrics(model_path),
    }
    v = card["validation"]
    root_height = f" root height RMSE {v['root_height_rmse_m']:.3f} m," if "root_height_rmse_m" in v else ""
    text = f"""# Model card: `{card['model_file']}`

The default motion autoencoder of this project: 32 frames of the H1 (30 Hz, C = 104 features) ->
64 codes of a 1024-word vocabulary (640 bits) -> 32 frames. Made by the project's own commands.

- **Command:** `{command}`, then `daps motion-vae export` (float16 weights, {card['size_bytes'] / 1e6:.2f} MB)
- **Commit:** `{card['commit']}` (the code that trained it)
- **Method / preset:** {card['method']} / `{card['preset']}`; {ckpt['step']} steps of batch {cfg.batch_size}
- **Training wall time:** {card['train_seconds'] / 60:.1f} min (validation excluded), {card['machine']}
- **Data split:** LAFAN1-H1, train = {_describe_train_clips(card['train_clips'])}, validation = {', '.join(card['val_clips'])}
- **Validation ({v.get('num_segments')} fixed segments, one sampled code each):** joint RMSE
  {v['joint_rmse_rad']:.3f} rad, body-position RMSE {v['body_pos_rmse_m']:.3f} m,{root_height} log p {v['log_p']:.1f} nats,
  own-minus-shuffled code log p {v['code_info_nats']:.1f} nats, code perplexity {v['code_perplexity']:.0f}
{notes}
The JSON below is read by `tests/test_shipped_models.py`, which re-scores the first
{SLICE} validation segments and compares them with `slice_joint_rmse_rad`.
"""
    return write_card_file(out, text, card)
