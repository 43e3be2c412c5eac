"""PPO training of the latent-conditioned low-level imitation policy (stable-baselines3).

``train_lowlevel`` encodes every selected clip once with the motion VAE (codes dict; with
``goal="decoded"`` it also decodes the codes once per clip, :func:`decode_clips`, and the env
observes that decoded motion instead of the true reference), builds the
vector environment of :class:`envs.tracking.H1TrackingEnv` (``vec``: "batched" =
:class:`envs.batched.H1BatchedVecEnv`, all environments in this process with numpy-vectorised
observation, reward and termination, the cpu preset's default; "subproc" = SB3 ``SubprocVecEnv``,
one process per environment; "dummy" = SB3 ``DummyVecEnv``), wraps it in ``VecMonitor`` (raw
episode returns) and ``VecNormalize`` (observation normalisation of "proprio" only, never the
latent indices; return-based reward scaling), and runs SB3 PPO with the preset's
hyper-parameters (:mod:`lowlevel.policy`).  With ``fixed_std`` (the presets) the policy's
log std stays at ``log_std_init``: exploration noise of a fixed size, as DeepMimic.

Run folder:
    run_dir/checkpoint.pt  latest checkpoint, written atomically (one file) of tensors and plain
                           data only, read with ``torch.load(weights_only=True)``: format/kind, the
                           run config, the policy's and optimiser's state dicts, the observation
                           and action spaces, the VecNormalize statistics (running means,
                           variances, counts and settings), PPO's update and episode counters, the
                           latent codes of the training clips, the motion VAE path + sha256 and
                           the step count (:mod:`lowlevel.checkpoint`, whose
                           :func:`~lowlevel.checkpoint.load_lowlevel` rebuilds the SB3 objects
                           from them; a checkpoint of the older layout (a pickled PPO zip and
                           VecNormalize, which could run code when read) is refused, never
                           unpickled).  ``evaluate``/``render`` need only this file (plus the
                           motion VAE for clips not encoded at training time).
    run_dir/progress.csv   one row per rollout: timesteps, wall time, ep_rew_mean, ep_len_mean,
                           reward_per_step (mean imitation reward per control step)
    run_dir/tb/            TensorBoard event files: SB3's logger (rollout/ep_len_mean, train/approx_kl,
                           train/std, ...) plus rollout/imitation_reward_per_step and
                           rollout/ended_<reason>, the fraction of a rollout's episodes that ended
                           with termination or truncation <reason> (fell, tilted, diverged,
                           unstable, clip_end, time_limit)

``resume=True`` continues from run_dir/checkpoint.pt: policy, optimiser, VecNormalize statistics
and step count come back; the run then goes on until ``steps`` total environment steps.

``init_from=CKPT`` starts a NEW run (step 0, fresh optimiser) from another low-level checkpoint's
policy weights and VecNormalize statistics, e.g. a ``goal="reference"`` teacher fine-tuned on
``goal="decoded"`` (the same observation layout).  The observation and action spaces must be
identical (else ValueError naming the file and the mismatch); the network architecture
(net_arch, embed_dim, conv_channels) is taken from that checkpoint's config.  The run config
records ``init_from`` = {path, sha256, num_timesteps, goal, action_mode, pd_target} of the source.
"""
from __future__ import annotations

import copy
import csv
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecMonitor, VecNormalize
from tqdm.auto import tqdm

from daps.io import append_csv_row, atomic_write_json, file_sha256
from daps.shipped import MOTION_VAE, shipped_path
from envs.batched import H1BatchedVecEnv
from envs.rewards import W_COM, W_EE, W_POSE, W_VEL
from envs.tracking import DEFAULT_REFERENCE_OFFSETS, PD_SCALE_NAMES, H1TrackingEnv, resolve_pd_action_scale
from lowlevel import policy as pol
from lowlevel.checkpoint import (CHECKPOINT_NAME, checkpoint_codes, load_lowlevel, read_lowlevel_checkpoint, rebuild_ppo,
                                 restore_vecnormalize, save_checkpoint)
from lowlevel.environment import control_rate, env_kwargs
from lowlevel.motions import decode_clips, decoded_motions, encode_clips, select_clips

__all__ = ["train_lowlevel", "make_env", "build_vec_env", "fix_exploration_std", "training_wall_s", "VEC_KINDS"]


# --------------------------------------------------------------------------- envs
VEC_KINDS = ("batched", "subproc", "dummy")


