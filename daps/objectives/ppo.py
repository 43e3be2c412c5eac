"""PPO-style autoencoding: the policy-gradient baseline of paper Table 1 ("PPO").

The encoder is a policy whose action is the code z and whose reward is R = log p_phi(x|z)
(nats). Per datapoint, K codes are drawn from the behaviour encoder q_old, the encoder of the
previous step (as the authors' baseline draws from the previous step's encoder, facts Sec. 7),
and the encoder is updated by the clipped surrogate (Schulman et al. 2017):

    A^k     = R^k - mean_k R^k                 the K samples' mean as baseline (then / std over the batch)
    r^k     = q_theta(z^k|x) / q_old(z^k|x)
    L_theta = -mean min(r A, clip(r, 1 - eps, 1 + eps) A) + c_kl KL(q_old || q_theta) + beta KL(q_theta || U)
    L_phi   = -mean_{b,k} R^k

KL(q_old || q_theta) is the sample estimate mean((r - 1) - log r); its weight c_kl adapts like
the authors' (x2 above 1.5 target, /2 below target / 1.5). The KL to the uniform prior is the
analytic per-token sum along the sampled prefix, with gradient (`daps.relaxed.log_prob_with_kl`).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from daps.distributed import global_mean
from daps.objectives.common import batch_metrics
from daps.relaxed import log_prob_with_kl
from daps.schedules import BetaSchedule


@dataclass
class PPOConfig:
    """num_samples: K codes per datapoint. clip: eps of the clipped ratio. beta: weight of the KL
    to the uniform prior (authors' MNIST: 1 -> 0.01). kl_target / init_kl_coef: the adaptive
    KL(old || new) penalty (authors: 0.05 on MNIST, 10). normalize_advantage: divide A by its std."""

    num_samples: int = 8
    clip: float = 0.2
    beta: BetaSchedule = field(default_factory=lambda: BetaSchedule("exp", 1.0, 0.01))
    kl_target: float = 0.05
    init_kl_coef: float = 10.0
    normalize_advantage: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.beta, dict):
            self.beta = BetaSchedule(**self.beta)
        if self.num_samples < 2:
            raise ValueError(f"PPO's baseline needs K >= 2 samples per datapoint, got {self.num_samples}")
        if not 0 < self.clip < 1 or self.kl_target <= 0 or self.init_kl_coef < 0:
            raise ValueError(f"need 0 < clip < 1, kl_target > 0, init_kl_coef >= 0: {self}")


class PPO(nn.Module):
    """The PPO objective. Holds the behaviour encoder (a frozen copy, refreshed every step) and
    the adaptive KL coefficient; both are in its state_dict, so resume is exact.

    Args:
        cfg: PPOConfig. recognition: the model's ARRecognition / NARecognition (copied once).
    """

    def __init__(self, cfg: PPOConfig, recognition: nn.Module):
        super().__init__()
        self.cfg = cfg
        self.behaviour = copy.deepcopy(recognition).requires_grad_(False)
        self.register_buffer("kl_coef", torch.tensor(float(cfg.init_kl_coef)))

    def loss(
        self, model: nn.Module, x: Tensor, step: int, total_steps: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, dict[str, float]]:
        """Returns (L_theta + L_phi, zero, metrics) for x (B, *event)."""
        cfg, K = self.cfg, self.cfg.num_samples
        beta = cfg.beta(step, total_steps)
        z, log_q_old = self.behaviour.sample(x, K, generator)  # (B, K, T), (B, K), no gradient
        log_q, kl = log_prob_with_kl(model.recognition, x, z)
        params = model.generator(z)
        reward = model.likelihood.log_prob(x, params)  # (B, K)

        r = reward.detach()
        adv = r - r.mean(1, keepdim=True)
        if cfg.normalize_advantage:
            adv = adv / adv.std().clamp_min(1e-8)
        log_ratio = log_q - log_q_old
        ratio = log_ratio.exp()
        surrogate = torch.min(ratio * adv, ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * adv)
        approx_kl = ((ratio - 1) - log_ratio).mean()
        loss_pg = -surrogate.mean()
        kl_coef = self.kl_coef.item()  # a float: the buffer is adapted in place below
        loss_theta = loss_pg + kl_coef * approx_kl + beta * kl.mean()
        loss_phi = -reward.mean()

        with torch.no_grad():
            old_kl = global_mean(approx_kl).item()  # torchrun: the global batch's, so every rank adapts alike
            if old_kl > 1.5 * cfg.kl_target:
                self.kl_coef.mul_(2.0)
            elif old_kl < cfg.kl_target / 1.5:
                self.kl_coef.div_(2.0)
            self.behaviour.load_state_dict(model.recognition.state_dict())  # next step samples from this encoder
        metrics = {
            "loss/recognition": loss_theta.item(),
            "loss/policy": loss_pg.item(),
            "loss/generative": loss_phi.item(),
            **batch_metrics(model, x, params.detach(), r, kl.detach(), z, cfg.beta.end_value),
            "log_q": log_q.mean().item(),
            "approx_kl_old_new": old_kl,
            "clip_frac": ((ratio - 1).abs() > cfg.clip).float().mean().item(),
            "kl_coef": kl_coef,
            "beta": beta,
        }
        return loss_theta + loss_phi, loss_phi.new_zeros(()), metrics
