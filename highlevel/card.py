"""Model card of the shipped high-level policy (models/highlevel.md): what made it, what it scores.

Like motion_vae/card.py: Markdown for people with one fenced JSON block for programs (read with
daps.shipped.read_card). Two measurements:

* `held_out_metrics`: what `daps highlevel eval` prints: held-out next-segment code NLL
  (nats/token; deterministic, teacher forced) on `pairs` fixed pairs of the validation clips
  with three contexts (text + COM + history, history only, unconditional; the same network with
  inputs masked), and the decoded joint RMSE (rad) of sampled codes on `rmse_pairs` of them;
* `slice_metrics`: the NLL part on the first SLICE of those fixed pairs (no sampling, a few
  seconds once the pairs are cached): the figure tests/test_shipped_highlevel.py re-measures, so
  the file and its card cannot drift apart.
"""
from __future__ import annotations

import json
from pathlib import Path

from daps.provenance import git_commit
from daps.shipped import write_card as write_card_file

SLICE = 128  # validation pairs re-scored by the test


def held_out_metrics(model_path: str | Path | None = None, pairs: int = 1024, rmse_pairs: int = 128, root=None,
                     motion_vae: str | Path | None = None, cache_dir: str | Path | None = None, text_cache=None) -> dict:
    """{"step", "val_clips", "val_pairs", "nll/<context>": nats/token, "rmse_rad/<context>": rad,
    "rmse_rad/vae floor (true codes)"} of a high-level file (None: models/highlevel.pt).
    Raises ValueError for pairs < 1 or rmse_pairs < 0, CheckpointError for a bad file (one line)."""
    import torch

    from highlevel.ship import load_highlevel, validation_pairs
    from highlevel.train import evaluate_prior
    from motion_vae.models import load_motion_vae

    if pairs < 1 or rmse_pairs < 0:
        raise ValueError(f"--pairs must be >= 1 and --rmse-pairs >= 0, got {pairs}, {rmse_pairs}")
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    from daps.shipped import HIGHLEVEL, shipped_path

    model_path = model_path or shipped_path(HIGHLEVEL)
    model, cfg, ck, vae_path = load_highlevel(model_path, motion_vae)
    val = validation_pairs(model_path, ck, cfg, vae_path, root, cache_dir, text_cache)
    vae, _, stats, _ = load_motion_vae(vae_path, "cpu")
    m = evaluate_prior(model, val, pairs, rmse_pairs, vae if rmse_pairs else None, stats, root, cfg.seed)
    return {"step": ck["step"], "val_clips": sorted(set(val.clip_names)), "val_pairs": len(val), **m}


def slice_metrics(model_path: str | Path | None = None, root=None, cache_dir: str | Path | None = None, text_cache=None) -> dict:
    """{"slice_pairs": SLICE, "slice_nll/<context>": nats/token} on the first SLICE fixed held-out
    pairs (the same pairs `held_out_metrics` starts with)."""
    m = held_out_metrics(model_path, SLICE, 0, root, None, cache_dir, text_cache)
    return {"slice_pairs": min(SLICE, m["val_pairs"]), **{f"slice_{k}": round(v, 5) for k, v in m.items() if k.startswith("nll/")}}


