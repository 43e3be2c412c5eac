"""Schedules for beta, the weight of the entropy / KL-to-prior term (paper Eq. 3-5)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BetaSchedule:
    """beta(step): `constant` (= initial) or `exp` geometric decay from initial to final.

    exp: beta(t) = initial * (final / initial) ** (t / (end_fraction * total_steps)), floored at
    `final` (the authors' `auto_exp_decay`, facts Sec. 2). Unitless.
    """

    kind: str = "exp"
    initial: float = 2.0
    final: float = 0.01
    end_fraction: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("constant", "exp"):
            raise ValueError(f"beta schedule kind must be 'constant' or 'exp', got {self.kind!r}")
        if self.initial <= 0 or self.final <= 0:
            raise ValueError(f"beta values must be positive, got {self.initial} -> {self.final}")

    def __call__(self, step: int, total_steps: int) -> float:
        if self.kind == "constant" or self.initial == self.final:
            return self.initial
        frac = min(step / max(self.end_fraction * total_steps, 1.0), 1.0)
        return self.initial * (self.final / self.initial) ** frac

    @property
    def end_value(self) -> float:
        """The value the schedule ends at; beta-ELBO is reported with it (facts Sec. 6)."""
        return self.initial if self.kind == "constant" else self.final
