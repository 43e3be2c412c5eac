"""Saved low-level policies: the training checkpoint (written and read as tensors and plain data)
and the smaller tensor-only export of ``daps lowlevel export`` (the shipped ``models/lowlevel.pt``).

A training checkpoint (``RUN/checkpoint.pt``, :func:`save_checkpoint`) holds the run config, the
policy's and optimiser's state dicts, the spaces, the VecNormalize statistics, PPO's counters and
the clips' latent codes; :func:`load_lowlevel` rebuilds the SB3 objects from them. A checkpoint of
the older layout (a pickled PPO zip and VecNormalize, which could run code when read) is refused,
never unpickled.

``export_lowlevel`` turns a training checkpoint into a smaller file that loads with
``weights_only=True``: the SB3 policy's ``state_dict`` (float32), the observation normaliser's
running mean/var (the only VecNormalize state a deterministic actor uses), the run config, the
latent codes of the training clips and the motion VAE's sha256. :func:`load_exported` rebuilds the
policy with SB3's own classes (``ActorCriticPolicy`` / ``MultiInputActorCriticPolicy``, the same
``policy_kwargs`` as training) and a ``VecNormalize`` holding those statistics, so evaluation and
rendering use it exactly as they use a checkpoint.
"""
from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from daps.shipped import MOTION_VAE, read_tensors, save_export, shipped_path
from daps.trainer import CHECKPOINT_FORMAT, CheckpointError, atomic_torch_save, load_checkpoint
from lowlevel import policy as pol
from lowlevel.environment import make_policy_env

__all__ = ["CHECKPOINT_KIND", "CHECKPOINT_NAME", "EXPORT_KIND", "save_checkpoint", "read_lowlevel_checkpoint",
           "checkpoint_codes", "rebuild_ppo", "restore_vecnormalize", "load_lowlevel", "export_lowlevel",
           "load_exported", "is_exported"]

CHECKPOINT_KIND = "lowlevel-ppo"
CHECKPOINT_NAME = "checkpoint.pt"
EXPORT_KIND = "lowlevel-policy"


def _space_data(space) -> dict[str, Any]:
    """A Box or Dict (of Boxes) space as plain data: {"box": {"low", "high": tensors, "dtype"}} or
    {"dict": {key: ...}}."""
    if isinstance(space, spaces.Dict):
        return {"dict": {k: _space_data(v) for k, v in space.spaces.items()}}
    if isinstance(space, spaces.Box):
        return {"box": {"low": torch.as_tensor(space.low), "high": torch.as_tensor(space.high), "dtype": str(space.dtype)}}
    raise ValueError(f"cannot store a {type(space).__name__} space")


def _space_from(data: dict[str, Any]):
    """The space of :func:`_space_data`."""
    if "dict" in data:
        return spaces.Dict({k: _space_from(v) for k, v in data["dict"].items()})
    box = data["box"]
    return spaces.Box(low=box["low"].numpy(), high=box["high"].numpy(), dtype=np.dtype(box["dtype"]))


def _rms_data(rms) -> dict[str, Any]:
    return {"mean": torch.as_tensor(np.asarray(rms.mean, np.float64)), "var": torch.as_tensor(np.asarray(rms.var, np.float64)),
            "count": float(rms.count)}


def _rms_from(data: dict[str, Any]):
    rms = RunningMeanStd(shape=tuple(data["mean"].shape))
    rms.mean, rms.var, rms.count = data["mean"].numpy().copy(), data["var"].numpy().copy(), float(data["count"])
    return rms


def _vecnorm_data(vecnorm) -> dict[str, Any]:
    """A VecNormalize's statistics and settings as tensors and plain values."""
    obs = vecnorm.obs_rms
    return {
        "obs_rms": {k: _rms_data(v) for k, v in obs.items()} if isinstance(obs, dict) else {"": _rms_data(obs)},
        "ret_rms": _rms_data(vecnorm.ret_rms),
        "norm_obs": bool(vecnorm.norm_obs), "norm_reward": bool(vecnorm.norm_reward),
        "norm_obs_keys": list(vecnorm.norm_obs_keys) if getattr(vecnorm, "norm_obs_keys", None) else None,
        "clip_obs": float(vecnorm.clip_obs), "clip_reward": float(vecnorm.clip_reward),
        "gamma": float(vecnorm.gamma), "epsilon": float(vecnorm.epsilon),
    }


