"""Run configuration of the image benchmark: the dataclass stored in every checkpoint, and presets.

A method is named as in `daps.objectives.registry.METHODS`, optionally with the final beta of its
schedule after a colon (`daps:1.0`, the paper's second DAPS column; stochastic methods only).

Presets (the paper's MNIST protocol, 8 tokens x 256 codes = 64 bits, for every method):
  paper  App. H / facts Sec. 3, 7: batch 256, 250k steps, AdamW 3e-4 (wd 1e-4, AGC 1.0);
         DAPS K 8, ESS 3K/4, beta 3 -> 0.01; Gumbel beta 3 -> 0.01, tau 1; GR-MCK beta 3 -> 0.01,
         tau 1, k 100; PPO K 8, beta 1 -> 0.01, clip 0.2; VQ commitment 0.25; FSQ [8, 6, 5];
         validation on the 10k test images every 5000 steps. CIFAR-10 (`--dataset cifar10`): the
         paper's CIFAR model (`image_bench.models.cifar10_model`, 576 bits) and App. H's CIFAR
         column (DAPS ESS K/3, beta 6 -> 0.01; GR-MCK tau 1 -> 0.75; PPO beta 0.01, lr 1e-4; ...).
         ImageNet-256 (`--dataset imagenet`): `imagenet_model` (10,240 bits), batch 64, 300k steps,
         DAPS ESS K/4, beta 50 -> 1; GR-MCK beta 10 -> 1, k 10, lr 1e-4; 50k validation images.
  cpu    the same methods at batch 64 for 400 steps, AdamW 1e-3, GR-MCK k 10, validation on 1000
         test images every 50 steps: the eight columns (seven methods, DAPS at two betas) x 3
         seeds in about a quarter of an hour on 2 CPU cores (README). CIFAR-10: batch 16, 200
         validation images (a smoke-sized run; the CIFAR model is far heavier per step);
         ImageNet: batch 4, 16 validation images (a smoke test, not a CPU budget).
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

from daps.objectives.registry import config_dict, method_spec, objective_config
from daps.schedules import BetaSchedule
from daps.trainer import OptimConfig
from image_bench.models import ImageVAEConfig

CHECKPOINT_KIND = "image_vae"
PRESETS = ("paper", "cpu")


@dataclass
class ImageTrainConfig:
    """Everything a run needs; stored in the checkpoint so `eval` needs only it.

    method: a registry name (plus ":beta_final"). objective: that method's config as a dict
    (`daps.objectives.registry.objective_config`). val_images: test images scored during
    training (the first N; <= 0: all)."""

    preset: str = "cpu"
    dataset: str = "fashion-mnist"
    method: str = "daps"
    model: ImageVAEConfig = field(default_factory=ImageVAEConfig)
    objective: dict = field(default_factory=dict)
    optim: OptimConfig = field(default_factory=OptimConfig)
    batch_size: int = 256
    steps: int = 250_000
    seed: int = 0
    log_every: int = 100
    eval_every: int = 5000
    ckpt_every: int = 5000
    val_images: int = 10_000

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ImageTrainConfig":
        d = copy.deepcopy(d)
        d["model"] = ImageVAEConfig(**d["model"])
        d["optim"] = OptimConfig(**d["optim"])
        return cls(**d)

    @property
    def method_name(self) -> str:
        """The registry name (without a ":beta" suffix)."""
        return self.method.split(":")[0]

    @property
    def beta_final(self) -> float | None:
        """The beta the beta-ELBO is reported with; None for the deterministic quantisers."""
        beta = self.objective.get("beta")
        if beta is None:
            return None
        return BetaSchedule(**beta).end_value


def method_objective(method: str, preset: str, dataset: str = "fashion-mnist") -> tuple[str, dict]:
    """(recognition family, objective config dict) of a method name for a preset and dataset
    (App. H / facts Sec. 2, 7: MNIST settings for MNIST and Fashion-MNIST, CIFAR-10's for cifar10).
    Raises ValueError for an unknown method, preset or a beta suffix on a deterministic method."""
    name, _, beta_final = method.partition(":")
    spec = method_spec(name)
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose {', '.join(PRESETS)}")
    cpu, cifar, imagenet = preset == "cpu", dataset == "cifar10", dataset == "imagenet"
    colour = cifar or imagenet
    values: dict = {}
    if name in ("daps", "daps-na"):
        if imagenet:
            values = dict(num_samples=8, ess_target=0.25, init_eta=100.0, beta=BetaSchedule("exp", 50.0, 1.0))
        else:
            values = dict(num_samples=8, ess_target=1 / 3 if cifar else 0.75, init_eta=100.0,
                          beta=BetaSchedule("exp", 6.0 if cifar else 3.0, 0.01))
    elif name == "gumbel":
        values = dict(num_samples=1, beta=BetaSchedule("exp", 50.0, 1.0) if imagenet else BetaSchedule("exp", 6.0 if cifar else 3.0, 0.01),
                      tau=BetaSchedule("exp", 1.0, 0.75) if imagenet else BetaSchedule("constant", 1.0, 1.0))
    elif name == "grmck":
        values = dict(num_samples=1, beta=BetaSchedule("exp", 10.0, 1.0) if imagenet else BetaSchedule("exp", 3.0, 0.01),
                      tau=BetaSchedule("exp", 1.0, 0.75) if colour else BetaSchedule("constant", 1.0, 1.0),
                      rao_samples=10 if cpu or imagenet else 100)
    elif name == "ppo":
        values = dict(num_samples=8, clip=0.2, beta=BetaSchedule("constant", 0.01, 0.01) if colour else BetaSchedule("exp", 1.0, 0.01),
                      kl_target=0.025 if colour else 0.05, init_kl_coef=10.0)
    if beta_final:
        if not spec.stochastic:
            raise ValueError(f"{name} has no beta (deterministic codes); drop ':{beta_final}'")
        try:
            final = float(beta_final)
        except ValueError:
            raise ValueError(f"bad beta in method {method!r}; write e.g. daps:1.0") from None
        b = values["beta"]
        values["beta"] = BetaSchedule("exp", max(b.initial, final), final, b.end_fraction)
    return spec.recognition, config_dict(objective_config(name, values))


def preset_config(name: str, method: str = "daps", dataset: str = "fashion-mnist") -> ImageTrainConfig:
    """The `paper` or `cpu` configuration of a method on a dataset. Raises ValueError for unknown names."""
    from image_bench.data import DATASETS
    from image_bench.models import cifar10_model, imagenet_model

    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose {', '.join(DATASETS)}")
    recognition, objective = method_objective(method, name, dataset)
    cifar, imagenet = dataset == "cifar10", dataset == "imagenet"
    model = cifar10_model(recognition) if cifar else imagenet_model(recognition) if imagenet else ImageVAEConfig(recognition=recognition)
    base = method.split(":")[0]
    if name == "paper":
        # cosine learning-rate schedules (CIFAR Gumbel) run at their constant start (the trainer has none)
        slow = (cifar and base in ("gumbel", "ppo")) or (imagenet and base in ("gumbel", "grmck", "ppo"))
        return ImageTrainConfig(
            preset=name, dataset=dataset, method=method, model=model, objective=objective,
            optim=OptimConfig(lr=1e-4 if slow else 3e-4, weight_decay=1e-4, agc_clip=1.0, eta_lr=1e-3, eta_weight_decay=0.0),
            batch_size=64 if imagenet else 256, steps=300_000 if imagenet else 250_000, log_every=500,
            eval_every=5000, ckpt_every=5000, val_images=50_000 if imagenet else 10_000,
        )
    return ImageTrainConfig(
        preset=name, dataset=dataset, method=method, model=model, objective=objective,
        optim=OptimConfig(lr=1e-3, weight_decay=1e-4, agc_clip=1.0, eta_lr=3e-2, eta_weight_decay=0.0),
        batch_size=4 if imagenet else 16 if cifar else 64, steps=400, log_every=50, eval_every=50, ckpt_every=200,
        val_images=16 if imagenet else 200 if cifar else 1000,
    )
