"""The shipped low-level policy: a tensor-only export, its loader, and its model card.

``daps lowlevel export`` turns a training checkpoint (policy and optimiser state, VecNormalize
statistics, :mod:`lowlevel.train`) into a smaller file of plain tensors and config values that
loads with ``weights_only=True``: the SB3 policy's ``state_dict`` (float32), the observation normaliser's
running mean/var (the only VecNormalize state a deterministic actor uses), the run config, the
latent codes of the training clips and the motion VAE's sha256.  :func:`load_exported` rebuilds the
policy with SB3's own classes (``ActorCriticPolicy`` / ``MultiInputActorCriticPolicy``, the same
``policy_kwargs`` as training) and a ``VecNormalize`` holding those statistics, so ``evaluate`` and
``render`` use it exactly as they use a checkpoint.

The card is Markdown for people with one fenced JSON block for programs (as the motion VAE's,
:mod:`motion_vae.card`); :func:`slice_metrics` is the short, deterministic evaluation that both the
card writer and ``tests/test_shipped_models.py`` run, so a model file and its card cannot drift.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from daps.io import atomic_write_text, json_text
from daps.trainer import CHECKPOINT_FORMAT, CheckpointError, atomic_torch_save

__all__ = ["EXPORT_KIND", "default_model_path", "export_lowlevel", "load_exported", "is_exported",
           "slice_metrics", "write_card", "SLICE_CLIP", "SLICE_STARTS", "SLICE_SECONDS"]

EXPORT_KIND = "lowlevel-policy"
SLICE_CLIP = "walk2_subject4"  # held out from every training split of this project
SLICE_STARTS = 8               # the evaluation's start frames; the slice runs those below
SLICE_USE = (1, 2, 3)          # start frames 1-3 of 8 (frame 0 is LAFAN1's T-pose)
SLICE_SECONDS = 1.0


def default_model_path() -> Path:
    """models/lowlevel.pt of this repository (the shipped default policy; may not exist)."""
    return Path(__file__).resolve().parent.parent / "models" / "lowlevel.pt"


def is_exported(path: str | Path) -> bool:
    """True if ``path`` is a file written by :func:`export_lowlevel` (reads it with weights_only)."""
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - unreadable: not an export
        return False
    return isinstance(raw, dict) and raw.get("kind") == EXPORT_KIND


def _rms_to_tensors(rms) -> dict[str, Any]:
    return {"mean": torch.as_tensor(np.asarray(rms.mean, np.float64)), "var": torch.as_tensor(np.asarray(rms.var, np.float64)),
            "count": float(rms.count)}


def export_lowlevel(ckpt: str | Path, out: str | Path) -> Path:
    """Write the tensor-only export of training checkpoint ``ckpt`` to ``out`` (atomically).

    Raises CheckpointError (from :func:`lowlevel.train.load_lowlevel`) for an unreadable checkpoint.
    """
    from lowlevel.train import load_lowlevel

    model, vecnorm, ck = load_lowlevel(ckpt)
    rms = vecnorm.obs_rms
    obs_rms = {k: _rms_to_tensors(v) for k, v in rms.items()} if isinstance(rms, dict) else {"": _rms_to_tensors(rms)}
    obj = {
        "format": CHECKPOINT_FORMAT, "kind": EXPORT_KIND, "exported": True, "config": ck["config"],
        "num_timesteps": int(ck["num_timesteps"]),
        "policy": {k: v.detach().to(torch.float32).clone() for k, v in model.policy.state_dict().items()},
        "obs_rms": obs_rms, "clip_obs": float(vecnorm.clip_obs), "epsilon": float(vecnorm.epsilon),
        "norm_obs_keys": list(vecnorm.norm_obs_keys) if getattr(vecnorm, "norm_obs_keys", None) else None,
        "codes": ck.get("codes"), "motion_vae": ck["config"].get("motion_vae"),
        "source_checkpoint": Path(ckpt).name,
    }
    out = Path(out)
    atomic_torch_save(obj, out)
    return out


def load_exported(path: str | Path):
    """(SB3 policy, VecNormalize (statistics only, training off), checkpoint-like dict) of an export.

    The dict has the keys evaluation reads from a training checkpoint ("config", "num_timesteps",
    "codes").  Raises CheckpointError naming the file when it is missing, not an export, or its
    weights do not fit the policy its config describes.
    """
    from stable_baselines3.common.running_mean_std import RunningMeanStd
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from lowlevel import policy as pol
    from lowlevel.evaluate import make_policy_env

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
        from motion_vae.models import default_model_path as default_motion_vae

        cfg["motion_vae"]["path"] = str(default_motion_vae())
    if cfg.get("data_root") and not Path(cfg["data_root"]).is_dir():
        cfg["data_root"] = None
    codes = None if raw.get("codes") is None else {c: np.asarray(z, np.int64) for c, z in raw["codes"].items()}
    clip = cfg["clips"][0]
    # only the spaces are needed: a decoded goal observes the reference goal's layout
    spaces_kw = dict(goal="reference", pd_target="reference", critic_reference_obs=False) if cfg["goal"] == "decoded" else {}
    env = make_policy_env(raw, clip, None if codes is None else {clip: codes[clip]}, 10, **spaces_kw)
    obs_space = env.observation_space
    if cfg.get("critic_reference_obs"):  # the asymmetric critic's true-reference block follows the actor's numbers
        from gymnasium import spaces

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
    stats = {}
    for key, r in raw["obs_rms"].items():
        rms = RunningMeanStd(shape=tuple(r["mean"].shape))
        rms.mean, rms.var, rms.count = r["mean"].numpy(), r["var"].numpy(), r["count"]
        stats[key] = rms
    vecnorm.obs_rms = stats[""] if set(stats) == {""} else stats
    return policy, vecnorm, raw


def slice_metrics(path: str | Path, data_root=None) -> dict[str, Any]:
    """The short deterministic check of a shipped policy: :data:`SLICE_CLIP` from start frames
    :data:`SLICE_USE` of :data:`SLICE_STARTS`, :data:`SLICE_SECONDS` each; mean seconds tracked
    (s) and joint error against the true clip (rad).  Seconds; the test reruns it."""
    from lowlevel.evaluate import codes_for, decoded_for, make_policy_env, policy_actor, run_episode, start_frames

    policy, vecnorm, raw = load_exported(path)
    codes = codes_for(raw, [SLICE_CLIP], None, data_root)
    env = make_policy_env(raw, SLICE_CLIP, codes, 10**9, decoded=decoded_for(raw, codes, None, data_root))
    frames = start_frames(env.last_frame(SLICE_CLIP), SLICE_STARTS)
    horizon = int(round(SLICE_SECONDS * env.control_hz))
    eps = [run_episode(env, policy_actor(policy, vecnorm), SLICE_CLIP, horizon, frame=frames[i]) for i in SLICE_USE]
    env.close()
    return {"slice_clip": SLICE_CLIP, "slice_starts": [int(i) for i in SLICE_USE], "slice_seconds": SLICE_SECONDS,
            "slice_seconds_tracked": float(np.mean([e["seconds_tracked"] for e in eps])),
            "slice_joint_error_rad": float(np.mean([e["joint_error_rad"] for e in eps]))}


def _num(x) -> str:
    """3 decimals, or "-" for a metric a controller does not have (None / NaN)."""
    return "-" if x is None or x != x else f"{x:.3f}"


def _training_wall_s(run_dir: Path, steps: int) -> float | None:
    """Training wall time (s, all sittings) at progress.csv's last row at or before ``steps``
    (a run stopped between checkpoints logged rollouts the checkpoint does not hold), or None."""
    from lowlevel.train import training_wall_s

    return training_wall_s(run_dir / "progress.csv", steps)


def write_card(model_path: str | Path, eval_json: str | Path, command: str, out: str | Path, run_dir: str | Path,
               commit: str, machine: str, notes: str = "") -> dict:
    """Write the card of an exported policy: command, commit, clips, env steps, wall time,
    machine, the evaluation of ``daps lowlevel eval`` (eval_json: policy against both PD
    references) and :func:`slice_metrics`."""
    _, _, raw = load_exported(model_path)
    cfg = raw["config"]
    ev = json.loads(Path(eval_json).read_text())
    wall = _training_wall_s(Path(run_dir), int(raw["num_timesteps"]))
    card = {
        "model_file": Path(model_path).name, "size_bytes": Path(model_path).stat().st_size,
        "command": command, "commit": commit, "machine": machine,
        "goal": cfg["goal"], "action_mode": cfg["action_mode"], "pd_target": cfg["pd_target"],
        "preset": cfg["preset"], "train_clips": cfg["clips"], "env_steps": int(raw["num_timesteps"]),
        "train_wall_s": wall, "init_from": cfg.get("init_from"),
        "motion_vae_sha256": (cfg.get("motion_vae") or {}).get("sha256"),
        "evaluation": {"clips": list(ev["clips"]), "starts": ev["starts"], "max_seconds": ev["max_seconds"],
                       "summary": ev["summary"]},
        **slice_metrics(model_path),
    }
    rows = "\n".join(
        f"| {name} | {m['seconds_tracked']:.2f} | {m['joint_error_rad']:.3f} | {m.get('joint_error_common_rad', float('nan')):.3f} "
        f"| {_num(m.get('decoded_joint_error_rad'))} | {m['root_error_m']:.3f} | {m['reward_per_step']:.3f} "
        f"| {m['return_fraction']:.3f} | {m['finished'] * m['episodes']:.0f} / {m['episodes']} |"
        for name, m in ev["summary"].items())
    hours = "?" if wall is None else f"{wall / 3600:.2f} h"
    text = f"""# Model card: `{card['model_file']}`

