"""Actions of the tracking task: PD joint targets, the optional balance feedback, the assist.

PD (mjlab's joint-position action): target = reference joint angles of the next frame
+ scale * a, scale = ``action_scale`` * torque limit / kp per joint (rad), so a = 4 asks for the
motor's full torque against a static error; a is clipped to +-``action_clip``.  The PD law runs in
every physics step as MuJoCo position actuators (:func:`envs.tracking.use_position_actuators`),
with ``kp_scale`` times Unitree's H1 gains (stiffness and damping), torques clipped to the limits.

Balance feedback (``balance``): the capture point xi = c + v / omega0 (c the COM, v the pelvis
velocity, omega0 = sqrt(g / z_c), the linear inverted pendulum of Kajita et al. 2001) is compared
with the anchored reference's; its error in the heading frame (forward e_x, left e_y, m) moves the
stance ankles' pitch targets (the centre of pressure after the capture point, Pratt et al. 2006)
and the swing leg's hip roll and pitch targets (the foot lands nearer the capture point, Raibert
1986), each bounded by ``balance_limit`` (:func:`balance_offsets`).  Two terms of SIMBICON (Yin
et al. 2007) can be added: the stance hips hold the pelvis at the reference's world pitch and
roll (``balance_torso_gain``, rad of hip target per rad of pelvis tilt error), and the swing hip
keeps its thigh's world angle when the pelvis tilts (``balance_swing_world``).  The policy acts on top.

Assist (``assist``, training only): a wrench on the pelvis, a PD law towards the reference
anchor's height (force along z) and orientation (torque), each capped at its ``assist_cap_*``
times ``scale`` in [0, 1], the curriculum factor that falls as episodes succeed.
"""

from __future__ import annotations


import numpy as np

from envs.model import JOINT_NAMES, TORQUE_LIMITS

from .config import MimicConfig
from .state import BodyFrames
from .transforms import yaw_of

__all__ = ["action_scale", "pd_targets", "balance_offsets", "pelvis_tilt_error", "assist_wrench", "GRAVITY"]

GRAVITY = 9.81


def action_scale(cfg: MimicConfig, kp: np.ndarray) -> np.ndarray:
    """(19,) rad per unit action: ``action_scale`` * torque limit / kp."""
    return cfg.action_scale * np.asarray(TORQUE_LIMITS) / kp


