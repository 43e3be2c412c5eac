"""The FSQ autoencoder objective: maximum likelihood of x under the decoder of its own code.

L_phi,theta = -mean_b log p_phi(x_b | FSQ(enc_theta(x_b))), gradients reach the encoder straight
through the rounding (Mentzer et al. 2023; the authors' FSQ baseline, facts Sec. 7, has no
commitment term). The code is deterministic, so KL(delta || Uniform(V)) = T log V nats exactly.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from daps.metrics import codebook_usage, elbo


def straight_through_log_p(model: nn.Module, x: Tensor, codes: Tensor) -> Tensor:
    """log p_phi(x | codes) (B, 1) nats for grid points codes (B, T, d) carrying straight-through
    gradients; the decoder embeds them with `embed.from_codes` (`daps.fsq.FSQCodeEmbedding`)."""
    params = model.generator.from_embeddings(model.generator.embed.from_codes(codes).unsqueeze(1))
    return model.likelihood.log_prob(x, params)


class FSQObjective(nn.Module):
    """Same call as `daps.objectives.daps.DAPS.loss`; holds no parameters of its own (no eta)."""

    def loss(
        self, model: nn.Module, x: Tensor, step: int, total_steps: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, dict[str, float]]:
        """Returns (loss, zero eta loss, metrics) for x (B, *event); model is a DiscreteVAE with
        an `FSQRecognition` and a generator embedding `FSQCodeEmbedding`."""
        codes, idx = model.recognition.quantize(x)
        log_p = straight_through_log_p(model, x, codes)  # (B, 1)
        kl = torch.full_like(log_p, model.block_size * math.log(model.vocab_size))
        loss = -log_p.mean()
        used, perplexity = codebook_usage(idx, model.vocab_size)
        metrics = {
            "loss/generative": loss.item(),
            "elbo": elbo(log_p.detach(), kl).item(),
            "log_p": log_p.mean().item(),
            "kl": kl.mean().item(),
            "codebook_used": used,
            "code_perplexity": perplexity,
        }
        return loss, loss.new_zeros(()), metrics
