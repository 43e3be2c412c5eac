"""Straight-through Gumbel-Softmax VAE (Jang et al. 2016; paper Sec. 2 and Table 1 "Gumbel").

Per datapoint, K relaxed code sequences y ~ ST-GS(q_theta(.|x), tau) (`daps.relaxed`; the AR
encoder back-propagates through the sampled prefix). The loss is the negative beta-ELBO with the
analytic KL to the uniform prior along the sampled prefix (paper Eq. 1, facts Sec. 7):

    L = -mean_{b,k} [ log p_phi(x_b | y_bk) - beta * sum_t KL(q(.|z_<t, x_b) || Uniform(V)) ]

beta and the temperature tau follow geometric schedules (`daps.schedules.BetaSchedule`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from daps.objectives.common import batch_metrics
from daps.relaxed import gumbel_softmax_st, relaxed_codes
from daps.schedules import BetaSchedule


@dataclass
class GumbelConfig:
    """num_samples: K relaxed samples per datapoint (the authors use 1). beta: KL weight schedule.
    tau: temperature schedule (> 0; App. H: 1.0 for MNIST)."""

    num_samples: int = 1
    beta: BetaSchedule = field(default_factory=lambda: BetaSchedule("exp", 0.5, 0.01))
    tau: BetaSchedule = field(default_factory=lambda: BetaSchedule("constant", 1.0, 1.0))

    def __post_init__(self) -> None:
        if isinstance(self.beta, dict):
            self.beta = BetaSchedule(**self.beta)
        if isinstance(self.tau, dict):
            self.tau = BetaSchedule(**self.tau)
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")


class GumbelST(nn.Module):
    """The straight-through Gumbel-Softmax objective; no parameters of its own.

    Call `loss(model, x, step, total_steps, generator)` with a DiscreteVAE whose recognition is
    an ARRecognition or NARecognition and whose generator has `from_onehot`.
    """

    def __init__(self, cfg: GumbelConfig):
        super().__init__()
        self.cfg = cfg

    def relax(self, tau: float):
        """The relaxation for one step: logits (N, V) -> (y (N, V), z (N,))."""
        return lambda logits, gen: gumbel_softmax_st(logits, tau, gen)

    def loss(
        self, model: nn.Module, x: Tensor, step: int, total_steps: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, dict[str, float]]:
        """Returns (negative beta-ELBO, zero eta loss, metrics) for x (B, *event)."""
        beta, tau = self.cfg.beta(step, total_steps), self.cfg.tau(step, total_steps)
        y, z, kl = relaxed_codes(model.recognition, x, self.cfg.num_samples, self.relax(tau), generator)
        params = model.generator.from_onehot(y)
        log_p = model.likelihood.log_prob(x, params)  # (B, K)
        loss = -(log_p - beta * kl).mean()
        metrics = {
            "loss/vae": loss.item(),
            **batch_metrics(model, x, params.detach(), log_p.detach(), kl.detach(), z, self.cfg.beta.end_value),
            "beta": beta,
            "tau": tau,
        }
        return loss, loss.new_zeros(()), metrics