def restore_vecnormalize(data: dict[str, Any], venv, training: bool):
    """A VecNormalize on `venv` holding the statistics of :func:`_vecnorm_data`."""
    vn = VecNormalize(venv, training=training, norm_obs=data["norm_obs"], norm_reward=data["norm_reward"],
                      norm_obs_keys=data["norm_obs_keys"], clip_obs=data["clip_obs"], clip_reward=data["clip_reward"],
                      gamma=data["gamma"], epsilon=data["epsilon"])
    stats = {k: _rms_from(v) for k, v in data["obs_rms"].items()}
    vn.obs_rms = stats[""] if set(stats) == {""} else stats
    vn.ret_rms = _rms_from(data["ret_rms"])
    return vn


def _spaces_venv(observation_space, action_space):
    """A one-env DummyVecEnv that only carries the spaces (a VecNormalize needs an env to wrap;
    evaluation normalises observations of its own envs)."""
    class SpacesOnly(gym.Env):
        def __init__(self):
            self.observation_space, self.action_space = observation_space, action_space

        def reset(self, *, seed=None, options=None):
            raise RuntimeError("a spaces-only environment cannot be run")

        def step(self, action):
            raise RuntimeError("a spaces-only environment cannot be run")

    return DummyVecEnv([SpacesOnly])


def save_checkpoint(run_dir: Path, model, vecnorm, cfg: dict, codes: dict | None) -> Path:
    """Write RUN/checkpoint.pt atomically, tensors and plain data only (module docstring): policy
    and optimiser state dicts, spaces, VecNormalize statistics, PPO's counters, config,
    num_timesteps and the clips' latent codes {clip: (S, 64) int64}. Returns its path."""
    ep, success = list(model.ep_info_buffer or []), list(model.ep_success_buffer or [])
    obj = {
        "format": CHECKPOINT_FORMAT, "kind": CHECKPOINT_KIND, "config": cfg,
        "num_timesteps": int(model.num_timesteps),
        "policy": model.policy.state_dict(), "optimizer": model.policy.optimizer.state_dict(),
        "spaces": {"observation": _space_data(model.observation_space), "action": _space_data(model.action_space)},
        "vecnormalize": _vecnorm_data(vecnorm),
        # the episode statistics SB3 logs (ep_rew_mean, ep_len_mean) go on where they were
        "ppo": {"n_updates": int(model._n_updates),
                "episodes": {"r": torch.tensor(np.array([e["r"] for e in ep], np.float32)),
                             "l": torch.tensor(np.array([e["l"] for e in ep], np.int32)),
                             "t": torch.tensor(np.array([e["t"] for e in ep], np.float64))},
                "successes": torch.tensor(np.array(success, bool))},
        # tensors, not numpy arrays: checkpoints load with torch.load(weights_only=True)
        "codes": {c: torch.as_tensor(np.asarray(z, dtype=np.int64)) for c, z in codes.items()} if codes is not None else None,
        "motion_vae": cfg.get("motion_vae"), "time": time.time(),
    }
    path = Path(run_dir) / CHECKPOINT_NAME
    atomic_torch_save(obj, path)
    return path


def checkpoint_codes(ck: dict) -> dict[str, np.ndarray] | None:
    """The latent codes stored in a checkpoint, {clip: int64 (S, 64)}, or None."""
    codes = ck.get("codes")
    return None if codes is None else {c: np.asarray(z, dtype=np.int64) for c, z in codes.items()}


