"""Validation metrics of a motion VAE, checkpoint loading, and the eval report (JSON + PNG).

Metrics (per validation segment, averaged; one stochastic z ~ q_theta(z|x) per segment as the
authors do, facts Sec. 6):
  log_p              log p_phi(x|z), nats per segment (standardised units, sigma^2 fixed)
  log_p_shuffled     log p_phi(x|z') with z' the code of another segment (the set rolled by one)
  code_info_nats     log_p - log_p_shuffled: how much a segment's own code explains it beyond
                     a code of some other motion (0 = the decoder ignores the codes)
  kl                 KL(q_theta(z|x) || Uniform) along the sampled code, nats
  elbo, beta_elbo    log_p - kl, log_p - beta_final kl (nats)
  l2                 sqrt(sum over frames and features of squared error), standardised units:
                     the paper's LAFAN "L2" row (facts Sec. 9)
  joint_rmse_rad     RMS joint-angle error (rad), original units
  body_pos_rmse_m    RMS root-relative body-position error (m), original units
  root_height_rmse_m RMS root-height error (m), original units
  psnr_db            PSNR on training min-max scaled features
  codebook_used, code_perplexity
  log_p_mean_reference  log_p of predicting the training mean for every segment
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from daps.io import atomic_write, atomic_write_json
from daps.metrics import codebook_usage, elbo, psnr, segment_l2
from daps.device import resolve_device
from motion_vae.dataset import FeatureStats
from motion_vae.models import load_motion_vae


@torch.no_grad()
def evaluate_segments(
    model: nn.Module, x: Tensor, stats: FeatureStats, beta_final: float, batch: int = 200, seed: int = 0,
    greedy: bool = False,
) -> dict[str, float]:
    """Score standardised segments x (N, L, C) with one sampled code each (greedy: the most likely
    code at every step, which is what the high level trains on); returns plain floats."""
    model.eval()
    gen = torch.Generator(device=x.device).manual_seed(seed)
    out: dict[str, list[Tensor]] = {k: [] for k in ("log_p", "kl", "l2", "mu", "z", "params")}
    for i in range(0, len(x), batch):
        xb = x[i : i + batch]
        z, _ = model.recognition.sample(xb, 1, gen, greedy=greedy)
        _, kl = model.recognition.log_prob(xb, z)
        params = model.generator(z)
        out["log_p"].append(model.likelihood.log_prob(xb, params)[:, 0])
        out["kl"].append(kl[:, 0])
        mu = model.likelihood.mean(params)[:, 0]
        out["mu"].append(mu)
        out["l2"].append(segment_l2(mu, xb))
        out["z"].append(z)
        out["params"].append(params)
    log_p, kl, mu = torch.cat(out["log_p"]), torch.cat(out["kl"]), torch.cat(out["mu"])
    params = torch.cat(out["params"]).roll(1, dims=0)  # segment i decoded from segment i-1's code
    log_p_shuffled = torch.cat([model.likelihood.log_prob(x[i : i + batch], params[i : i + batch])[:, 0] for i in range(0, len(x), batch)])
    used, perplexity = codebook_usage(torch.cat(out["z"]), model.vocab_size)
    mean_ref = model.likelihood.log_prob(x, torch.zeros_like(x).unsqueeze(1))[:, 0]
    metrics = {
        "log_p": log_p.mean().item(),
        "log_p_shuffled": log_p_shuffled.mean().item(),
        "code_info_nats": (log_p - log_p_shuffled).mean().item(),
        "kl": kl.mean().item(),
        "elbo": elbo(log_p, kl).item(),
        "beta_elbo": elbo(log_p, kl, beta_final).item(),
        "l2": torch.cat(out["l2"]).mean().item(),
        **raw_unit_errors(mu.cpu().numpy(), x.cpu().numpy(), stats),
        "psnr_db": min_max_psnr(mu, x, stats).mean().item(),
        "codebook_used": used,
        "code_perplexity": perplexity,
        "log_p_mean_reference": mean_ref.mean().item(),
    }
    model.train()
    return metrics


def min_max_psnr(x_hat: Tensor, x: Tensor, stats: FeatureStats) -> Tensor:
    """PSNR (N,) in dB after scaling each feature to [0, 1] by its training min and max."""
    lo = torch.as_tensor(stats.lo, device=x.device)
    span = torch.as_tensor(stats.hi - stats.lo, device=x.device).clamp_min(1e-6)
    return psnr(((x_hat - lo) / span).clamp(0, 1), (x - lo) / span)


def raw_unit_errors(x_hat: np.ndarray, x: np.ndarray, stats: FeatureStats) -> dict[str, float]:
    """RMS errors in original units: joint angles (rad), root-relative body positions (m) and the
    root height above the floor (m)."""
    from motion_vae.features import feature_layout

    err = stats.destandardise(x_hat) - stats.destandardise(x)  # (N, L, F)
    blocks = {b.name: slice(b.start, b.stop) for b in feature_layout()}
    return {
        "joint_rmse_rad": float(np.sqrt(np.mean(err[..., blocks["joint_pos"]] ** 2))),
        "body_pos_rmse_m": float(np.sqrt(np.mean(err[..., blocks["body_pos"]] ** 2))),
        "root_height_rmse_m": float(np.sqrt(np.mean(err[..., blocks["root_height"]] ** 2))),
    }


def plot_reconstruction(gt: np.ndarray, rec: np.ndarray, names: list[str], title: str, path: Path) -> None:
    """PNG of ground-truth vs reconstructed joint angles (T, J) rad at 30 Hz, one panel per joint."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(len(gt)) / 30.0
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 1.9 * len(names)), sharex=True)
    for ax, j, name in zip(np.atleast_1d(axes), range(len(names)), names):
        ax.plot(t, gt[:, j], "k-", lw=1.5, label="ground truth")
        ax.plot(t, rec[:, j], "C1--", lw=1.5, label="reconstruction")
        ax.set_ylabel(f"{name}\n[rad]", fontsize=8)
        for s in range(32, len(gt), 32):
            ax.axvline(s / 30.0, color="0.85", lw=0.5)
    np.atleast_1d(axes)[0].legend(loc="upper right", fontsize=8)
    np.atleast_1d(axes)[0].set_title(title, fontsize=9)
    np.atleast_1d(axes)[-1].set_xlabel("time [s] (grey lines: 32-frame segment boundaries)")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)


