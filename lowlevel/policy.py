"""Policy network of the low-level imitation policy (paper App. I) as SB3 policy kwargs.

Latent goal (``goal="latent"``, Dict observation of :class:`envs.tracking.H1TrackingEnv`):

    latent (2, 64) float indices -> long -> nn.Embedding(vocab, E)  -> (B, 128, E)
        -> Conv1d(E, C, k=4, stride=4) -> ELU -> Conv1d(C, C, k=4, stride=4) -> ELU -> (B, C, 8)
        -> flatten (8 C)
    features = [ conv features (8 C) | proprio (63; 67 with root_velocity_obs) | phase (1) ]

then SB3's ``MlpExtractor`` builds separate policy and value MLPs (``net_arch=dict(pi=..., vf=...)``,
``activation_fn=nn.ELU``), a linear action-mean head (19 torques / PD targets) with a
state-independent log std, and a linear value head.  Nothing of PPO is forked.

The 128 tokens are the current segment's 64 indices followed by the next segment's 64, so the
stride-4 convolutions see 4 consecutive tokens of one code at a time (64 and 128 are divisible
by 16, so no window straddles the two codes).

Reference or decoded goal (``goal="reference"`` / ``"decoded"``, the same flat Box): SB3's default
``FlattenExtractor`` + the same MLPs.

Asymmetric critic (``critic_reference_obs``, decoded goal): the observation is [proprio | decoded
goal | true reference goal]; :class:`AsymmetricCriticPolicy` gives the actor the first
``actor_obs_dim`` numbers only and the critic all of them, so the value function can predict
rewards that are computed against the true clip while the policy stays deployable.

Presets (:data:`PRESETS`): ``paper`` keeps App. I's [2048, 1024, 512] ELU MLP; ``cpu`` uses
[256, 256] with 32 batched environments (:class:`envs.batched.H1BatchedVecEnv`), about
1,700-2,500 environment steps/s on 2 loaded cores (``benchmarks/bench_ppo.py``), so its 10 M
steps take 1.1-1.6 h.

The latent convolutions have stride = kernel, so :meth:`LatentConvExtractor.forward` computes
them as matrix products over disjoint windows with the ``nn.Conv1d`` modules' own weights (the
same numbers, checkpoints unchanged; about 2x faster than torch's conv1d on CPU here).
"""
from __future__ import annotations

import copy
import math
from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn
from torch.nn import functional as F

from envs.tracking import DEFAULT_REFERENCE_OFFSETS

