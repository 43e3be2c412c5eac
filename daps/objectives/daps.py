"""DAPS: Discrete Autoencoding via Policy Search (paper Sec. 3, Algorithm 1, App. A).

Per datapoint x, K codes z^k ~ q_theta(.|x) are drawn without gradient. With rewards
R^k = log p_phi(x|z^k) (nats):

    A^k        = R^k - logsumexp_k R^k                           soft-max baseline (Sec. 3)
    log q*^k   = (A^k + eta log q_theta(z^k|x)) / (eta + beta)    closed-form target, Eq. 5
    w~^k       = softmax_k(log q*^k - log q_theta(z^k|x))         self-normalised weights
               = softmax_k((A^k - beta log q_theta) / (eta + beta))
    L_theta    = -mean_b sum_k sg(w~^k) log q_theta(z^k|x)        weighted max. likelihood, Eq. 6
    L_phi      = -mean_{b,k} R^k                                  decoder, Eq. 7
    ESS_b      = 1 / sum_k (w~^k)^2                               Eq. 8
    L_eta      = (mean_b ESS_b - rho K)^2,  eta = exp(log_eta)    trust region, App. A.2

Under torchrun, mean_b in L_eta runs over the global batch (`daps.distributed.global_mean`).

The encoder and decoder losses touch disjoint parameters (R is stop-gradient in the weights,
z is sampled outside the graph), so one optimiser step on L_theta + L_phi is the paper's
coordinate-wise update; eta has its own optimiser on L_eta (facts Sec. 1).

Warm start (this project's, not the paper's; docs/motion_vae_cpu_study.md): with
`st_warmup_steps` > 0 and an encoder on the FSQ lattice, the first steps train encoder and
decoder as an FSQ autoencoder, L = -mean_b [log p_phi(x | g(x)) - sum_t box(u_t)] with g the
nearest lattice point of u(x), straight-through gradients, and a penalty that is zero inside the
grid and keeps u from drifting past its edges (`daps.recognition.LatticeHead.straight_through`;
FSQ's tanh bound does this for FSQ); DAPS proper takes over after them. On two CPU cores a DAPS step
costs about 7 FSQ steps, and FSQ finds a good decoder and encoder layout fastest.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from daps.distributed import global_mean
from daps.metrics import codebook_usage, effective_sample_size, elbo
from daps.objectives.fsq import straight_through_log_p
from daps.schedules import BetaSchedule


@dataclass
class DAPSConfig:
    """num_samples: K latent samples per datapoint. ess_target: rho, the target ESS / K.
    init_eta: initial trust-region multiplier eta (> 0). beta: the entropy-weight schedule.
    st_warmup_steps: steps of straight-through (FSQ) training before DAPS (lattice encoders only)."""

    num_samples: int = 8
    ess_target: float = 0.5
    init_eta: float = 100.0
    beta: BetaSchedule = field(default_factory=BetaSchedule)
    st_warmup_steps: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.beta, dict):
            self.beta = BetaSchedule(**self.beta)
        if self.num_samples < 2:
            raise ValueError(f"DAPS needs K >= 2 samples per datapoint, got {self.num_samples}")
        if not 0 < self.ess_target <= 1:
            raise ValueError(f"ess_target is a fraction of K in (0, 1], got {self.ess_target}")
        if self.init_eta <= 0:
            raise ValueError(f"init_eta must be positive, got {self.init_eta}")
        if self.st_warmup_steps < 0:
            raise ValueError(f"st_warmup_steps must be >= 0, got {self.st_warmup_steps}")


def daps_log_weights(advantage: Tensor, log_q: Tensor, eta: Tensor | float, beta: float) -> Tensor:
    """Self-normalised log importance weights log w~ (B, K) of q* against q_theta (Eq. 5-6).

    advantage, log_q: (B, K) nats, treated as constants. eta: scalar (may carry a gradient).
    """
    return torch.log_softmax((advantage - beta * log_q) / (eta + beta), dim=1)


class DAPS(nn.Module):
    """The DAPS objective. Holds log_eta, the only parameter of its own.

    Call `loss(model, x, step, total_steps, generator)` with a `daps.generative.DiscreteVAE`.
    """

    def __init__(self, cfg: DAPSConfig):
        super().__init__()
        self.cfg = cfg
        self.log_eta = nn.Parameter(torch.tensor(math.log(cfg.init_eta)))

    @property
    def eta(self) -> Tensor:
        return self.log_eta.exp()

    def loss(
        self, model: nn.Module, x: Tensor, step: int, total_steps: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, dict[str, float]]:
        """One DAPS step's losses.

        Args:
            model: DiscreteVAE. x: (B, *event) standardised data.
        Returns:
            loss_vae: L_theta + L_phi (scalar), gradients only in the model.
            loss_eta: L_eta (scalar), gradient only in log_eta.
            metrics: plain floats, named as logged (nats unless stated).
        """
        K, beta = self.cfg.num_samples, self.cfg.beta(step, total_steps)
        if step < self.cfg.st_warmup_steps:
            return self.straight_through_loss(model, x, beta)
        z, _ = model.recognition.sample(x, K, generator)
        log_q, kl = model.recognition.log_prob(x, z)  # (B, K), teacher forced
        reward = model.log_likelihood(x, z)  # (B, K)

        r, lq = reward.detach(), log_q.detach()
        advantage = r - torch.logsumexp(r, dim=1, keepdim=True)
        w = daps_log_weights(advantage, lq, self.eta.detach(), beta).exp()
        loss_theta = -(w * log_q).sum(1).mean()
        loss_phi = -reward.mean()

        ess = effective_sample_size(daps_log_weights(advantage, lq, self.eta, beta))
        ess_mean = global_mean(ess.mean())  # under torchrun: the global batch's, so every rank adapts eta alike
        loss_eta = (ess_mean - self.cfg.ess_target * K).square()

        used, perplexity = codebook_usage(z, model.vocab_size)
        metrics = {
            "loss/recognition": loss_theta.item(),
            "loss/generative": loss_phi.item(),
            "loss/eta": loss_eta.item(),
            "elbo": elbo(r, kl).item(),
            "beta_elbo": elbo(r, kl, self.cfg.beta.end_value).item(),
            "log_p": r.mean().item(),
            "kl": kl.mean().item(),
            "log_q": lq.mean().item(),
            "ess_frac": (ess_mean / K).item(),
            "eta": self.eta.item(),
            "beta": beta,
            "advantage": advantage.mean().item(),
            "codebook_used": used,
            "code_perplexity": perplexity,
            "st_warmup": 0.0,
        }
        return loss_theta + loss_phi, loss_eta, metrics

    def straight_through_loss(self, model: nn.Module, x: Tensor, beta: float) -> tuple[Tensor, Tensor, dict[str, float]]:
        """The warm-start step: -mean_b log p_phi(x | z*) with z* the nearest lattice point of each
        token and straight-through gradients (FSQ). Returns the same three values as `loss`, with
        a zero eta loss (eta waits for DAPS) and the same metric names (NaN where undefined).
        Raises TypeError for an encoder without the lattice head."""
        if not hasattr(model.recognition, "straight_through"):
            raise TypeError("st_warmup_steps needs a DAPS-NA encoder on the lattice (recognition 'na', lattice)")
        codes, idx, box, log_q, kl = model.recognition.straight_through(x)  # (B, T, d), then (B, T) each
        log_p = straight_through_log_p(model, x, codes)  # (B, 1)
        loss = -log_p.mean() + box.sum(1).mean()
        log_q, kl = log_q.sum(1, keepdim=True), kl.sum(1, keepdim=True)  # (B, 1): log q(z*|x) and its KL
        used, perplexity = codebook_usage(idx, model.vocab_size)
        nan = float("nan")
        metrics = {
            "loss/recognition": box.sum(1).mean().item(),
            "loss/generative": -log_p.mean().item(),
            "loss/eta": 0.0,
            "elbo": elbo(log_p.detach(), kl).item(),
            "beta_elbo": elbo(log_p.detach(), kl, self.cfg.beta.end_value).item(),
            "log_p": log_p.mean().item(),
            "kl": kl.mean().item(),
            "log_q": log_q.mean().item(),
            "ess_frac": nan,
            "eta": self.eta.item(),
            "beta": beta,
            "advantage": nan,
            "codebook_used": used,
            "code_perplexity": perplexity,
            "st_warmup": 1.0,
        }
        return loss, loss.new_zeros(()), metrics