PLOT_JOINTS = ("left_hip_pitch_joint", "left_knee_joint", "right_hip_pitch_joint", "right_knee_joint", "left_shoulder_pitch_joint")


def evaluate_checkpoint(
    ckpt_path: str | Path,
    out_dir: str | Path,
    data_root: str | Path | None = None,
    num_segments: int = 1000,
    device: str = "auto",
    plot_clip: str = "walk2_subject4",
    train_segments: int = 0,
    clip_segments: int = 0,
    greedy: bool = False,
) -> dict[str, float]:
    """Score a checkpoint on the validation clips; write eval.json and reconstruction.png.

    greedy: score the most likely code of each segment instead of a sample of q(z|x) (the same
    for the deterministic FSQ / VQ-VAE encoders).

    train_segments > 0 also scores that many fixed segments of the run's own training clips (the
    recorded ones, not their mirror images or replays at other speeds), reported as
    "train/<metric>" beside the validation metrics: the gap between the two is what the model
    does not generalise over, the training figure what it does not fit.
    clip_segments > 0 also scores that many fixed segments of each validation clip on its own,
    reported as "clip/<name>/joint_rmse_rad" and "clip/<name>/log_p" (which motions the error
    comes from: the held-out dance and fight clips weigh on the mean more than the walk).
    Raises CheckpointError / DataError on bad input; nothing is written then.
    """
    from envs.model import JOINT_NAMES
    from motion_vae.codec import decode_codes, encode_clip
    from envs.lafan1 import load_clip_csv, resolve_clip_dir
    from motion_vae.dataset import SegmentSampler, clip_features, recorded_clips

    dev = resolve_device(device)
    model, cfg, stats, ckpt = load_motion_vae(ckpt_path, dev)
    clip_dir = resolve_clip_dir(data_root)
    val_names = ckpt["extra"]["val_clips"]
    L = cfg.model.segment_length
    features: dict[str, np.ndarray] = {}  # standardised features per clip, computed once (FK of every frame)

    def fixed_segments(names: list[str], count: int) -> torch.Tensor:
        for n in names:
            if n not in features:
                features[n] = stats.standardise(clip_features(clip_dir / f"{n}.csv", L))
        clips = SegmentSampler({n: features[n] for n in names}, L)
        return torch.from_numpy(clips.fixed(count, seed=0)).to(dev)

    metrics = evaluate_segments(model, fixed_segments(val_names, num_segments), stats, beta_final=cfg.beta_final, greedy=greedy)
    if train_segments > 0:
        train_x = fixed_segments(recorded_clips(ckpt["extra"]["train_clips"]), train_segments)
        train_metrics = evaluate_segments(model, train_x, stats, beta_final=cfg.beta_final, greedy=greedy)
        metrics.update({f"train/{k}": v for k, v in train_metrics.items()})
    if clip_segments > 0:
        for name in val_names:
            m = evaluate_segments(model, fixed_segments([name], clip_segments), stats, beta_final=cfg.beta_final, greedy=greedy)
            metrics.update({f"clip/{name}/{k}": m[k] for k in ("joint_rmse_rad", "log_p", "code_info_nats")})
    metrics.update({"num_segments": num_segments, "train_segments": train_segments, "clip_segments": clip_segments, "greedy": greedy, "step": ckpt["step"], "bits": cfg.model.bits})

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if plot_clip in val_names or (clip_dir / f"{plot_clip}.csv").exists():
        rows = load_clip_csv(clip_dir / f"{plot_clip}.csv", min_frames=L)[: 6 * L]
        rec = decode_codes(model, stats, encode_clip(model, stats, rows, greedy=greedy), rows)
        idx = [7 + JOINT_NAMES.index(j) for j in PLOT_JOINTS]
        plot_reconstruction(
            rows[: len(rec), idx], rec[:, idx], list(PLOT_JOINTS),
            f"{plot_clip}: ground truth vs DAPS reconstruction (step {ckpt['step']}, {cfg.model.bits:.0f} bits / 32 frames)",
            out_dir / "reconstruction.png",
        )
    atomic_write_json(out_dir / "eval.json", metrics, indent=2)
    return metrics


