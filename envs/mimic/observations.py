"""Observation of the tracking task, batched: the actor's vector (float32, N x obs_dim).

proprio (67) = [ joint angles q (19, rad) | joint velocities (19, rad/s)
               | anchor (pelvis) angular velocity in the anchor frame (3, rad/s)
               | anchor linear velocity in the anchor frame (3, m/s)
               | gravity direction in the anchor frame (3) | anchor height (1, m)
               | previous action (19) ]
goal, per reference offset o (47 each) = [ reference joint angles (19) | reference joint velocities (19)
               | reference anchor position in the robot's anchor frame (3, m)
               | first two columns of R_anchor^T R_ref_anchor (6) ]
The goal's reference is the one tracked (a clip, or a decoded motion); nothing else is observed.
"""

from __future__ import annotations

import numpy as np

from .state import BodyFrames
from .transforms import gravity_in

__all__ = ["PROPRIO_DIM", "GOAL_FRAME_DIM", "observation", "obs_dim", "observation_layout"]


#: The proprio blocks in observation order: (name, size).  Frames: ``_b`` = the anchor (pelvis) body frame.
PROPRIO_BLOCKS: tuple[tuple[str, int], ...] = (
    ("joint_pos", 19), ("joint_vel", 19), ("anchor_ang_vel_b", 3), ("anchor_lin_vel_b", 3),
    ("projected_gravity_b", 3), ("anchor_height", 1), ("prev_action", 19))
#: The blocks of one goal frame: (name, size); each name gets the suffix ``@+OFFSET`` (control frames ahead).
GOAL_BLOCKS: tuple[tuple[str, int], ...] = (
    ("ref_joint_pos", 19), ("ref_joint_vel", 19), ("ref_anchor_pos_b", 3), ("ref_anchor_ori_6d", 6))
PROPRIO_DIM = sum(n for _, n in PROPRIO_BLOCKS)   # 67
GOAL_FRAME_DIM = sum(n for _, n in GOAL_BLOCKS)   # 47


def obs_dim(num_offsets: int) -> int:
    return PROPRIO_DIM + GOAL_FRAME_DIM * num_offsets


def observation_layout(offsets) -> list[tuple[str, int]]:
    """The observation's blocks in order, (name, size) each, for reference ``offsets`` (control
    frames ahead, e.g. (1, 4)); the sizes add up to :func:`obs_dim` (161 for two offsets)."""
    out = list(PROPRIO_BLOCKS)
    for o in offsets:
        out += [(f"{name}@+{int(o)}", n) for name, n in GOAL_BLOCKS]
    return out


def observation(robot: BodyFrames, goals: list[BodyFrames], anchor: int, prev_action: np.ndarray) -> np.ndarray:
    """(N, obs_dim) float32: proprio, then one goal block per reference frame in ``goals``."""
    p, R = robot.body_pos[:, anchor], robot.body_mat[:, anchor]  # (N, 3), (N, 3, 3)
    Rt = np.swapaxes(R, -1, -2)
    local = lambda v: np.einsum("nij,nj->ni", Rt, v)  # noqa: E731  world vector -> anchor frame
    parts = [robot.joint_pos, robot.joint_vel, local(robot.body_ang_vel[:, anchor]),
             local(robot.body_lin_vel[:, anchor]), gravity_in(R), p[:, 2:3], prev_action]
    for ref in goals:
        rel_R = Rt @ ref.body_mat[:, anchor]
        parts += [ref.joint_pos, ref.joint_vel, local(ref.body_pos[:, anchor] - p), rel_R[:, :, 0], rel_R[:, :, 1]]
    obs = np.concatenate(parts, axis=1)
    return np.nan_to_num(obs, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
