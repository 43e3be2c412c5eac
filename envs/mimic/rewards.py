"""Reward terms of the tracking task (mjlab's tracking rewards), batched over N environments.

Each term maps the robot's state, the reference's and the actions to (N,) numbers; the reward
is sum_i w_i term_i times the control dt (weights and sigmas in :class:`MimicConfig`).
Positive terms are exp(-error^2 / sigma^2) in [0, 1]:

``anchor_pos``   |p_ref - p| of the anchor (world frame), sigma 0.3 m;
``anchor_ori``   angle between the anchors' orientations, sigma 0.4 rad;
``body_pos``     mean over tracked bodies of |p_ref - p|^2, reference anchored to the robot, 0.3 m;
``body_ori``     mean of the squared angles, anchored, 0.4 rad;
``body_lin_vel`` mean of |v_ref - v|^2 (reference velocities turned by the heading difference), 1 m/s;
``body_ang_vel`` mean of |w_ref - w|^2, likewise, pi rad/s;
``feet_height``  mean over both feet of (z_ref - z)^2, z the sole's lowest point above the floor
                 (world frame), sigma 0.05 m: DeepMimic's end-effector term on height only.  The body
                 terms' 0.3 m sigma cannot see a swing foot's 2 cm of clearance; a foot that drags
                 trips the robot (weight 0 in the shipped preset).
Penalties: ``action_rate`` |a_t - a_{t-1}|^2 (weight -0.1); ``joint_limit`` sum of the joint
angles' excursions beyond ``soft_joint_limit`` of each range, rad (weight -10).
"""

from __future__ import annotations

import numpy as np

from .config import MimicConfig
from .state import BodyFrames
from .transforms import rotation_angle

__all__ = ["reward_terms", "total_reward", "sole_height", "REWARD_TERMS"]

REWARD_TERMS = ("anchor_pos", "anchor_ori", "body_pos", "body_ori", "body_lin_vel", "body_ang_vel",
                "feet_height", "action_rate", "joint_limit")


def _kernel(sq_err: np.ndarray, sigma: float) -> np.ndarray:
    return np.exp(-sq_err / sigma**2)


def sole_height(frames: BodyFrames, feet: tuple[int, int], corners: np.ndarray) -> np.ndarray:
    """(N, 2) height (m) of each foot's lowest sole corner; ``feet`` the ankle bodies' indices among
    the tracked bodies, ``corners`` (8, 3) the foot box's corners in the ankle frame (m)."""
    idx = list(feet)
    z = frames.body_pos[:, idx, 2, None] + np.einsum("nfj,cj->nfc", frames.body_mat[:, idx, 2, :], corners)
    return z.min(-1)


def reward_terms(robot: BodyFrames, ref: BodyFrames, rel: BodyFrames, anchor: int, action: np.ndarray,
                 prev_action: np.ndarray, soft_lo: np.ndarray, soft_hi: np.ndarray,
                 cfg: MimicConfig, feet: tuple[int, int], sole_corners: np.ndarray) -> dict[str, np.ndarray]:
    """The terms above, each (N,).  ``ref`` is the reference in the world frame, ``rel`` anchored
    to the robot (:func:`envs.mimic.state.anchored`); action, prev_action (N, 19);
    soft_lo/soft_hi (19,) the soft joint limits (rad); ``feet``, ``sole_corners`` as :func:`sole_height`."""
    q = robot.joint_pos
    dz = sole_height(ref, feet, sole_corners) - sole_height(robot, feet, sole_corners)
    return {
        "anchor_pos": _kernel(np.sum((ref.body_pos[:, anchor] - robot.body_pos[:, anchor]) ** 2, -1),
                              cfg.sigma_anchor_pos),
        "anchor_ori": _kernel(rotation_angle(ref.body_mat[:, anchor], robot.body_mat[:, anchor]) ** 2,
                              cfg.sigma_anchor_ori),
        "body_pos": _kernel(np.mean(np.sum((rel.body_pos - robot.body_pos) ** 2, -1), -1), cfg.sigma_body_pos),
        "body_ori": _kernel(np.mean(rotation_angle(rel.body_mat, robot.body_mat) ** 2, -1), cfg.sigma_body_ori),
        "body_lin_vel": _kernel(np.mean(np.sum((rel.body_lin_vel - robot.body_lin_vel) ** 2, -1), -1),
                                cfg.sigma_body_lin_vel),
        "body_ang_vel": _kernel(np.mean(np.sum((rel.body_ang_vel - robot.body_ang_vel) ** 2, -1), -1),
                                cfg.sigma_body_ang_vel),
        "feet_height": _kernel(np.mean(dz**2, -1), cfg.sigma_feet_height),
        "action_rate": np.sum((action - prev_action) ** 2, -1),
        "joint_limit": np.sum(np.maximum(q - soft_hi, 0.0) + np.maximum(soft_lo - q, 0.0), -1),
    }


def total_reward(terms: dict[str, np.ndarray], cfg: MimicConfig) -> np.ndarray:
    """sum_i w_i term_i * control dt, (N,)."""
    total = sum(getattr(cfg, "w_" + name) * terms[name] for name in REWARD_TERMS)
    return total * cfg.control_dt