def read_lowlevel_checkpoint(ckpt: str | Path) -> dict:
    """A low-level training checkpoint as data (:func:`daps.trainer.load_checkpoint`, weights_only).

    Raises CheckpointError (one line naming the file) for a missing / unreadable file, another
    kind, a damaged one, or one of the older layout that holds pickled objects (a PPO zip,
    a pickled VecNormalize): those are refused without being unpickled, since unpickling a file
    can run any code in it.
    """
    ck = load_checkpoint(Path(ckpt), CHECKPOINT_KIND)
    if "ppo_zip" in ck or isinstance(ck.get("vecnormalize"), (bytes, bytearray)):
        raise CheckpointError(f"{ckpt}: low-level checkpoint of an older layout holding pickled objects (PPO zip, "
                              "VecNormalize); refused, since unpickling a file can run code in it: train it again")
    missing = [k for k in ("config", "num_timesteps", "policy", "optimizer", "spaces", "vecnormalize") if k not in ck]
    if missing:
        raise CheckpointError(f"{ckpt}: damaged low-level checkpoint (no {', '.join(missing)})")
    return ck


def rebuild_ppo(ck: dict, ckpt: str | Path, n_envs: int = 1):
    """The PPO model of a checkpoint dict (as SB3's own PPO.load builds it: seeded with the run's
    seed, the policy and optimiser state loaded, gSDE noise drawn), for `n_envs` environments,
    without one attached. Raises CheckpointError naming the file when the state does not fit."""
    try:
        cfg = ck["config"]
        model = PPO(pol.policy_class(cfg), None, policy_kwargs=pol.policy_kwargs(cfg, cfg["goal"]), seed=cfg["seed"],
                    device="cpu", verbose=0, _init_setup_model=False, **cfg["ppo"])
        model.observation_space = _space_from(ck["spaces"]["observation"])
        model.action_space = _space_from(ck["spaces"]["action"])
        model.n_envs = int(n_envs)
        model._setup_model()
        model.set_parameters({"policy": ck["policy"], "policy.optimizer": ck["optimizer"]}, exact_match=True, device="cpu")
        if model.use_sde:
            model.policy.reset_noise()
        model.num_timesteps = int(ck["num_timesteps"])
        ppo = ck.get("ppo") or {}
        model._n_updates = int(ppo.get("n_updates", 0))
        ep = ppo.get("episodes")
        if ep is not None:
            model.ep_info_buffer = deque(({"r": r, "l": l, "t": t} for r, l, t in
                                          zip(ep["r"].numpy(), ep["l"].numpy(), ep["t"].numpy())),
                                         maxlen=model._stats_window_size)
            model.ep_success_buffer = deque(ppo["successes"].numpy(), maxlen=model._stats_window_size)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
        raise CheckpointError(f"{ckpt}: policy in checkpoint cannot be rebuilt ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:160] if str(e) else ''})") from None
    return model


def load_lowlevel(ckpt: str | Path):
    """(PPO model, VecNormalize (statistics only, training off), checkpoint dict) from a checkpoint.

    The checkpoint is read with ``torch.load(weights_only=True)`` and the SB3 objects are rebuilt
    from its tensors and config (:func:`read_lowlevel_checkpoint`). An export of ``daps lowlevel
    export`` (models/lowlevel.pt) loads too: then the model is SB3's policy object (same
    ``predict``) and the dict has no optimiser (:func:`load_exported`).

    Raises CheckpointError for a missing/corrupt file, a checkpoint of another kind, or one of the
    older layout holding pickled objects (refused, never unpickled).
    """
    if Path(ckpt).is_file() and is_exported(ckpt):
        return load_exported(ckpt)
    ck = read_lowlevel_checkpoint(ckpt)
    model = rebuild_ppo(ck, ckpt)
    try:
        vecnorm = restore_vecnormalize(ck["vecnormalize"], _spaces_venv(model.observation_space, model.action_space), training=False)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(f"{ckpt}: VecNormalize statistics in checkpoint cannot be read ({type(e).__name__})") from None
    return model, vecnorm, ck


def is_exported(path: str | Path) -> bool:
    """True if ``path`` is a file written by :func:`export_lowlevel` (reads it with weights_only)."""
    raw = read_tensors(path)
    return isinstance(raw, dict) and raw.get("kind") == EXPORT_KIND