def pd_targets(ref_next_q: np.ndarray, action: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(N, 19) joint targets (rad) = reference joint angles (N, 19) + scale (19,) * action (N, 19)."""
    return ref_next_q + scale * action


def balance_offsets(robot: BodyFrames, rel: BodyFrames, anchor: int, feet: tuple[int, int], cfg: MimicConfig) -> np.ndarray:
    """(N, 19) target offsets (rad) of the capture-point feedback (module docstring); ``rel`` is the
    reference anchored to the robot, ``feet`` the (left, right) ankle indices among the tracked bodies.

    A leg swings when the reference lifts its ankle 3 cm above the other one; else it stands.
    Stance ankles: + ``balance_ankle_gain`` e_x (toes down, the COP forward, when the capture point
    runs ahead).  Swing hip roll: + ``balance_hip_roll_gain`` e_y, swing hip pitch:
    - ``balance_ankle_gain`` e_x (the foot lands nearer the capture point: Raibert's placement).
    """
    v = robot.qvel[:, :3]
    v_ref = rel.body_lin_vel[:, anchor]
    omega0 = np.sqrt(GRAVITY / np.maximum(rel.com[:, 2], 0.3))
    err = (robot.com[:, :2] + v[:, :2] / omega0[:, None]) - (rel.com[:, :2] + v_ref[:, :2] / omega0[:, None])
    yaw = yaw_of(robot.body_mat[:, anchor])
    c, s = np.cos(yaw), np.sin(yaw)
    lim = cfg.balance_limit
    ex = np.clip(cfg.balance_ankle_gain * (c * err[:, 0] + s * err[:, 1]), -lim, lim)
    ey = np.clip(cfg.balance_hip_roll_gain * (-s * err[:, 0] + c * err[:, 1]), -lim, lim)
    dz = rel.body_pos[:, feet[0], 2] - rel.body_pos[:, feet[1], 2]
    swing = np.stack([dz > 0.03, dz < -0.03], 1)  # (N, 2): left, right
    pitch_err, roll_err = pelvis_tilt_error(robot.body_mat[:, anchor], rel.body_mat[:, anchor])
    torso_p = np.clip(cfg.balance_torso_gain * pitch_err, -lim, lim)
    torso_r = np.clip(cfg.balance_torso_gain * roll_err, -lim, lim)
    world = 1.0 if cfg.balance_swing_world else 0.0
    out = np.zeros((len(v), len(JOINT_NAMES)))
    for leg, side in enumerate(("left", "right")):
        sw = swing[:, leg]
        out[:, JOINT_NAMES.index(f"{side}_ankle_joint")] = np.where(sw, 0.0, ex)
        out[:, JOINT_NAMES.index(f"{side}_hip_roll_joint")] = np.where(sw, ey - world * roll_err, torso_r)
        out[:, JOINT_NAMES.index(f"{side}_hip_pitch_joint")] = np.where(sw, -ex - world * pitch_err, torso_p)
    return out


def pelvis_tilt_error(R: np.ndarray, R_ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pitch and roll (rad, (N,) each) of the pelvis frames R (N, 3, 3) minus the reference's R_ref,
    measured in the robot's heading frame: pitch > 0 tips forward, roll > 0 lifts the left side.
    A stance hip whose target moves by +pitch (+roll) pushes the pelvis back towards the reference's
    tilt; a swing hip moved by -pitch (-roll) keeps its thigh's world angle."""
    yaw = yaw_of(R)
    c, s = np.cos(yaw), np.sin(yaw)

    def tilt(M):
        u = M[:, :, 2]  # the frame's up axis in the world
        fwd, left = c * u[:, 0] + s * u[:, 1], -s * u[:, 0] + c * u[:, 1]
        return np.arctan2(fwd, u[:, 2]), np.arctan2(-left, u[:, 2])

    (p, r), (p_ref, r_ref) = tilt(R), tilt(R_ref)
    return p - p_ref, r - r_ref


def _clip_norm(x: np.ndarray, cap: float) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x * np.minimum(1.0, cap / np.maximum(n, 1e-9))


def assist_wrench(robot: BodyFrames, ref: BodyFrames, anchor: int, scale: float, cfg: MimicConfig) -> np.ndarray:
    """(N, 6) pelvis wrench (force N, torque N m; world frame, MuJoCo's xfrc_applied layout)."""
    n = len(robot.qpos)
    out = np.zeros((n, 6))
    if scale <= 0:
        return out
    dz = ref.body_pos[:, anchor, 2] - robot.body_pos[:, anchor, 2]
    dvz = ref.body_lin_vel[:, anchor, 2] - robot.body_lin_vel[:, anchor, 2]
    out[:, 2] = np.clip(cfg.assist_kp_pos * dz + cfg.assist_kd_pos * dvz,
                        -cfg.assist_cap_force * scale, cfg.assist_cap_force * scale)
    R, R_ref = robot.body_mat[:, anchor], ref.body_mat[:, anchor]
    E = R_ref @ np.swapaxes(R, -1, -2)  # rotation taking the robot's frame to the reference's (world)
    sin_axis = 0.5 * np.stack([E[:, 2, 1] - E[:, 1, 2], E[:, 0, 2] - E[:, 2, 0], E[:, 1, 0] - E[:, 0, 1]], -1)
    sin_axis[:, 2] = 0.0  # no help with the heading: only with staying upright
    dw = ref.body_ang_vel[:, anchor] - robot.body_ang_vel[:, anchor]
    dw[:, 2] = 0.0
    out[:, 3:] = _clip_norm(cfg.assist_kp_ori * sin_axis + cfg.assist_kd_ori * dw, cfg.assist_cap_torque * scale)
    return out


