"""Metrics shared by training, evaluation and the README table. One function per metric.

Units: log-likelihoods, KL and ELBO in nats per datapoint; bits where a name says so.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def elbo(log_p: Tensor, kl: Tensor, beta: float = 1.0) -> Tensor:
    """Mean (beta-)ELBO in nats: mean(log p(x|z) - beta * KL(q(z|x) || p(z))) over all entries (paper Eq. 1)."""
    return (log_p - beta * kl).mean()


def effective_sample_size(log_w: Tensor) -> Tensor:
    """ESS = (sum_k w_k)^2 / sum_k w_k^2 per datapoint (paper App. A.2, Eq. 8).

    log_w: (B, K) log importance weights, normalised or not (the ESS is scale invariant).
    Returns (B,) values in [1, K].
    """
    return torch.exp(2 * torch.logsumexp(log_w, dim=1) - torch.logsumexp(2 * log_w, dim=1))


def codebook_usage(z: Tensor, vocab_size: int) -> tuple[float, float]:
    """Fraction of the V codes used in z (any shape, int64) and the code perplexity.

    Perplexity = exp(entropy of the empirical code distribution), in [1, V].
    """
    counts = torch.bincount(z.flatten(), minlength=vocab_size).double()
    p = counts / counts.sum().clamp_min(1)
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return float((counts > 0).double().mean()), float(entropy.exp())


def segment_l2(x_hat: Tensor, x: Tensor) -> Tensor:
    """Per-datapoint root of the summed squared error, sqrt(sum (x_hat - x)^2): (B, ...) -> (B,).

    On standardised features this is the paper's LAFAN "L2" row (facts Sec. 9).
    """
    return (x_hat - x).square().flatten(1).sum(-1).sqrt()


def psnr(x_hat: Tensor, x: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB per datapoint, for data scaled to [0, data_range]: (B,)."""
    mse = (x_hat - x).square().flatten(1).mean(-1).clamp_min(1e-12)
    return 10 * torch.log10(data_range**2 / mse)


def nats_to_bits(nats: float) -> float:
    """nats -> bits (divide by ln 2)."""
    return nats / math.log(2)


def mean_and_standard_error(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample std / sqrt(n), ddof 1; 0 for n = 1) of per-seed values."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_and_standard_error of no values")
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)
