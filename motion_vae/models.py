"""The LAFAN1-H1 motion autoencoder: the DAPS core around 32-frame trajectory segments (App. G).

q_theta(z|x): segment (B, 32, C) -> ConvTranspose1D(k4, s2) -> 64 input tokens (B, 64, H) ->
transformer encoder -> causal decoder over 64 latent tokens, each one of V = 1024 codes
(64 x 10 bits = 640 bits per segment).
p_phi(x|z): Embed(V, H) -> transformer -> Dense(H) -> Conv1D(k4, s2) 64 -> 32 -> Dense(C) means
of a Gaussian with fixed variance 0.25 (the authors' setting; learned, clipped as an option).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from daps.generative import DiscreteVAE, GaussianLikelihood, TransformerGenerator
from daps.nn import ConvResampler, TransformerConfig
from daps.recognition import ARRecognition, NARecognition


@dataclass
class MotionVAEConfig:
    """num_features: C, standardised feature columns per frame. segment_length: frames (30 Hz).
    recognition: "ar" (DAPS) or "na" (DAPS-NA). variance: fixed sigma^2 in standardised units,
    unless learned_variance (then clipped to [0.01, 1])."""

    num_features: int
    segment_length: int = 32
    vocab_size: int = 1024
    block_size: int = 64
    embed_dim: int = 128
    num_heads: int = 4
    num_layers: int = 2
    mlp_ratio: int = 4
    recognition: str = "ar"
    variance: float = 0.25
    learned_variance: bool = False

    def transformer(self) -> TransformerConfig:
        return TransformerConfig(
            self.vocab_size, self.block_size, self.embed_dim, self.num_heads, self.num_layers, self.mlp_ratio
        )

    @property
    def bits(self) -> float:
        """Bottleneck size in bits: block_size * log2(vocab_size)."""
        import math

        return self.block_size * math.log2(self.vocab_size)


def build_motion_vae(cfg: MotionVAEConfig) -> DiscreteVAE:
    """Build the motion VAE. Raises ValueError for an unknown recognition kind or bad sizes."""
    tcfg = cfg.transformer()
    h, c, l, t = cfg.embed_dim, cfg.num_features, cfg.segment_length, cfg.block_size
    likelihood = GaussianLikelihood(cfg.variance, cfg.learned_variance)
    if cfg.recognition == "ar":
        recognition = ARRecognition(tcfg, ConvResampler(l, c, t, h), num_input_tokens=t)
    elif cfg.recognition == "na":
        recognition = NARecognition(tcfg, ConvResampler(l, c, t, h))
    else:
        raise ValueError(f"recognition must be 'ar' or 'na', got {cfg.recognition!r}")
    head = nn.Sequential(ConvResampler(t, h, l, h), nn.Linear(h, c * likelihood.num_params))
    generator = TransformerGenerator(tcfg, head)
    return DiscreteVAE(recognition, generator, likelihood)
