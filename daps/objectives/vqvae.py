"""The VQ-VAE objective (van den Oord et al. 2017; paper Sec. 2 and Table 1 "VQ-VAE").

    L = -mean_b log p_phi(x_b | z_q(x_b)) / D + ||sg(z_e) - e||^2 + c ||z_e - sg(e)||^2

D = data dimensions per datapoint (the authors scale the reconstruction term per dimension,
facts Sec. 7), the VQ terms are means over tokens and code dimensions (`daps.vq.VQRecognition`).
The code is deterministic, so KL(delta || Uniform(V)) = T log V nats exactly and the ELBO is
logged for completeness only (paper Table 1 leaves it blank).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from daps.objectives.common import batch_metrics


class VQObjective(nn.Module):
    """Same call as `daps.objectives.daps.DAPS.loss`; no parameters of its own. The commitment
    coefficient belongs to the model's `VQRecognition` (it is part of the quantiser's loss)."""

    def loss(
        self, model: nn.Module, x: Tensor, step: int, total_steps: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, dict[str, float]]:
        """Returns (loss, zero eta loss, metrics) for x (B, *event); model: a DiscreteVAE with a
        VQRecognition and a generator embedding `VQCodeEmbedding`."""
        z_q, idx, vq_loss = model.recognition.quantize(x)
        params = model.generator.from_embeddings(z_q.unsqueeze(1))
        log_p = model.likelihood.log_prob(x, params)  # (B, 1)
        dims = x[0].numel()
        loss = -log_p.mean() / dims + vq_loss
        kl = torch.full_like(log_p, model.block_size * math.log(model.vocab_size))
        metrics = {
            "loss/vae": loss.item(),
            "loss/vq": vq_loss.item(),
            **batch_metrics(model, x, params.detach(), log_p.detach(), kl, idx.unsqueeze(1), None),
        }
        return loss, loss.new_zeros(()), metrics
