"""Reference motions for the tracking environment, resampled to the control rate.

A :class:`ReferenceMotion` holds one clip at the policy (control) rate in MuJoCo
conventions of our H1 model (:mod:`envs.model`):

* ``qpos`` (T, 26): root position (world), root quaternion w, x, y, z, 19 joint angles.
* ``qvel`` (T, 25): root linear velocity (world frame), root angular velocity
  (LOCAL body frame, as MuJoCo's free-joint qvel), 19 joint velocities.  Computed
  by central finite differences with :func:`mujoco.mj_differentiatePos`
  (one-sided at the two ends), so ``qvel`` is consistent with MuJoCo's own
  integration of ``qpos``.
* ``site_pos`` (T, 4, 3): world positions of the end-effector sites
  :data:`EE_SITES` (feet, hands), by :func:`mujoco.mj_kinematics`.
* ``com`` (T, 3): world centre of mass of the whole robot (``subtree_com`` of the
  pelvis, by :func:`mujoco.mj_comPos`).
* ``torso_tilt`` (T,): angle (rad) between the torso (imu site) z axis and world up.
* ``root_height_shift`` (m): what was added to the root height of every frame (see below).

Floor: Unitree's retargeted LAFAN1 clips put the H1's feet slightly into the floor (the stance
foot's sole typically 0.5-2.3 cm below z = 0, toe and heel dips down to 4-11 cm).  With
``ground_feet=True`` (the default of :func:`load_reference`) each clip is lifted by one constant,
the median over its frames of the depth of the lowest sole point (corners of both foot boxes),
so the typical stance foot stands on the floor; the lift is applied to the root height, the
end-effector sites and the COM.  One constant per clip keeps the motion itself unchanged.

:func:`load_reference` reads a LAFAN1-H1 clip (30 Hz), interpolates it to the
control rate (linear for positions and joint angles, slerp for the root
quaternion) and computes the quantities above.  :func:`make_reference` does the
same for a qpos array (used for custom / synthetic references, e.g. in tests).
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from envs.lafan1 import FPS, csv_to_qpos, load_clip_csv, resolve_clip_dir

from .model import load_h1_model

__all__ = ["EE_SITES", "FOOT_GEOMS", "ReferenceMotion", "make_reference", "load_reference", "resample_qpos",
           "interpolate_qpos"]

#: End-effector sites, in the order of ``ReferenceMotion.site_pos[:, i]``.
EE_SITES: tuple[str, ...] = ("left_foot", "right_foot", "left_hand", "right_hand")
#: Foot collision boxes of envs/h1.xml, whose lowest corner defines the sole height.
FOOT_GEOMS: tuple[str, ...] = ("left_foot", "right_foot")


@dataclass(frozen=True, eq=False)
class ReferenceMotion:
    """One reference clip sampled at ``fps`` (the control rate).  See the module docstring."""

    name: str
    fps: float
    qpos: np.ndarray  # (T, 26)
    qvel: np.ndarray  # (T, 25)
    site_pos: np.ndarray  # (T, 4, 3) world positions of EE_SITES
    com: np.ndarray  # (T, 3) world COM (subtree_com of the pelvis)
    torso_tilt: np.ndarray  # (T,) rad
    root_height_shift: float = 0.0  # m added to the root height of every frame (ground_feet)

    @property
    def num_frames(self) -> int:
        return int(self.qpos.shape[0])

    @property
    def duration(self) -> float:
        """Seconds from the first to the last frame."""
        return (self.num_frames - 1) / self.fps


def _slerp(q0: np.ndarray, q1: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Row-wise slerp of unit quaternions q0, q1 (N, 4) with fractions a (N,)."""
    dot = np.sum(q0 * q1, axis=1)
    q1 = np.where(dot[:, None] < 0.0, -q1, q1)
    dot = np.clip(np.abs(dot), 0.0, 1.0)
    theta = np.arccos(dot)
    s = np.sin(theta)
    small = s < 1e-6
    s_safe = np.where(small, 1.0, s)
    w0 = np.where(small, 1.0 - a, np.sin((1.0 - a) * theta) / s_safe)
    w1 = np.where(small, a, np.sin(a * theta) / s_safe)
    out = w0[:, None] * q0 + w1[:, None] * q1
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def resample_qpos(qpos: np.ndarray, src_fps: float, dst_fps: float) -> np.ndarray:
    """Resample qpos (T, 26) from ``src_fps`` to ``dst_fps`` over the same time span.

    Output frame k is at time k / dst_fps, for all k with k / dst_fps <= (T-1) / src_fps.
    Positions and joint angles are interpolated linearly, the root quaternion by slerp.
    """
    qpos = np.asarray(qpos, dtype=np.float64)
    T = qpos.shape[0]
    if T == 1 or src_fps == dst_fps:
        return qpos.copy()
    n = int(np.floor((T - 1) / src_fps * dst_fps + 1e-9)) + 1
    return _at_frames(qpos, np.arange(n) * (src_fps / dst_fps))


