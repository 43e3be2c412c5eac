"""Load a trained image VAE back from its checkpoint (what evaluation and comparison read)."""
from __future__ import annotations

from pathlib import Path

import torch

from daps.trainer import CheckpointError, load_checkpoint
from image_bench.config import CHECKPOINT_KIND, ImageTrainConfig
from image_bench.models import build_image_vae


def load_image_vae(path: str | Path, device: str | torch.device = "cpu"):
    """(model, config, checkpoint dict) from an image_bench checkpoint, in eval mode.
    Raises CheckpointError for a missing/corrupt file, another kind, or weights that do not fit the config."""
    ckpt = load_checkpoint(path, CHECKPOINT_KIND)
    try:
        cfg = ImageTrainConfig.from_dict(ckpt["config"])
        model = build_image_vae(cfg.model)
        model.load_state_dict(ckpt["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        msg = str(e).splitlines()[0][:200]
        raise CheckpointError(f"{path}: checkpoint does not match its config ({type(e).__name__}: {msg})") from None
    return model.to(device).eval(), cfg, ckpt
