"""Finite scalar quantisation (FSQ, Mentzer et al. 2023): the deterministic baseline of paper Table 1.

The quantiser itself is `vector_quantize_pytorch.FSQ` (no hand-written rounding): each latent
token is a point of a fixed grid with `levels` values per dimension, so prod(levels) codes per
token (levels [8, 8, 4, 4] = 1024 = the DAPS vocabulary, 10 bits). The encoder is the DAPS-NA
stack (input tokens -> unmasked transformer -> Dense) ending in len(levels) channels per token;
the decoder is the same `TransformerGenerator` as DAPS, whose code embedding is a Dense layer on
the grid point instead of a lookup table, so gradients reach the encoder straight through the
rounding (facts Sec. 7).

FSQRecognition offers the recognition interface (`sample`, `log_prob`) of a deterministic
q(z|x) = delta(z = code(x)), so `eval`, `encode` and `decode` treat every method alike.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from vector_quantize_pytorch import FSQ

from daps.nn import Encoder, TransformerConfig, init_weights, sinusoidal_positions
from daps.recognition import check_codes, check_levels


class FSQRecognition(nn.Module):
    """Deterministic encoder x -> T codes of prod(levels) values each, through FSQ.

    Args:
        cfg: transformer sizes; cfg.vocab_size must equal prod(levels).
        input_embed: module mapping x to exactly T = block_size input tokens (B, T, H).
        levels: values per FSQ dimension.
        num_layers: transformer blocks after input_embed (None: cfg.num_layers; 0: LayerNorm only).
    Raises:
        ValueError: levels that do not multiply to the vocabulary size.
    """

    def __init__(self, cfg: TransformerConfig, input_embed: nn.Module, levels: tuple[int, ...], num_layers: int | None = None):
        super().__init__()
        check_levels(levels, cfg.vocab_size)
        self.cfg = cfg
        self.input_embed = input_embed
        self.encoder = Encoder(cfg, num_layers)
        self.proj = nn.Linear(cfg.embed_dim, len(levels))
        self.register_buffer("pos", sinusoidal_positions(cfg.block_size, cfg.embed_dim), persistent=False)
        init_weights(self)
        self.fsq = FSQ(list(levels))

    def quantize(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Grid points (B, T, d) in [-1, 1] with straight-through gradients, and indices (B, T) int64."""
        codes, idx = self.fsq(self.proj(self.encoder(self.input_embed(x) + self.pos)))
        return codes, idx.long()

    @torch.no_grad()
    def sample(
        self, x: Tensor, num_samples: int, generator: torch.Generator | None = None, use_cache: bool = True, greedy: bool = False
    ) -> tuple[Tensor, Tensor]:
        """The code of each datapoint, repeated K times: z (B, K, T) int64 and log q = 0 (B, K)."""
        _, idx = self.quantize(x)
        z = idx.unsqueeze(1).expand(-1, num_samples, -1).contiguous()
        return z, torch.zeros(z.shape[:2], device=z.device)

    @torch.no_grad()
    def log_prob(self, x: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """log q(z|x) (B, K): 0 where z is x's own code, -inf elsewhere; KL to uniform = T log V nats."""
        check_codes(z, self.cfg)
        _, idx = self.quantize(x)
        own = (z == idx.unsqueeze(1)).all(-1)
        log_q = torch.where(own, 0.0, float("-inf"))
        kl = torch.full(log_q.shape, self.cfg.block_size * math.log(self.cfg.vocab_size), device=z.device)
        return log_q, kl


class FSQCodeEmbedding(nn.Module):
    """Decoder input for FSQ codes: Dense(d -> H) of the grid point of each index.

    forward(z): indices (..., T) int64 -> (..., T, H). from_codes(c): grid points (..., T, d) -> (..., T, H).
    """

    def __init__(self, levels: tuple[int, ...], embed_dim: int):
        super().__init__()
        self.fsq = FSQ(list(levels))
        self.proj = nn.Linear(len(levels), embed_dim)

    def from_codes(self, codes: Tensor) -> Tensor:
        return self.proj(codes)

    def forward(self, z: Tensor) -> Tensor:
        return self.proj(self.fsq.indices_to_codes(z))