def _scale_setting(scale) -> float | str | None:
    """A ``--pd-action-scale`` value as stored in the run config: None, a float or a name of
    :data:`envs.tracking.PD_SCALE_NAMES` (ValueError otherwise)."""
    if scale is None:
        return None
    resolve_pd_action_scale(scale, "reference")  # ValueError before any work
    return scale if isinstance(scale, str) and scale in PD_SCALE_NAMES else float(scale)


def make_env(clips: list[str], codes: dict | None, kwargs: dict[str, Any]):
    """One H1TrackingEnv (module-level so SubprocVecEnv can pickle ``partial(make_env, ...)``);
    ``kwargs`` may hold ``decoded_motion``."""
    torch.set_num_threads(1)
    return H1TrackingEnv(list(clips), latent_codes=codes, **kwargs)


def build_vec_env(cfg: dict[str, Any], codes: dict | None, n_envs: int, seed: int, decoded: dict | None = None):
    """``VecMonitor`` over ``n_envs`` tracking environments of kind ``cfg["vec"]`` (VEC_KINDS;
    configs written before it existed mean "subproc", DummyVecEnv for one env), seeded ``seed + i``;
    "batched" steps its physics on ``cfg["threads"]`` threads (default 1).  ``decoded``: the
    decoded motions of a ``goal="decoded"`` run (:func:`decode_clips`)."""
    kind = cfg.get("vec", "subproc")
    if kind not in VEC_KINDS:
        raise ValueError(f"vec must be one of {', '.join(VEC_KINDS)}, got {kind!r}")
    kw = env_kwargs(cfg)
    if cfg.get("train_max_mean_joint_error") is not None:  # training-only early termination
        kw["max_mean_joint_error"] = float(cfg["train_max_mean_joint_error"])
    if decoded is not None:
        kw["decoded_motion"] = decoded
    if kind == "batched":
        venv = H1BatchedVecEnv(n_envs, list(cfg["clips"]), latent_codes=codes, threads=int(cfg.get("threads", 1)), **kw)
    else:
        fns = [partial(make_env, cfg["clips"], codes, kw) for _ in range(n_envs)]
        venv = DummyVecEnv(fns) if kind == "dummy" or n_envs == 1 else SubprocVecEnv(fns)
    venv.seed(seed)
    return VecMonitor(venv)


# PPO keyword arguments that `--set` may add to a preset's "ppo" dict: gSDE (generalised
# state-dependent exploration, Raffin et al. 2022: temporally correlated noise, resampled every
# sde_sample_freq steps; -1 = once per rollout) is SB3's own lever for smooth exploration
PPO_EXTRA_KEYS = ("vf_coef", "use_sde", "sde_sample_freq")


def _actor_space(space, actor_obs_dim: int):
    """The flat Box of the first actor_obs_dim numbers of `space` (a source without critic_reference_obs)."""
    return spaces.Box(space.low[:actor_obs_dim], space.high[:actor_obs_dim], dtype=space.dtype)


def _widen_critic(src_state: dict, new_state: dict) -> dict:
    """`src_state` (an ActorCriticPolicy's weights) fitted into an AsymmetricCriticPolicy's
    `new_state`: the actor's and the critic's weights as they were, the critic's first layer
    widened with zero weights for the appended true-reference inputs (so the value function
    starts as the source's)."""
    k = "mlp_extractor.value_net.0.weight"
    w, (rows, cols) = src_state[k], new_state[k].shape
    return {**src_state, k: torch.cat([w, w.new_zeros(rows, cols - w.shape[1])], dim=1)}


def fix_exploration_std(model, cfg: dict[str, Any]) -> None:
    """Freeze the policy's state-independent log std when ``cfg["fixed_std"]`` (PPO then never
    changes it: Adam skips parameters without gradients); called after every build or load."""
    if cfg.get("fixed_std"):
        model.policy.log_std.requires_grad_(False)


