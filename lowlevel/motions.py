"""The clips a low-level policy tracks: selecting them by name, their motion-VAE codes, and the
motions those codes decode to (the goal of a ``goal="decoded"`` policy)."""
from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

import numpy as np

from daps.io import file_sha256
from daps.trainer import CheckpointError
from envs.lafan1 import csv_to_qpos, list_clips, load_clip_csv, resolve_clip_dir, split_clips
from envs.tracking import decoded_reference
from motion_vae.codec import decode_codes, encode_clip
from motion_vae.models import load_motion_vae

__all__ = ["select_clips", "encode_clips", "decode_clips", "decoded_motions"]


def select_clips(pattern: str, split: str = "train", data_root=None) -> list[str]:
    """Clip names matching ``pattern`` (fnmatch globs, comma-separated) within ``split``.

    split: "train" (default for training), "val" or "all".  Raises ValueError when nothing matches.
    """
    if split == "all":
        pool = list_clips(data_root)
    elif split in ("train", "val"):
        pool = split_clips(data_root)[0 if split == "train" else 1]
    else:
        raise ValueError(f"split must be 'train', 'val' or 'all', got {split!r}")
    pats = [p.strip() for p in str(pattern).split(",") if p.strip()]
    if not pats:
        raise ValueError("empty clip pattern")
    out = [c for c in pool if any(fnmatch.fnmatchcase(c, p) for p in pats)]
    if not out:
        raise ValueError(f"no {split if split != 'all' else ''} clip matches {pattern!r}".replace("  ", " ")
                         + f" (clips: {', '.join(pool[:8])}{', ...' if len(pool) > 8 else ''})")
    return out


def encode_clips(motion_vae_ckpt: str | Path, clips: list[str], data_root=None, seed: int = 0, greedy: bool = True):
    """({clip: int64 codes (S, 64)}, motion VAE info dict) for the named clips.

    greedy: the most likely code of each segment (what the high level is trained to emit; on the
    shipped motion VAE its decoded motion is 0.129 rad from the true one against 0.143 for a
    sample), else a sample of q(z|x) drawn with `seed` (older policies; the info dict records which, so their clips are encoded again the same way)."""
    model, cfg, stats, _ = load_motion_vae(motion_vae_ckpt, "cpu")
    clip_dir = resolve_clip_dir(data_root)
    L = cfg.model.segment_length
    codes = {}
    for c in clips:
        rows = load_clip_csv(clip_dir / f"{c}.csv", min_frames=L)
        codes[c] = encode_clip(model, stats, rows, seed=seed, segment_length=L, greedy=greedy).astype(np.int64)
    info = {"path": str(Path(motion_vae_ckpt).resolve()), "sha256": file_sha256(motion_vae_ckpt),
            "vocab_size": int(cfg.model.vocab_size), "block_size": int(cfg.model.block_size),
            "segment_length": int(L), "seed": int(seed), "greedy": bool(greedy)}
    return codes, info


def decode_clips(motion_vae_ckpt: str | Path, codes: dict[str, np.ndarray], data_root=None,
                 control_hz: float = 100.0) -> dict:
    """{clip: decoded motion as a ReferenceMotion at ``control_hz``} of latent codes {clip: (S, 64)}.

    Per clip: :func:`motion_vae.codec.decode_codes` (S*32 CSV rows at 30 Hz; the root starts at
    the clip's first frame's x, y and heading, which only places the motion in the world: the
    env's root anchor removes any planar placement) -> ``csv_to_qpos`` ->
    :func:`envs.tracking.decoded_reference` (resampled to the control rate as the clips, feet
    grounded by the decoded motion's own median sole depth).  Deterministic (decoder means).
    """
    model, _, stats, _ = load_motion_vae(motion_vae_ckpt, "cpu")
    clip_dir = resolve_clip_dir(data_root)
    out = {}
    for c, z in codes.items():
        first = load_clip_csv(clip_dir / f"{c}.csv")[:1]
        rows = decode_codes(model, stats, np.asarray(z, dtype=np.int64), start_rows=first)
        out[c] = decoded_reference(c, csv_to_qpos(rows), control_hz, ground_feet=True)
    return out


def decoded_motions(cfg: dict[str, Any], codes: dict[str, np.ndarray], motion_vae: str | Path | None = None,
                    data_root=None) -> dict:
    """Decoded motions (:func:`decode_clips`) of ``codes`` for a ``goal="decoded"`` run config,
    with the motion VAE it was trained with (``motion_vae`` overrides the stored path; the file's
    sha256 must match the stored one).

    Raises FileNotFoundError (no file) or CheckpointError (another motion VAE).
    """
    info = cfg["motion_vae"]
    path = Path(motion_vae) if motion_vae is not None else Path(info["path"])
    if not path.is_file():
        raise FileNotFoundError(f"{path}: motion VAE checkpoint of this policy not found (needed to decode its "
                                "goal motion); pass --motion-vae")
    if file_sha256(path) != info["sha256"]:
        raise CheckpointError(f"{path}: not the motion VAE this policy was trained with (sha256 differs)")
    return decode_clips(path, codes, data_root if data_root is not None else cfg.get("data_root"))
