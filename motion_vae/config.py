"""Run configuration of the motion autoencoder: the dataclass stored in every checkpoint, and presets.

Presets (all with the paper's bottleneck: 64 tokens x 1024 codes = 640 bits per 32 frames):
  paper     App. G/H: batch 256, K 8, 250k steps, beta 2 -> 0.01 (exp), ESS target K/2.
  official  the authors' code: beta 3 -> 0.01, ESS target 0.33 K, AdamW 3e-4 / wd 1e-4 with
            unit-wise adaptive gradient clipping 1.0, eta's own AdamW at 1e-3 (wd 1e-4).
  cpu       the paper model at batch 16 for 600 steps: about 10 minutes on 2 CPU cores.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields

from daps.objectives.daps import DAPSConfig
from daps.schedules import BetaSchedule
from daps.trainer import OptimConfig
from motion_vae.models import MotionVAEConfig

CHECKPOINT_KIND = "motion_vae"


@dataclass
class MotionTrainConfig:
    """Everything a run needs; stored in the checkpoint so eval/encode/decode need only it.

    model.num_features is 0 until the data is loaded (then C, the kept feature columns).
    val_segments: validation windows scored during training (fixed, seeded).
    """

    preset: str = "cpu"
    model: MotionVAEConfig = field(default_factory=lambda: MotionVAEConfig(num_features=0))
    daps: DAPSConfig = field(default_factory=DAPSConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    batch_size: int = 256
    steps: int = 250_000
    seed: int = 0
    log_every: int = 10
    eval_every: int = 5000
    ckpt_every: int = 1000
    val_segments: int = 256

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MotionTrainConfig":
        d = copy.deepcopy(d)
        d["model"] = MotionVAEConfig(**d["model"])
        d["daps"] = DAPSConfig(**d["daps"])
        d["optim"] = OptimConfig(**d["optim"])
        return cls(**d)


def preset_config(name: str) -> MotionTrainConfig:
    """The `paper`, `official` or `cpu` configuration. Raises ValueError for another name."""
    if name == "paper":
        return MotionTrainConfig(
            preset=name,
            daps=DAPSConfig(num_samples=8, ess_target=0.5, beta=BetaSchedule("exp", 2.0, 0.01)),
            optim=OptimConfig(lr=3e-4, weight_decay=1e-4, agc_clip=1.0, eta_lr=1e-3, eta_weight_decay=0.0),
            batch_size=256,
            steps=250_000,
        )
    if name == "official":
        return MotionTrainConfig(
            preset=name,
            daps=DAPSConfig(num_samples=8, ess_target=0.33, beta=BetaSchedule("exp", 3.0, 0.01)),
            optim=OptimConfig(lr=3e-4, weight_decay=1e-4, agc_clip=1.0, eta_lr=1e-3, eta_weight_decay=1e-4),
            batch_size=256,
            steps=250_000,
            eval_every=5000,
            ckpt_every=50_000,
        )
    if name == "cpu":
        return MotionTrainConfig(
            preset=name,
            # a short run: start eta lower and let it adapt faster than at 250k steps
            daps=DAPSConfig(num_samples=8, ess_target=0.5, init_eta=10.0, beta=BetaSchedule("exp", 2.0, 0.01)),
            optim=OptimConfig(lr=1e-3, weight_decay=1e-4, agc_clip=1.0, eta_lr=3e-2, eta_weight_decay=0.0),
            batch_size=16,
            steps=600,
            log_every=10,
            eval_every=100,
            ckpt_every=50,
            val_segments=128,
        )
    raise ValueError(f"unknown preset {name!r}; choose paper, official or cpu")


def apply_overrides(cfg: MotionTrainConfig, **overrides) -> MotionTrainConfig:
    """Set top-level fields (steps, batch_size, ...) that are not None. Raises ValueError for bad values."""
    names = {f.name for f in fields(cfg)}
    for k, v in overrides.items():
        if v is None:
            continue
        if k not in names:
            raise ValueError(f"unknown config field {k!r}")
        if k != "seed" and isinstance(v, int) and v <= 0:
            raise ValueError(f"{k} must be positive, got {v}")
        setattr(cfg, k, v)
    return cfg