The default low-level policy of this project: PPO (stable-baselines3) imitation policy for the
Unitree H1 in MuJoCo (`daps/H1Tracking-v0`), goal `{cfg['goal']}`, actions `{cfg['action_mode']}`
(PD target `{cfg['pd_target']}`). Made by the project's own commands.

- **Command:** `{command}`, then `daps lowlevel export` ({card['size_bytes'] / 1e6:.2f} MB, tensors only)
- **Commit:** `{commit}`
- **Training clips:** {', '.join(cfg['clips'])} (held-out evaluation clip: {SLICE_CLIP})
- **Budget:** {card['env_steps']:,} environment steps, {hours} of training wall time; {machine}
- **Motion VAE:** sha256 `{card['motion_vae_sha256']}` (must equal models/motion_vae.pt's)

Evaluation (`daps lowlevel eval`, {', '.join(ev['clips'])}, {ev['starts']} starts x {ev['max_seconds']} s;
joint error against the true clip; `decoded` = against the motion VAE's decoded motion):

| controller | seconds tracked | joint error (rad) | common window (rad) | vs decoded (rad) | root error (m) | reward / step | return fraction | finished |
|---|---|---|---|---|---|---|---|---|
{rows}

{notes}
The JSON below is read by `tests/test_shipped_models.py`, which reruns the short slice
(`slice_*`: {SLICE_CLIP}, start frames {list(SLICE_USE)} of {SLICE_STARTS}, {SLICE_SECONDS} s each).

```json
{json_text(card, indent=2)}
```
"""
    atomic_write_text(out, text)
    return card