def _vecnorm_from(src, venv, gamma: float, widen_from: slice | None = None):
    """A training VecNormalize on `venv` that starts from `src`'s statistics.

    `src` may wrap another environment (an export's statistics sit on a one-env DummyVecEnv,
    which SB3's ``set_venv`` refuses to replace), so the statistics are copied into a new
    wrapper: observation running mean / variance always, the return statistics when `src`
    normalised rewards (an export keeps none; they then start fresh). widen_from: `src` had no
    critic_reference_obs; the appended true-reference goal block starts from the statistics of
    this slice, the decoded goal block, which has the same layout.
    """
    vn = VecNormalize(venv, norm_obs=True, norm_reward=True, norm_obs_keys=getattr(src, "norm_obs_keys", None),
                      clip_obs=src.clip_obs, gamma=gamma)
    vn.obs_rms = copy.deepcopy(src.obs_rms)
    if widen_from is not None:
        rms, full = vn.obs_rms, venv.observation_space.shape[0]
        if len(rms.mean) + len(rms.mean[widen_from]) != full:
            raise ValueError(f"cannot widen observation statistics from {len(rms.mean)} to {full} numbers")
        rms.mean = np.concatenate([rms.mean, rms.mean[widen_from]])
        rms.var = np.concatenate([rms.var, rms.var[widen_from]])
    if src.norm_reward:
        vn.ret_rms = copy.deepcopy(src.ret_rms)
    return vn


# --------------------------------------------------------------------------- callbacks
def training_wall_s(progress_csv: Path, steps: int | None = None) -> float | None:
    """Training wall time (s, all sittings) at progress.csv's last row at or before `steps`
    (None: the last row), or None without such a row or file.

    Sittings before this fix restarted `wall_s` at zero: a drop starts a new sitting, whose
    times are added to the previous sittings' total. Rows logged after a sitting's last
    checkpoint and repeated by the resumed run count as spent, which they were.
    """
    if not Path(progress_csv).is_file():
        return None
    offset, prev, best = 0.0, 0.0, None
    with Path(progress_csv).open() as f:
        for r in csv.DictReader(f):
            w = float(r["wall_s"])
            if w < prev:
                offset += prev
            prev = w
            if steps is None or int(float(r["timesteps"])) <= steps:
                best = offset + w
    return best


