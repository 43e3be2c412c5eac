"""Batched rotation helpers of the tracking task (numpy, rotation matrices; z is up).

Shapes: ``(..., 3, 3)`` rotation matrices, ``(...,)`` angles in rad.
"""

from __future__ import annotations

import numpy as np

__all__ = ["quat_to_mat", "yaw_of", "rot_z", "rotation_angle", "gravity_in"]


def quat_to_mat(q: np.ndarray) -> np.ndarray:
    """(..., 4) unit quaternions (w, x, y, z) -> (..., 3, 3) rotation matrices."""
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    R = np.empty(q.shape[:-1] + (3, 3))
    R[..., 0, 0] = 1 - 2 * (y * y + z * z)
    R[..., 0, 1] = 2 * (x * y - w * z)
    R[..., 0, 2] = 2 * (x * z + w * y)
    R[..., 1, 0] = 2 * (x * y + w * z)
    R[..., 1, 1] = 1 - 2 * (x * x + z * z)
    R[..., 1, 2] = 2 * (y * z - w * x)
    R[..., 2, 0] = 2 * (x * z - w * y)
    R[..., 2, 1] = 2 * (y * z + w * x)
    R[..., 2, 2] = 1 - 2 * (x * x + y * y)
    return R


def yaw_of(R: np.ndarray) -> np.ndarray:
    """Heading (rad) of a frame: the angle of its x axis projected on the floor, (..., 3, 3) -> (...)."""
    return np.arctan2(R[..., 1, 0], R[..., 0, 0])


def rot_z(yaw: np.ndarray) -> np.ndarray:
    """Rotations about world z by ``yaw`` (...,) rad -> (..., 3, 3)."""
    c, s = np.cos(yaw), np.sin(yaw)
    R = np.zeros(np.shape(yaw) + (3, 3))
    R[..., 0, 0], R[..., 0, 1], R[..., 1, 0], R[..., 1, 1], R[..., 2, 2] = c, -s, s, c, 1.0
    return R


def rotation_angle(Ra: np.ndarray, Rb: np.ndarray) -> np.ndarray:
    """Angle (rad, in [0, pi]) of the rotation between two frames, (..., 3, 3) x2 -> (...)."""
    tr = np.einsum("...ij,...ij->...", Ra, Rb)  # trace(Ra^T Rb)
    return np.arccos(np.clip(0.5 * (tr - 1.0), -1.0, 1.0))


def gravity_in(R: np.ndarray) -> np.ndarray:
    """World gravity direction (0, 0, -1) in the frame R, (..., 3, 3) -> (..., 3): -R^T e_z."""
    return -R[..., 2, :]
