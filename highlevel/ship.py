"""Shipping the high-level policy: the slim model file, its motion VAE pin, and loading it.

`export_highlevel` turns a training checkpoint (RUN/checkpoint.pt, ~12 MB with AdamW state) into
`models/highlevel.pt` (~2 MB): weights (float16 where the cast is safe, see `half_if_safe`),
config, step, training seconds and an `extra` dict that pins the motion VAE whose codes the prior
predicts (its sha256 and file name). No optimiser or RNG state; every entry is a tensor or plain
Python data, so `torch.load(..., weights_only=True)` reads it.

`load_highlevel` is what `daps command`, `daps highlevel eval|control|card` use: a training
checkpoint or an exported file (default: the shipped models/highlevel.pt) plus the motion VAE to
decode with. The prior is only meaningful with the motion VAE it was trained against (its 1024
codes mean nothing under another codebook), so when the high-level file records a sha256 and the
motion VAE at hand has another, loading fails with one line (CheckpointError).
"""
from __future__ import annotations

from pathlib import Path

import torch

from daps.io import file_sha256
from daps.shipped import HIGHLEVEL, MOTION_VAE, save_export, shipped_path, slim_checkpoint

HALF_MAX_REL_ERR = 1e-3  # largest |w - fp16(w)| / max|w| accepted per tensor (fp16 has 11 bits: ~5e-4)


def half_if_safe(t: torch.Tensor) -> torch.Tensor:
    """float16 copy of a floating tensor when the cast is finite and its largest error is below
    HALF_MAX_REL_ERR of the tensor's largest magnitude (values far below that magnitude may
    flush to zero, which changes nothing they contribute to a sum with the large ones); else
    the tensor unchanged (as are integer tensors)."""
    if not t.is_floating_point() or t.numel() == 0:
        return t
    h = t.half()
    if not torch.isfinite(h).all():
        return t
    scale = t.abs().max().item()
    if scale > 0 and (h.float() - t.float()).abs().max().item() > HALF_MAX_REL_ERR * scale:
        return t
    return h


def export_highlevel(ckpt_path: str | Path, out: str | Path, half: bool = True, motion_vae: str | Path | None = None) -> dict:
    """Write the slim model file of a high-level training checkpoint; returns a summary
    {"path", "size_bytes", "half_tensors", "float32_tensors", "motion_vae", "motion_vae_sha256"}.

    The motion VAE pinned is, in order: motion_vae if given, else the file the run recorded
    (checkpoint extra["motion_vae"]). If the checkpoint recorded a sha256 it must match that file.
    Raises CheckpointError (bad checkpoint, motion VAE mismatch) or FileNotFoundError (no motion
    VAE file), one line each. The write is atomic.
    """
    from daps.trainer import CheckpointError, load_checkpoint
    from highlevel.train import KIND, load_prior

    ckpt_path = Path(ckpt_path)
    load_prior(ckpt_path)  # the weights fit the config (one-line CheckpointError otherwise)
    ck = load_checkpoint(ckpt_path, KIND)
    if ck.get("exported"):
        raise CheckpointError(f"{ckpt_path}: already an exported model file; export a training checkpoint (RUN/checkpoint.pt)")
    extra = dict(ck.get("extra", {}))
    vae = Path(motion_vae) if motion_vae else Path(extra.get("motion_vae") or "")
    if not vae.is_file():
        raise FileNotFoundError(f"motion VAE {vae}: file not found (pass --motion-vae, the file the run was trained against)")
    sha = file_sha256(vae)
    if extra.get("motion_vae_sha256") and extra["motion_vae_sha256"] != sha:
        raise CheckpointError(f"{ckpt_path}: trained against a motion VAE with sha256 {extra['motion_vae_sha256'][:12]}, "
                              f"but {vae} has {sha[:12]}")
    weights = {k: half_if_safe(v) if half else v for k, v in ck["model"].items()}
    n_half = sum(1 for v in weights.values() if v.dtype == torch.float16)
    n_f32 = sum(1 for v in weights.values() if v.dtype == torch.float32)
    extra.update(motion_vae=vae.name, motion_vae_sha256=sha,
                 motion_vae_sha256_source="recorded by the run" if extra.get("motion_vae_sha256") else "hashed at export")
    save_export(slim_checkpoint(ck, weights, ("format", "kind", "config", "step", "train_seconds"), extra=extra), out)
    return {"path": str(out), "size_bytes": Path(out).stat().st_size, "half_tensors": n_half, "float32_tensors": n_f32,
            "motion_vae": str(vae), "motion_vae_sha256": sha}


def load_highlevel(path: str | Path | None = None, motion_vae: str | Path | None = None):
    """(prior in eval mode, HLConfig, checkpoint dict, motion VAE path) for a training checkpoint
    or exported file (None: the shipped `shipped_path(HIGHLEVEL)`).

    Motion VAE: motion_vae if given; else for an exported file the shipped default
    (``daps.shipped.shipped_path(MOTION_VAE)``), for a training checkpoint the file it recorded
    (the default if that file is gone). If the high-level file records a sha256, the motion VAE
    must have it. Raises CheckpointError (missing/damaged file, motion VAE mismatch), one line.
    """
    from daps.trainer import CheckpointError
    from highlevel.train import load_prior

    path = Path(path) if path else shipped_path(HIGHLEVEL)
    if not path.is_file():
        raise CheckpointError(f"{path}: high-level model not found; train one with `daps highlevel train` and pass "
                              f"--ckpt/--model RUN/checkpoint.pt, or export one to {shipped_path(HIGHLEVEL)}")
    prior, cfg, ck = load_prior(path)
    extra = ck.get("extra", {})
    if motion_vae:
        vae = Path(motion_vae)
    elif ck.get("exported"):
        vae = shipped_path(MOTION_VAE)
    else:
        rec = extra.get("motion_vae")
        vae = Path(rec) if rec and Path(rec).is_file() else shipped_path(MOTION_VAE)
    if not vae.is_file():
        raise CheckpointError(f"{vae}: motion VAE not found (the high-level policy {path} decodes with it)")
    want = extra.get("motion_vae_sha256")
    if want:
        have = file_sha256(vae)
        if have != want:
            raise CheckpointError(f"{path} was trained against a motion VAE with sha256 {want[:12]}, but {vae} has "
                                  f"{have[:12]}: use that motion VAE or retrain and export the high-level policy")
    return prior, cfg, ck, vae


def default_cache_dir(path: str | Path, ck: dict) -> Path:
    """Folder of the pair / text-embedding caches for a high-level file: RUN/../highlevel_cache for
    a training checkpoint (where training put them), the repository's runs/highlevel_cache for an
    exported model."""
    if ck.get("exported"):
        return Path(__file__).resolve().parents[1] / "runs" / "highlevel_cache"
    return Path(path).parent.parent / "highlevel_cache"


def validation_pairs(path: str | Path, ck: dict, cfg, vae_path: str | Path, root=None, cache_dir: str | Path | None = None,
                     text_cache=None):
    """The held-out PairSet of a high-level file (its config's validation clips, offsets and
    max_frames, coded by vae_path), cached in cache_dir (default `default_cache_dir`)."""
    from highlevel.dataset import cached_pairs
    from highlevel.text import EmbeddingCache

    cache = Path(cache_dir) if cache_dir else default_cache_dir(path, ck)
    tc = text_cache if text_cache is not None else EmbeddingCache(cache / "text_embeddings.npz")
    return cached_pairs("val", Path(vae_path), cache, root=root, max_frames=cfg.max_frames, clips=cfg.val_clips,
                        offsets=cfg.offsets, text_cache=tc)
