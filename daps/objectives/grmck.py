"""Gumbel-Rao Monte Carlo (GR-MCK; Paulus et al. 2020; paper Table 1 "GR-MCK").

The straight-through Gumbel-Softmax VAE of `daps.objectives.gumbel`, with the backward pass's
soft sample replaced by its mean over k Gumbel vectors drawn conditionally on the hard sample
(`daps.relaxed.gumbel_rao_st`): the same expected gradient with lower variance, at k times the
cost of the relaxation. Loss and metrics as `GumbelST`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from daps.objectives.gumbel import GumbelConfig, GumbelST
from daps.relaxed import gumbel_rao_st
from daps.schedules import BetaSchedule


@dataclass
class GRMCKConfig(GumbelConfig):
    """GumbelConfig plus rao_samples: k conditional Gumbel vectors per token (authors: 100 on
    MNIST/CIFAR, 10 on ImageNet/LAFAN). Defaults: the authors' MNIST run (beta 1, tau 1 -> 0.75)."""

    beta: BetaSchedule = field(default_factory=lambda: BetaSchedule("constant", 1.0, 1.0))
    tau: BetaSchedule = field(default_factory=lambda: BetaSchedule("exp", 1.0, 0.75))
    rao_samples: int = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rao_samples < 1:
            raise ValueError(f"rao_samples must be >= 1, got {self.rao_samples}")


class GumbelRao(GumbelST):
    """GR-MCK: `GumbelST` with the Rao-Blackwellised relaxation."""

    def relax(self, tau: float):
        k = self.cfg.rao_samples
        return lambda logits, gen: gumbel_rao_st(logits, tau, k, gen)