def write_card(model_path: str | Path, command: str, out: str | Path, notes: str = "", train_commit: str | None = None,
               machine: str | None = None, eval_json: str | Path | None = None, root=None,
               cache_dir: str | Path | None = None, text_cache=None) -> dict:
    """Write the card of an exported high-level model (export first: `export_highlevel`); returns its JSON.

    Records: command, commit and machine of the training run (train_commit / machine override
    them for runs that recorded none), preset sizes, steps, batch, wall time, data split, the
    motion VAE's file name and sha256, the held-out metrics (from eval_json, written by
    `daps highlevel eval --ckpt MODEL --out F`, else measured now) and the slice check.
    Raises CheckpointError / ValueError (one line) for a file that is not an exported model.
    """
    from daps.trainer import CheckpointError
    from envs.lafan1 import split_clips
    from highlevel.ship import load_highlevel

    model_path = Path(model_path)
    _, cfg, ck, vae_path = load_highlevel(model_path)
    if not ck.get("exported"):
        raise CheckpointError(f"{model_path}: not an exported model; run `daps highlevel export` first")
    extra = ck["extra"]
    train, val = split_clips(root)
    v = json.loads(Path(eval_json).read_text()) if eval_json else held_out_metrics(model_path, root=root, cache_dir=cache_dir,
                                                                                   text_cache=text_cache)
    p = cfg.prior
    card = {
        "model_file": model_path.name,
        "size_bytes": model_path.stat().st_size,
        "command": command,
        "commit": train_commit or extra.get("commit") or git_commit(),
        "commit_source": "given (--train-commit)" if train_commit else "recorded by the run" if extra.get("commit")
                         else "HEAD when the card was written (the run recorded none)",
        "machine": machine or extra.get("machine") or "not recorded",
        "steps": ck["step"],
        "preset_steps": cfg.steps,
        "batch_size": cfg.batch_size,
        "train_seconds": round(ck.get("train_seconds", 0.0), 1),
        "sizes": {"embed_dim": p.embed_dim, "decoder_layers": p.num_layers, "encoder_layers": p.enc_layers,
                  "heads": p.num_heads, "vocab_size": p.vocab_size, "block_size": p.block_size},
        "split": "the motion VAE's (envs.lafan1.VAL_CLIPS held out)" if cfg.train_clips is None and cfg.val_clips is None
                 else "clips chosen by the preset",
        "train_clips": cfg.train_clips or train,
        "val_clips": cfg.val_clips or val,
        "motion_vae": extra["motion_vae"],
        "motion_vae_sha256": extra["motion_vae_sha256"],
        "motion_vae_sha256_source": extra.get("motion_vae_sha256_source"),
        "validation": v,
        **slice_metrics(model_path, root, cache_dir, text_cache),
    }
    nll = {k.split("/", 1)[1]: x for k, x in v.items() if k.startswith("nll/")}
    rmse = {k.split("/", 1)[1]: x for k, x in v.items() if k.startswith("rmse_rad/")}
    rows = "\n".join(f"| {k} | {nll[k]:.3f} | {rmse[k]:.3f} |" if k in rmse else f"| {k} | {nll[k]:.3f} | - |" for k in nll)
    if "vae floor (true codes)" in rmse:
        rows += f"\n| motion VAE floor (true codes decoded) | - | {rmse['vae floor (true codes)']:.3f} |"
    text = f"""# Model card: `{card['model_file']}`

The default high-level policy of this project: (text embedding, root window of 32 past + 32 goal
frames in the base frame, previous segment's 64 codes) -> the next 32-frame segment's 64 codes of
the motion VAE `{card['motion_vae']}` (sha256 `{card['motion_vae_sha256']}`), an autoregressive
transformer prior (H {p.embed_dim}, {p.enc_layers} encoder + {p.num_layers} decoder layers). It only means
something with that motion VAE: loading it with another fails.

- **Command:** `{command}`, then `daps highlevel export` ({card['size_bytes'] / 1e6:.2f} MB, float16 weights where safe)
- **Commit:** `{card['commit']}` ({card['commit_source']})
- **Steps:** {card['steps']} of the preset's {card['preset_steps']}, batch {card['batch_size']}
- **Training wall time:** {card['train_seconds'] / 60:.1f} min (evaluation excluded), {card['machine']}
- **Data split:** LAFAN1-H1, train = {len(card['train_clips'])} clips, validation = {', '.join(card['val_clips'])}
  (split: {card['split']}); {v.get('val_pairs')} held-out pairs
{notes}
Held-out next-segment codes ({v.get('val_pairs')} pairs of the validation clips; NLL on the fixed
sample `daps highlevel eval` scores, text = each segment's measured phrase; RMSE of decoded
sampled codes, temperature 1):

| context | code NLL (nats/token) | decoded joint RMSE (rad) |
|---|---|---|
{rows}

The JSON below is read by `tests/test_shipped_highlevel.py`, which re-scores the first
{SLICE} of those pairs and compares them with `slice_nll/...`.
"""
    return write_card_file(out, text, card)
