"""Reference motions of the tracking task as flat tables, and where episodes start.

:class:`MotionLibrary` holds every clip at the control rate, concatenated: frame ``g`` of the
library is frame ``g - clip_start[c]`` of clip ``c``.  Per frame: qpos (26), qvel (25), and
for each tracked body its world position, orientation (rotation matrix), linear velocity of its
origin and angular velocity (world frame), by MuJoCo's forward kinematics of the H1 model.
Mirrored clips (left-right, :func:`envs.lafan1.mirror_qpos`) are named ``<clip>~mirror``.

:class:`AdaptiveSampler` draws start frames where episodes fail, as mjlab's tracking task does:
each clip is cut into ``bin_s`` bins; a failing episode counts for the bin it failed in; start
bins are drawn with probability proportional to the smoothed count of that bin and the next one
(kernel 1, 0.8), plus a uniform share.
"""

from __future__ import annotations

from collections.abc import Sequence

import mujoco
import numpy as np

from envs.lafan1 import FPS, MIRROR_SUFFIX, csv_to_qpos, load_clip_csv, mirror_qpos
from envs.model import load_h1_model
from envs.reference import ReferenceMotion, _resolve_path, make_reference, resample_qpos

from .config import ANCHOR_BODY, MimicConfig
from .transforms import quat_to_mat

__all__ = ["MotionLibrary", "AdaptiveSampler", "MIRROR_SUFFIX", "load_motion", "mirrored"]


def load_motion(name: str, control_hz: float, data_root=None) -> ReferenceMotion:
    """A LAFAN1-H1 clip (``name`` or ``name~mirror``) at ``control_hz``, feet grounded.

    Raises ValueError for an unknown clip, :class:`envs.lafan1.DataError` for a bad file.
    """
    if name.endswith(MIRROR_SUFFIX):
        return mirrored(load_motion(name[: -len(MIRROR_SUFFIX)], control_hz, data_root))
    qpos = csv_to_qpos(load_clip_csv(_resolve_path(name, data_root)))
    return make_reference(name, resample_qpos(qpos, FPS, control_hz), control_hz, ground_feet=True)


def mirrored(ref: ReferenceMotion) -> ReferenceMotion:
    """The left-right mirror of a motion (:func:`envs.lafan1.mirror_qpos`), named
    ``<name>~mirror``, at the same rate; the feet keep their heights (the mirror does not move them)."""
    return make_reference(ref.name + MIRROR_SUFFIX, mirror_qpos(ref.qpos), ref.fps, ground_feet=False)


class MotionLibrary:
    """Clips at the control rate as concatenated per-frame tables (module docstring).

    Args:
        motions: ReferenceMotion objects at ``cfg.control_hz`` (each at least 2 frames).
        cfg: the task configuration (tracked bodies, control rate).

    Attributes (F = total frames, B = tracked bodies):
        qpos (F, 26), qvel (F, 25); body_pos (F, B, 3) m; body_mat (F, B, 3, 3);
        body_lin_vel (F, B, 3) m/s; body_ang_vel (F, B, 3) rad/s; com (F, 3) m;
        clip_start (C,), clip_len (C,) frames; names (C,).

    Raises:
        ValueError: no motions, a motion at another rate or shorter than 2 frames.
    """

    def __init__(self, motions: Sequence[ReferenceMotion], cfg: MimicConfig):
        if len(motions) == 0:
            raise ValueError("MotionLibrary: no motions")
        model = load_h1_model()
        data = mujoco.MjData(model)
        body_ids = np.array([mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, b) for b in cfg.tracked_bodies])
        if (body_ids < 0).any():
            raise ValueError(f"MotionLibrary: unknown tracked body in {cfg.tracked_bodies}")
        self.names = [m.name for m in motions]
        self.clip_len = np.array([m.num_frames for m in motions])
        self.clip_start = np.concatenate([[0], np.cumsum(self.clip_len)[:-1]])
        for m in motions:
            if abs(m.fps - cfg.control_hz) > 1e-6:
                raise ValueError(f"motion {m.name!r} is at {m.fps} Hz, the task runs at {cfg.control_hz} Hz")
            if m.num_frames < 2:
                raise ValueError(f"motion {m.name!r} is too short to track ({m.num_frames} frames)")
        self.qpos = np.concatenate([m.qpos for m in motions])
        self.qvel = np.concatenate([m.qvel for m in motions])
        F, B = len(self.qpos), len(body_ids)
        self.body_pos = np.empty((F, B, 3))
        self.body_mat = np.empty((F, B, 3, 3))
        self.body_lin_vel = np.empty((F, B, 3))
        self.body_ang_vel = np.empty((F, B, 3))
        self.com = np.empty((F, 3))
        for g in range(F):
            data.qpos[:], data.qvel[:] = self.qpos[g], self.qvel[g]
            mujoco.mj_kinematics(model, data)
            mujoco.mj_comPos(model, data)
            mujoco.mj_comVel(model, data)
            body_state(data, body_ids, self.body_pos[g], self.body_mat[g], self.body_lin_vel[g], self.body_ang_vel[g])
            self.com[g] = data.subtree_com[1]
        self.anchor = cfg.tracked_bodies.index(ANCHOR_BODY)
        self.joint_pos = self.qpos[:, 7:]
        self.joint_vel = self.qvel[:, 6:]
        self.root_mat = quat_to_mat(self.qpos[:, 3:7])

    @property
    def num_clips(self) -> int:
        return len(self.names)

    def last_frame(self, clip: int) -> int:
        """Last frame index of clip ``clip`` (episodes end there: "clip_end")."""
        return int(self.clip_len[clip]) - 1

    def index(self, name: str) -> int:
        """Clip number of ``name``; ValueError listing the names if unknown."""
        if name not in self.names:
            raise ValueError(f"unknown clip {name!r}; the library holds {self.names}")
        return self.names.index(name)


