"""Train and evaluate the tracking policy on :mod:`envs.mimic` with stable-baselines3 PPO.

The loop is SB3's own (``PPO.learn``); this module builds it, adds one callback and stores
everything as data:

* **Checkpoint** ``RUN/checkpoint.pt`` (format ``daps-tracker-v1``): the policy's and optimiser's
  state dicts, the observation statistics (mean, var, count arrays), the task and PPO configs as
  plain dicts, the clip names, the step count, the assist scale and the start sampler's failure
  counts; loaded with ``torch.load(weights_only=True)``: nothing in it can run code.  Written
  atomically every ``ckpt_every`` steps and at the end; ``--resume`` continues bit for bit from it.
* **Curve** ``RUN/progress.csv``: per rollout the steps, wall seconds, mean training episode
  length (s, with the assist when on), the assist scale, the std, and every ``eval_every`` steps the
  mean UNASSISTED episode length (s) of the deterministic policy from fixed starts.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecNormalize

from daps.io import append_csv_row, atomic_write_text, json_text
from daps.shipped import MOTION_VAE, read_tensors, shipped_path
from envs.mimic.config import MimicConfig, preset
from envs.mimic.env import MimicVecEnv
from envs.mimic.motion import MIRROR_SUFFIX, MotionLibrary, load_motion, mirrored
from envs.mimic.rewards import sole_height
from envs.mimic.state import reference_frames
from lowlevel.motions import decode_clips, encode_clips

__all__ = ["PPOConfig", "train_tracker", "load_tracker", "evaluate_tracker", "make_library", "FORMAT"]

FORMAT = "daps-tracker-v1"
CKPT = "checkpoint.pt"


@dataclass(frozen=True)
class PPOConfig:
    """stable-baselines3 PPO settings (its own parameter names) and the network."""

    n_envs: int = 32
    n_steps: int = 64
    batch_size: int = 512
    n_epochs: int = 5
    learning_rate: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.005
    vf_coef: float = 1.0
    max_grad_norm: float = 1.0
    log_std_init: float = 0.0          # learned std, starting at 1.0 (mjlab)
    net_arch: tuple[int, ...] = (256, 256, 128)
    ckpt_every: int = 200_000
    eval_every: int = 250_000
    eval_episodes: int = 8

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["net_arch"] = list(self.net_arch)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PPOConfig":
        names = {f.name for f in fields(cls)}
        if set(d) - names:
            raise ValueError(f"PPOConfig: unknown keys {sorted(set(d) - names)}")
        return cls(**{k: tuple(v) if k == "net_arch" else v for k, v in d.items()})


def make_library(clips: list[str], cfg: MimicConfig, data_root=None, motion_vae: str | Path | None = None) -> MotionLibrary:
    """The clips (and their mirrors when ``cfg.mirror``) at the task's control rate.

    With ``motion_vae`` the references are the motion VAE's decodings of the clips' greedy codes
    (what the high level emits and the robot must follow in use), mirrored as the clips are."""
    if motion_vae is None:
        refs = [load_motion(c, cfg.control_hz, data_root) for c in clips]
    else:
        refs = decoded_references(clips, motion_vae, cfg, data_root)
    if cfg.corrected:
        from envs.balance import corrected_cached

        refs = [corrected_cached(r) for r in refs]
    if cfg.mirror:
        refs += [mirrored(r) for r in refs]
    return MotionLibrary(refs, cfg)


def decoded_references(clips: list[str], motion_vae: str | Path, cfg: MimicConfig, data_root=None) -> list:
    """Decoded motions (ReferenceMotion at the control rate) of ``clips``' greedy codes."""
    codes, _ = encode_clips(motion_vae, clips, data_root, greedy=True)
    dec = decode_clips(motion_vae, codes, data_root, control_hz=cfg.control_hz)
    return [dec[c] for c in clips]


def file_info(path: str | Path) -> dict[str, str]:
    """{"path", "sha256"} of a file (a motion VAE, a source policy); FileNotFoundError naming it if absent."""
    from daps.io import file_sha256

    return {"path": str(Path(path).resolve()), "sha256": file_sha256(path)}


