"""Policy network of the low-level imitation policy (paper App. I) as SB3 policy kwargs.

Latent goal (``goal="latent"``, Dict observation of :class:`envs.tracking.H1TrackingEnv`):

    latent (2, 64) float indices -> long -> nn.Embedding(vocab, E)  -> (B, 128, E)
        -> Conv1d(E, C, k=4, stride=4) -> ELU -> Conv1d(C, C, k=4, stride=4) -> ELU -> (B, C, 8)
        -> flatten (8 C)
    features = [ conv features (8 C) | proprio (63) | phase (1) ]

then SB3's ``MlpExtractor`` builds separate policy and value MLPs (``net_arch=dict(pi=..., vf=...)``,
``activation_fn=nn.ELU``), a linear action-mean head (19 torques / PD targets) with a
state-independent log std, and a linear value head.  Nothing of PPO is forked.

The 128 tokens are the current segment's 64 indices followed by the next segment's 64, so the
stride-4 convolutions see 4 consecutive tokens of one code at a time (64 and 128 are divisible
by 16, so no window straddles the two codes).

Reference goal (``goal="reference"``, flat Box): SB3's default ``FlattenExtractor`` + the same MLPs.

Presets (:data:`PRESETS`): ``paper`` keeps App. I's [2048, 1024, 512] ELU MLP; ``cpu`` uses
[256, 256] so that about 3 M environment steps (torque actions, 4 environments) fit in an
hour on 2 cores.
"""
from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

__all__ = ["LatentConvExtractor", "PRESETS", "preset", "policy_kwargs"]


class LatentConvExtractor(BaseFeaturesExtractor):
    """Features of the Dict observation {"proprio", "latent", "phase"} (see the module docstring).

    Args:
        observation_space: the env's Dict space; the vocabulary size is read from the latent
            Box's upper bound (``high + 1``) unless ``vocab_size`` is given.
        embed_dim: E, embedding width.
        conv_channels: C, channels of both convolutions.
        kernel: kernel size = stride of both convolutions.
    """

    def __init__(self, observation_space: gym.spaces.Dict, embed_dim: int = 32, conv_channels: int = 32,
                 kernel: int = 4, vocab_size: int | None = None):
        if not isinstance(observation_space, gym.spaces.Dict) or set(observation_space.spaces) != {"proprio", "latent", "phase"}:
            raise ValueError("LatentConvExtractor needs the Dict observation {'proprio', 'latent', 'phase'} of goal='latent'")
        lat = observation_space["latent"]
        n_tokens = int(lat.shape[0] * lat.shape[1])
        vocab = int(vocab_size if vocab_size is not None else round(float(lat.high.max())) + 1)
        length = n_tokens
        for _ in range(2):
            length = (length - kernel) // kernel + 1
        if length < 1:
            raise ValueError(f"{n_tokens} latent tokens are too few for two stride-{kernel} convolutions")
        proprio_dim = int(observation_space["proprio"].shape[0])
        phase_dim = int(observation_space["phase"].shape[0])
        super().__init__(observation_space, features_dim=conv_channels * length + proprio_dim + phase_dim)
        self.vocab_size = vocab
        self.embedding = nn.Embedding(vocab, embed_dim)
        self.conv = nn.Sequential(
            nn.Conv1d(embed_dim, conv_channels, kernel, stride=kernel), nn.ELU(),
            nn.Conv1d(conv_channels, conv_channels, kernel, stride=kernel), nn.ELU(),
            nn.Flatten(),
        )

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        idx = obs["latent"].round().long().clamp_(0, self.vocab_size - 1).flatten(1)  # (B, 128)
        h = self.embedding(idx).transpose(1, 2)  # (B, E, 128)
        return torch.cat([self.conv(h), obs["proprio"], obs["phase"]], dim=1)


#: Hyper-parameters per preset.  "ppo" holds PPO's own keyword arguments.
PRESETS: dict[str, dict[str, Any]] = {
    # App. I network; for many cores or a GPU (about 370 env steps/s on 2 cores: too slow there).
    "paper": {
        "n_envs": 16,
        "steps": 50_000_000,
        "net_arch": [2048, 1024, 512],
        "embed_dim": 64, "conv_channels": 64,
        "log_std_init": -1.0,
        "ppo": dict(n_steps=512, batch_size=4096, n_epochs=5, learning_rate=1e-4, gamma=0.99,
                    gae_lambda=0.95, clip_range=0.2, ent_coef=0.0, vf_coef=0.5, max_grad_norm=1.0,
                    target_kl=0.02),
        "ckpt_every": 1_000_000,
    },
    # Small MLP: trains in about an hour on 2 cores.
    "cpu": {
        "n_envs": 4,
        "steps": 3_000_000,  # about an hour at ~900 env steps/s (torque actions) on 2 idle cores
        "net_arch": [256, 256],
        "embed_dim": 16, "conv_channels": 16,
        "log_std_init": -1.0,
        "ppo": dict(n_steps=512, batch_size=512, n_epochs=5, learning_rate=3e-4, gamma=0.99,
                    gae_lambda=0.95, clip_range=0.2, ent_coef=0.0, vf_coef=0.5, max_grad_norm=1.0,
                    target_kl=0.02),
        "ckpt_every": 100_000,
    },
}


def preset(name: str) -> dict[str, Any]:
    """A deep copy of preset ``name`` (ValueError for an unknown one)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def policy_kwargs(cfg: dict[str, Any], goal: str) -> dict[str, Any]:
    """SB3 ``policy_kwargs`` for a preset-like config and goal ("latent" or "reference")."""
    kw: dict[str, Any] = dict(net_arch=dict(pi=list(cfg["net_arch"]), vf=list(cfg["net_arch"])),
                              activation_fn=nn.ELU, log_std_init=float(cfg["log_std_init"]))
    if goal == "latent":
        kw["features_extractor_class"] = LatentConvExtractor
        kw["features_extractor_kwargs"] = dict(embed_dim=int(cfg["embed_dim"]), conv_channels=int(cfg["conv_channels"]))
        kw["share_features_extractor"] = True
    elif goal != "reference":
        raise ValueError(f"goal must be 'latent' or 'reference', got {goal!r}")
    return kw
