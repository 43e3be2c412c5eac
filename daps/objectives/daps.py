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

The encoder and decoder losses touch disjoint parameters (R is stop-gradient in the weights,
z is sampled outside the graph), so one optimiser step on L_theta + L_phi is the paper's
coordinate-wise update; eta has its own optimiser on L_eta (facts Sec. 1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from daps.metrics import codebook_usage, effective_sample_size, elbo
from daps.schedules import BetaSchedule


@dataclass
class DAPSConfig:
    """num_samples: K latent samples per datapoint. ess_target: rho, the target ESS / K.
    init_eta: initial trust-region multiplier eta (> 0). beta: the entropy-weight schedule."""

    num_samples: int = 8
    ess_target: float = 0.5
    init_eta: float = 100.0
    beta: BetaSchedule = field(default_factory=BetaSchedule)

    def __post_init__(self) -> None:
        if isinstance(self.beta, dict):
            self.beta = BetaSchedule(**self.beta)
        if self.num_samples < 2:
            raise ValueError(f"DAPS needs K >= 2 samples per datapoint, got {self.num_samples}")
        if not 0 < self.ess_target <= 1:
            raise ValueError(f"ess_target is a fraction of K in (0, 1], got {self.ess_target}")
        if self.init_eta <= 0:
            raise ValueError(f"init_eta must be positive, got {self.init_eta}")


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
        z, _ = model.recognition.sample(x, K, generator)
        log_q, kl = model.recognition.log_prob(x, z)  # (B, K), teacher forced
        reward = model.log_likelihood(x, z)  # (B, K)

        r, lq = reward.detach(), log_q.detach()
        advantage = r - torch.logsumexp(r, dim=1, keepdim=True)
        w = daps_log_weights(advantage, lq, self.eta.detach(), beta).exp()
        loss_theta = -(w * log_q).sum(1).mean()
        loss_phi = -reward.mean()

        ess = effective_sample_size(daps_log_weights(advantage, lq, self.eta, beta))
        loss_eta = (ess.mean() - self.cfg.ess_target * K).square()

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
            "ess_frac": (ess.mean() / K).item(),
            "eta": self.eta.item(),
            "beta": beta,
            "advantage": advantage.mean().item(),
            "codebook_used": used,
            "code_perplexity": perplexity,
        }
        return loss_theta + loss_phi, loss_eta, metrics
