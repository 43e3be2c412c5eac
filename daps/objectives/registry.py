"""Every training method by name: its recognition family, its config dataclass and its objective.

    daps      DAPS, autoregressive encoder (paper Sec. 3)           daps.objectives.daps
    daps-na   DAPS, independent categoricals (ablation)             daps.objectives.daps
    gumbel    straight-through Gumbel-Softmax, AR encoder           daps.objectives.gumbel
    grmck     Gumbel-Rao Monte Carlo, AR encoder                    daps.objectives.grmck
    ppo       clipped policy gradient, AR encoder                   daps.objectives.ppo
    vqvae     vector quantisation (vector-quantize-pytorch)         daps.objectives.vqvae
    fsq       finite scalar quantisation (vector-quantize-pytorch)  daps.objectives.fsq

Recognition families: "ar" (ARRecognition), "na" (NARecognition), "vq" (VQRecognition),
"fsq" (FSQRecognition). A model builder (motion_vae, image_bench) picks the encoder from the
family; `build_objective` makes the objective from a config dict (as stored in a checkpoint).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

from torch import nn

from daps.objectives.daps import DAPS, DAPSConfig
from daps.objectives.fsq import FSQObjective
from daps.objectives.grmck import GRMCKConfig, GumbelRao
from daps.objectives.gumbel import GumbelConfig, GumbelST
from daps.objectives.ppo import PPO, PPOConfig
from daps.objectives.vqvae import VQObjective


@dataclass(frozen=True)
class MethodSpec:
    """recognition: encoder family. config: the objective's config dataclass (None: no options).
    build: (config or None, model) -> objective module. stochastic: q(z|x) is a distribution
    (the ELBO is meaningful); False for the deterministic quantisers."""

    recognition: str
    config: type | None
    build: Callable[[Any, nn.Module], nn.Module]
    stochastic: bool = True


METHODS: dict[str, MethodSpec] = {
    "daps": MethodSpec("ar", DAPSConfig, lambda c, m: DAPS(c)),
    "daps-na": MethodSpec("na", DAPSConfig, lambda c, m: DAPS(c)),
    "gumbel": MethodSpec("ar", GumbelConfig, lambda c, m: GumbelST(c)),
    "grmck": MethodSpec("ar", GRMCKConfig, lambda c, m: GumbelRao(c)),
    "ppo": MethodSpec("ar", PPOConfig, lambda c, m: PPO(c, m.recognition)),
    "vqvae": MethodSpec("vq", None, lambda c, m: VQObjective(), stochastic=False),
    "fsq": MethodSpec("fsq", None, lambda c, m: FSQObjective(), stochastic=False),
}


def method_spec(name: str) -> MethodSpec:
    """The spec of a method name. Raises ValueError naming the choices for an unknown one."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose {', '.join(METHODS)}")
    return METHODS[name]


def objective_config(name: str, values: dict | None = None):
    """The method's config dataclass from a dict (None/empty: its defaults); None for methods without options.
    Raises ValueError (TypeError from an unknown key is turned into one)."""
    spec = method_spec(name)
    if spec.config is None:
        return None
    try:
        return spec.config(**(values or {}))
    except TypeError as e:
        raise ValueError(f"bad {name} options {values}: {e}") from None


def build_objective(name: str, values: dict | None, model: nn.Module) -> nn.Module:
    """The objective module of method `name` with config `values` for `model` (a DiscreteVAE)."""
    return method_spec(name).build(objective_config(name, values), model)


def config_dict(cfg) -> dict:
    """A config dataclass as a JSON-able dict (empty for None)."""
    return {} if cfg is None else asdict(cfg)
