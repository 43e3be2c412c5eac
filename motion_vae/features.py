"""Per-frame relative-pose features of H1 motions, by MuJoCo forward kinematics.

Input is MuJoCo ``qpos`` of shape (T, 26) (root position m, root quaternion
w, x, y, z, 19 joint angles rad; see :func:`envs.lafan1.csv_to_qpos`) at
``fps`` frames per second.  Output is float32 of shape (T, F), F = 108 for our
H1 model (:mod:`envs.model`).

Everything is expressed in the *heading frame*: the yaw-only rotation
``Rz(yaw)`` of the root, ``yaw = atan2(R[1, 0], R[0, 0])`` (the root's x axis
projected on the floor), with its origin at the root.  Velocities are central
finite differences (``np.gradient``, one-sided at the clip ends).

=============== ======== ============ ==================================================
block           unit     columns      content
=============== ======== ============ ==================================================
root_height     m        0            root z above the floor
root_tilt       -        1 - 6        columns 0 and 1 of Rz(-yaw) @ R_root (6D rotation,
                                      yaw removed): c0x, c0y, c0z, c1x, c1y, c1z
root_lin_vel    m/s      7 - 9        d(root position)/dt (world), rotated into heading
root_ang_vel    rad/s    10 - 12      x, y: root angular velocity (world, from consecutive
                                      quaternions) rotated into heading; z: yaw rate
                                      d(yaw)/dt of the heading (= world angular
                                      velocity z while the root is upright)
joint_pos       rad      13 - 31      19 hinge angles, :data:`envs.model.JOINT_NAMES`
joint_vel       rad/s    32 - 50      their time derivatives
body_pos        m        51 - 107     for each body except world and pelvis (id order,
                                      19 bodies): Rz(-yaw) @ (xpos_body - xpos_root),
                                      x, y, z
=============== ======== ============ ==================================================

(Column ranges are inclusive here; :func:`feature_layout` gives half-open
``[start, stop)`` ranges computed from the model.)

:func:`features_to_qpos` inverts the features back to a qpos trajectory (root
height and tilt directly, yaw and root x, y by trapezoidal integration of the
yaw rate and of the heading-frame linear velocity, joint angles directly).
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from envs.model import JOINT_NAMES, load_h1_model

__all__ = [
    "FeatureBlock",
    "feature_layout",
    "feature_names",
    "num_features",
    "compute_features",
    "features_to_qpos",
]

_NQ = 26
_NJ = len(JOINT_NAMES)
_DEFAULT_MODEL: mujoco.MjModel | None = None


@dataclass(frozen=True)
class FeatureBlock:
    """One block of feature columns: ``features[:, start:stop]``, in ``unit``."""

    name: str
    unit: str
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start


def _model(model: mujoco.MjModel | None) -> mujoco.MjModel:
    global _DEFAULT_MODEL
    if model is not None:
        return model
    if _DEFAULT_MODEL is None:
        _DEFAULT_MODEL = load_h1_model()
    return _DEFAULT_MODEL


def _body_ids(model: mujoco.MjModel) -> list[int]:
    """Body ids of body_pos (all bodies except world (0) and the root body (1))."""
    return list(range(2, model.nbody))


def feature_layout(model: mujoco.MjModel | None = None) -> list[FeatureBlock]:
    """The feature blocks, in column order, covering ``[0, F)`` without gaps."""
    m = _model(model)
    sizes = [
        ("root_height", "m", 1),
        ("root_tilt", "-", 6),
        ("root_lin_vel", "m/s", 3),
        ("root_ang_vel", "rad/s", 3),
        ("joint_pos", "rad", _NJ),
        ("joint_vel", "rad/s", _NJ),
        ("body_pos", "m", 3 * len(_body_ids(m))),
    ]
    blocks, start = [], 0
    for name, unit, n in sizes:
        blocks.append(FeatureBlock(name, unit, start, start + n))
        start += n
    return blocks


def num_features(model: mujoco.MjModel | None = None) -> int:
    """F, the number of feature columns (108 for our H1 model)."""
    return feature_layout(model)[-1].stop


def feature_names(model: mujoco.MjModel | None = None) -> list[str]:
    """Per-column names, e.g. ``root_tilt/c0x``, ``joint_vel/left_knee_joint``,
    ``body_pos/left_knee_link/x``; length F."""
    m = _model(model)
    names = ["root_height"]
    names += [f"root_tilt/c{c}{a}" for c in (0, 1) for a in "xyz"]
    names += [f"root_lin_vel/{a}" for a in "xyz"]
    names += [f"root_ang_vel/{a}" for a in "xyz"]
    names += [f"joint_pos/{j}" for j in JOINT_NAMES]
    names += [f"joint_vel/{j}" for j in JOINT_NAMES]
    names += [f"body_pos/{m.body(b).name}/{a}" for b in _body_ids(m) for a in "xyz"]
    return names


# ----------------------------------------------------------------------------- quaternion helpers
def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def _quat_to_mat(q: np.ndarray) -> np.ndarray:
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=-2,
    )


def _mat_to_quat(R: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> unit quaternions (..., 4) w, x, y, z (w >= 0)."""
    m00, m11, m22 = R[..., 0, 0], R[..., 1, 1], R[..., 2, 2]
    # squared magnitudes of the four components, each from the trace; pick the largest
    cand = np.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1
    )
    k = np.argmax(cand, axis=-1)
    s = np.sqrt(np.maximum(np.take_along_axis(cand, k[..., None], -1)[..., 0], 1e-12)) * 2  # 4*|q_k|
    d21, d02, d10 = R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]
    s21, s02, s10 = R[..., 2, 1] + R[..., 1, 2], R[..., 0, 2] + R[..., 2, 0], R[..., 1, 0] + R[..., 0, 1]
    q = np.empty(R.shape[:-2] + (4,))
    opts = [
        np.stack([s / 4, d21 / s, d02 / s, d10 / s], -1),
        np.stack([d21 / s, s / 4, s10 / s, s02 / s], -1),
        np.stack([d02 / s, s10 / s, s / 4, s21 / s], -1),
        np.stack([d10 / s, s02 / s, s21 / s, s / 4], -1),
    ]
    for i in range(4):
        sel = k == i
        q[sel] = opts[i][sel]
    q *= np.where(q[..., :1] < 0, -1.0, 1.0)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def _rot_z(yaw: np.ndarray) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    o, z = np.ones_like(yaw), np.zeros_like(yaw)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def _angular_velocity(quat: np.ndarray, fps: float) -> np.ndarray:
    """World-frame angular velocity (T, 3) rad/s of unit quaternions (T, 4) w,x,y,z,
    central differences (one-sided at the ends), like np.gradient."""
    T = quat.shape[0]
    if T < 2:
        return np.zeros((T, 3))
    nxt = np.concatenate([quat[1:2], quat[2:], quat[-1:]])
    prv = np.concatenate([quat[:1], quat[:-2], quat[-2:-1]])
    span = np.full(T, 2.0)
    span[0] = span[-1] = 1.0
    conj = prv * np.array([1.0, -1.0, -1.0, -1.0])
    dq = _quat_mul(nxt, conj)  # world-frame rotation from prv to nxt
    dq *= np.where(dq[:, :1] < 0, -1.0, 1.0)
    v = dq[:, 1:]
    sn = np.linalg.norm(v, axis=1)
    w = dq[:, 0]
    safe = sn > 1e-12
    factor = np.where(safe, 2 * np.arctan2(sn, w) / np.where(safe, sn, 1.0), 2.0 / np.maximum(w, 1e-12))
    return v * (factor / span * fps)[:, None]


