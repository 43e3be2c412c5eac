"""(context -> codes of the next segment) pairs for the high-level policy, built from LAFAN1-H1.

For each clip and each start offset o (default 0 and 16 frames) the clip is cut into consecutive
32-frame segments j = 0, 1, ... (frames o + 32 j ... o + 32 j + 31) and each segment is encoded by
the shipped motion VAE's encoder, greedily (the most likely code at every step: deterministic
distillation targets, as PoseGPT's). Pair j >= 1, with s = o + 32 j the first frame of the target:

* target: codes (64,) of segment j (frames s ... s+31);
* prev:   codes (64,) of segment j-1 (frames s-32 ... s-1), the history;
* com:    (64, 5) root (pelvis, standing in for the centre of mass) trajectory of frames
          s-32 ... s+31 in the base frame of frame s-1 (the robot's "now"): x forward, y left of
          the heading at s-1, relative to the root position at s-1 (m); z the pelvis height (m);
          cos and sin of the heading relative to the heading at s-1 (a turn in place moves the
          root by centimetres, so the path alone hardly shows it). Rows 0-31 are the last 32
          frames, rows 32-63 the next 32 (the goal). Priors trained before the heading channels
          read the first 3 (`highlevel.model.PriorConfig.com_channels`);
* text:   the clip's phrasings (highlevel/annotations.json) and the target segment's measured
          phrase (highlevel.annotate.segment_phrase), as indices into a table of unique strings
          whose 384-d embeddings are cached (highlevel.text.EmbeddingCache).

Split: the motion VAE's (envs.lafan1.VAL_CLIPS held out). With `mirror`, each training clip's
left-right mirror image (`envs.lafan1.mirror_qpos`) adds pairs of its own as clip "<clip>~mirror":
the clip's phrasings carry over (none names a side), the segment phrases are measured on the
mirrored motion ("turn left" becomes "turn right"). Built pair sets are cached as .npz.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from daps.io import atomic_write
from envs.lafan1 import DataError, csv_to_qpos, load_clip_csv, mirror_qpos, qpos_to_csv, resolve_clip_dir, split_clips
from highlevel.annotate import load_annotations, segment_measures, segment_phrase
from motion_vae.dataset import MIRROR_SUFFIX, FeatureStats
from motion_vae.features import compute_features, heading_yaw

SEG = 32


@dataclass
class PairSet:
    """N training pairs. Arrays: clip (N,) int64 index into clip_names; start (N,) int64 first
    frame s of the target segment; prev, target (N, 64) int64 codes; com (N, 64, 5) float32 (`com_window`);
    seg_text (N,) int64 index into texts; clip_text (n_clips, P) int64 indices into texts (-1 pads);
    text_emb (U, 384) float32. clip_names, texts: lists of strings."""

    clip: np.ndarray
    start: np.ndarray
    prev: np.ndarray
    target: np.ndarray
    com: np.ndarray
    seg_text: np.ndarray
    clip_text: np.ndarray
    text_emb: np.ndarray
    clip_names: list
    texts: list

    def __len__(self) -> int:
        return len(self.clip)

    def save(self, path: str | Path) -> Path:
        """Write all arrays to one .npz atomically."""
        arrs = {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)}
        arrs["clip_names"] = np.array(self.clip_names, dtype=str)
        arrs["texts"] = np.array(self.texts, dtype=str)
        return atomic_write(path, lambda tmp: np.savez(tmp, **arrs))

    @classmethod
    def load(cls, path: str | Path) -> "PairSet":
        """Read a .npz written by `save` (raises ValueError naming the file if malformed)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                d = {f.name: z[f.name] for f in fields(cls)}
        except (OSError, KeyError, ValueError) as e:
            raise ValueError(f"{path}: not a high-level pair file ({type(e).__name__})") from None
        d["clip_names"], d["texts"] = [str(s) for s in d["clip_names"]], [str(s) for s in d["texts"]]
        return cls(**d)


COM_CHANNELS = 5  # x, y, z, cos, sin of the relative heading


