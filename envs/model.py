"""Our own Unitree H1 MuJoCo model (``envs/h1.xml``) and its fixed facts.

The model is a primitive-geometry MJCF written for this project from the
figures of Unitree's public H1 release (body offsets, joint axes and ranges,
masses and inertias, torque limits).  Layout:

* ``qpos`` (nq = 26): root position x, y, z (m, world frame, z up), root
  orientation quaternion w, x, y, z, then the 19 hinge angles (rad) in
  :data:`JOINT_NAMES` order (= the LAFAN1-H1 CSV column order 7..25).
* ``qvel`` (nv = 25): root linear velocity (m/s, world), root angular velocity
  (rad/s, local frame), 19 joint velocities (rad/s).
* ``ctrl`` (nu = 19): joint torques (N m) in :data:`JOINT_NAMES` order,
  bounded by :data:`TORQUE_LIMITS`.
* Sites: ``left_foot`` / ``right_foot`` (centre of each sole), ``left_hand`` /
  ``right_hand`` (hand spheres), ``imu`` (torso), ``pelvis_imu`` (pelvis origin).
* Only robot-vs-floor contacts are active: every geom has contype 0 and conaffinity 0,
  and each robot geom has an explicit ``<contact><pair>`` with the floor.  Timestep 0.002 s.
"""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np

__all__ = ["H1_XML", "JOINT_NAMES", "BODY_NAMES", "TORQUE_LIMITS", "load_h1_model"]

#: Path to the H1 MJCF file shipped with the package.
H1_XML: Path = Path(__file__).resolve().parent / "h1.xml"

#: The 19 hinge joints, in qpos[7:] / ctrl / LAFAN1-H1 CSV order.
JOINT_NAMES: tuple[str, ...] = (
    "left_hip_yaw_joint",
    "left_hip_roll_joint",
    "left_hip_pitch_joint",
    "left_knee_joint",
    "left_ankle_joint",
    "right_hip_yaw_joint",
    "right_hip_roll_joint",
    "right_hip_pitch_joint",
    "right_knee_joint",
    "right_ankle_joint",
    "torso_joint",
    "left_shoulder_pitch_joint",
    "left_shoulder_roll_joint",
    "left_shoulder_yaw_joint",
    "left_elbow_joint",
    "right_shoulder_pitch_joint",
    "right_shoulder_roll_joint",
    "right_shoulder_yaw_joint",
    "right_elbow_joint",
)

#: All robot bodies (world excluded), in MuJoCo body-id order (id = index + 1).
BODY_NAMES: tuple[str, ...] = (
    "pelvis",
    "left_hip_yaw_link",
    "left_hip_roll_link",
    "left_hip_pitch_link",
    "left_knee_link",
    "left_ankle_link",
    "right_hip_yaw_link",
    "right_hip_roll_link",
    "right_hip_pitch_link",
    "right_knee_link",
    "right_ankle_link",
    "torso_link",
    "left_shoulder_pitch_link",
    "left_shoulder_roll_link",
    "left_shoulder_yaw_link",
    "left_elbow_link",
    "right_shoulder_pitch_link",
    "right_shoulder_roll_link",
    "right_shoulder_yaw_link",
    "right_elbow_link",
)


def load_h1_model() -> mujoco.MjModel:
    """Compile ``envs/h1.xml`` and return a fresh :class:`mujoco.MjModel`.

    nq = 26, nv = 25, nu = 19, total mass about 51.6 kg, timestep 0.002 s.
    """
    return mujoco.MjModel.from_xml_path(str(H1_XML))


def _torque_limits() -> np.ndarray:
    model = load_h1_model()
    limits = np.empty(len(JOINT_NAMES), dtype=np.float64)
    for i, name in enumerate(JOINT_NAMES):
        jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
        act = [a for a in range(model.nu) if model.actuator_trnid[a, 0] == jid]
        if len(act) != 1:
            raise RuntimeError(f"h1.xml: expected one actuator on {name}, found {len(act)}")
        limits[i] = model.actuator_ctrlrange[act[0], 1]
    limits.setflags(write=False)
    return limits


#: Torque limits (N m), shape (19,), in :data:`JOINT_NAMES` order, read from the
#: actuators' ctrlrange (hip 200, knee 300, ankle 40, torso 200, shoulder
#: pitch/roll 40, shoulder yaw/elbow 18).
TORQUE_LIMITS: np.ndarray = _torque_limits()