def export_lowlevel(ckpt: str | Path, out: str | Path) -> Path:
    """Write the tensor-only export of training checkpoint ``ckpt`` to ``out`` (atomically).

    Raises CheckpointError (from :func:`load_lowlevel`) for an unreadable checkpoint.
    """
    model, vecnorm, ck = load_lowlevel(ckpt)
    rms = vecnorm.obs_rms
    obs_rms = {k: _rms_data(v) for k, v in rms.items()} if isinstance(rms, dict) else {"": _rms_data(rms)}
    obj = {
        "format": CHECKPOINT_FORMAT, "kind": EXPORT_KIND, "config": ck["config"],
        "num_timesteps": int(ck["num_timesteps"]),
        "policy": {k: v.detach().to(torch.float32).clone() for k, v in model.policy.state_dict().items()},
        "obs_rms": obs_rms, "clip_obs": float(vecnorm.clip_obs), "epsilon": float(vecnorm.epsilon),
        "norm_obs_keys": list(vecnorm.norm_obs_keys) if getattr(vecnorm, "norm_obs_keys", None) else None,
        "codes": ck.get("codes"), "motion_vae": ck["config"].get("motion_vae"),
        "source_checkpoint": Path(ckpt).name,
    }
    return save_export(obj, out)


def load_exported(path: str | Path):
    """(SB3 policy, VecNormalize (statistics only, training off), checkpoint-like dict) of an export.

    The dict has the keys evaluation reads from a training checkpoint ("config", "num_timesteps",
    "codes").  Raises CheckpointError naming the file when it is missing, not an export, or its
    weights do not fit the policy its config describes.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: low-level policy file not found")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"{path}: not a low-level policy export ({type(e).__name__})") from None
    if not isinstance(raw, dict) or raw.get("kind") != EXPORT_KIND:
        raise CheckpointError(f"{path}: not a low-level policy export (kind {raw.get('kind') if isinstance(raw, dict) else None!r})")
    cfg = raw["config"]
    if cfg.get("motion_vae") and not Path(cfg["motion_vae"]["path"]).is_file():
        # the training machine's path: use the shipped motion VAE (its sha256 is still checked)
        cfg["motion_vae"]["path"] = str(shipped_path(MOTION_VAE))
    if cfg.get("data_root") and not Path(cfg["data_root"]).is_dir():
        cfg["data_root"] = None
    codes = None if raw.get("codes") is None else {c: np.asarray(z, np.int64) for c, z in raw["codes"].items()}
    clip = cfg["clips"][0]
    # only the spaces are needed: a decoded goal observes the reference goal's layout
    spaces_kw = dict(goal="reference", pd_target="reference", critic_reference_obs=False) if cfg["goal"] == "decoded" else {}
    env = make_policy_env(raw, clip, None if codes is None else {clip: codes[clip]}, 10, **spaces_kw)
    obs_space = env.observation_space
    if cfg.get("critic_reference_obs"):  # the asymmetric critic's true-reference block follows the actor's numbers
        obs_space = spaces.Box(-np.inf, np.inf, shape=(obs_space.shape[0] + pol.goal_dim(cfg),), dtype=np.float32)
        env.observation_space = obs_space  # spaces-only env: the VecNormalize below reads it
    policy = pol.policy_class(cfg)(obs_space, env.action_space, lambda _: 0.0, **pol.policy_kwargs(cfg, cfg["goal"]),
                 use_sde=bool(cfg["ppo"].get("use_sde", False)))  # gSDE's log std is a matrix (PPO passes it there)
    try:
        policy.load_state_dict(raw["policy"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the policy of its config ({str(e).splitlines()[0][:160]})") from None
    policy.set_training_mode(False)
    vecnorm = VecNormalize(DummyVecEnv([lambda: env]), training=False, norm_obs=True, norm_reward=False,
                           norm_obs_keys=raw.get("norm_obs_keys"), clip_obs=raw["clip_obs"], epsilon=raw["epsilon"])
    stats = {key: _rms_from(r) for key, r in raw["obs_rms"].items()}
    vecnorm.obs_rms = stats[""] if set(stats) == {""} else stats
    return policy, vecnorm, raw