def _make_callback(run_dir: Path, cfg: dict, codes, total: int, ckpt_every: int, progress: bool, vec_holder: list):
    class _Cb(BaseCallback):
        def _on_training_start(self) -> None:
            # wall_s counts all sittings: a resumed run goes on from the time already logged
            self.t0 = time.time() - (training_wall_s(run_dir / "progress.csv") or 0.0)
            self.start = self.model.num_timesteps
            self.next_ckpt = (self.start // ckpt_every + 1) * ckpt_every if ckpt_every > 0 else None
            self.bar = None
            if progress:
                self.bar = tqdm(total=total, initial=self.start, unit="step", desc="ppo", dynamic_ncols=True)
            self.rew_sum, self.rew_n = 0.0, 0
            self.ends: dict[str, int] = {}  # how the episodes of this rollout ended
            self.csv_path = run_dir / "progress.csv"

        def _on_step(self) -> bool:
            if self.bar is not None:
                self.bar.update(self.training_env.num_envs)
            for info, done in zip(self.locals.get("infos", ()), self.locals.get("dones", ())):
                self.rew_sum += (W_POSE * info.get("pose", 0.0) + W_VEL * info.get("vel", 0.0)
                                 + W_EE * info.get("end_effector", 0.0) + W_COM * info.get("com", 0.0))
                self.rew_n += 1
                if done:
                    why = info.get("termination") or info.get("truncation") or "other"
                    self.ends[why] = self.ends.get(why, 0) + 1
            return True

        def _on_rollout_end(self) -> None:
            buf = self.model.ep_info_buffer
            row = {
                "timesteps": self.model.num_timesteps,
                "wall_s": round(time.time() - self.t0, 2),
                "ep_rew_mean": float(np.mean([e["r"] for e in buf])) if buf else float("nan"),
                "ep_len_mean": float(np.mean([e["l"] for e in buf])) if buf else float("nan"),
                "reward_per_step": self.rew_sum / max(self.rew_n, 1),
            }
            self.logger.record("rollout/imitation_reward_per_step", row["reward_per_step"])
            n_ends = sum(self.ends.values())
            for why, n in self.ends.items():  # e.g. rollout/ended_fell: fraction of the episodes
                self.logger.record(f"rollout/ended_{why}", n / n_ends)
            self.rew_sum, self.rew_n, self.ends = 0.0, 0, {}
            append_csv_row(self.csv_path, row)
            if self.bar is not None:
                self.bar.set_postfix(ep_len=f"{row['ep_len_mean']:.0f}", r_step=f"{row['reward_per_step']:.3f}")

        def _on_rollout_start(self) -> None:
            # Called after each PPO update: parameters and optimiser are consistent here.
            if self.next_ckpt is not None and self.model.num_timesteps >= self.next_ckpt:
                save_checkpoint(run_dir, self.model, vec_holder[0], cfg, codes)
                self.next_ckpt = (self.model.num_timesteps // ckpt_every + 1) * ckpt_every

        def _on_training_end(self) -> None:
            if self.bar is not None:
                self.bar.close()

    return _Cb()


def _truncate_progress(path: Path, step: int) -> None:
    """On resume: drop progress rows logged after the checkpoint's step."""
    if not path.exists():
        return
    with path.open() as f:
        rows = [r for r in csv.DictReader(f) if int(float(r["timesteps"])) <= step]
    if not rows:
        path.unlink()
        return
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


# --------------------------------------------------------------------------- training
def train_lowlevel(
    motion_vae_ckpt: str | Path | None,
    clips_pattern: str = "walk*",
    steps: int | None = None,
    preset: str = "cpu",
    run_dir: str | Path = "runs/lowlevel",
    seed: int = 0,
    n_envs: int | None = None,
    vec: str | None = None,
    threads: int | None = None,
    resume: bool = False,
    action_mode: str = "torque",
    goal: str = "latent",
    pd_target: str = "nominal",
    pd_action_scale: float | str | None = None,
    split: str = "train",
    data_root=None,
    max_episode_steps: int = 1000,
    ckpt_every: int | None = None,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    init_from: str | Path | None = None,
    root_velocity_obs: bool = False,
    critic_reference_obs: bool = False,
) -> dict[str, Any]:
    """Train (or resume) the low-level policy; returns a summary dict (steps, wall time, checkpoint).

    Args:
        motion_vae_ckpt: motion VAE checkpoint used to encode the clips for goal="latent" and to
            encode + decode them for goal="decoded" (None: the shipped models/motion_vae.pt).
        clips_pattern: glob(s) over clip names, comma-separated ("walk*"), within ``split``.
        steps: total environment steps (default: the preset's).
        preset: "cpu" or "paper" (:data:`lowlevel.policy.PRESETS`).
        n_envs: parallel environments (default: the preset's).
        vec: "batched" (one process, vectorised; the presets' default), "subproc" (one process per
            environment) or "dummy" (SB3 DummyVecEnv); on resume the stored one unless given.
        threads: physics threads of the "batched" vector env (default: the preset's, 1 for cpu).
        resume: continue from run_dir/checkpoint.pt (its stored config wins over these args,
            except ``steps``).
        action_mode / pd_target: env action mode ("torque", the default and the paper's: 19 motor
            torques; or "pd") and PD target mode.  With "pd", "nominal" (default): targets = the
            nominal standing pose + 1 rad * action, so the motion
            comes from the goal alone (at deployment there is no reference trajectory, only the
            latent code). "reference" (a residual on the reference joint angles, which the
            controller then sees) is kept for comparison; "torque" is the paper's setting.
        pd_action_scale: rad of PD target per unit action, or "torque-range" (per joint: torque
            limit / kp, :data:`envs.tracking.PD_TORQUE_RANGE_SCALE`); None: the env's default for
            the target (:func:`envs.tracking.default_pd_action_scale`).
        goal: "latent" (DAPS codes), "reference" (next reference frames; no motion VAE needed) or
            "decoded" (the reference goal's layout filled from the motion VAE's decoding of the
            clip's codes; pair it with pd_target "decoded", "nominal" or "absolute": "reference"
            is refused, it would leak the true reference).
        init_from: start a new run from this low-level checkpoint's policy weights and
            VecNormalize statistics (module docstring); not with ``resume``.
        root_velocity_obs: the env's proprio also holds the root's linear velocity in the heading
            frame and its height (63 -> 67 numbers, :class:`envs.tracking.H1TrackingEnv`); stored in
            the config (key ``root_velocity_obs``, absent = off) so evaluation and export rebuild it.
            On resume the stored value wins.
        critic_reference_obs: goal="decoded" only: an asymmetric critic that also sees the true
            reference's goal numbers (:class:`lowlevel.policy.AsymmetricCriticPolicy`; the actor
            does not). With ``init_from`` a source without it is widened: the critic's extra
            inputs start at zero weight, their normalisation statistics from the decoded goal's.
        overrides: PPO keyword arguments overriding the preset's (e.g. {"n_steps": 64}) and/or
            preset keys (net_arch, embed_dim, conv_channels, log_std_init, fixed_std,
            train_max_mean_joint_error: a tighter "diverged" termination while training only).
    """
    run_dir = Path(run_dir)
    ckpt_path = run_dir / CHECKPOINT_NAME
    torch.set_num_threads(1)

    src = None  # (model, vecnorm, checkpoint) of init_from
    decoded = None
    if resume and init_from is not None:
        raise ValueError("--init-from starts a new run; --resume continues run_dir's own checkpoint (give one of them)")
    if resume and overrides:
        raise ValueError("--set changes a new run's config; a resumed run keeps the config stored in its checkpoint")
    if resume:
        ck = read_lowlevel_checkpoint(ckpt_path)  # an older, pickled layout is refused here, before any work
        cfg = ck["config"]
        codes = checkpoint_codes(ck)
        if cfg["goal"] == "decoded":
            decoded = decoded_motions(cfg, codes)
        if steps is not None:
            cfg["steps"] = int(steps)
        if n_envs is not None:
            cfg["n_envs"] = int(n_envs)
        if vec is not None:
            cfg["vec"] = vec
        if threads is not None:
            cfg["threads"] = int(threads)
    else:
        if ckpt_path.exists():
            raise ValueError(f"{ckpt_path} exists; pass resume=True (--resume) or use another run_dir")
        if goal not in ("latent", "reference", "decoded"):
            raise ValueError(f"goal must be 'latent', 'reference' or 'decoded', got {goal!r}")
        if action_mode not in ("pd", "torque"):
            raise ValueError(f"action_mode must be 'pd' or 'torque', got {action_mode!r}")
        if goal == "decoded" and pd_target == "reference":  # fail before encoding (the env refuses it too)
            raise ValueError("pd_target 'reference' with goal 'decoded' would put the true reference into the "
                             "controller; use --pd-target decoded (or nominal / absolute)")
        if pd_target == "decoded" and goal != "decoded":
            raise ValueError(f"pd_target 'decoded' needs goal 'decoded' (got goal {goal!r}, pd_target {pd_target!r})")
        if critic_reference_obs and goal != "decoded":
            raise ValueError(f"critic_reference_obs needs goal 'decoded', got {goal!r}")
        if init_from is not None:
            src = load_lowlevel(init_from)  # CheckpointError for a missing / wrong file, before any work
        p = pol.preset(preset)
        ppo_kw = dict(p["ppo"])
        for k, v in (overrides or {}).items():
            if k in ppo_kw or k in PPO_EXTRA_KEYS:
                ppo_kw[k] = v
            elif k in p:
                p[k] = v
            else:
                raise ValueError(f"unknown override {k!r}")
        init_info = None
        if src is not None:  # the weights define the architecture
            src_cfg = src[2]["config"]
            for k in ("net_arch", "embed_dim", "conv_channels"):
                p[k] = src_cfg[k]
            init_info = {"path": str(Path(init_from).resolve()), "sha256": file_sha256(init_from),
                         "num_timesteps": int(src[2]["num_timesteps"]), "goal": src_cfg["goal"],
                         "action_mode": src_cfg["action_mode"], "pd_target": src_cfg["pd_target"]}
        clips = select_clips(clips_pattern, split, data_root)
        mvae = None
        codes = None
        if goal in ("latent", "decoded"):
            if motion_vae_ckpt is None:  # the shipped default model
                motion_vae_ckpt = shipped_path(MOTION_VAE)
            codes, mvae = encode_clips(motion_vae_ckpt, clips, data_root)
            if goal == "decoded":
                decoded = decode_clips(motion_vae_ckpt, codes, data_root)
        cfg = {
            "preset": preset, "goal": goal, "action_mode": action_mode, "pd_target": pd_target,
            "pd_action_scale": _scale_setting(pd_action_scale),
            "clips_pattern": clips_pattern, "split": split, "clips": clips, "seed": int(seed),
            "n_envs": int(n_envs if n_envs is not None else p["n_envs"]),
            "vec": vec if vec is not None else p["vec"],
            "threads": int(threads if threads is not None else p["threads"]),
            "steps": int(steps if steps is not None else p["steps"]),
            "ckpt_every": int(ckpt_every if ckpt_every is not None else p["ckpt_every"]),
            "max_episode_steps": int(max_episode_steps),
            "net_arch": list(p["net_arch"]), "embed_dim": p["embed_dim"], "conv_channels": p["conv_channels"],
            "log_std_init": p["log_std_init"], "fixed_std": bool(p["fixed_std"]), "ppo": ppo_kw, "motion_vae": mvae,
            "data_root": str(data_root) if data_root is not None else None,
            "init_from": init_info,
            "root_velocity_obs": bool(root_velocity_obs),
            "critic_reference_obs": bool(critic_reference_obs),
            "train_max_mean_joint_error": p.get("train_max_mean_joint_error"),
            "control_hz": float(p.get("control_hz", 100.0)),
            "pd_gain_scale": float(p.get("pd_gain_scale", 1.0)),
            "reference_offsets": [int(o) for o in p.get("reference_offsets", DEFAULT_REFERENCE_OFFSETS)],
        }
        control_rate(cfg["control_hz"])  # ValueError before any work
        if cfg["n_envs"] < 1 or cfg["steps"] < 1:
            raise ValueError("n_envs and steps must be positive")
    if cfg.get("vec", "subproc") not in VEC_KINDS:
        raise ValueError(f"vec must be one of {', '.join(VEC_KINDS)}, got {cfg['vec']!r}")
    if int(cfg.get("threads", 1)) < 1:
        raise ValueError(f"threads must be >= 1, got {cfg['threads']}")
    venv = build_vec_env(cfg, codes, cfg["n_envs"], cfg["seed"] + (7919 if resume else 0), decoded)
    try:
        if src is not None:  # identical spaces, checked before anything is written
            src_obs = src[0].observation_space
            widen = cfg["critic_reference_obs"] and not src[2]["config"].get("critic_reference_obs")
            want_obs = _actor_space(venv.observation_space, pol.actor_obs_dim(cfg)) if widen else venv.observation_space
            for what, a, b in (("observation", src_obs, want_obs),
                               ("action", src[0].action_space, venv.action_space)):
                if a != b:
                    raise ValueError(f"{init_from}: cannot initialise from this checkpoint: its {what} space {a} "
                                     f"differs from this run's {b}")
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run_dir / "config.json", cfg, indent=2)
        if resume:  # policy, optimiser, statistics and counters rebuilt from the checkpoint's tensors
            model = rebuild_ppo(ck, ckpt_path, venv.num_envs)
            vecnorm = restore_vecnormalize(ck["vecnormalize"], venv, training=True)
            model.set_env(vecnorm, force_reset=True)
            _truncate_progress(run_dir / "progress.csv", model.num_timesteps)
        else:
            if src is not None:  # the source's observation / return statistics, updated further here
                decoded_goal = slice(pol.actor_obs_dim(cfg) - pol.goal_dim(cfg), pol.actor_obs_dim(cfg))
                vecnorm = _vecnorm_from(src[1], venv, cfg["ppo"]["gamma"], decoded_goal if widen else None)
            else:
                norm_keys = ["proprio"] if cfg["goal"] == "latent" else None
                vecnorm = VecNormalize(venv, norm_obs=True, norm_reward=True, norm_obs_keys=norm_keys,
                                       clip_obs=10.0, gamma=cfg["ppo"]["gamma"])
            model = PPO(pol.policy_class(cfg), vecnorm, policy_kwargs=pol.policy_kwargs(cfg, cfg["goal"]), seed=cfg["seed"],
                        device="cpu", verbose=0, **cfg["ppo"])
            if src is not None:
                # the source's policy weights, strictly (SB3's public set_parameters); the new run
                # keeps its own fresh optimiser
                try:
                    src_policy = getattr(src[0], "policy", src[0])  # a PPO model, or an export's policy
                    state = src_policy.state_dict()
                    if widen:
                        state = _widen_critic(state, model.policy.state_dict())
                    model.set_parameters({"policy": state,
                                          "policy.optimizer": model.policy.optimizer.state_dict()},
                                         exact_match=True, device="cpu")
                except RuntimeError as e:
                    raise ValueError(f"{init_from}: policy weights do not fit this run's network "
                                     f"({str(e).splitlines()[0][:160]})") from None
            (run_dir / "progress.csv").unlink(missing_ok=True)
        fix_exploration_std(model, cfg)
        model.set_logger(configure(str(run_dir / "tb"), ["tensorboard"]))
        start = int(model.num_timesteps)
        remaining = cfg["steps"] - start
        t0 = time.time()
        if remaining > 0:
            cb = _make_callback(run_dir, cfg, codes, cfg["steps"], cfg["ckpt_every"], progress, [vecnorm])
            model.learn(total_timesteps=remaining, callback=cb, reset_num_timesteps=False)
        wall = time.time() - t0
        path = save_checkpoint(run_dir, model, vecnorm, cfg, codes)
    finally:
        venv.close()
    return {"checkpoint": str(path), "start_step": start, "num_timesteps": int(model.num_timesteps),
            "wall_s": wall, "steps_per_s": (model.num_timesteps - start) / max(wall, 1e-9)}