def check_motion_vae(ck: dict[str, Any], motion_vae: str | Path | None) -> Path | None:
    """The motion VAE a decoded-goal checkpoint needs (``motion_vae``, else its stored path, else the
    shipped models/motion_vae.pt), checked by sha256; None for a clip-goal checkpoint.
    ValueError naming the file when it differs, FileNotFoundError when it is absent."""
    info = ck.get("motion_vae")
    if not info:
        return None
    path = Path(motion_vae or info["path"])
    if motion_vae is None and not path.is_file():  # trained on another machine: the shipped motion VAE
        path = shipped_path(MOTION_VAE)
    if file_info(path)["sha256"] != info["sha256"]:
        raise ValueError(f"{path}: not the motion VAE this tracker was trained with (sha256 differs)")
    return path


def _ppo(venv, ppo: PPOConfig, seed: int) -> PPO:
    kw = dict(log_std_init=ppo.log_std_init, activation_fn=torch.nn.ELU,
              net_arch=dict(pi=list(ppo.net_arch), vf=list(ppo.net_arch)))
    return PPO("MlpPolicy", venv, n_steps=ppo.n_steps, batch_size=ppo.batch_size, n_epochs=ppo.n_epochs,
               learning_rate=ppo.learning_rate, gamma=ppo.gamma, gae_lambda=ppo.gae_lambda, clip_range=ppo.clip_range,
               ent_coef=ppo.ent_coef, vf_coef=ppo.vf_coef, max_grad_norm=ppo.max_grad_norm, policy_kwargs=kw,
               seed=seed, device="cpu", verbose=0)


