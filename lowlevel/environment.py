"""The tracking environment a low-level run config describes: :class:`envs.tracking.H1TrackingEnv`'s
keyword arguments, the control rate, and the one-clip environment evaluation and export rebuild."""
from __future__ import annotations

import math
from typing import Any

from envs.tracking import PHYSICS_HZ, H1TrackingEnv

__all__ = ["env_kwargs", "control_rate", "make_policy_env"]


def env_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    """H1TrackingEnv keyword arguments of a run config (without clips / codes)."""
    kw = dict(goal=cfg["goal"], action_mode=cfg["action_mode"], pd_target=cfg["pd_target"],
              max_episode_steps=int(cfg["max_episode_steps"]))
    if cfg.get("pd_action_scale") is not None:  # a number (rad) or a name ("torque-range")
        kw["pd_action_scale"] = cfg["pd_action_scale"]
    if cfg.get("data_root"):
        kw["data_root"] = cfg["data_root"]
    if cfg.get("root_velocity_obs"):  # configs written before it existed: off
        kw["root_velocity_obs"] = True
    if cfg.get("critic_reference_obs"):  # configs written before it existed: off
        kw["critic_reference_obs"] = True
    if cfg.get("pd_gain_scale") is not None:  # configs written before it existed: Unitree's gains
        kw["pd_gain_scale"] = float(cfg["pd_gain_scale"])
    if cfg.get("reference_offsets") is not None:  # configs written before it existed: the env's (1, 2, 5)
        kw["reference_offsets"] = tuple(int(o) for o in cfg["reference_offsets"])
    hz = cfg.get("control_hz")  # configs written before it existed: the env's 100 Hz
    if hz is not None:
        kw["control_hz"], kw["frame_skip"] = control_rate(hz)
    if cfg["goal"] == "latent":
        kw["vocab_size"] = int(cfg["motion_vae"]["vocab_size"])
        kw["latent_block_size"] = int(cfg["motion_vae"]["block_size"])
    return kw


def control_rate(hz: float) -> tuple[float, int]:
    """(control_hz, frame_skip) of a policy rate ``hz`` (Hz) over the env's 500 Hz physics
    (:data:`envs.tracking.PHYSICS_HZ`, part of the environment's contract).

    Raises:
        ValueError: ``hz`` does not divide the physics rate (e.g. 30 Hz).
    """
    skip = PHYSICS_HZ / float(hz)
    if not (math.isfinite(skip) and skip >= 1 and abs(skip - round(skip)) < 1e-9):
        raise ValueError(f"control_hz must divide the {PHYSICS_HZ:g} Hz physics rate (100, 50, 25, ...), got {hz!r}")
    return float(hz), int(round(skip))


def make_policy_env(ck: dict, clip: str, codes: dict | None, max_episode_steps: int, decoded: dict | None = None,
                    **extra):
    """The checkpoint's env on one clip; ``decoded``: {clip: decoded motion} for goal="decoded"."""
    cfg = ck["config"]
    kw = env_kwargs(cfg)
    kw["max_episode_steps"] = max_episode_steps
    if decoded is not None:
        kw["decoded_motion"] = {clip: decoded[clip]}
    kw.update(extra)
    return H1TrackingEnv([clip], latent_codes=codes, **kw)
