"""The batched state the term functions read: the robot's and the reference's, side by side.

``BodyFrames`` holds N states (N environments, B tracked bodies, J = 19 joints): qpos (N, 26),
qvel (N, 25), body_pos (N, B, 3) m, body_mat (N, B, 3, 3), body_lin_vel (N, B, 3) m/s (of each body
origin, world frame), body_ang_vel (N, B, 3) rad/s (world frame), com (N, 3) m.  The robot's come
from MuJoCo after each control step; the reference's are rows of :class:`envs.mimic.motion.MotionLibrary`.
``anchored`` re-expresses reference bodies about the robot's anchor (mjlab's body_pos_relative_w).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .transforms import rot_z, yaw_of

__all__ = ["BodyFrames", "reference_frames", "anchored"]


@dataclass
class BodyFrames:
    qpos: np.ndarray
    qvel: np.ndarray
    body_pos: np.ndarray
    body_mat: np.ndarray
    body_lin_vel: np.ndarray
    body_ang_vel: np.ndarray
    com: np.ndarray

    @classmethod
    def empty(cls, n: int, b: int) -> "BodyFrames":
        return cls(np.zeros((n, 26)), np.zeros((n, 25)), np.zeros((n, b, 3)), np.tile(np.eye(3), (n, b, 1, 1)),
                   np.zeros((n, b, 3)), np.zeros((n, b, 3)), np.zeros((n, 3)))

    @property
    def joint_pos(self) -> np.ndarray:
        return self.qpos[:, 7:]

    @property
    def joint_vel(self) -> np.ndarray:
        return self.qvel[:, 6:]


def reference_frames(lib, g: np.ndarray) -> BodyFrames:
    """Rows ``g`` (N,) of the motion library as a BodyFrames."""
    return BodyFrames(lib.qpos[g], lib.qvel[g], lib.body_pos[g], lib.body_mat[g], lib.body_lin_vel[g],
                      lib.body_ang_vel[g], lib.com[g])


def anchored(robot: BodyFrames, ref: BodyFrames, anchor: int) -> BodyFrames:
    """The reference moved onto the robot's anchor: rotated about z by the heading difference and
    shifted so the anchors share x, y (the reference keeps its anchor height).  Positions,
    orientations, velocities and COM all move; qpos/qvel are the reference's own."""
    ra, fa = robot.body_pos[:, anchor], ref.body_pos[:, anchor]
    Rz = rot_z(yaw_of(robot.body_mat[:, anchor]) - yaw_of(ref.body_mat[:, anchor]))  # (N, 3, 3)
    origin = np.concatenate([ra[:, :2], fa[:, 2:]], axis=1)
    rotate = lambda v: np.einsum("nij,n...j->n...i", Rz, v)  # noqa: E731
    return BodyFrames(
        qpos=ref.qpos, qvel=ref.qvel,
        body_pos=origin[:, None] + rotate(ref.body_pos - fa[:, None]),
        body_mat=Rz[:, None] @ ref.body_mat,
        body_lin_vel=rotate(ref.body_lin_vel), body_ang_vel=rotate(ref.body_ang_vel),
        com=origin + rotate(ref.com - fa),
    )