def _check_fps(fps: float) -> float:
    fps = float(fps)
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive finite number, got {fps}")
    return fps


def heading_yaw(quat: np.ndarray) -> np.ndarray:
    """Heading (yaw, rad) of root quaternions (..., 4) w, x, y, z: the root x axis on the floor."""
    R = _quat_to_mat(np.asarray(quat, dtype=np.float64).reshape(-1, 4))
    return np.arctan2(R[:, 1, 0], R[:, 0, 0]).reshape(np.shape(quat)[:-1])


# ----------------------------------------------------------------------------- features
def compute_features(qpos: np.ndarray, fps: float = 30.0, model: mujoco.MjModel | None = None) -> np.ndarray:
    """Features (T, F) float32 of a qpos trajectory (T, 26); see the module docstring."""
    fps = _check_fps(fps)
    m = _model(model)
    qpos = np.asarray(qpos, dtype=np.float64)
    if qpos.ndim != 2 or qpos.shape[1] != m.nq or m.nq != _NQ:
        raise ValueError(f"qpos: expected shape (T, {_NQ}), got {qpos.shape}")
    if qpos.shape[0] < 1:
        raise ValueError("qpos: needs at least one frame, got 0")
    if not np.isfinite(qpos).all():
        bad = int(np.flatnonzero(~np.isfinite(qpos).all(axis=1))[0])
        raise ValueError(f"qpos: contains NaN or inf (first at frame {bad})")
    qn = np.linalg.norm(qpos[:, 3:7], axis=1)
    if (qn < 1e-6).any():
        raise ValueError(f"qpos: root quaternion of ~zero norm at frame {int(np.argmin(qn))}")
    T = qpos.shape[0]
    quat = qpos[:, 3:7] / qn[:, None]
    pos = qpos[:, :3]
    joints = qpos[:, 7:]

    R = _quat_to_mat(quat)  # (T, 3, 3) root -> world
    yaw = np.arctan2(R[:, 1, 0], R[:, 0, 0])
    Hinv = _rot_z(-yaw)  # world -> heading
    Rh = Hinv @ R
    tilt = np.concatenate([Rh[:, :, 0], Rh[:, :, 1]], axis=1)

    if T >= 2:
        lin_vel = np.gradient(pos, 1.0 / fps, axis=0)
        joint_vel = np.gradient(joints, 1.0 / fps, axis=0)
    else:
        lin_vel = np.zeros((T, 3))
        joint_vel = np.zeros((T, _NJ))
    ang_vel = _angular_velocity(quat, fps)
    lin_vel_h = np.einsum("tij,tj->ti", Hinv, lin_vel)
    ang_vel_h = np.einsum("tij,tj->ti", Hinv, ang_vel)
    # z: the heading's yaw rate d(yaw)/dt (equal to the world angular velocity's z
    # while the root is upright); it makes the yaw integrable exactly-ish.
    ang_vel_h[:, 2] = np.gradient(np.unwrap(yaw), 1.0 / fps) if T >= 2 else 0.0

    bids = _body_ids(m)
    xpos = np.empty((T, m.nbody, 3))
    d = mujoco.MjData(m)
    q_all = np.concatenate([pos, quat, joints], axis=1)
    for t in range(T):
        d.qpos[:] = q_all[t]
        mujoco.mj_kinematics(m, d)
        xpos[t] = d.xpos
    rel = xpos[:, bids, :] - xpos[:, 1:2, :]
    body_h = np.einsum("tij,tbj->tbi", Hinv, rel).reshape(T, -1)

    out = np.concatenate(
        [pos[:, 2:3], tilt, lin_vel_h, ang_vel_h, joints, joint_vel, body_h], axis=1
    ).astype(np.float32)
    assert out.shape[1] == num_features(m)
    return out


