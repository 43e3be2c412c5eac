"""DeepMimic imitation reward for the H1 tracking environment.

Peng, Abbeel, Levine, van de Panne (2018), "DeepMimic: Example-Guided Deep
Reinforcement Learning of Physics-Based Character Skills", ACM TOG 37(4),
Sec. 5, Eq. 5-9:

    r = w_p r_pose + w_v r_vel + w_e r_ee + w_c r_com,   (w_p, w_v, w_e, w_c) = (0.65, 0.1, 0.15, 0.1)
    r_pose = exp(-2   * sum_j angle(q_j_ref^-1 q_j)^2)        (Eq. 6)
    r_vel  = exp(-0.1 * sum_j ||qdot_j_ref - qdot_j||^2)      (Eq. 7)
    r_ee   = exp(-40  * sum_e ||p_e_ref - p_e||^2)            (Eq. 8)
    r_com  = exp(-10  * ||p_c_ref - p_c||^2)                  (Eq. 9)

Adaptation to the H1 (hinge joints): the pose sum runs over the 19 hinge angle
errors plus the root orientation error as a quaternion angle (DeepMimic uses the
quaternions of all joints, root included); the velocity sum over the 19 hinge
velocities plus the root angular velocity (local frame, MuJoCo free-joint qvel);
end-effector positions (feet, hands) are taken relative to the root position,
world-aligned (no rotation), as in DeepMimic; the COM is the world COM.

An optional torque penalty ``-w * mean((tau / tau_limit)^2)`` is added to the
total (``w = 0`` by default, so the reward is in [0, 1] and equals 1 exactly for
a state equal to the reference).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "W_POSE", "W_VEL", "W_EE", "W_COM",
    "K_POSE", "K_VEL", "K_EE", "K_COM",
    "quat_angle", "imitation_reward",
]

# Term weights, DeepMimic Eq. 5 (Peng et al. 2018).
W_POSE = 0.65
W_VEL = 0.1
W_EE = 0.15
W_COM = 0.1

# Kernel scales, DeepMimic Eq. 6 (pose), Eq. 7 (velocity), Eq. 8 (end effector), Eq. 9 (COM).
K_POSE = 2.0
K_VEL = 0.1
K_EE = 40.0
K_COM = 10.0


def quat_angle(q1, q2) -> float:
    """Rotation angle (rad, in [0, pi]) between unit quaternions q1, q2 (w, x, y, z)."""
    # Python floats: scalar arithmetic on them is several times faster than on numpy scalars.
    w1, x1, y1, z1 = np.asarray(q1, dtype=np.float64).tolist()
    w2, x2, y2, z2 = np.asarray(q2, dtype=np.float64).tolist()
    d = abs(w1 * w2 + x1 * x2 + y1 * y2 + z1 * z2)
    return 2.0 * math.acos(min(1.0, d))


def imitation_reward(
    qpos: np.ndarray,
    qvel: np.ndarray,
    ee_rel: np.ndarray,
    com: np.ndarray,
    ref_qpos: np.ndarray,
    ref_qvel: np.ndarray,
    ref_ee_rel: np.ndarray,
    ref_com: np.ndarray,
    torque_normalized: np.ndarray | None = None,
    torque_weight: float = 0.0,
) -> tuple[float, dict[str, float]]:
    """DeepMimic reward of a simulated state against a reference state.

    Args:
        qpos, ref_qpos: (26,) MuJoCo qpos.  qvel, ref_qvel: (25,) MuJoCo qvel.
        ee_rel, ref_ee_rel: (E, 3) end-effector positions minus the root position (world-aligned).
        com, ref_com: (3,) world centre of mass.
        torque_normalized: (19,) applied torques divided by their limits (only for the penalty).
        torque_weight: w of the penalty ``-w * mean(torque_normalized^2)``.

    Returns ``(total, terms)``; ``terms`` has the kernels ``pose``, ``vel``,
    ``end_effector``, ``com`` (each in [0, 1]) and ``torque_penalty`` (<= 0);
    ``total = 0.65 pose + 0.1 vel + 0.15 end_effector + 0.1 com + torque_penalty``.
    """
    dj = qpos[7:] - ref_qpos[7:]
    ang = quat_angle(qpos[3:7], ref_qpos[3:7])
    pose_err = float(np.dot(dj, dj)) + ang * ang
    dv = qvel[3:] - ref_qvel[3:]  # root angular velocity (local) + joint velocities
    vel_err = float(np.dot(dv, dv))
    de = ee_rel - ref_ee_rel
    ee_err = float(np.vdot(de, de))  # sum of squares over all end effectors
    dc = com - ref_com
    com_err = float(np.dot(dc, dc))
    r_pose = math.exp(-K_POSE * pose_err)
    r_vel = math.exp(-K_VEL * vel_err)
    r_ee = math.exp(-K_EE * ee_err)
    r_com = math.exp(-K_COM * com_err)
    if torque_weight and torque_normalized is not None:
        pen = -float(torque_weight) * float(np.mean(np.square(torque_normalized)))
    else:
        pen = 0.0
    total = W_POSE * r_pose + W_VEL * r_vel + W_EE * r_ee + W_COM * r_com + pen
    return total, {"pose": r_pose, "vel": r_vel, "end_effector": r_ee, "com": r_com, "torque_penalty": pen}