# --------------------------------------------------------------------------- checkpoints
def _state(model: PPO, venv: VecNormalize, env: MimicVecEnv, task: MimicConfig, ppo: PPOConfig,
           clips: list[str], seed: int, mvae: dict | None) -> dict[str, Any]:
    rms = venv.obs_rms
    return {
        "format": FORMAT, "task": task.to_dict(), "ppo": ppo.to_dict(), "clips": list(clips), "seed": seed,
        "motion_vae": mvae or {},
        "num_timesteps": int(model.num_timesteps),
        "policy": model.policy.state_dict(), "optimizer": model.policy.optimizer.state_dict(),
        "obs_mean": torch.as_tensor(rms.mean), "obs_var": torch.as_tensor(rms.var), "obs_count": float(rms.count),
        "assist_scale": float(env.assist_scale), "failures": torch.as_tensor(env.sampler.failures),
        "rng": json.dumps(env.rng.bit_generator.state), "torch_rng": torch.get_rng_state(),
    }


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """Atomic torch.save of a checkpoint dict (tensors and plain data only); a full disk raises
    OSError naming the file (:func:`daps.trainer.atomic_torch_save`)."""
    from daps.trainer import atomic_torch_save

    atomic_torch_save(state, Path(path))
    return Path(path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A tracker checkpoint as data; ValueError (one line, naming the file) for anything else."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: tracker checkpoint not found")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling refusal or corrupt zip
        raise ValueError(f"{path}: not a tracker checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise ValueError(f"{path}: not a tracker checkpoint (format {ck.get('format') if isinstance(ck, dict) else type(ck).__name__!r}, expected {FORMAT})")
    return ck


def is_tracker_file(path: str | Path) -> bool:
    """True when ``path`` holds a tracker checkpoint or export (read as data, weights_only)."""
    ck = read_tensors(path)
    return isinstance(ck, dict) and ck.get("format") == FORMAT


def load_tracker(path: str | Path) -> tuple[PPO, dict[str, Any]]:
    """(PPO with the checkpoint's weights, the checkpoint dict).  Observation statistics are in
    ``ck["obs_mean"]``, ``ck["obs_var"]``; use :func:`policy_actor` to act."""
    ck = read_checkpoint(path)
    task, ppo = MimicConfig.from_dict(ck["task"]), PPOConfig.from_dict(ck["ppo"])
    lib = _stub_library(task)
    venv = MimicVecEnv(lib, 1, task)
    model = _ppo(venv, replace(ppo, n_envs=1, batch_size=ppo.n_steps), ck["seed"])
    model.policy.load_state_dict(ck["policy"])
    return model, ck


def _stub_library(task: MimicConfig) -> MotionLibrary:
    """A tiny standing motion: enough to build the spaces of a policy without loading clips."""
    from envs.reference import make_reference
    from envs.tracking import NOMINAL_POSE

    q = np.zeros((3, 26))
    q[:, 2], q[:, 3], q[:, 7:] = 1.0, 1.0, NOMINAL_POSE
    return MotionLibrary([make_reference("stand", q, task.control_hz, ground_feet=True)], task)


def normalized_actor(model: PPO, mean: np.ndarray, var: np.ndarray):
    """obs (N, D) float32 -> deterministic actions (N, 19), observations normalised as VecNormalize
    does in training ((obs - mean) / sqrt(var + 1e-8), clipped to +-10)."""
    std = np.sqrt(var + 1e-8)

    def act(obs: np.ndarray) -> np.ndarray:
        x = np.clip((obs - mean) / std, -10.0, 10.0).astype(np.float32)
        return model.predict(x, deterministic=True)[0]
    return act


def policy_actor(model: PPO, ck: dict[str, Any]):
    """:func:`normalized_actor` with a checkpoint's observation statistics."""
    return normalized_actor(model, ck["obs_mean"].numpy(), ck["obs_var"].numpy())


# --------------------------------------------------------------------------- evaluation
def run_episodes(env: MimicVecEnv, act, clips: list[int], frames: list[int], max_steps: int) -> list[dict[str, float]]:
    """Run one episode per env from (clip, frame) without assist; per episode: seconds, mean joint
    error (rad), mean anchor xy error (m), share of actions at |a| >= 4 (the torque-saturating
    value), mean |a_t - a_{t-1}|, share of steps with a dragging swing foot (``drag``: a sole the
    reference holds more than 3 cm up is within 0.5 cm of the floor), termination."""
    n = env.num_envs
    obs = env.reset_to(clips, frames)
    alive = np.ones(n, bool)
    out = [dict(seconds=0.0, joint_err=0.0, root_xy_err=0.0, sat=0.0, da=0.0, drag=0.0, steps=0, termination=None)
           for _ in range(n)]
    prev = np.zeros((n, 19))
    for _ in range(max_steps):
        a = act(obs)
        g = env._g(0)
        obs, _, dones, infos = env.step(a)
        ref_sole = sole_height(reference_frames(env.lib, env._g(0)), env.feet, env.sole_corners)
        dragging = ((ref_sole > 0.03) & (sole_height(env.robot, env.feet, env.sole_corners) < 0.005)).any(1)
        for i in np.flatnonzero(alive):
            o = out[i]
            o["steps"] += 1
            if dones[i]:
                alive[i] = False
                o["termination"] = infos[i]["termination"]
                o["seconds"] = o["steps"] * env.cfg.control_dt
                continue
            q, ref = env.robot.qpos[i], env.lib.qpos[g[i] + 1]
            o["joint_err"] += float(np.abs(q[7:] - ref[7:]).mean())
            o["root_xy_err"] += float(np.linalg.norm(q[:2] - ref[:2]))
            o["sat"] += float((np.abs(a[i]) >= 4.0).mean())
            o["da"] += float(np.abs(a[i] - prev[i]).mean())
            o["drag"] += float(dragging[i])
        prev = a
        if not alive.any():
            break
    for o in out:
        if o["termination"] is None:
            o["seconds"] = o["steps"] * env.cfg.control_dt
        k = max(1, o["steps"] - (o["termination"] is not None))
        for key in ("joint_err", "root_xy_err", "sat", "da", "drag"):
            o[key] /= k
    return out


def eval_starts(lib: MotionLibrary, episodes: int, span: int) -> tuple[list[int], list[int]]:
    """Evenly spread (clip, frame) starts over the library's unmirrored clips, leaving ``span``
    control frames to run where the clip allows."""
    base = [i for i, n in enumerate(lib.names) if not n.endswith(MIRROR_SUFFIX)] or list(range(lib.num_clips))
    clips, frames = [], []
    for e in range(episodes):
        c = base[e % len(base)]
        room = max(1, lib.last_frame(c) - span)
        k = int(room * ((e // len(base)) + 0.5) / math.ceil(episodes / len(base)))
        clips.append(c)
        frames.append(min(k, lib.last_frame(c) - 1))
    return clips, frames


def spread_frames(lib: MotionLibrary, starts: int, span: int, clip: int = 0) -> list[int]:
    """``starts`` start frames evenly spread over ``clip``, the last leaving ``span`` control frames
    to run where the clip allows (all 0 for a clip shorter than that)."""
    last = lib.last_frame(clip) - span
    return [int(max(0, last) * i / max(1, starts - 1)) for i in range(starts)]


def evaluate_tracker(ckpt: str | Path, clips: list[str], starts: int = 8, seconds: float = 10.0,
                     data_root=None, motion_vae: str | Path | None = None, goal: str | None = None) -> dict[str, Any]:
    """Deterministic, unassisted episodes of ``seconds`` from ``starts`` frames spread over each clip;
    per clip the mean seconds, finished count, joint error to the reference tracked (rad), root xy
    error (m), action saturation and rate.

    ``goal``: "clip" (track the true clip) or "decoded" (the motion VAE's decoding of its codes);
    default: what the policy was trained on.  ``motion_vae`` overrides the stored path (sha256-checked).
    """
    model, ck = load_tracker(ckpt)
    task = replace(MimicConfig.from_dict(ck["task"]), assist=False, mirror=False)
    goal = goal or ("decoded" if ck.get("motion_vae") else "clip")
    if goal not in ("clip", "decoded"):
        raise ValueError(f"goal must be 'clip' or 'decoded', got {goal!r}")
    mvae = None
    if goal == "decoded":
        mvae = check_motion_vae(ck, motion_vae) if ck.get("motion_vae") else motion_vae
        if mvae is None:
            raise ValueError("goal 'decoded' needs a motion VAE (pass --motion-vae)")
    report: dict[str, Any] = {"checkpoint": str(ckpt), "num_timesteps": ck["num_timesteps"], "seconds": seconds,
                              "goal": goal, "clips": {}}
    act = policy_actor(model, ck)
    for clip in clips:
        lib = make_library([clip], task, data_root, mvae)
        env = MimicVecEnv(lib, starts, task, adaptive=False)
        frames = spread_frames(lib, starts, int(seconds * task.control_hz))
        eps = run_episodes(env, act, [0] * starts, frames, int(seconds * task.control_hz))
        finished = sum(e["termination"] is None for e in eps)
        report["clips"][clip] = {
            "seconds_tracked": float(np.mean([e["seconds"] for e in eps])), "finished": finished, "episodes": starts,
            "joint_error_rad": float(np.mean([e["joint_err"] for e in eps])),
            "root_xy_error_m": float(np.mean([e["root_xy_err"] for e in eps])),
            "actions_saturated": float(np.mean([e["sat"] for e in eps])),
            "mean_abs_action_delta": float(np.mean([e["da"] for e in eps])),
            "swing_foot_drag": float(np.mean([e["drag"] for e in eps])),
            "terminations": [e["termination"] for e in eps], "start_frames": frames,
        }
    return report


# --------------------------------------------------------------------------- training
class _TrackerCallback(BaseCallback):
    """Progress CSV, unassisted evaluation, assist curriculum and checkpoints (module docstring)."""

    def __init__(self, run_dir: Path, env: MimicVecEnv, venv: VecNormalize, task: MimicConfig, ppo: PPOConfig,
                 clips: list[str], seed: int, eval_env: MimicVecEnv, wall0: float, bar, mvae: dict | None):
        super().__init__()
        self.mvae = mvae
        self.run_dir, self.env, self.venv, self.task, self.ppo = run_dir, env, venv, task, ppo
        self.clips, self.seed, self.eval_env, self.bar = clips, seed, eval_env, bar
        self.wall0, self.t0 = wall0, time.time()
        self.lengths: list[float] = []
        self.finished: list[bool] = []
        self.next_ckpt = self.next_eval = 0
        self.last_eval = float("nan")

    def _on_training_start(self) -> None:
        n = self.model.num_timesteps
        self.next_ckpt = n + self.ppo.ckpt_every
        self.next_eval = (n // self.ppo.eval_every + 1) * self.ppo.eval_every if n else 0

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            ep = info.get("episode")
            if ep is not None:
                self.lengths.append(ep["t"])
                self.finished.append(info["termination"] is None)
        return True

    def _evaluate(self) -> float:
        act = normalized_actor(self.model, self.venv.obs_rms.mean, self.venv.obs_rms.var)
        span = int(self.task.max_episode_s * self.task.control_hz)
        clips, frames = eval_starts(self.eval_env.lib, self.ppo.eval_episodes, span)
        eps = run_episodes(self.eval_env, act, clips, frames, span)
        return float(np.mean([e["seconds"] for e in eps]))

    def _on_rollout_end(self) -> None:
        env, n = self.env, self.model.num_timesteps
        success = float(np.mean(self.finished)) if self.finished else 0.0
        if self.task.assist and self.finished and success >= self.task.assist_success:
            env.assist_scale *= self.task.assist_decay
            if env.assist_scale < self.task.assist_min_scale:
                env.assist_scale = 0.0
        evaluated = n >= self.next_eval
        if evaluated:
            self.last_eval = self._evaluate()
            self.next_eval += self.ppo.eval_every
        row = {"step": n, "wall_s": round(self.wall0 + time.time() - self.t0, 1),
               "episode_s": round(float(np.mean(self.lengths)), 3) if self.lengths else "",
               "finished_share": round(success, 3), "assist_scale": round(env.assist_scale, 4),
               "std": round(float(torch.exp(self.model.policy.log_std.detach()).mean()), 4),
               "eval_unassisted_s": round(self.last_eval, 3) if evaluated else ""}
        append_csv_row(self.run_dir / "progress.csv", row)
        self.lengths, self.finished = [], []
        if self.bar is not None:
            self.bar.update(n - self.bar.n)
            self.bar.set_postfix(ep_s=row["episode_s"], eval_s=round(self.last_eval, 2), assist=row["assist_scale"])
        if n >= self.next_ckpt:
            self.save()
            self.next_ckpt = n + self.ppo.ckpt_every

    def save(self) -> Path:
        st = _state(self.model, self.venv, self.env, self.task, self.ppo, self.clips, self.seed, self.mvae)
        st["wall_s"] = self.wall0 + time.time() - self.t0
        if getattr(self, "init_from", None):
            st["init_from"] = self.init_from
        return save_checkpoint(self.run_dir / CKPT, st)


def train_tracker(clips: list[str], run_dir: str | Path, steps: int, task: MimicConfig | None = None,
                  ppo: PPOConfig | None = None, seed: int = 0, resume: bool = False, data_root=None,
                  progress: bool = True, eval_clips: list[str] | None = None,
                  motion_vae: str | Path | None = None, init_from: str | Path | None = None) -> dict[str, Any]:
    """Train (or with ``resume`` continue) PPO on the tracking task up to ``steps`` env steps.

    ``init_from``: start a new run from another tracker's policy weights and observation
    statistics (the same observation and action sizes; e.g. a clip-trained policy fine-tuned on
    decoded motions); recorded as {"path", "sha256", "num_timesteps"}.  ValueError if the sizes differ.

    ``motion_vae``: track the motion VAE's decodings of the clips (the goal in use) instead of the
    clips themselves; its sha256 is stored and checked on resume.

    Returns {"checkpoint", "num_timesteps", "wall_s"}.  Raises FileNotFoundError when ``resume``
    finds no checkpoint, ValueError for a checkpoint of another format.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for stray in run_dir.glob(f".{CKPT}.*"):  # temporaries of a killed write
        stray.unlink()
    ck = None
    if resume:
        ck = read_checkpoint(run_dir / CKPT)
        task, ppo = MimicConfig.from_dict(ck["task"]), PPOConfig.from_dict(ck["ppo"])
        clips, seed = ck["clips"], ck["seed"]
        motion_vae = check_motion_vae(ck, motion_vae)
    task, ppo = task or preset("mimic"), ppo or PPOConfig()
    mvae = file_info(motion_vae) if motion_vae is not None else None
    torch.set_num_threads(1)
    lib = make_library(clips, task, data_root, motion_vae)
    env = MimicVecEnv(lib, ppo.n_envs, task, seed=seed)
    venv = VecNormalize(env, norm_obs=True, norm_reward=False, clip_obs=10.0, gamma=ppo.gamma)
    model = _ppo(venv, ppo, seed)
    wall0 = 0.0
    init = None
    if init_from is not None and ck is None:
        src = read_checkpoint(init_from)
        if tuple(src["obs_mean"].shape) != venv.observation_space.shape:
            raise ValueError(f"{init_from}: observes {tuple(src['obs_mean'].shape)} numbers, this task "
                             f"{venv.observation_space.shape}")
        model.policy.load_state_dict(src["policy"])
        venv.obs_rms.mean, venv.obs_rms.var = src["obs_mean"].numpy().copy(), src["obs_var"].numpy().copy()
        venv.obs_rms.count = src["obs_count"]
        init = {"path": str(Path(init_from).resolve()), "sha256": file_info(init_from)["sha256"],
                "num_timesteps": int(src["num_timesteps"])}
    if ck is not None:
        init = ck.get("init_from") or None
        model.policy.load_state_dict(ck["policy"])
        model.policy.optimizer.load_state_dict(ck["optimizer"])
        model.num_timesteps = ck["num_timesteps"]
        venv.obs_rms.mean, venv.obs_rms.var = ck["obs_mean"].numpy().copy(), ck["obs_var"].numpy().copy()
        venv.obs_rms.count = ck["obs_count"]
        env.assist_scale = ck["assist_scale"]
        env.sampler.failures = ck["failures"].numpy().copy()
        env.rng.bit_generator.state = json.loads(ck["rng"])
        torch.set_rng_state(ck["torch_rng"])
        wall0 = float(ck.get("wall_s", 0.0))
    eval_lib = make_library(eval_clips or clips, replace(task, mirror=False), data_root, motion_vae)
    eval_env = MimicVecEnv(eval_lib, ppo.eval_episodes, replace(task, assist=False, mirror=False), adaptive=False)
    atomic_write_text(run_dir / "config.json", json_text({"task": task.to_dict(), "ppo": ppo.to_dict(), "clips": clips,
                                                           "seed": seed, "motion_vae": mvae or {}}, indent=1))
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=steps, initial=model.num_timesteps, unit="step", dynamic_ncols=True)
    cb = _TrackerCallback(run_dir, env, venv, task, ppo, clips, seed, eval_env, wall0, bar, mvae)
    cb.init_from = init
    remaining = steps - model.num_timesteps
    if remaining > 0:
        model.learn(remaining, callback=cb, reset_num_timesteps=ck is None, progress_bar=False)
    path = cb.save() if remaining > 0 or ck is None else run_dir / CKPT
    if bar is not None:
        bar.close()
    return {"checkpoint": str(path), "num_timesteps": int(model.num_timesteps),
            "wall_s": round(wall0 + time.time() - cb.t0, 1)}


# --------------------------------------------------------------------------- shipping and following a stream
def export_tracker(ckpt: str | Path, out: str | Path) -> Path:
    """The policy file to ship: the checkpoint without optimiser, sampler and RNG state (tensors and
    plain data; loads with weights_only).  Errors as :func:`read_checkpoint`."""
    ck = read_checkpoint(ckpt)
    keep = ("format", "task", "ppo", "clips", "seed", "motion_vae", "num_timesteps", "policy", "obs_mean", "obs_var",
            "obs_count", "wall_s", "init_from")
    st = {k: ck[k] for k in keep if k in ck}
    st["assist_scale"] = 0.0
    return save_checkpoint(Path(out), st)


class TrackerStream:
    """One H1 following a motion that grows while it is followed (``daps command``'s physics path):
    a gym-style single environment over :class:`MimicVecEnv` without auto-reset.

    ``reset(options={"frame": k, "qpos": q})``, ``set_motion(ref)`` (the whole stream so far, a
    ReferenceMotion at the task's rate), ``step(action (19,))`` -> (obs, reward, terminated,
    truncated, info) with info["termination"] one of :data:`FALLS` or "unstable" (a fall: pelvis
    below 0.6 m or torso tilt over 1 rad, absolute, not relative to the motion) or None,
    info["frame"], info["decoded_joint_error"] (mean |q - q_ref|, rad); ``decoded_qpos()`` the
    motion's qpos (26,) at the current frame; ``data`` the MuJoCo data.
    """

    FALLS = ("fell", "tilted")

    def __init__(self, task: MimicConfig, ref):
        self.task = replace(task, assist=False, mirror=False)
        self.env = MimicVecEnv(MotionLibrary([ref], self.task), 1, self.task, adaptive=False, auto_reset=False)
        self.control_hz = self.task.control_hz
        self.model = self.env.model
        import mujoco

        self._torso = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, "torso_link")

    @property
    def data(self):
        return self.env.datas[0]

    def reset(self, options: dict | None = None):
        options = options or {}
        obs = self.env.reset_to([0], [int(options.get("frame", 0))])
        if "qpos" in options:
            obs = self.env.reset_state(0, np.asarray(options["qpos"], dtype=np.float64))
        return obs[0], {"frame": int(self.env.frame[0])}

    def set_motion(self, ref):
        return self.env.set_library(MotionLibrary([ref], self.task))[0]

    def decoded_qpos(self) -> np.ndarray:
        return np.array(self.env.lib.qpos[self.env._g(0)[0]])

    def step(self, action):
        obs, rew, done, infos = self.env.step(np.asarray(action, dtype=np.float64)[None])
        info = dict(infos[0])
        d = self.data
        tilt = math.acos(max(-1.0, min(1.0, float(d.xmat[self._torso][8]))))
        if info["termination"] != "unstable":
            info["termination"] = "fell" if d.qpos[2] < 0.6 else ("tilted" if tilt > 1.0 else None)
        info["decoded_joint_error"] = float(np.mean(np.abs(d.qpos[7:] - self.decoded_qpos()[7:])))
        return obs[0], float(rew[0]), info["termination"] is not None, False, info

    def close(self) -> None:
        self.env.close()