def _at_frames(qpos: np.ndarray, s: np.ndarray) -> np.ndarray:
    """qpos (T >= 2, 26) at fractional frame indices s (N,) in [0, T-1]: linear for positions and
    joint angles, slerp for the root quaternion.  Returns (N, 26) float64."""
    i0 = np.minimum(np.floor(s).astype(np.int64), len(qpos) - 2)
    a = s - i0
    lo, hi = qpos[i0], qpos[i0 + 1]
    out = lo + a[:, None] * (hi - lo)
    out[:, 3:7] = _slerp(lo[:, 3:7], hi[:, 3:7], a)
    return out


def interpolate_qpos(qpos: np.ndarray, fps: float, times: np.ndarray) -> np.ndarray:
    """qpos (T, 26) sampled at ``fps`` (frame i at time i / fps, s), evaluated at ``times`` (N,) s.

    As :func:`resample_qpos` (linear for positions and joint angles, slerp for the root
    quaternion w, x, y, z) but at arbitrary times; times outside [0, (T-1) / fps] are clamped to
    the first / last frame.  Returns (N, 26) float64.  ValueError for a bad shape or T < 1.
    """
    qpos = np.asarray(qpos, dtype=np.float64)
    if qpos.ndim != 2 or qpos.shape[1] != 26 or qpos.shape[0] < 1:
        raise ValueError(f"interpolate_qpos: expected qpos (T >= 1, 26), got {qpos.shape}")
    T = qpos.shape[0]
    s = np.clip(np.asarray(times, dtype=np.float64) * fps, 0.0, T - 1)
    if T == 1:
        return np.repeat(qpos, len(s), axis=0)
    return _at_frames(qpos, s)


def _lowest_sole_point(model: mujoco.MjModel, data: mujoco.MjData, foot_geoms: list[int]) -> float:
    """World height (m) of the lowest corner of the foot boxes ``foot_geoms`` after kinematics."""
    low = math.inf
    for g in foot_geoms:
        # half extent of a box along world z = sum_j |R[2, j]| * half size_j
        reach = float(np.abs(data.geom_xmat[g, 6:9]) @ model.geom_size[g])
        low = min(low, float(data.geom_xpos[g, 2]) - reach)
    return low


