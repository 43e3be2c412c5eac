"""Clips -> standardised features -> 32-frame segments.

Data flows one way: CSV rows (envs.lafan1) -> per-frame features by forward kinematics
(motion_vae.features) -> columns with training variance < 1e-5 dropped and the rest standardised
with training statistics (FeatureStats, stored in every checkpoint) -> random training segments
and a fixed, seeded validation set.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daps.distributed import shard_indices
from envs.lafan1 import (MIRROR_SUFFIX, DataError, csv_to_qpos, load_clip_csv, mirror_qpos, resample_qpos, resolve_clip_dir,
                         split_clips)
from motion_vae.features import compute_features, feature_names

SEGMENT_LENGTH = 32
SPEED_SUFFIX = "~speed"  # "<clip>~speed1.25": a training clip played faster or slower (`load_motion_dataset(speeds=...)`)
AUGMENTED_MARK = "~"  # both suffixes start with it: recorded clip names never contain it (`recorded_clips`)
MIN_VARIANCE = 1e-5  # columns below this training variance are dropped (facts Sec. 5)


@dataclass
class FeatureStats:
    """Training statistics of the F raw feature columns.

    mean, std: (F,) in the columns' own units. keep: (F,) bool, the C columns the model sees.
    lo, hi: (C,) min and max of the standardised training data, for the [0, 1] scaling of PSNR.
    """

    mean: np.ndarray
    std: np.ndarray
    keep: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    @property
    def num_features(self) -> int:
        """C, the number of standardised columns."""
        return int(self.keep.sum())

    def standardise(self, raw: np.ndarray) -> np.ndarray:
        """(..., F) raw features -> (..., C) float32 standardised."""
        return ((raw[..., self.keep] - self.mean[self.keep]) / self.std[self.keep]).astype(np.float32)

    def destandardise(self, x: np.ndarray) -> np.ndarray:
        """(..., C) standardised -> (..., F) raw; dropped (near-constant) columns get their mean."""
        out = np.broadcast_to(self.mean, x.shape[:-1] + self.mean.shape).astype(np.float64)
        out[..., self.keep] = x * self.std[self.keep] + self.mean[self.keep]
        return out

    def to_dict(self) -> dict:
        return {k: getattr(self, k).tolist() for k in ("mean", "std", "keep", "lo", "hi")}

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureStats":
        return cls(
            np.asarray(d["mean"], np.float64),
            np.asarray(d["std"], np.float64),
            np.asarray(d["keep"], bool),
            np.asarray(d["lo"], np.float32),
            np.asarray(d["hi"], np.float32),
        )


def fit_feature_stats(train_features: list[np.ndarray]) -> FeatureStats:
    """Mean/std over all training frames; drop columns with variance < MIN_VARIANCE.

    Raises ValueError if no training frames are given.
    """
    if not train_features:
        raise ValueError("no training clips to fit feature statistics on")
    allf = np.concatenate(train_features).astype(np.float64)
    mean, var = allf.mean(0), allf.var(0)
    keep = var >= MIN_VARIANCE
    std = np.sqrt(np.where(keep, var, 1.0))
    stats = FeatureStats(mean, std, keep, np.zeros(0, np.float32), np.zeros(0, np.float32))
    x = stats.standardise(allf)
    stats.lo, stats.hi = x.min(0), x.max(0)
    return stats


class SegmentSampler:
    """Fixed-length windows of standardised clips (each (T_i, C) float32, T_i >= length).

    Training draws a window uniformly among all valid start frames of all clips, so every frame
    is equally likely to be seen.
    """

    def __init__(self, clips: dict[str, np.ndarray], length: int = SEGMENT_LENGTH):
        short = [n for n, c in clips.items() if len(c) < length]
        if short or not clips:
            raise ValueError(f"need clips of at least {length} frames, got {short or 'none'}")
        self.names = list(clips)
        self.clips = [clips[n] for n in self.names]
        self.length = length
        starts = np.array([len(c) - length + 1 for c in self.clips])
        self.cum = np.cumsum(starts)

    @property
    def num_windows(self) -> int:
        return int(self.cum[-1])

    def windows(self, idx: np.ndarray) -> np.ndarray:
        """Windows by global index (N,) -> (N, length, C)."""
        clip = np.searchsorted(self.cum, idx, side="right")
        start = idx - np.concatenate([[0], self.cum[:-1]])[clip]
        return np.stack([self.clips[c][s : s + self.length] for c, s in zip(clip, start)])

    def sample(self, rng: np.random.Generator, batch: int, rank: int = 0, world: int = 1) -> np.ndarray:
        """(batch, length, C) random training windows: shard `rank` of a global batch of
        batch x world drawn from `rng` (`daps.distributed.shard_indices`; world 1: all of it)."""
        return self.windows(shard_indices(rng, self.num_windows, batch, rank, world))

    def fixed(self, n: int, seed: int = 0) -> np.ndarray:
        """(n, length, C) windows drawn once from a seeded RNG: the same set every time."""
        return self.sample(np.random.default_rng(seed), n)


@dataclass
class MotionDataset:
    """The standard split as segment samplers: train and val windows of (segment_length, 104)
    standardised features, the statistics fitted on the training clips, and the feature names."""

    train: SegmentSampler
    val: SegmentSampler
    stats: FeatureStats
    feature_names: list[str]


def recorded_clips(names: list[str]) -> list[str]:
    """The recorded clips among training clip names: without their mirror images and replays."""
    return [n for n in names if AUGMENTED_MARK not in n]


def clip_qpos(path: Path, min_frames: int = SEGMENT_LENGTH, max_frames: int | None = None) -> np.ndarray:
    """MuJoCo qpos (T, 26) of one clip CSV, its first max_frames frames if given. Raises
    DataError naming the file on bad input."""
    rows = load_clip_csv(path, min_frames=min_frames)
    return csv_to_qpos(rows[:max_frames] if max_frames else rows)


def clip_features(path: Path, min_frames: int = SEGMENT_LENGTH, max_frames: int | None = None, mirror: bool = False) -> np.ndarray:
    """Raw features (T, F) of one clip CSV, or of its left-right mirror image
    (`envs.lafan1.mirror_qpos`). Raises DataError naming the file on bad input."""
    qpos = clip_qpos(path, min_frames, max_frames)
    return compute_features(mirror_qpos(qpos) if mirror else qpos)


def load_motion_dataset(
    root: str | Path | None = None,
    segment_length: int = SEGMENT_LENGTH,
    train_clips: list[str] | None = None,
    val_clips: list[str] | None = None,
    max_frames: int | None = None,
    mirror: bool = False,
    stats: FeatureStats | None = None,
    speeds: list[float] | tuple[float, ...] = (),
) -> MotionDataset:
    """Load the LAFAN1-H1 split (default: the authors' 36/4), fit statistics on train.

    train_clips / val_clips restrict the split (for small tests); max_frames keeps only the first
    frames of each clip. mirror: add each training clip's left-right mirror image as a clip of
    its own, named "<clip>~mirror" (data augmentation; validation clips are never mirrored).
    speeds: add each training clip (and its mirror image) played at these speeds
    (`envs.lafan1.resample_qpos`), named "<clip>~speed<s>" (augmentation; validation untouched).
    stats: standardise with these statistics (e.g. a checkpoint's) instead of fitting them.
    Raises DataError for a missing folder or any bad clip file.
    """
    clip_dir = resolve_clip_dir(root)
    train_names, val_names = split_clips(root)
    for names, chosen in ((train_names, train_clips), (val_names, val_clips)):
        if chosen is not None:
            missing = [c for c in chosen if c not in names]
            if missing:
                raise DataError(f"{clip_dir}: clips not in this split: {', '.join(missing)}")
    train_names, val_names = train_clips or train_names, val_clips or val_names
    train_qpos = {n: clip_qpos(clip_dir / f"{n}.csv", segment_length, max_frames) for n in train_names}
    if mirror:  # each CSV read once; its mirror image from the same qpos
        train_qpos |= {f"{n}{MIRROR_SUFFIX}": mirror_qpos(q) for n, q in train_qpos.items()}
    for speed in speeds:
        played = {f"{n}{SPEED_SUFFIX}{speed:g}": resample_qpos(q, speed) for n, q in train_qpos.items() if SPEED_SUFFIX not in n}
        train_qpos |= {n: q for n, q in played.items() if len(q) >= segment_length}
    raw_train = {n: compute_features(q) for n, q in train_qpos.items()}
    raw_val = {n: clip_features(clip_dir / f"{n}.csv", segment_length, max_frames) for n in val_names}
    if stats is None:
        stats = fit_feature_stats(list(raw_train.values()))
    names = [n for n, k in zip(feature_names(), stats.keep) if k]
    return MotionDataset(
        SegmentSampler({n: stats.standardise(f) for n, f in raw_train.items()}, segment_length),
        SegmentSampler({n: stats.standardise(f) for n, f in raw_val.items()}, segment_length),
        stats,
        names,
    )
