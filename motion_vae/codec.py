"""Clip <-> latent codes: what `daps motion-vae encode|decode` and the control layers use.

encode: CSV rows (N, 26) -> features -> standardised -> consecutive 32-frame segments (a
        trailing partial segment is padded by holding the last frame) -> one code sequence of
        64 indices per segment, S = ceil(N / 32) segments.
decode: codes (S, 64) -> decoder means (S, 32, C) -> raw features -> qpos by integrating the
        root velocities (motion_vae.features.features_to_qpos) -> CSV rows (S*32, 26), cut back
        to the clip's true length when the codes file records it.

What decode returns: joint angles, root height and root tilt come frame by frame from the
decoder; the root's x, y and heading do not (the codes describe motion relative to the body):
they are integrated from the decoded velocities, from the origin facing +x (or from a given start
frame), over the whole file. Their small errors add up segment after segment, so the decoded path
wanders from the original one (on walk2_subject4: 1.9 rad of heading on average). Where the
original clip is at hand, ``anchor_rows`` starts each segment at the clip's root x, y and heading
at that segment's first frame: the path then drifts within a segment only.

Codes files are CSV: an optional first line `# frames: N` (the clip's length, written by
`encode`), then one segment per line, 64 integers in [0, vocab size).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from daps.io import atomic_write
from envs.lafan1 import DataError, csv_to_qpos, qpos_to_csv
from motion_vae.dataset import SEGMENT_LENGTH, FeatureStats
from motion_vae.features import compute_features, features_to_qpos, heading_yaw


@torch.no_grad()
def encode_clip(
    model: nn.Module,
    stats: FeatureStats,
    rows: np.ndarray,
    seed: int = 0,
    segment_length: int = SEGMENT_LENGTH,
    greedy: bool = False,
) -> np.ndarray:
    """Latent codes (S, T) int64 for CSV rows (N, 26) at 30 Hz, S = ceil(N / segment length).

    The last, partial segment is padded by holding the clip's last frame, so decoding the codes
    covers every frame. Each segment's code is one draw z ~ q_theta(z|x) from a seeded generator
    (deterministic), or with greedy=True the most likely code at every step.
    Raises ValueError for a clip shorter than one segment or malformed rows.
    """
    L = segment_length
    if len(rows) < L:
        raise ValueError(f"clip has {len(rows)} frames, need at least {L} (one segment)")
    s = -(-len(rows) // L)
    rows = np.concatenate([rows, np.repeat(rows[-1:], s * L - len(rows), axis=0)])
    x = stats.standardise(compute_features(csv_to_qpos(rows)))
    dev = next(model.parameters()).device
    xs = torch.from_numpy(x[: s * L].reshape(s, L, -1)).to(dev)
    gen = torch.Generator(device=dev).manual_seed(seed)
    z, _ = model.recognition.sample(xs, 1, gen, greedy=greedy)
    return z[:, 0].cpu().numpy()


@torch.no_grad()
def decode_codes(
    model: nn.Module, stats: FeatureStats, codes: np.ndarray, start_rows: np.ndarray | None = None,
    anchor_rows: np.ndarray | None = None,
) -> np.ndarray:
    """CSV rows (S*L, 26) for codes (S, T) (module docstring: what is decoded, what integrated).

    The root's x, y (m) and heading (rad) are integrated from the decoded velocities over all
    segments, from start_rows[0]'s x, y and heading if given, else from the origin facing +x.
    anchor_rows: the original clip's CSV rows (N > (S-1)*L): each segment j starts at
    anchor_rows[j*L]'s x, y and heading instead (no drift carried from segment to segment).

    Raises ValueError for codes of the wrong length or outside [0, vocab size), or anchor rows
    too short for the segments.
    """
    codes = np.asarray(codes)
    check_codes(codes, model.vocab_size, model.block_size, "codes")
    dev = next(model.parameters()).device
    mu = model.reconstruct(torch.from_numpy(codes.astype(np.int64)).to(dev).unsqueeze(1))[:, 0]
    raw = stats.destandardise(mu.cpu().numpy().reshape(-1, mu.shape[-1]))

    def start(row: np.ndarray) -> tuple[tuple[float, float], float]:
        q0 = csv_to_qpos(row[None])[0]
        return (q0[0], q0[1]), float(heading_yaw(q0[3:7]))

    if anchor_rows is not None:
        S, L = mu.shape[0], mu.shape[1]
        anchor_rows = np.asarray(anchor_rows, dtype=np.float64)
        if anchor_rows.ndim != 2 or len(anchor_rows) <= (S - 1) * L:
            raise ValueError(f"anchor clip has {len(anchor_rows)} frames; {S} segments start as late as frame {(S - 1) * L}")
        parts = []
        for j in range(S):
            xy0, yaw0 = start(anchor_rows[j * L])
            parts.append(features_to_qpos(raw[j * L : (j + 1) * L], root_xy0=xy0, yaw0=yaw0))
        return qpos_to_csv(np.concatenate(parts))
    xy0, yaw0 = start(np.asarray(start_rows)[0]) if start_rows is not None else ((0.0, 0.0), 0.0)
    return qpos_to_csv(features_to_qpos(raw, root_xy0=xy0, yaw0=yaw0))


def check_codes(codes: np.ndarray, vocab_size: int, block_size: int, where: str) -> None:
    """Raise ValueError unless codes is (S, block_size) integers in [0, vocab_size)."""
    if codes.ndim != 2 or codes.shape[1] != block_size or len(codes) == 0:
        raise ValueError(f"{where}: expected (segments, {block_size}) codes, got shape {codes.shape}")
    if not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"{where}: codes must be integers, got {codes.dtype}")
    if codes.min() < 0 or codes.max() >= vocab_size:
        raise ValueError(f"{where}: codes must lie in [0, {vocab_size}), got [{codes.min()}, {codes.max()}]")


FRAMES_HEADER = "# frames: "


def write_codes_csv(path: str | Path, codes: np.ndarray, num_frames: int | None = None) -> Path:
    """Write codes (S, T) as CSV atomically (temporary file + rename); num_frames, the clip's
    true length, goes in a `# frames: N` first line so `decode` returns exactly that many frames."""
    header = f"{FRAMES_HEADER.lstrip('# ')}{num_frames}" if num_frames is not None else ""
    return atomic_write(path, lambda tmp: np.savetxt(tmp, codes, fmt="%d", delimiter=",", header=header))


def read_codes_csv(
    path: str | Path, vocab_size: int, block_size: int, segment_length: int = SEGMENT_LENGTH
) -> tuple[np.ndarray, int | None]:
    """Read a codes CSV: codes (S, block_size) int64 and the recorded clip length in frames
    (None without a `# frames: N` line). Raises DataError naming the file (and line) for a
    folder, binary data, or a malformed line."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a codes CSV file")
    if not path.is_file():
        raise DataError(f"{path}: codes file not found")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a codes CSV (binary data, not UTF-8 text)") from None
    if "\0" in text:
        raise DataError(f"{path}: not a codes CSV (binary data)")
    rows, num_frames = [], None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.startswith(FRAMES_HEADER):
            try:
                num_frames = int(line[len(FRAMES_HEADER):])
            except ValueError:
                raise DataError(f"{path.name} line {lineno}: expected '{FRAMES_HEADER}N' with an integer N") from None
            continue
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != block_size:
            raise DataError(f"{path.name} line {lineno}: expected {block_size} codes, got {len(fields)}")
        try:
            vals = [int(f) for f in fields]
        except ValueError:
            raise DataError(f"{path.name} line {lineno}: codes must be integers") from None
        bad = [v for v in vals if not 0 <= v < vocab_size]
        if bad:
            raise DataError(f"{path.name} line {lineno}: code {bad[0]} outside [0, {vocab_size})")
        rows.append(vals)
    if not rows:
        raise DataError(f"{path.name}: file is empty")
    codes = np.asarray(rows, dtype=np.int64)
    if num_frames is not None and not (len(codes) - 1) * segment_length < num_frames <= len(codes) * segment_length:
        raise DataError(f"{path.name}: {num_frames} frames do not fit {len(codes)} segments")
    return codes, num_frames
