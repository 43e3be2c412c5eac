"""DeepMimic imitation reward for the H1 tracking environment, with mean-over-joints kernels.

Peng, Abbeel, Levine, van de Panne (2018), "DeepMimic: Example-Guided Deep Reinforcement
Learning of Physics-Based Character Skills", ACM TOG 37(4), Sec. 5, Eq. 5-9, as their code
computes it (``cSceneImitate::CalcRewardImitate``: the joint weights are normalised to sum to 1,
so the pose and velocity errors are weighted *means* over joints, and the end-effector error is
divided by the number of end effectors), and as LocoMuJoCo's ``MimicReward`` computes it
(``exp(-k * mean(square(error)))`` over joints):

    r = W_POSE r_pose + W_VEL r_vel + W_EE r_ee + W_COM r_com            (Eq. 5)
    r_pose = exp(-K_POSE * mean_j angle_j^2)     j: 19 hinges + root orientation (20 terms, rad)
    r_vel  = exp(-K_VEL  * mean_j dqdot_j^2)     j: root angular velocity (3) + 19 hinges (22 terms, rad/s)
    r_ee   = exp(-K_EE   * mean_e ||dp_e||^2)    e: feet and hands (4), positions relative to the root (m)
    r_com  = exp(-K_COM  * ||dp_com||^2)         world centre of mass (m)

Constants and their sources:

* ``W_POSE, W_VEL, W_EE, W_COM = 0.65, 0.1, 0.15, 0.1``: DeepMimic Eq. 5 (paper).
* ``K_POSE = 10``: LocoMuJoCo ``MimicReward(qpos_w_exp=10.0)`` (its Unitree H1 imitation example),
  on the mean squared joint-angle error.  DeepMimic's code uses 2 on its weighted mean of 3-D joint
  rotation angles, which on the H1's hinges is nearly flat (0.92 at 0.2 rad on every joint, against
  0.67 here); the previous sum over joints with 2 was 4-8x sharper than either (0.22 at 0.2 rad).
* ``K_VEL = 2``: LocoMuJoCo ``qvel_w_exp=2.0``, on the mean squared velocity error (DeepMimic's
  code: 0.1 on the weighted mean, flat for the H1: 0.93 for PD tracking errors of ~0.9 rad/s).
* ``K_EE = 40``: DeepMimic Eq. 8 / ``end_eff_scale = 40``, on the mean over end effectors
  (``end_eff_err /= num_end_effs`` in their code).  LocoMuJoCo's ``rpos_w_exp=100`` on the mean
  over site *coordinates* is 100/3 = 33 per squared distance, the same order.
* ``K_COM = 10``: DeepMimic Eq. 9 (one vector, nothing to average).

Adaptation to the H1: the root orientation error is the angle of the relative quaternion, one
term of the pose mean as in DeepMimic (which weights the root like any joint); end-effector
positions are taken relative to the root position, world-aligned (no rotation); the COM is the
world COM.

An optional torque penalty ``-w * mean((tau / tau_limit)^2)`` is added to the total (``w = 0``
by default, so the reward is in [0, 1] and equals 1 exactly for a state equal to the reference).

:func:`imitation_reward` scores one state with Python floats (the single environment's step);
:func:`imitation_reward_batch` scores N states at once with numpy (the batched environment).
Both compute the same numbers.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "W_POSE", "W_VEL", "W_EE", "W_COM",
    "K_POSE", "K_VEL", "K_EE", "K_COM",
    "REWARD_TERMS", "quat_angle", "imitation_reward", "imitation_reward_batch",
]

# Term weights, DeepMimic Eq. 5 (Peng et al. 2018).
W_POSE = 0.65
W_VEL = 0.1
W_EE = 0.15
W_COM = 0.1

# Kernel scales on mean squared errors (sources in the module docstring).
K_POSE = 10.0  # 1/rad^2, LocoMuJoCo qpos_w_exp
K_VEL = 2.0  # s^2/rad^2, LocoMuJoCo qvel_w_exp
K_EE = 40.0  # 1/m^2, DeepMimic end_eff_scale (mean over end effectors)
K_COM = 10.0  # 1/m^2, DeepMimic Eq. 9

#: Names of the reward terms in ``info``, in this order.
REWARD_TERMS: tuple[str, ...] = ("pose", "vel", "end_effector", "com", "torque_penalty")


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
    """DeepMimic reward of one simulated state against one reference state.

    Args:
        qpos, ref_qpos: (26,) MuJoCo qpos (m, unit quaternion, rad).
        qvel, ref_qvel: (25,) MuJoCo qvel (m/s, rad/s; root angular velocity in the local frame).
        ee_rel, ref_ee_rel: (E, 3) end-effector positions minus the root position, world-aligned (m).
        com, ref_com: (3,) world centre of mass (m).
        torque_normalized: (19,) applied torques divided by their limits (only for the penalty).
        torque_weight: w of the penalty ``-w * mean(torque_normalized^2)``.

    Returns ``(total, terms)``; ``terms`` has the kernels ``pose``, ``vel``,
    ``end_effector``, ``com`` (each in [0, 1]) and ``torque_penalty`` (<= 0);
    ``total = 0.65 pose + 0.1 vel + 0.15 end_effector + 0.1 com + torque_penalty``.
    """
    dj = qpos[7:] - ref_qpos[7:]
    ang = quat_angle(qpos[3:7], ref_qpos[3:7])
    pose_err = (float(np.dot(dj, dj)) + ang * ang) / (dj.shape[0] + 1)
    dv = qvel[3:] - ref_qvel[3:]  # root angular velocity (local) + joint velocities
    vel_err = float(np.dot(dv, dv)) / dv.shape[0]
    de = ee_rel - ref_ee_rel
    ee_err = float(np.vdot(de, de)) / de.shape[0]  # mean over end effectors of the squared distance
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


def imitation_reward_batch(
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
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """:func:`imitation_reward` for N states at once.

    Args:
        qpos, ref_qpos: (N, 26).  qvel, ref_qvel: (N, 25).  ee_rel, ref_ee_rel: (N, E, 3) (m).
        com, ref_com: (N, 3) (m).  torque_normalized: (N, 19) or None.  torque_weight: w >= 0.

    Returns ``(total (N,), terms)`` with each term an (N,) float64 array.
    """
    dj = qpos[:, 7:] - ref_qpos[:, 7:]
    dot = np.abs(np.einsum("ni,ni->n", qpos[:, 3:7], ref_qpos[:, 3:7]))
    ang = 2.0 * np.arccos(np.minimum(dot, 1.0))
    pose_err = (np.einsum("ni,ni->n", dj, dj) + ang * ang) / (dj.shape[1] + 1)
    dv = qvel[:, 3:] - ref_qvel[:, 3:]
    vel_err = np.einsum("ni,ni->n", dv, dv) / dv.shape[1]
    de = (ee_rel - ref_ee_rel).reshape(len(qpos), -1)
    ee_err = np.einsum("ni,ni->n", de, de) / ee_rel.shape[1]
    dc = com - ref_com
    com_err = np.einsum("ni,ni->n", dc, dc)
    r_pose = np.exp(-K_POSE * pose_err)
    r_vel = np.exp(-K_VEL * vel_err)
    r_ee = np.exp(-K_EE * ee_err)
    r_com = np.exp(-K_COM * com_err)
    if torque_weight and torque_normalized is not None:
        pen = -float(torque_weight) * np.mean(np.square(torque_normalized), axis=1)
    else:
        pen = np.zeros(len(qpos))
    total = W_POSE * r_pose + W_VEL * r_vel + W_EE * r_ee + W_COM * r_com + pen
    return total, {"pose": r_pose, "vel": r_vel, "end_effector": r_ee, "com": r_com, "torque_penalty": pen}