def _trapezoid_cumsum(x: np.ndarray, dt: float) -> np.ndarray:
    """Cumulative trapezoidal integral along axis 0, starting at 0."""
    inc = 0.5 * (x[1:] + x[:-1]) * dt
    return np.concatenate([np.zeros((1,) + x.shape[1:]), np.cumsum(inc, axis=0)])


def features_to_qpos(
    features: np.ndarray,
    fps: float = 30.0,
    root_xy0: tuple[float, float] = (0.0, 0.0),
    yaw0: float = 0.0,
    model: mujoco.MjModel | None = None,
) -> np.ndarray:
    """Reconstruct a qpos trajectory (T, 26) float64 from features (T, F).

    Root height and tilt (Gram-Schmidt of the 6D columns) are taken directly;
    yaw starts at ``yaw0`` (rad) and integrates ``root_ang_vel`` z; root x, y start
    at ``root_xy0`` (m) and integrate ``root_lin_vel`` x, y rotated by the yaw
    (trapezoidal rule, dt = 1/fps); joint angles are ``joint_pos``.
    """
    fps = _check_fps(fps)
    F = num_features(model)
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[1] != F:
        raise ValueError(f"features: expected shape (T, {F}), got {f.shape}")
    if f.shape[0] < 1:
        raise ValueError("features: needs at least one frame, got 0")
    if not np.isfinite(f).all():
        bad = int(np.flatnonzero(~np.isfinite(f).all(axis=1))[0])
        raise ValueError(f"features: contains NaN or inf (first at frame {bad})")
    xy0 = np.asarray(root_xy0, dtype=np.float64)
    if xy0.shape != (2,) or not np.isfinite(xy0).all() or not np.isfinite(yaw0):
        raise ValueError(f"root_xy0 must be 2 finite numbers and yaw0 finite, got {root_xy0}, {yaw0}")
    blk = {b.name: slice(b.start, b.stop) for b in feature_layout(model)}
    dt = 1.0 / fps
    T = f.shape[0]

    a = f[:, blk["root_tilt"]][:, :3]
    b = f[:, blk["root_tilt"]][:, 3:]
    na = np.linalg.norm(a, axis=1, keepdims=True)
    if (na < 1e-6).any():
        raise ValueError(f"features: root_tilt column 0 of ~zero norm at frame {int(np.argmin(na))}")
    c0 = a / na
    b = b - np.sum(c0 * b, axis=1, keepdims=True) * c0
    nb = np.linalg.norm(b, axis=1, keepdims=True)
    if (nb < 1e-6).any():
        raise ValueError(f"features: root_tilt columns parallel at frame {int(np.argmin(nb))}")
    c1 = b / nb
    Rh = np.stack([c0, c1, np.cross(c0, c1)], axis=-1)

    yaw = float(yaw0) + _trapezoid_cumsum(f[:, blk["root_ang_vel"]][:, 2], dt)
    H = _rot_z(yaw)
    quat = _mat_to_quat(H @ Rh)
    # keep the quaternion sign continuous over time
    flips = np.concatenate([[1.0], np.sign(np.sum(quat[1:] * quat[:-1], axis=1))])
    flips[flips == 0] = 1.0
    quat *= np.cumprod(flips)[:, None]

    v_world = np.einsum("tij,tj->ti", H[:, :2, :2], f[:, blk["root_lin_vel"]][:, :2])
    xy = xy0 + _trapezoid_cumsum(v_world, dt)

    qpos = np.empty((T, _NQ))
    qpos[:, :2] = xy
    qpos[:, 2] = f[:, blk["root_height"]][:, 0]
    qpos[:, 3:7] = quat
    qpos[:, 7:] = f[:, blk["joint_pos"]]
    return qpos
