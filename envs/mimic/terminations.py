"""Termination terms of the tracking task (mjlab's), batched: each maps states to (N,) bool.

``anchor_z``     |z_ref - z| of the anchor > ``max_anchor_z_error`` (0.25 m);
``gravity``      |g_z,ref - g_z| > ``max_gravity_z_error`` (0.8), g the gravity direction in the anchor frame;
``end_effector`` any end-effector body's |z_ref - z| > ``max_end_effector_z_error`` (0.25 m), the
                 reference anchored to the robot;
``unstable``     non-finite state or action, |qvel| above 1000, or a MuJoCo warning (set by the env).
Truncations: ``time_limit`` (``max_episode_s``) and ``clip_end`` (the clip's last frame).
"""

from __future__ import annotations

import numpy as np

from .config import MimicConfig
from .state import BodyFrames

__all__ = ["termination_terms", "TERMINATIONS"]

TERMINATIONS = ("unstable", "anchor_z", "gravity", "end_effector")


def termination_terms(robot: BodyFrames, ref: BodyFrames, rel: BodyFrames, anchor: int, ee: np.ndarray,
                      cfg: MimicConfig) -> dict[str, np.ndarray]:
    """(N,) bool per term; ``ee`` (E,) indices of the end-effector bodies among the tracked ones."""
    g_ref = -ref.body_mat[:, anchor, 2, 2]  # z of R^T (0, 0, -1)
    g_rob = -robot.body_mat[:, anchor, 2, 2]
    return {
        "anchor_z": np.abs(ref.body_pos[:, anchor, 2] - robot.body_pos[:, anchor, 2]) > cfg.max_anchor_z_error,
        "gravity": np.abs(g_ref - g_rob) > cfg.max_gravity_z_error,
        "end_effector": (np.abs(rel.body_pos[:, ee, 2] - robot.body_pos[:, ee, 2])
                         > cfg.max_end_effector_z_error).any(-1),
    }
