"""Metrics every objective logs from one training batch (names as in the CSV / TensorBoard).

The functions they call live in `daps.metrics` (one function per metric); this module only
gathers them so each objective's `loss` stays short.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from daps.metrics import codebook_usage, elbo, psnr, segment_l2


@torch.no_grad()
def batch_metrics(
    model: nn.Module, x: Tensor, params: Tensor, log_p: Tensor, kl: Tensor, z: Tensor, beta_final: float | None
) -> dict[str, float]:
    """log_p, kl, elbo, beta_elbo (if beta_final), l2, psnr_db (if the likelihood's data range is
    known), codebook_used and code_perplexity of one batch.

    Args:
        x: (B, *event) data. params: (B, K, *event) decoder parameters of the codes z (B, K, T).
        log_p, kl: (B, K) nats. beta_final: the beta the beta-ELBO is reported with (None: skip).
    """
    mean = model.likelihood.mean(params[:, 0])  # first sample's reconstruction (B, *event)
    used, perplexity = codebook_usage(z, model.vocab_size)
    out = {
        "log_p": log_p.mean().item(),
        "kl": kl.mean().item(),
        "elbo": elbo(log_p, kl).item(),
        "l2": segment_l2(mean, x).mean().item(),
        "codebook_used": used,
        "code_perplexity": perplexity,
    }
    if beta_final is not None:
        out["beta_elbo"] = elbo(log_p, kl, beta_final).item()
    data_range = getattr(model.likelihood, "data_range", None)
    if data_range is not None:
        out["psnr_db"] = psnr(mean, x, data_range).mean().item()
    return out
