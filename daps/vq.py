"""Vector quantisation (VQ-VAE, van den Oord et al. 2017): the codebook baseline of paper Table 1.

The quantiser is `vector_quantize_pytorch.VectorQuantize` (no hand-written nearest-neighbour
search): plain straight-through (no rotation trick), a codebook learned by gradient (no EMA), as
the authors' baseline (facts Sec. 7). The encoder is the non-autoregressive stack (input tokens ->
unmasked transformer -> LN) followed by a pre-quantisation projection Dense(H -> D), D the code
dimension; the decoder reads the D-dim code vectors (`VQCodeEmbedding`).

Paper Sec. 2 loss per token: ||sg(z_e) - e||^2 + c ||z_e - sg(e)||^2 (codebook + commitment),
e the nearest codebook vector. The library's learnable-codebook loss is c ||z_e - e||^2 with
gradients both ways; `VQRecognition.quantize` adds (1 - c) ||sg(z_e) - e||^2 so the codebook
term has weight 1 and the commitment term weight c, exactly.

VQRecognition offers the recognition interface (`sample`, `log_prob`) of a deterministic
q(z|x) = delta(z = code(x)), like `daps.fsq.FSQRecognition`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from vector_quantize_pytorch import VectorQuantize

from daps.nn import Encoder, TransformerConfig, init_weights, sinusoidal_positions
from daps.recognition import check_codes


class VQRecognition(nn.Module):
    """Deterministic encoder x -> T codes of V codebook vectors each (D dims per vector).

    Args:
        cfg: transformer sizes (V = cfg.vocab_size codebook entries, T = block_size tokens).
        input_embed: module mapping x to exactly T input tokens (B, T, H).
        code_dim: D, the codebook vectors' width (the pre-quantisation projection's output).
        commitment: c in [0, 1] (App. H: 0.25 images, 0.5 LAFAN).
        num_layers: the encoder stack's own depth (None: cfg's).
    Raises:
        ValueError: a commitment outside [0, 1].
    """

    def __init__(
        self,
        cfg: TransformerConfig,
        input_embed: nn.Module,
        code_dim: int,
        commitment: float = 0.25,
        num_layers: int | None = None,
    ):
        super().__init__()
        if not 0.0 <= commitment <= 1.0:
            raise ValueError(f"VQ commitment must lie in [0, 1], got {commitment}")
        self.cfg, self.commitment = cfg, commitment
        self.input_embed = input_embed
        self.encoder = Encoder(cfg, num_layers)
        self.proj = nn.Linear(cfg.embed_dim, code_dim)  # pre-quantisation projection
        self.register_buffer("pos", sinusoidal_positions(cfg.block_size, cfg.embed_dim), persistent=False)
        init_weights(self)
        self.vq = VectorQuantize(
            dim=code_dim,
            codebook_size=cfg.vocab_size,
            commitment_weight=commitment,
            learnable_codebook=True,
            ema_update=False,
            rotation_trick=False,
        )

    def encode(self, x: Tensor) -> Tensor:
        """Continuous encodings z_e (B, T, D) before quantisation."""
        return self.proj(self.encoder(self.input_embed(x) + self.pos))

    def quantize(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Quantised codes z_q (B, T, D) (value e, straight-through gradient to z_e), indices
        (B, T) int64, and the VQ loss (scalar; codebook + c * commitment, mean over entries; 0 in eval)."""
        z_e = self.encode(x)
        z_q, idx, loss = self.vq(z_e)
        idx = idx.long()
        if self.training and self.commitment < 1.0:
            e = self.vq.get_codes_from_indices(idx)
            loss = loss + (1.0 - self.commitment) * F.mse_loss(e, z_e.detach())
        return z_q, idx, loss

    @torch.no_grad()
    def sample(
        self, x: Tensor, num_samples: int, generator: torch.Generator | None = None, use_cache: bool = True, greedy: bool = False
    ) -> tuple[Tensor, Tensor]:
        """The code of each datapoint, repeated K times: z (B, K, T) int64 and log q = 0 (B, K)."""
        idx = self.vq(self.encode(x))[1].long()
        z = idx.unsqueeze(1).expand(-1, num_samples, -1).contiguous()
        return z, torch.zeros(z.shape[:2], device=z.device)

    @torch.no_grad()
    def log_prob(self, x: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """log q(z|x) (B, K): 0 where z is x's own code, -inf elsewhere; KL to uniform = T log V nats."""
        check_codes(z, self.cfg)
        idx = self.vq(self.encode(x))[1].long()
        own = (z == idx.unsqueeze(1)).all(-1)
        log_q = torch.where(own, 0.0, float("-inf"))
        kl = torch.full(log_q.shape, self.cfg.block_size * math.log(self.cfg.vocab_size), device=z.device)
        return log_q, kl


class VQCodeEmbedding(nn.Module):
    """Decoder input for VQ codes: the codebook vectors themselves (shared with the encoder's quantiser).

    forward(z): indices (..., T) int64 -> (..., T, D). from_codes(c): code vectors (..., T, D) -> same.
    The quantiser is held in a list so the codebook is registered once (under the recognition model).
    """

    def __init__(self, vq: VectorQuantize):
        super().__init__()
        self._vq = [vq]

    def from_codes(self, codes: Tensor) -> Tensor:
        return codes

    def forward(self, z: Tensor) -> Tensor:
        return self._vq[0].get_codes_from_indices(z)

    def soft(self, probs: Tensor) -> Tensor:
        """Expected code vector (..., T, D) of code probabilities (..., T, V)."""
        return probs @ self._vq[0].codebook