def base_frame_path(rows: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Root path (N, 5) of CSV rows (N, 26) in the base frame of the CSV row ref (26,): x forward
    and y left of ref's heading, relative to ref's root position (m); z the root height (m); cos
    and sin of each row's heading minus ref's (rad)."""
    yaw = heading_yaw(csv_to_qpos(rows)[:, 3:7])
    yaw0 = float(heading_yaw(csv_to_qpos(ref[None])[0, 3:7]))
    c, si = np.cos(yaw0), np.sin(yaw0)
    d = rows[:, :2] - ref[:2]
    x = c * d[:, 0] + si * d[:, 1]
    y = -si * d[:, 0] + c * d[:, 1]
    return np.stack([x, y, rows[:, 2], np.cos(yaw - yaw0), np.sin(yaw - yaw0)], axis=1).astype(np.float32)


def com_window(rows: np.ndarray, s: int) -> np.ndarray:
    """Root trajectory (64, 5) of frames s-32 ... s+31 in the base frame of frame s-1 (see module doc).

    rows: clip CSV rows (T, 26) with 32 <= s <= T - 32. Row 31 is (0, 0, height at s-1, 1, 0).
    """
    if s < SEG or s + SEG > len(rows):
        raise ValueError(f"com_window: frame {s} needs {SEG} frames before and after in a clip of {len(rows)}")
    return base_frame_path(rows[s - SEG : s + SEG], rows[s - 1])


@torch.no_grad()
def encode_segments(vae, stats: FeatureStats, rows: np.ndarray, offset: int, batch: int = 512) -> np.ndarray:
    """Greedy codes (S, 64) of the consecutive full 32-frame segments of rows (T, 26) starting at
    frame `offset` (features computed on the whole clip, then cut)."""
    x = stats.standardise(compute_features(csv_to_qpos(rows)))
    s = (len(rows) - offset) // SEG
    xs = torch.from_numpy(np.ascontiguousarray(x[offset : offset + s * SEG].reshape(s, SEG, -1)))
    out = [vae.recognition.sample(xs[i : i + batch], 1, None, greedy=True)[0][:, 0] for i in range(0, s, batch)]
    return torch.cat(out).numpy() if out else np.zeros((0, vae.block_size), np.int64)


def build_pairs(
    clips: list[str],
    vae,
    stats: FeatureStats,
    root: str | Path | None = None,
    offsets: tuple[int, ...] = (0, 16),
    max_frames: int | None = None,
    annotations: dict[str, list[str]] | None = None,
    text_cache=None,
    mirror: bool = False,
) -> PairSet:
    """Pairs of the given clips (see the module docstring); max_frames keeps each clip's first
    frames (for tests). text_cache: an `EmbeddingCache` (default: in memory). mirror: add each
    clip's mirror image, named "<clip>~mirror", after the clips. Raises DataError for a clip
    without phrasings, a bad CSV (named), or no pairs."""
    from highlevel.text import EmbeddingCache

    clip_dir = resolve_clip_dir(root)
    ann = annotations if annotations is not None else load_annotations()
    missing = [c for c in clips if c not in ann]
    if missing:
        raise DataError(f"annotation file has no phrases for clips: {', '.join(missing[:5])}")
    texts: dict[str, int] = {}

    def tid(t: str) -> int:
        return texts.setdefault(t, len(texts))

    names = list(clips) + ([c + MIRROR_SUFFIX for c in clips] if mirror else [])
    clip_text = [[tid(p) for p in ann[c.removesuffix(MIRROR_SUFFIX)]] for c in names]
    cols = {k: [] for k in ("clip", "start", "prev", "target", "com", "seg_text")}
    for ci, name in enumerate(names):
        base = name.removesuffix(MIRROR_SUFFIX)
        rows = load_clip_csv(clip_dir / f"{base}.csv", min_frames=2 * SEG)
        rows = rows[:max_frames] if max_frames else rows
        if name != base:
            rows = qpos_to_csv(mirror_qpos(csv_to_qpos(rows)))
        for o in offsets:
            codes = encode_segments(vae, stats, rows, o)
            for j in range(1, len(codes)):
                s = o + SEG * j
                cols["clip"].append(ci)
                cols["start"].append(s)
                cols["prev"].append(codes[j - 1])
                cols["target"].append(codes[j])
                cols["com"].append(com_window(rows, s))
                cols["seg_text"].append(tid(segment_phrase(segment_measures(rows[s : s + SEG]))))
    if not cols["clip"]:
        raise DataError(f"{clip_dir}: no pairs: clips need at least {2 * SEG} frames")
    width = max(len(t) for t in clip_text)
    ct = np.full((len(names), width), -1, np.int64)
    for i, t in enumerate(clip_text):
        ct[i, : len(t)] = t
    table = list(texts)
    emb = (text_cache or EmbeddingCache()).encode(table)
    return PairSet(
        np.asarray(cols["clip"], np.int64), np.asarray(cols["start"], np.int64),
        np.stack(cols["prev"]).astype(np.int64), np.stack(cols["target"]).astype(np.int64),
        np.stack(cols["com"]).astype(np.float32), np.asarray(cols["seg_text"], np.int64),
        ct, emb, names, table,
    )


def cached_pairs(split: str, vae_path: Path, cache_dir: Path, root=None, max_frames=None,
                 clips: list[str] | None = None, offsets=(0, 16), text_cache=None, mirror: bool = False) -> PairSet:
    """Pairs of the 'train' or 'val' clips (or the given clips), from cache_dir when built before;
    mirror adds the clips' mirror images (`build_pairs`; refused for 'val': held-out clips stay
    as recorded).

    The cache key covers the motion VAE file (path, size, mtime), the clips, offsets, max_frames,
    mirror and the annotation file's contents. Raises ValueError for another split or a
    mirrored 'val', DataError for bad data.
    """
    from motion_vae.models import load_motion_vae

    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if mirror and split == "val":
        raise ValueError("held-out pairs are never mirrored")
    train, val = split_clips(root)
    names = clips if clips is not None else (train if split == "train" else val)
    ann = load_annotations()
    st = Path(vae_path).stat() if Path(vae_path).is_file() else None
    key = json.dumps(["com5", str(Path(vae_path).resolve()), st and st.st_size, st and st.st_mtime, names, list(offsets),
                      max_frames, str(resolve_clip_dir(root)), ann] + (["mirror"] if mirror else []), sort_keys=True)
    path = Path(cache_dir) / f"pairs_{split}_{hashlib.sha1(key.encode()).hexdigest()[:12]}.npz"
    if path.is_file():
        return PairSet.load(path)
    vae, _, stats, _ = load_motion_vae(vae_path, "cpu")
    pairs = build_pairs(names, vae, stats, root, tuple(offsets), max_frames, ann, text_cache, mirror)
    pairs.save(path)
    return pairs
