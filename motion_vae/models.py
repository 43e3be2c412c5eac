"""The LAFAN1-H1 motion autoencoder: the DAPS core around 32-frame trajectory segments (App. G),
built from its `motion_vae.config.MotionVAEConfig`; loading and exporting trained ones.

arch "transformer" (the paper's, App. G):
q_theta(z|x): segment (B, 32, C) -> ConvTranspose1D(k4, s2) -> 64 input tokens (B, 64, H) ->
transformer encoder -> causal decoder over 64 latent tokens, each one of V = 1024 codes
(64 x 10 bits = 640 bits per segment).
p_phi(x|z): Embed(V, H) -> transformer -> Dense(H) -> Conv1D(k4, s2) 64 -> 32 -> Dense(C) means
of a Gaussian with fixed variance 0.25 (the authors' setting; learned, clipped as an option).

arch "conv" (this project's, for CPU budgets; docs/motion_vae_cpu_study.md): the
transformer stacks replaced by 1D-convolutional ResNets of width W (`daps.nn.ConvStack1D`):
q_theta: (B, 32, C) -> Conv3 -> res blocks -> ConvTranspose(k4, s2) -> Conv1 -> (B, 64, H)
-> LayerNorm -> the same heads (per-token categoricals, FSQ, VQ; the AR encoder keeps its
transformer on top); p_phi: code embeddings (B*K, 64, H) -> Conv3 -> Conv(k4, s2) -> res
blocks -> Conv3 -> (B*K, 32, C) means. The residual blocks run at the 32 frames. Same
bottleneck, same likelihood.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from daps.fsq import FSQCodeEmbedding, FSQRecognition
from daps.generative import ConvGenerator, DiscreteVAE, GaussianLikelihood, TransformerGenerator
from daps.nn import ConvResampler, ConvStack1D
from daps.recognition import ARRecognition, NARecognition
from daps.shipped import MOTION_VAE, save_export, shipped_path, slim_checkpoint
from daps.trainer import CheckpointError, load_checkpoint
from daps.vq import VQCodeEmbedding, VQRecognition
from motion_vae.config import CHECKPOINT_KIND, MotionTrainConfig, MotionVAEConfig
from motion_vae.dataset import FeatureStats


def build_motion_vae(cfg: MotionVAEConfig) -> DiscreteVAE:
    """Build the motion VAE. Raises ValueError for an unknown recognition kind or bad sizes."""
    tcfg = cfg.transformer()
    h, c, l, t = cfg.embed_dim, cfg.num_features, cfg.segment_length, cfg.block_size
    channel_variance = None
    if cfg.root_height_variance is not None:  # column 0 is root_height (motion_vae.features), never dropped
        channel_variance = torch.full((cfg.num_features,), cfg.variance)
        channel_variance[0] = cfg.root_height_variance
    likelihood = GaussianLikelihood(cfg.variance, cfg.learned_variance, channel_variance=channel_variance)
    levels = cfg.fsq_levels if cfg.lattice else None
    conv = cfg.arch == "conv"
    if conv:
        w, n = cfg.conv_width, cfg.conv_res_blocks
        inp, layers = ConvStack1D(l, c, t, h, w, blocks_before=n), 0  # replaces the transformer encoder; blocks at the frame rate
    else:
        inp, layers = ConvResampler(l, c, t, h), None
    if cfg.recognition == "ar":
        recognition = ARRecognition(tcfg, inp, t, cfg.init_logit_std, levels, cfg.aligned_input)
    elif cfg.recognition == "na":
        recognition = NARecognition(tcfg, inp, layers, cfg.init_logit_std, levels, cfg.lattice_bound)
    elif cfg.recognition == "fsq":
        recognition = FSQRecognition(tcfg, inp, cfg.fsq_levels, layers)
    elif cfg.recognition == "vq":
        recognition = VQRecognition(tcfg, inp, h, cfg.vq_commitment, layers)
    else:
        raise ValueError(f"recognition must be 'ar', 'na', 'fsq' or 'vq', got {cfg.recognition!r}")
    embed = FSQCodeEmbedding(cfg.fsq_levels, h) if cfg.recognition == "fsq" or cfg.lattice else None
    if cfg.recognition == "vq":
        embed = VQCodeEmbedding(recognition.vq)  # the decoder reads the codebook vectors
    out = c * likelihood.num_params
    if conv:
        generator = ConvGenerator(cfg.vocab_size, h, ConvStack1D(t, h, l, out, w, blocks_before=0, blocks_after=n, out_kernel=3), embed)
    else:
        generator = TransformerGenerator(tcfg, nn.Sequential(ConvResampler(t, h, l, h), nn.Linear(h, out)), embed)
    return DiscreteVAE(recognition, generator, likelihood)


def export_motion_vae(ckpt_path: str | Path, out: str | Path, half: bool = True) -> Path:
    """Write a slim model file from a training checkpoint: weights (float16 if half), config,
    feature statistics and split, the step and training seconds; no optimiser or RNG state.

    `load_motion_vae` reads it like a checkpoint (weights back in float32); `--resume` cannot.
    Raises CheckpointError for a bad checkpoint. The write is atomic.
    """
    ckpt = load_checkpoint(ckpt_path, CHECKPOINT_KIND)
    weights = {k: v.half() if half and v.is_floating_point() else v for k, v in ckpt["model"].items()}
    return save_export(slim_checkpoint(ckpt, weights, ("format", "kind", "config", "step", "train_seconds", "extra")), out)


def load_motion_vae(path: str | Path | None = None, device: str | torch.device = "cpu"):
    """Load (model, config, stats, checkpoint dict) from a motion VAE checkpoint or exported
    model file; path None means the shipped default (`daps.shipped.shipped_path(MOTION_VAE)`).

    Raises CheckpointError for a missing/corrupt file, another kind, or weights that do not fit
    the stored config.
    """
    path = shipped_path(MOTION_VAE) if path is None else path
    ckpt = load_checkpoint(path, CHECKPOINT_KIND)
    try:
        cfg = MotionTrainConfig.from_dict(ckpt["config"])
        stats = FeatureStats.from_dict(ckpt["extra"]["stats"])
        model = build_motion_vae(cfg.model)
        model.load_state_dict(ckpt["model"])  # float16 weights of an exported file come back as float32
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        msg = str(e).splitlines()[0][:200]
        raise CheckpointError(f"{path}: checkpoint does not match its config ({type(e).__name__}: {msg})") from None
    if stats.num_features != cfg.model.num_features:
        raise CheckpointError(f"{path}: feature statistics have {stats.num_features} columns, model {cfg.model.num_features}")
    return model.to(device).eval(), cfg, stats, ckpt