def clip_round_trip(model: nn.Module, stats: FeatureStats, rows: np.ndarray, segment_length: int = 32, seed: int = 0) -> dict[str, dict[str, float]]:
    """A whole clip through encode -> decode, scored against the clip, beside two trivial references.

    rows: (N, 26) clip CSV rows at 30 Hz. Returns {"round_trip" | "anchored" | "still_frame" |
    "mean_pose": {joint_rmse_rad, root_height_rmse_m, root_xy_drift_m, root_path_error_m,
    heading_error_rad}}:
      root_xy_drift_m    per segment: the mean over all frames of |decoded - true| root xy
                         displacement since the frame's segment began (m), each in its own
                         trajectory's heading frame at the segment's first frame (so heading
                         error accumulated over earlier segments is not counted again);
      root_path_error_m  whole clip: the mean over all frames of |decoded - true| root xy (m),
                         as the decoded file has it;
      heading_error_rad  whole clip: the mean |decoded - true| heading (rad, wrapped to pi).
    round_trip is decoded as `decode` does it (the root path integrated over the whole clip),
    started at the clip's first root pose instead of the origin; anchored starts every segment at the clip's root pose there
    (`decode --anchor`); still_frame holds every segment at its own first frame; mean_pose plays
    the training-mean joint angles at the true root.
    """
    from motion_vae.codec import decode_codes, encode_clip
    from motion_vae.features import feature_layout

    n, L = len(rows), segment_length
    codes = encode_clip(model, stats, rows, seed=seed, segment_length=L)
    dec = decode_codes(model, stats, codes, rows)[:n]
    anchored = decode_codes(model, stats, codes, anchor_rows=rows)[:n]
    starts = np.arange(0, n, L)
    still = rows[starts].repeat(L, axis=0)[:n]
    mean_pose = rows.copy()
    jp = next(b for b in feature_layout() if b.name == "joint_pos")
    mean_pose[:, 7:] = stats.mean[jp.start : jp.stop]
    return {name: _clip_errors(traj, rows, L) for name, traj in
            (("round_trip", dec), ("anchored", anchored), ("still_frame", still), ("mean_pose", mean_pose))}


def _local_displacement(rows: np.ndarray, L: int) -> np.ndarray:
    """Root xy displacement of every frame since its segment's first frame (N, 2) m, in the
    heading frame at that first frame."""
    from envs.lafan1 import csv_to_qpos
    from motion_vae.features import heading_yaw

    first = (np.arange(len(rows)) // L) * L
    yaw = heading_yaw(csv_to_qpos(rows[first])[:, 3:7])
    d = rows[:, :2] - rows[first, :2]
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], axis=1)


def _clip_errors(traj: np.ndarray, rows: np.ndarray, L: int) -> dict[str, float]:
    from envs.lafan1 import csv_to_qpos
    from motion_vae.features import heading_yaw

    drift = _local_displacement(traj, L) - _local_displacement(rows, L)
    dyaw = heading_yaw(csv_to_qpos(traj)[:, 3:7]) - heading_yaw(csv_to_qpos(rows)[:, 3:7])
    return {
        "joint_rmse_rad": float(np.sqrt(np.mean((traj[:, 7:] - rows[:, 7:]) ** 2))),
        "root_height_rmse_m": float(np.sqrt(np.mean((traj[:, 2] - rows[:, 2]) ** 2))),
        "root_xy_drift_m": float(np.linalg.norm(drift, axis=1).mean()),
        "root_path_error_m": float(np.linalg.norm(traj[:, :2] - rows[:, :2], axis=1).mean()),
        "heading_error_rad": float(np.abs(np.angle(np.exp(1j * dyaw))).mean()),
    }
