"""Configuration of the motion autoencoder: the model's (`MotionVAEConfig`) and the run's (the dataclass
stored in every checkpoint), and presets.

Presets (all with the paper's bottleneck: 64 tokens x 1024 codes = 640 bits per 32 frames):
  paper     App. G/H: batch 256, K 8, 250k steps, beta 2 -> 0.01 (exp), ESS target K/2.
  official  the authors' code: beta 3 -> 0.01, ESS target 0.33 K, AdamW 3e-4 / wd 1e-4 with
            unit-wise adaptive gradient clipping 1.0, eta's own AdamW at 1e-3 (wd 1e-4).
  cpu       DAPS-NA on the FSQ lattice with the 1D-conv encoder and decoder (arch conv, token
            width H 64, conv width 128), batch 16, K 8, beta 1: a straight-through (FSQ) warm
            start of 7000 steps, then 650 DAPS steps over which the learning rates fall to 0.1x,
            within 15 minutes on 2 CPU cores (README command 1).
  cpu-long  the conv model at the paper's token width and depth (H 128, 2 layers per stack),
            batch 32, training clips and their mirror images, the tanh-bounded lattice: 40k
            warm-start steps (FSQ exactly), then 2k DAPS steps; the learning rates fall linearly
            to 0.1x over the whole run (a few hours on 2 cores; resumable across sittings); the
            root-height feature's sigma^2 is 0.25 / 16 (16x the weight of the other features). The
            shipped models/motion_vae.pt is a run of it (its card names the commit and the sittings).
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field, fields, replace

from daps.args import number_list
from daps.nn import TransformerConfig
from daps.objectives.daps import DAPSConfig
from daps.objectives.registry import config_dict, method_spec, objective_config
from daps.recognition import LATTICE_BOUNDS
from daps.schedules import BetaSchedule
from daps.trainer import OptimConfig
from envs.lafan1 import SPEED_RANGE

CHECKPOINT_KIND = "motion_vae"
ARCHS = ("transformer", "conv")  # encoder/decoder families (`motion_vae.models`' docstring)


@dataclass
class MotionVAEConfig:
    """num_features: C, standardised feature columns per frame. segment_length: frames (30 Hz).
    recognition: "ar" (DAPS, Gumbel, GR-MCK), "na" (DAPS-NA), "fsq" (the deterministic FSQ
    baseline, with fsq_levels multiplying to vocab_size) or "vq" (VQ-VAE: vocab_size codebook
    vectors of embed_dim, commitment vq_commitment; facts Sec. 7: 0.5 on LAFAN). variance: fixed sigma^2 in standardised units, unless
    learned_variance (then clipped to [0.01, 1]); root_height_variance: sigma^2 of the root-height
    column alone (column 0, standardised units; None = variance), a heavier weight on the one
    feature that places the whole body vertically. init_logit_std: the DAPS encoder's initial logit
    scale (`daps.recognition.ARRecognition`; 0 = Xavier, near-uniform codes). lattice: the DAPS
    encoder's codes are the points of the fsq_levels grid (`daps.recognition.LatticeHead`) and
    the decoder embeds each code by its grid point, as FSQ's does; lattice_bound "box" or "tanh"
    (FSQ's bound, NA encoder only: `daps.recognition.LatticeHead`). aligned_input: the AR
    encoder's causal decoder also sees the encoded input token at its own position. arch:
    "transformer" or "conv" (`motion_vae.models`' docstring); conv_width W and conv_res_blocks, the residual blocks of
    each conv stack (conv only; num_layers then counts only the AR encoder's transformer)."""

    num_features: int
    segment_length: int = 32
    vocab_size: int = 1024
    block_size: int = 64
    embed_dim: int = 128
    num_heads: int = 4
    num_layers: int = 2
    mlp_ratio: int = 4
    recognition: str = "ar"
    variance: float = 0.25
    learned_variance: bool = False
    root_height_variance: float | None = None
    fsq_levels: tuple[int, ...] = (8, 8, 4, 4)
    init_logit_std: float = 0.0
    lattice: bool = False
    lattice_bound: str = "box"
    aligned_input: bool = False
    vq_commitment: float = 0.5
    arch: str = "transformer"
    conv_width: int = 128
    conv_res_blocks: int = 4

    def __post_init__(self) -> None:
        self.fsq_levels = tuple(self.fsq_levels)  # a list after a JSON round trip
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be transformer or conv, got {self.arch!r}")
        if self.lattice_bound not in LATTICE_BOUNDS:
            raise ValueError(f"lattice bound must be one of {', '.join(LATTICE_BOUNDS)}, got {self.lattice_bound!r}")
        if self.lattice_bound != "box" and not (self.lattice and self.recognition == "na"):
            raise ValueError(f"lattice_bound {self.lattice_bound!r} needs the NA encoder on the lattice (daps-na)")
        if self.root_height_variance is not None and (self.learned_variance or not self.root_height_variance > 0):
            raise ValueError(f"root_height_variance must be positive with a fixed variance, got {self.root_height_variance}")

    def transformer(self) -> TransformerConfig:
        return TransformerConfig(
            self.vocab_size, self.block_size, self.embed_dim, self.num_heads, self.num_layers, self.mlp_ratio
        )

    @property
    def bits(self) -> float:
        """Bottleneck size in bits: block_size * log2(vocab_size)."""
        return self.block_size * math.log2(self.vocab_size)




@dataclass
class MotionTrainConfig:
    """Everything a run needs; stored in the checkpoint so eval/encode/decode need only it.

    model.num_features is 0 until the data is loaded (then C, the kept feature columns).
    val_segments: validation windows scored during training (fixed, seeded).
    mirror: train on every training clip and its left-right mirror image (data augmentation,
    `envs.lafan1.mirror_qpos`); the feature statistics are fitted on both.
    speeds: also train on every training clip (and mirror image) played at these speeds
    (`envs.lafan1.resample_qpos`, e.g. [0.8, 1.25]; speed augmentation); [] = none.
    method: a name of `METHODS` ("" in checkpoints written before the field: DAPS, or FSQ for
    the fsq encoder). daps: the objective of daps / daps-na; objective: the config dict of the
    other stochastic baselines (gumbel, grmck; `daps.objectives.registry.objective_config`).
    """

    preset: str = "cpu"
    model: MotionVAEConfig = field(default_factory=lambda: MotionVAEConfig(num_features=0))
    daps: DAPSConfig = field(default_factory=DAPSConfig)
    method: str = ""
    objective: dict = field(default_factory=dict)
    optim: OptimConfig = field(default_factory=OptimConfig)
    batch_size: int = 256
    steps: int = 250_000
    seed: int = 0
    log_every: int = 10
    eval_every: int = 5000
    ckpt_every: int = 1000
    val_segments: int = 256
    mirror: bool = False
    speeds: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def added_field_defaults(cls) -> dict:
        """Fields that checkpoints of earlier versions lack, at their defaults
        (`daps.trainer.train(config_defaults=...)`: those checkpoints still resume)."""
        model = {f.name: f.default for f in fields(MotionVAEConfig) if f.name in ("arch", "conv_width", "conv_res_blocks", "lattice_bound")}
        return {"mirror": cls.__dataclass_fields__["mirror"].default, "speeds": [], "model": model}

    @property
    def beta_final(self) -> float:
        """The beta the validation beta-ELBO is reported with: the end of the method's schedule
        (DAPS's for the deterministic quantisers, whose KL is the constant T log V)."""
        beta = self.objective.get("beta")
        return BetaSchedule(**beta).end_value if beta else self.daps.beta.end_value

    @classmethod
    def from_dict(cls, d: dict) -> "MotionTrainConfig":
        d = copy.deepcopy(d)
        d["model"] = MotionVAEConfig(**d["model"])
        d["daps"] = DAPSConfig(**d["daps"])
        d["optim"] = OptimConfig(**d["optim"])
        return cls(**d)


def preset_config(name: str) -> MotionTrainConfig:
    """The `paper`, `official`, `cpu` or `cpu-long` configuration. Raises ValueError for another name."""
    if name == "paper":
        return MotionTrainConfig(
            preset=name,
            method="daps",
            daps=DAPSConfig(num_samples=8, ess_target=0.5, beta=BetaSchedule("exp", 2.0, 0.01)),
            optim=OptimConfig(lr=3e-4, weight_decay=1e-4, agc_clip=1.0, eta_lr=1e-3, eta_weight_decay=0.0),
            batch_size=256,
            steps=250_000,
        )
    if name == "official":
        return MotionTrainConfig(
            preset=name,
            method="daps",
            daps=DAPSConfig(num_samples=8, ess_target=0.33, beta=BetaSchedule("exp", 3.0, 0.01)),
            optim=OptimConfig(lr=3e-4, weight_decay=1e-4, agc_clip=1.0, eta_lr=1e-3, eta_weight_decay=1e-4),
            batch_size=256,
            steps=250_000,
            eval_every=5000,
            ckpt_every=50_000,
        )
    if name in ("cpu", "cpu-long"):
        # DAPS-NA on the FSQ lattice after a straight-through warm start (docs/motion_vae_cpu_study.md),
        # both on the conv encoder/decoder, which reached the same error ~3x sooner than the
        # transformers (docs/motion_vae_cpu_study.md); the long run at the paper's token width and depth (H 128 x 2)
        long = name == "cpu-long"
        return MotionTrainConfig(
            preset=name,
            method="daps-na",
            model=MotionVAEConfig(
                num_features=0, embed_dim=128 if long else 64, num_layers=2 if long else 1, recognition="na", lattice=True,
                arch="conv",
                # FSQ's tanh bound on the lattice: the warm start is FSQ exactly (measured: the
                # box bound lagged FSQ; cpu 0.2115 against 0.216 rad)
                lattice_bound="tanh",
                # 16x the likelihood's weight on root height (sigma^2 0.25 / 16) for cpu-long
                # (validation root height 0.031 -> 0.019 m, joints 0.148 -> 0.143 rad)
                root_height_variance=0.015625 if long else None,
            ),
            daps=DAPSConfig(
                num_samples=8, ess_target=0.5, init_eta=10.0, beta=BetaSchedule("constant", 1.0, 1.0),
                st_warmup_steps=40_000 if long else 7_000,
            ),
            # the learning rates fall 10x: over the DAPS phase for cpu (docs/motion_vae_cpu_study.md,
            # 0.234 against 0.250 rad), over the whole run for cpu-long
            optim=OptimConfig(
                lr=1e-3, weight_decay=1e-4, agc_clip=1.0, eta_lr=3e-2, eta_weight_decay=0.0, decay_steps=42_000 if long else 650
            ),
            batch_size=32 if long else 16,
            steps=42_000 if long else 7_650,
            # mirror images of the training clips (-2054.5 against -2109.7 nats at 16k steps)
            mirror=long,
            log_every=50,
            eval_every=2500 if long else 500,
            ckpt_every=500 if long else 250,
            val_segments=256,
        )
    raise ValueError(f"unknown preset {name!r}; choose paper, official, cpu or cpu-long")


# method -> encoder family, as the registry names it (gumbel / grmck on the plain AR encoder,
# vqvae on the NA stack); the registry's ppo has no LAFAN setup (facts Sec. 7) and is left out
METHODS = {m: method_spec(m).recognition for m in ("daps", "daps-na", "fsq", "vqvae", "gumbel", "grmck")}

# steps of the `cpu` budget (~15 min of training on one CPU thread at H 64 x 1, batch 16) per method,
# from each method's measured steps/s on the transformer model; `compare --max-minutes` caps them
# at equal wall time
CPU_STEPS = {"fsq": 24_000, "vqvae": 18_000, "gumbel": 3_000, "grmck": 1_500, "daps": 1_300}

# steps of the `cpu-long` budget (at most 140 min on one core at H 128 x 2, batch 32) for the
# methods whose AR encoder cannot run the preset's 42k steps in that time (one thread:
# Gumbel ~1.5 s/step, GR-MCK ~1.3x Gumbel; DAPS ~4.4 s/step then, 2.8 s since `daps.nn.probs`,
# measured), so that their beta schedule and learning-rate decay end inside the budget; the
# others keep the preset's 42k steps
CPU_LONG_STEPS = {"gumbel": 5_000, "grmck": 3_500, "daps": 2_000}


def method_name(cfg: MotionTrainConfig) -> str:
    """The run's method; checkpoints without the field are DAPS (or FSQ on the fsq encoder)."""
    if cfg.method:
        return cfg.method
    return {"fsq": "fsq", "na": "daps-na"}.get(cfg.model.recognition, "daps")


def baseline_objective(method: str) -> dict:
    """Objective config of a gumbel / grmck run on LAFAN1 (facts Sec. 7: beta 2 -> 0.01, tau 1,
    one sample; GR-MCK k 10); {} for the others."""
    if method not in ("gumbel", "grmck"):
        return {}
    values = dict(num_samples=1, beta=BetaSchedule("exp", 2.0, 0.01), tau=BetaSchedule("constant", 1.0, 1.0))
    if method == "grmck":
        values["rao_samples"] = 10
    return config_dict(objective_config(method, values))


def set_method(cfg: MotionTrainConfig, method: str) -> MotionTrainConfig:
    """Switch the estimator, keeping the preset's sizes, batch and learning rates: daps (AR
    encoder), daps-na (independent categoricals), fsq or vqvae (deterministic, straight-through),
    gumbel or grmck (relaxed AR samples, paper Table 1 baselines). The lattice head belongs to
    DAPS encoders and is kept only for them. The `cpu` and `cpu-long` presets' step budgets are
    set per method (`CPU_STEPS`, `CPU_LONG_STEPS`); `cpu-long`'s AR DAPS encoder also sees the
    aligned input tokens (`MotionVAEConfig.aligned_input`). Raises ValueError for another name."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose {', '.join(METHODS)}")
    cfg = copy.deepcopy(cfg)
    cfg.method = method
    cfg.model.recognition = METHODS[method]
    cfg.objective = baseline_objective(method)
    if method not in ("daps", "daps-na"):
        cfg.model.lattice, cfg.model.aligned_input = False, False
    if method != "daps-na":
        cfg.daps.st_warmup_steps = 0  # the warm start is DAPS-NA's on the lattice
        cfg.model.lattice_bound = "box"  # the tanh bound too (the AR lattice head must stay linear)
    if cfg.preset == "cpu" and method in CPU_STEPS:
        cfg.steps = CPU_STEPS[method]
        cfg.optim.decay_steps = 0  # the preset's decay spans DAPS-NA's DAPS phase only
    if cfg.preset == "cpu-long" and method in CPU_LONG_STEPS:
        cfg.steps = cfg.optim.decay_steps = CPU_LONG_STEPS[method]  # the preset's decay spans the whole run
        cfg.eval_every = cfg.steps // 16  # as many points on the validation curve as the preset's 42k steps give
    if cfg.preset == "cpu-long" and method == "daps":
        # without the aligned input tokens the AR lattice encoder trained from scratch collapsed
        # (perplexity 2, 0.388 rad at step 375; with them 10, 0.335 rad: docs/motion_vae.md)
        cfg.model.aligned_input = True
    return cfg


def set_arch(cfg: MotionTrainConfig, arch: str) -> MotionTrainConfig:
    """A copy of cfg with the encoder/decoder family `arch` ("transformer" or "conv",
    `ARCHS`). Raises ValueError for another name."""
    cfg = copy.deepcopy(cfg)
    cfg.model = replace(cfg.model, arch=arch)  # __post_init__ checks the name
    return cfg


def set_st_warmup(cfg: MotionTrainConfig, steps: int) -> MotionTrainConfig:
    """Set the straight-through (FSQ) warm start of a DAPS-NA lattice encoder to `steps` steps
    (`daps.objectives.daps`). Raises ValueError for a negative count, or a positive one on
    another encoder."""
    if steps < 0:
        raise ValueError(f"st_warmup_steps must be >= 0, got {steps}")
    if steps > 0 and not (cfg.model.recognition == "na" and cfg.model.lattice):
        raise ValueError("the straight-through warm start needs --method daps-na with the lattice head (the cpu presets)")
    cfg = copy.deepcopy(cfg)
    cfg.daps.st_warmup_steps = steps
    return cfg


def parse_speeds(text: str) -> list[float]:
    """"0.8,1.25" -> [0.8, 1.25] (`MotionTrainConfig.speeds`; "" -> []). Raises ValueError for a
    non-number, a speed outside [0.25, 4], 1 (the clips themselves) or a repeat."""
    out = number_list(text, "speeds", float)
    lo, hi = SPEED_RANGE
    bad = [v for v in out if not lo <= v <= hi or v == 1.0]
    if bad or len(set(out)) != len(out):
        raise ValueError(f"speeds must be distinct, in [{lo:g}, {hi:g}] and not 1, got {text!r}")
    return out