def body_state(data: mujoco.MjData, body_ids: np.ndarray, pos: np.ndarray, mat: np.ndarray,
               lin_vel: np.ndarray, ang_vel: np.ndarray) -> None:
    """Write the world pose and velocity of ``body_ids`` (B,) into pos (B, 3), mat (B, 3, 3),
    lin_vel (B, 3) (of each body's origin) and ang_vel (B, 3).  Needs mj_kinematics, mj_comPos and
    mj_comVel on ``data``: cvel is (angular, linear) at the subtree COM of the root body."""
    pos[:] = data.xpos[body_ids]
    mat[:] = data.xmat[body_ids].reshape(-1, 3, 3)
    cvel = data.cvel[body_ids]
    ang_vel[:] = cvel[:, :3]
    lin_vel[:] = cvel[:, 3:] + np.cross(cvel[:, :3], pos - data.subtree_com[1])


class AdaptiveSampler:
    """Start frames drawn by failure rate per bin (module docstring).

    Args:
        library: the motions.  cfg: bin length, uniform share and EMA rate.
        rng: a numpy Generator.
    """

    KERNEL = (1.0, 0.8)  # weight of a bin's own failures and of the next bin's

    def __init__(self, library: MotionLibrary, cfg: MimicConfig, rng: np.random.Generator):
        self.lib, self.cfg, self.rng = library, cfg, rng
        frames_per_bin = max(1, int(round(cfg.bin_s * cfg.control_hz)))
        self.frames_per_bin = frames_per_bin
        usable = library.clip_len - 1  # a start needs one step left
        self.bins_per_clip = np.maximum(1, -(-usable // frames_per_bin))
        self.bin_start = np.concatenate([[0], np.cumsum(self.bins_per_clip)[:-1]])
        nb = int(self.bins_per_clip.sum())
        self.bin_clip = np.repeat(np.arange(library.num_clips), self.bins_per_clip)
        self.bin_first = np.concatenate([np.arange(n) * frames_per_bin for n in self.bins_per_clip])
        self.bin_frames = np.minimum(frames_per_bin, usable[self.bin_clip] - self.bin_first)
        self.failures = np.zeros(nb)

    def probabilities(self) -> np.ndarray:
        """(num_bins,) start probabilities: failures smoothed over the next bin, plus the uniform share."""
        f = self.failures.copy()
        nxt = np.zeros_like(f)
        nxt[:-1] = f[1:]
        nxt[self.bin_start[1:] - 1] = 0.0  # the next bin of a clip's last bin is another clip's
        w = self.KERNEL[0] * f + self.KERNEL[1] * nxt
        uniform = self.bin_frames / self.bin_frames.sum()
        if w.sum() <= 0:
            return uniform
        return (1.0 - self.cfg.uniform_share) * w / w.sum() + self.cfg.uniform_share * uniform

    def sample(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """n starts: (clip (n,) int, frame (n,) int) with at least one step left in the clip."""
        b = self.rng.choice(len(self.failures), size=n, p=self.probabilities())
        frame = self.bin_first[b] + (self.rng.random(n) * self.bin_frames[b]).astype(np.int64)
        return self.bin_clip[b], frame

    def update(self, clip: np.ndarray, frame: np.ndarray, failed: np.ndarray) -> None:
        """Record ended episodes: clip (n,), frame where each ended (n,), failed (n,) bool."""
        counts = np.zeros_like(self.failures)
        if failed.any():
            c, k = clip[failed], frame[failed]
            b = self.bin_start[c] + np.minimum(k // self.frames_per_bin, self.bins_per_clip[c] - 1)
            np.add.at(counts, b, 1.0)
        a = self.cfg.failure_ema
        self.failures = (1.0 - a) * self.failures + a * counts
