"""The hook between the levels: a follower turns each segment's 64 codes into the motion achieved.

`daps command` (highlevel/command.py) samples codes segment by segment and hands them to a
`SegmentFollower`; what it returns is the history the next segment is sampled from. This module
holds the interface, the segment constants, the root measures of achieved motion, and the
kinematic follower (the motion VAE's decoding, no physics); `highlevel.physics.PhysicsFollower`
is the other one. Data flows one way: command.py -> physics.py -> follower.py.
"""
from __future__ import annotations

import numpy as np
import torch

from envs.lafan1 import csv_to_qpos, qpos_to_csv
from highlevel.annotate import segment_measures
from motion_vae.codec import check_codes
from motion_vae.features import features_to_qpos, heading_yaw

SEG, FPS = 32, 30.0  # frames per segment, frames per second of the motion (LAFAN1-H1)
START_HEIGHT = 0.98  # m, pelvis height of the standing start (LAFAN1-H1 upright mean ~0.97-1.02)


def standing_rows(n: int = 32, height: float = START_HEIGHT) -> np.ndarray:
    """n identical CSV rows (n, 26): root at (0, 0, height), identity orientation, joints at 0."""
    r = np.zeros((n, 26))
    r[:, 2], r[:, 6] = height, 1.0
    return r


def achieved(rows: np.ndarray) -> dict:
    """Root measures of CSV rows (T >= 2, 26): speed (net displacement / time, m/s), path speed
    (path length / time, m/s), turn rate (net heading change / time, rad/s), mean height (m).
    ValueError for fewer than 2 rows."""
    m = segment_measures(rows)
    return {"root_speed_m_s": round(m["speed"], 3),
            "path_speed_m_s": round(float(np.linalg.norm(np.diff(rows[:, :2], axis=0), axis=1).sum() * FPS / (len(rows) - 1)), 3),
            "turn_rate_rad_s": round(m["yaw_rate"], 3),
            "mean_root_height_m": round(m["height"], 3)}


@torch.inference_mode()
def decode_segments(vae, stats, codes: np.ndarray, start_rows: np.ndarray | None = None) -> np.ndarray:
    """Decode N independent segments at once: codes (N, 64) int -> CSV rows (N, 32, 26).

    One batched pass of the motion VAE's decoder, then each segment's root integrated on its own
    (`motion_vae.features.features_to_qpos`) from start_rows[i]'s x, y and heading (start_rows
    (N, 26) CSV rows; None: the origin facing +x), as `motion_vae.codec.decode_codes` does for
    one segment (the batched decoder agrees with it to float rounding, ~1e-5). ValueError for
    codes of the wrong shape or outside the vocabulary.
    """
    codes = np.asarray(codes)
    check_codes(codes, vae.vocab_size, vae.block_size, "codes")
    mu = vae.reconstruct(torch.from_numpy(codes.astype(np.int64)).unsqueeze(1))[:, 0]  # (N, 32, F)
    raw = stats.destandardise(mu.numpy().reshape(-1, mu.shape[-1]))  # (N 32, F) raw features
    raw = raw.reshape(mu.shape[0], mu.shape[1], raw.shape[-1])
    out = np.empty((len(codes), mu.shape[1], 26))
    for i, f in enumerate(raw):
        xy0, yaw0 = (0.0, 0.0), 0.0
        if start_rows is not None:
            q0 = csv_to_qpos(np.asarray(start_rows[i])[None])[0]
            xy0, yaw0 = (q0[0], q0[1]), float(heading_yaw(q0[3:7]))
        out[i] = qpos_to_csv(features_to_qpos(f, root_xy0=xy0, yaw0=yaw0))
    return out


class SegmentFollower:
    """The hook where a lower level consumes the high level's codes, one segment at a time.

    `follow(codes, history, index)`: codes (B, 64) int64 of segment `index` for B parallel
    rollouts; history (B, H >= 32, 26) CSV rows (root xyz m, root quaternion x y z w, 19 joint
    angles rad) of the motion achieved so far (a standing start before segment 0). Returns the
    rows (B, 32, 26) achieved while following the codes. `record()`: extra JSON fields of the run
    (the physics follower reports falls and COM there). `done()`: True when no rollout can go on;
    generation then stops early.
    """

    kinematic = True

    def follow(self, codes: np.ndarray, history: np.ndarray, index: int) -> np.ndarray:
        raise NotImplementedError

    def record(self) -> dict:
        return {}

    def done(self) -> bool:
        return False

    def close(self) -> None:
        """Free what the follower holds (simulators); the kinematic one holds nothing."""


class KinematicFollower(SegmentFollower):
    """Decodes codes with the motion VAE, no physics: each rollout's segment continues from the
    root position and heading of its last achieved frame (from the VAE's own pose at segment 0).
    All rollouts are decoded in one batch (`decode_segments`)."""

    def __init__(self, vae, stats):
        self.vae, self.stats = vae, stats

    def follow(self, codes: np.ndarray, history: np.ndarray, index: int) -> np.ndarray:
        return decode_segments(self.vae, self.stats, codes, history[:, -1] if index > 0 else None)