def make_reference(name: str, qpos: np.ndarray, fps: float, ground_feet: bool = False) -> ReferenceMotion:
    """Build a :class:`ReferenceMotion` from qpos (T, 26) already sampled at ``fps``.

    ``ground_feet``: lift the clip so that the median lowest sole point is at z = 0 (module docstring).
    """
    qpos = np.array(qpos, dtype=np.float64)
    if qpos.ndim != 2 or qpos.shape[1] != 26 or qpos.shape[0] < 1:
        raise ValueError(f"reference {name!r}: expected qpos of shape (T, 26), got {qpos.shape}")
    if not np.isfinite(qpos).all():
        raise ValueError(f"reference {name!r}: qpos contains NaN or inf")
    qpos[:, 3:7] /= np.linalg.norm(qpos[:, 3:7], axis=1, keepdims=True)
    # Keep the quaternion sign continuous (q and -q are the same rotation).
    for t in range(1, qpos.shape[0]):
        if np.dot(qpos[t, 3:7], qpos[t - 1, 3:7]) < 0.0:
            qpos[t, 3:7] *= -1.0
    model = load_h1_model()
    data = mujoco.MjData(model)
    T = qpos.shape[0]
    qvel = np.zeros((T, model.nv))
    if T > 1:
        v = np.empty(model.nv)
        for t in range(T):
            a, b = max(t - 1, 0), min(t + 1, T - 1)
            mujoco.mj_differentiatePos(model, v, (b - a) / fps, qpos[a], qpos[b])
            qvel[t] = v
    site_ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, s) for s in EE_SITES]
    imu = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "imu")
    pelvis = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "pelvis")
    site_pos = np.empty((T, len(EE_SITES), 3))
    com = np.empty((T, 3))
    tilt = np.empty(T)
    feet = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, g) for g in FOOT_GEOMS]
    sole = np.empty(T)
    for t in range(T):
        data.qpos[:] = qpos[t]
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        site_pos[t] = data.site_xpos[site_ids]
        com[t] = data.subtree_com[pelvis]
        tilt[t] = np.arccos(np.clip(data.site_xmat[imu, 8], -1.0, 1.0))
        sole[t] = _lowest_sole_point(model, data, feet)
    shift = -float(np.median(sole)) if ground_feet else 0.0
    qpos[:, 2] += shift  # a pure translation: sites and COM move with the root
    site_pos[:, :, 2] += shift
    com[:, 2] += shift
    for arr in (qpos, qvel, site_pos, com, tilt):
        arr.setflags(write=False)
    return ReferenceMotion(name=name, fps=float(fps), qpos=qpos, qvel=qvel, site_pos=site_pos, com=com,
                           torso_tilt=tilt, root_height_shift=shift)


def _resolve_path(name_or_path: str | os.PathLike, root) -> Path:
    s = str(name_or_path)
    p = Path(s).expanduser()
    if s.endswith(".csv") or os.sep in s or p.is_file():
        return p
    clip_dir = resolve_clip_dir(root)
    path = clip_dir / f"{s}.csv"
    if not path.is_file():
        raise ValueError(
            f"unknown clip {s!r} in {clip_dir}; list the available clips with "
            f"`python -c \"from envs.lafan1 import list_clips; print(list_clips())\"` "
            f"(envs.lafan1.list_clips(root))"
        )
    return path


@functools.lru_cache(maxsize=64)
def _load_cached(path: str, control_hz: float, ground_feet: bool) -> ReferenceMotion:
    rows = load_clip_csv(path)
    qpos = resample_qpos(csv_to_qpos(rows), FPS, control_hz)
    return make_reference(Path(path).stem, qpos, control_hz, ground_feet=ground_feet)


def load_reference(name_or_path: str | os.PathLike, control_hz: float = 100, root=None,
                   ground_feet: bool = True) -> ReferenceMotion:
    """Load a LAFAN1-H1 clip by name (e.g. ``"walk1_subject1"``) or CSV path at ``control_hz``.

    ``root`` is the data root (see :func:`envs.lafan1.resolve_clip_dir`).  ``ground_feet``
    lifts the clip by one constant so its typical stance foot stands on the floor (module
    docstring; ``root_height_shift`` holds the lift).  Results are cached per (path, rate,
    ground_feet) in the process; the arrays are read-only.
    Raises ValueError for an unknown clip name, :class:`envs.lafan1.DataError` for bad files.
    """
    if control_hz <= 0:
        raise ValueError(f"control_hz must be positive, got {control_hz}")
    path = _resolve_path(name_or_path, root)
    return _load_cached(str(path.resolve()), float(control_hz), bool(ground_feet))