__all__ = ["AsymmetricCriticPolicy", "LatentConvExtractor", "PRESETS", "preset", "policy_kwargs", "policy_class"]


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

        self.kernel = kernel

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        idx = obs["latent"].round().long().clamp_(0, self.vocab_size - 1).flatten(1)  # (B, 128)
        h = self.embedding(idx)  # (B, 128, E)
        for conv in (self.conv[0], self.conv[2]):
            h = F.elu(self._strided_conv(h, conv))  # (B, 32, C) then (B, 8, C)
        return torch.cat([h.transpose(1, 2).flatten(1), obs["proprio"], obs["phase"]], dim=1)

    def _strided_conv(self, h: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
        """``conv`` (kernel = stride = k) applied to channels-last ``h`` (B, L, C_in) -> (B, L // k, C_out).

        A convolution whose stride equals its kernel sees disjoint windows, so it is one matrix
        product over windows of k tokens: same weights and numbers as ``conv`` on (B, C_in, L),
        several times faster than torch's conv1d on CPU for these shapes.
        """
        k = self.kernel
        B, L, c_in = h.shape
        windows = h[:, : (L // k) * k].reshape(B, L // k, k * c_in)  # (j, c) order within a window
        weight = conv.weight.permute(0, 2, 1).reshape(conv.out_channels, k * c_in)  # (C_out, C_in, k) -> (j, c)
        return F.linear(windows, weight, conv.bias)


class ActorSlice(BaseFeaturesExtractor):
    """The first ``actor_obs_dim`` numbers of a flat Box observation (B, D) -> (B, actor_obs_dim)."""

    def __init__(self, observation_space: gym.spaces.Box, actor_obs_dim: int):
        if not 0 < actor_obs_dim <= int(observation_space.shape[0]):
            raise ValueError(f"actor_obs_dim {actor_obs_dim} outside (0, {observation_space.shape[0]}]")
        super().__init__(observation_space, features_dim=actor_obs_dim)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.flatten(1)[:, : self.features_dim]


class AsymmetricCriticPolicy(ActorCriticPolicy):
    """SB3's MLP actor-critic whose actor reads only the observation's first ``actor_obs_dim``
    numbers while the critic reads all of them (privileged information for the value function only,
    as in asymmetric actor-critic, Pinto et al. 2018).

    Built through SB3's own hooks: separate features extractors (``share_features_extractor=False``;
    the actor's is :class:`ActorSlice`, the critic's a flatten) and an ``MlpExtractor`` whose policy
    network's first layer takes ``actor_obs_dim`` inputs. Everything PPO does is unchanged; the
    actions never depend on the numbers after ``actor_obs_dim`` (a test checks it).
    """

    def __init__(self, observation_space, action_space, lr_schedule, *args, actor_obs_dim: int, **kwargs):
        self.actor_obs_dim = int(actor_obs_dim)
        kwargs["share_features_extractor"] = False
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)

    def _build_mlp_extractor(self) -> None:
        super()._build_mlp_extractor()  # both networks on the full observation
        self.pi_features_extractor = ActorSlice(self.observation_space, self.actor_obs_dim)
        first = self.mlp_extractor.policy_net[0]
        self.mlp_extractor.policy_net[0] = nn.Linear(self.actor_obs_dim, first.out_features)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["actor_obs_dim"] = self.actor_obs_dim
        return data


#: Hyper-parameters per preset.  "ppo" holds PPO's own keyword arguments.
PRESETS: dict[str, dict[str, Any]] = {
    # App. I network; for many cores or a GPU (about 370 env steps/s on 2 cores: too slow there).
    "paper": {
        "n_envs": 16,
        "vec": "batched",
        "threads": 2,  # for the many-core machines this preset is meant for
        "steps": 50_000_000,
        "net_arch": [2048, 1024, 512],
        "embed_dim": 64, "conv_channels": 64,
        "log_std_init": -1.0,
        "fixed_std": False,
        "ppo": dict(n_steps=512, batch_size=4096, n_epochs=5, learning_rate=1e-4, gamma=0.99,
                    gae_lambda=0.95, clip_range=0.2, ent_coef=0.0, vf_coef=0.5, max_grad_norm=1.0,
                    target_kl=0.02),
        "ckpt_every": 1_000_000,
        "train_max_mean_joint_error": None,
        "control_hz": 100.0,
        "pd_gain_scale": 1.0,
        "reference_offsets": list(DEFAULT_REFERENCE_OFFSETS),
    },
    # Small MLP: trains in about an hour on 2 cores.
    "cpu": {
        # 32 environments stepped in this process (envs.batched.H1BatchedVecEnv), 128 steps each:
        # 4096 samples per PPO update.  The update is kept lean: minibatches of 1024 (4 per epoch)
        # and 4 epochs, 16 gradient steps per 4096 samples (the previous 512 x 5 epochs on 2048
        # samples took 20); one torch thread.
        "n_envs": 32,
        "vec": "batched",
        # physics on one thread: on a 2-core machine shared with other jobs a second physics thread
        # measured slower (interleaved bench_ppo runs); --threads 2 can help when a core is idle
        "threads": 1,
        "steps": 10_000_000,
        "net_arch": [256, 256],
        "embed_dim": 16, "conv_channels": 16,
        # Fixed exploration std 0.2 per action unit (DeepMimic keeps a fixed std; LocoMuJoCo's H1
        # example starts at 0.2): 0.05 rad of PD target with the 0.25 rad action scale, 0.2 of the
        # torque limit with torque actions (the previous learned std started at exp(-1) = 0.37).
        "log_std_init": math.log(0.2),
        "fixed_std": True,
        "ppo": dict(n_steps=128, batch_size=1024, n_epochs=4, learning_rate=3e-4, gamma=0.99,
                    gae_lambda=0.95, clip_range=0.2, ent_coef=0.0, vf_coef=0.5, max_grad_norm=1.0,
                    target_kl=0.02),
        "ckpt_every": 200_000,
        # Early termination while training only: an episode ends once the mean |joint error|
        # exceeds this (rad; None = the environment's 0.5). Evaluation keeps 0.5, so runs with
        # another value are scored alike (README, issue-11 levers).
        "train_max_mean_joint_error": None,
        # Policy rate (Hz; the physics stays at 500 Hz): 100, 50 or 25 (envs.tracking.PHYSICS_HZ / n).
        "control_hz": 100.0,
        # Multiplies Unitree's PD gains (kp and kd; torque limits unchanged): an ablation lever.
        "pd_gain_scale": 1.0,
        # Control frames ahead whose reference (or decoded) frames the goal shows (10-50 ms).
        "reference_offsets": list(DEFAULT_REFERENCE_OFFSETS),
    },
}


def preset(name: str) -> dict[str, Any]:
    """A deep copy of preset ``name`` (ValueError for an unknown one)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def policy_kwargs(cfg: dict[str, Any], goal: str) -> dict[str, Any]:
    """SB3 ``policy_kwargs`` for a preset-like config and goal ("latent", or "reference" / "decoded":
    the same flat observation)."""
    kw: dict[str, Any] = dict(net_arch=dict(pi=list(cfg["net_arch"]), vf=list(cfg["net_arch"])),
                              activation_fn=nn.ELU, log_std_init=float(cfg["log_std_init"]))
    if goal == "latent":
        kw["features_extractor_class"] = LatentConvExtractor
        kw["features_extractor_kwargs"] = dict(embed_dim=int(cfg["embed_dim"]), conv_channels=int(cfg["conv_channels"]))
        kw["share_features_extractor"] = True
    elif goal not in ("reference", "decoded"):
        raise ValueError(f"goal must be 'latent', 'reference' or 'decoded', got {goal!r}")
    if cfg.get("critic_reference_obs"):
        kw["actor_obs_dim"] = actor_obs_dim(cfg)
    return kw


def goal_dim(cfg: dict[str, Any]) -> int:
    """Numbers of one reference / decoded goal block: 28 per reference offset (the length of the
    critic's appended true-reference block too)."""
    from envs.tracking import REF_FRAME_DIM

    return REF_FRAME_DIM * len(cfg.get("reference_offsets", DEFAULT_REFERENCE_OFFSETS))


def actor_obs_dim(cfg: dict[str, Any]) -> int:
    """Numbers of the flat observation the actor reads: proprio (63, 67 with root_velocity_obs) +
    the goal block (envs.tracking.H1TrackingEnv.actor_obs_dim)."""
    from envs.tracking import PROPRIO_DIM, ROOT_VELOCITY_DIM

    return PROPRIO_DIM + (ROOT_VELOCITY_DIM if cfg.get("root_velocity_obs") else 0) + goal_dim(cfg)


def policy_class(cfg: dict[str, Any]):
    """The SB3 policy class of a run config: MultiInputActorCriticPolicy (latent goal),
    AsymmetricCriticPolicy (critic_reference_obs) or ActorCriticPolicy."""
    from stable_baselines3.common.policies import MultiInputActorCriticPolicy

    if cfg["goal"] == "latent":
        return MultiInputActorCriticPolicy
    return AsymmetricCriticPolicy if cfg.get("critic_reference_obs") else ActorCriticPolicy
