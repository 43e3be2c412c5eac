"""DeepMimic-style motion tracking environment for our Unitree H1 model.

``H1TrackingEnv`` simulates :mod:`envs.model`'s H1 at 500 Hz (timestep 0.002 s)
and runs the policy at 100 Hz (``frame_skip = 5``).  Each episode tracks one
reference clip (:mod:`envs.reference`) resampled to the control rate.

Episode
    Reference state initialisation (RSI): a uniformly random clip from ``clips``
    and a uniformly random start frame; qpos/qvel are set to the reference.
    ``reset(options={"clip": name, "frame": k})`` forces a clip / start frame;
    ``options["qpos"]`` (26,) / ``options["qvel"]`` (25,, default zeros) start the robot in that
    state instead of the reference frame's (the clip and frame still give the goal).
    ``set_motion(reference, decoded)`` replaces the current clip's motion mid-episode, keeping the
    simulator state and frame counter: a motion stream that grows while it is tracked (the physics
    path of ``daps command`` appends each generated segment's decoding).
    Control step ``k -> k + 1`` advances the reference by one control frame; the
    reward compares the state after the step with reference frame ``k + 1``
    (:func:`envs.rewards.imitation_reward`, DeepMimic).

Termination (``terminated=True``, ``info["termination"]`` = reason), checked in this order:
    ``"unstable"``  non-finite action or state, |qvel| > ``max_qvel``, or MuJoCo
                    reported a bad qpos/qvel/qacc/ctrl (it then resets the data itself);
    ``"fell"``      pelvis height < ``min_pelvis_height`` (0.6 m) while the reference
                    pelvis is more than 0.2 m higher (so lying-down clips can be tracked);
    ``"tilted"``    torso (imu site) z axis more than ``max_tilt`` (1.0 rad) from world up
                    while the reference torso is tilted 0.5 rad less;
    ``"diverged"``  mean |joint angle error| > ``max_mean_joint_error`` (0.5 rad).
    Reward on termination is the reward of the reached state (0 for "unstable").

Truncation (``truncated=True``, ``info["truncation"]``): ``"clip_end"`` when the last
usable reference frame is reached, ``"time_limit"`` after ``max_episode_steps`` steps.

Actions (19, in [-1, 1], :data:`envs.model.JOINT_NAMES` order; clipped to [-1, 1])
    ``action_mode="torque"``: tau = action * TORQUE_LIMITS (N m), held for the 5 substeps.
    ``action_mode="pd"``: joint position targets; the PD law tau = clip(kp (target - q) - kd qdot,
    -limit, limit) runs in every physics substep as MuJoCo position actuators
    (:func:`use_position_actuators`), gains :data:`PD_KP`, :data:`PD_KD` (Unitree's H1 config).
    ``pd_target="reference"`` (default, except with ``goal="decoded"``): target = reference joint
    angles of frame k+1 + ``pd_action_scale`` * action (the reference leaks into the controller: for
    comparison only; refused with ``goal="decoded"``);
    ``pd_target="decoded"`` (only with ``goal="decoded"``, its default): target = the DECODED joint
    angles of frame k+1 + ``pd_action_scale`` * action (deployable: the decoded motion is a function
    of the latent codes alone);
    ``pd_target="nominal"``: target = :data:`NOMINAL_POSE` + ``pd_action_scale`` * action, so the
    motion must come from the goal.  ``pd_action_scale`` defaults to :data:`PD_ACTION_SCALE` (0.25 rad,
    Unitree's action_scale) around the reference and :data:`NOMINAL_ACTION_SCALE` (1.0 rad) around
    the nominal pose (0.25 rad there reaches no walking frame).  ``pd_action_scale="torque-range"``
    (:data:`PD_TORQUE_RANGE_SCALE`) scales each joint by its torque limit over its kp, so a unit
    action can hold the motor's whole torque range against a static error (ankle 1.0 rad, where
    0.25 rad leaves 10 of its 40 N m).  ``pd_target="absolute"``: target =
    joint-range centre + action * joint-range half width.

Observation (float32)
    proprio (63) = [ joint angles q (19, rad) | joint velocities qdot (19, rad/s)
                   | gravity direction (unit vector) in the imu/torso frame (3)
                   | torso angular velocity in the imu/torso frame (3, rad/s)
                   | previous action (19, as given, clipped to [-1, 1]; zeros after reset) ]
    ``root_velocity_obs=True`` (opt-in; default off keeps the 63 numbers): proprio (67) = the 63
        above followed by [ root (pelvis) linear velocity in the heading frame (world rotated by
        minus the root yaw; the free joint's qvel[0:3]) (3, m/s) | root height above the floor
        (pelvis z, qpos[2]) (1, m) ].  Everything below that says 63 then means 67 (``proprio_dim``).
    ``goal="reference"``: Box (63 + 28 * len(reference_offsets),) = [proprio | goal], the goal
        holding for each offset o in ``reference_offsets`` (default (1, 2, 5) control frames)
        the reference frame f = min(k + o, last) as 28 numbers:
        [ reference joint angles (19)
        | reference root position - current root position, in the current heading frame
          (world rotated by minus the root yaw) (3, m)
        | first two columns (column-major, 6) of R_root^T R_root_ref, the reference root
          orientation relative to the current root orientation ]
    ``goal="latent"``: spaces.Dict with
        "proprio": Box (63,);
        "latent":  Box (2, 64) float32 holding integer indices in [0, vocab_size): row 0 the
                   DAPS latent code of the current 32-frame (30 Hz) segment, row 1 of the next
                   one (the last segment repeats at the end of the codes);
        "phase":   Box (1,) in [0, 1): position within the current segment.
        Control time t = k / control_hz maps to segment floor(t * 30 / 32).  The usable part
        of a clip ends with the last segment that has codes.
    ``goal="decoded"``: the same Box and layout as ``goal="reference"`` (so a policy trained on the
        reference, a teacher, can be fine-tuned on it unchanged), but the 28 numbers per offset come
        from the motion VAE's DECODED motion of the clip's latent codes (``decoded_motion``), never
        from the true reference.  The indices are not observed separately: the decoded motion is a
        deterministic function of them.  Root anchoring (no leak of the true root): at reset and
        whenever frame k enters a new 32-frame segment, a planar rigid transform (xy translation +
        rotation about z) is fixed that maps the decoded root's (x, y, yaw) at frame k onto the
        robot's current root (x, y, yaw; yaw = heading of the pelvis x axis); the decoded root
        positions and orientations of all goal frames (offsets may reach into the next segment: the
        decoded trajectory is continuous) go through that transform, root height and joint angles
        stay as decoded.  Reward, termination, RSI and truncation stay against the TRUE reference:
        the training signal is imitation of the true motion.  The usable part of a clip ends with
        the decoded motion (or the clip, whichever is shorter).
    ``critic_reference_obs=True`` (``goal="decoded"`` only, opt-in): the Box grows by 28 *
        len(reference_offsets) numbers appended after the decoded goal: the TRUE reference's goal
        numbers in the ``goal="reference"`` layout, for an asymmetric critic (the rewards are
        computed against the true clip). The actor must not see them: ``actor_obs_dim`` (the
        observation's first numbers) is what a deployable policy reads
        (:class:`lowlevel.policy.AsymmetricCriticPolicy`).

``info`` holds the reward terms ``pose``, ``vel``, ``end_effector``, ``com``,
``torque_penalty``, and ``termination`` (reason or None), ``truncation`` (reason or None),
``clip`` (name), ``frame`` (reference frame index at the control rate); with ``goal="decoded"``
also ``decoded_joint_error`` (after a step: mean over the 19 joints of |q - q_decoded(k)|, rad).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from envs.lafan1 import FPS, split_clips

from .model import JOINT_NAMES, TORQUE_LIMITS, load_h1_model
from .reference import EE_SITES, ReferenceMotion, load_reference, make_reference, resample_qpos
from .rewards import imitation_reward

__all__ = ["H1TrackingEnv", "PD_KP", "PD_KD", "PD_ACTION_SCALE", "NOMINAL_ACTION_SCALE", "default_pd_action_scale",
           "PD_TORQUE_RANGE_SCALE", "resolve_pd_action_scale",
           "NOMINAL_POSE", "PHYSICS_HZ", "PROPRIO_DIM", "ROOT_VELOCITY_DIM", "REF_FRAME_DIM", "DEFAULT_REFERENCE_OFFSETS",
           "default_clips", "decoded_reference", "GOALS", "PD_TARGETS"]

GOALS = ("reference", "latent", "decoded")
PD_TARGETS = ("reference", "nominal", "absolute", "decoded")

#: Physics rate (Hz): timestep 0.002 s, part of the environment's contract (h1.xml).
PHYSICS_HZ = 500.0
PROPRIO_DIM = 63
#: Numbers appended to proprio by ``root_velocity_obs=True``: root linear velocity in the heading
#: frame (3) and root height (1).
ROOT_VELOCITY_DIM = 4
REF_FRAME_DIM = 28
#: Control frames ahead of the current one whose reference (or decoded) frames the goal holds.
DEFAULT_REFERENCE_OFFSETS = (1, 2, 5)
SEGMENT_FRAMES = 32  # 30 Hz frames per DAPS latent segment

# PD gains: Unitree's own H1 training config (unitree_rl_gym, legged_gym/envs/h1/h1_config.py,
# H1RoughCfg.control: stiffness hip yaw/roll/pitch 150, knee 200, ankle 40, torso 300, shoulder 150,
# elbow 100 N m/rad; damping 2, 2, 2, 4, 2, torso 6, shoulder 2, elbow 2 N m s/rad; action_scale
# 0.25).  The shoulder entry covers the three shoulder joints.  Torques are still clipped to
# TORQUE_LIMITS (MuJoCo actuator forcerange); the ankle's kp 40 against its 40 N m limit leaves a
# linear range of 1 rad (the previous kp 1000 left 0.04 rad: bang-bang).  Joint damping (1) and
# armature (0.1) come from h1.xml and act in addition.
_KP = {"hip_yaw": 150.0, "hip_roll": 150.0, "hip_pitch": 150.0, "knee": 200.0, "ankle": 40.0,
       "torso": 300.0, "shoulder": 150.0, "elbow": 100.0}
_KD = {"hip_yaw": 2.0, "hip_roll": 2.0, "hip_pitch": 2.0, "knee": 4.0, "ankle": 2.0,
       "torso": 6.0, "shoulder": 2.0, "elbow": 2.0}
#: Default PD action scale (rad per unit action) of a residual around the reference pose
#: (Unitree's action_scale).
PD_ACTION_SCALE = 0.25
#: Default PD action scale around the fixed nominal pose: there the action must span the motion
#: itself, and +-0.25 rad around standing reaches no frame of the walking clips (legs and torso
#: alone: 3% of frames; +-1 rad: 66%).
NOMINAL_ACTION_SCALE = 1.0


def resolve_pd_action_scale(scale, pd_target: str) -> float | np.ndarray:
    """The rad-per-unit-action of a ``pd_action_scale`` argument: None (the target's default,
    :func:`default_pd_action_scale`), a positive number, a name of :data:`PD_SCALE_NAMES`
    ("torque-range") or a (19,) array of positive numbers (JOINT_NAMES order).

    Raises:
        ValueError: anything else (negative, NaN, unknown name, wrong length).
    """
    if scale is None:
        return default_pd_action_scale(pd_target)
    if isinstance(scale, str):
        if scale in PD_SCALE_NAMES:
            return PD_SCALE_NAMES[scale]
        try:
            scale = float(scale)
        except ValueError:
            raise ValueError(f"pd_action_scale must be a positive number (rad) or one of "
                             f"{', '.join(PD_SCALE_NAMES)}, got {scale!r}") from None
    arr = np.asarray(scale, dtype=np.float64)
    if arr.ndim == 0:
        if not (math.isfinite(float(arr)) and float(arr) > 0):
            raise ValueError(f"pd_action_scale must be a positive number (rad), got {scale!r}")
        return float(arr)
    if arr.shape != (len(JOINT_NAMES),) or not (np.isfinite(arr).all() and (arr > 0).all()):
        raise ValueError(f"pd_action_scale as an array must hold {len(JOINT_NAMES)} positive numbers, got {arr!r}")
    return arr


def default_pd_action_scale(pd_target: str) -> float:
    """Default rad per unit action for ``pd_target`` ("reference" and "decoded" 0.25, "nominal" 1.0;
    "absolute" ignores it and maps the action onto the joint range)."""
    return NOMINAL_ACTION_SCALE if pd_target == "nominal" else PD_ACTION_SCALE


def _gain(table: dict[str, float], joint: str) -> float:
    for key, val in table.items():
        if key in joint:
            return val
    raise KeyError(joint)


#: PD stiffness (N m / rad) per joint, JOINT_NAMES order.
PD_KP: np.ndarray = np.array([_gain(_KP, j) for j in JOINT_NAMES])
#: PD damping (N m s / rad) per joint, JOINT_NAMES order.
PD_KD: np.ndarray = np.array([_gain(_KD, j) for j in JOINT_NAMES])
PD_KP.setflags(write=False)
# Nominal standing pose (rad, JOINT_NAMES order) that pd_target="nominal" offsets: the H1 default
# joint angles of Unitree's RL examples (unitree_rl_gym h1_config: hip pitch -0.1, knee 0.3,
# ankle -0.2, everything else 0).
_NOMINAL = {"hip_pitch": -0.1, "knee": 0.3, "ankle": -0.2}
NOMINAL_POSE: np.ndarray = np.array([next((v for k, v in _NOMINAL.items() if k in j), 0.0) for j in JOINT_NAMES])
NOMINAL_POSE.setflags(write=False)
PD_KD.setflags(write=False)
#: Per-joint PD action scale (rad per unit action, JOINT_NAMES order) = torque limit / kp: a unit
#: action moves the target far enough to ask for the motor's full torque (hips 1.33, knees 1.5,
#: ankles 1.0, torso 0.67, shoulders 0.27 / 0.12, elbows 0.18 rad).  Unitree's 0.25 rad leaves the
#: ankle, the joint that balances the robot over its feet, 10 of its 40 N m; their training code
#: does not clip actions (clip_actions 100), ours clips to [-1, 1], hence a scale that spans the range.
PD_TORQUE_RANGE_SCALE: np.ndarray = np.asarray(TORQUE_LIMITS, dtype=np.float64) / PD_KP
PD_TORQUE_RANGE_SCALE.setflags(write=False)
#: Named values of ``pd_action_scale``.
PD_SCALE_NAMES = {"torque-range": PD_TORQUE_RANGE_SCALE}


def use_position_actuators(model: mujoco.MjModel, kp: np.ndarray, kd: np.ndarray) -> None:
    """Turn the 19 torque motors of ``model`` into PD position actuators, in place.

    MuJoCo's actuator force is ``gain * ctrl + bias0 + bias1 * q + bias2 * qdot``; with gain = kp,
    bias = (0, -kp, -kd) it is ``kp (ctrl - q) - kd qdot``, clamped to the motor's torque limit
    (``forcerange``), so ``ctrl`` is the joint position target (rad) and the PD law runs inside
    ``mj_step`` at every physics substep (no Python loop over substeps).  Targets are not clamped
    (``ctrllimited`` off), as the PD law on the targets was before.

    Args:
        model: an H1 model from :func:`envs.model.load_h1_model` (torque motors in JOINT_NAMES order).
        kp: (19,) stiffness (N m/rad).  kd: (19,) damping (N m s/rad).
    """
    kp, kd = np.asarray(kp, dtype=np.float64), np.asarray(kd, dtype=np.float64)
    if kp.shape != (model.nu,) or kd.shape != (model.nu,):
        raise ValueError(f"kp and kd must have shape ({model.nu},), got {kp.shape} and {kd.shape}")
    limits = model.actuator_ctrlrange[:, 1].copy()  # the motors' torque limits (N m)
    model.actuator_gaintype[:] = mujoco.mjtGain.mjGAIN_FIXED
    model.actuator_biastype[:] = mujoco.mjtBias.mjBIAS_AFFINE
    model.actuator_gainprm[:, :3] = np.stack([kp, np.zeros_like(kp), np.zeros_like(kp)], axis=1)
    model.actuator_biasprm[:, :3] = np.stack([np.zeros_like(kp), -kp, -kd], axis=1)
    model.actuator_ctrllimited[:] = 0
    model.actuator_forcelimited[:] = 1
    model.actuator_forcerange[:] = np.stack([-limits, limits], axis=1)


def default_clips(root=None) -> list[str]:
    """Walking clips (names starting with ``walk``) of the training split."""
    train, _ = split_clips(root)
    return [c for c in train if c.startswith("walk")]


def _quat_to_mat(q: np.ndarray) -> np.ndarray:
    """(N, 4) unit quaternions w, x, y, z -> (N, 3, 3) rotation matrices."""
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    R = np.empty((q.shape[0], 3, 3))
    R[:, 0, 0] = 1 - 2 * (y * y + z * z)
    R[:, 0, 1] = 2 * (x * y - w * z)
    R[:, 0, 2] = 2 * (x * z + w * y)
    R[:, 1, 0] = 2 * (x * y + w * z)
    R[:, 1, 1] = 1 - 2 * (x * x + z * z)
    R[:, 1, 2] = 2 * (y * z - w * x)
    R[:, 2, 0] = 2 * (x * z - w * y)
    R[:, 2, 1] = 2 * (y * z + w * x)
    R[:, 2, 2] = 1 - 2 * (x * x + y * y)
    return R


def _goal_rows(qpos: np.ndarray) -> np.ndarray:
    """(T, 28) [joint angles (19) | root position (3) | first two columns of the root rotation
    matrix (6)] of qpos (T, 26): the numbers of the "reference" goal that do not depend on the
    robot's state."""
    rot = _quat_to_mat(qpos[:, 3:7])
    return np.concatenate([qpos[:, 7:], qpos[:, :3], rot[:, :, 0], rot[:, :, 1]], axis=1)


@functools.lru_cache(maxsize=256)
def _clip_tables(ref: ReferenceMotion) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame arrays of a reference that the step loop reads, shared by every env (read-only).

    Returns (goal_rows (T, 28), :func:`_goal_rows`; ee_rel (T, 4, 3): end-effector sites minus
    the root position (m)).
    """
    goal_rows = _goal_rows(ref.qpos)
    ee_rel = ref.site_pos - ref.qpos[:, None, :3]
    for arr in (goal_rows, ee_rel):
        arr.setflags(write=False)
    return goal_rows, ee_rel


@functools.lru_cache(maxsize=256)
def _decoded_tables(ref: ReferenceMotion) -> tuple[np.ndarray, np.ndarray]:
    """(goal_rows (T, 28) of :func:`_goal_rows`, root heading yaw (T,) rad) of a decoded motion,
    shared by every env (read-only)."""
    rows = _goal_rows(ref.qpos)
    yaw = np.arctan2(rows[:, 23], rows[:, 22])  # atan2(R[1, 0], R[0, 0]), as the robot's heading
    for arr in (rows, yaw):
        arr.setflags(write=False)
    return rows, yaw


def decoded_reference(name: str, qpos: np.ndarray, control_hz: float = 100.0,
                      ground_feet: bool = True) -> ReferenceMotion:
    """A decoded motion, qpos (T, 26) at 30 Hz (LAFAN1's rate, e.g. ``csv_to_qpos`` of
    :func:`motion_vae.codec.decode_codes`' rows), as a :class:`ReferenceMotion` at ``control_hz``:
    the pipeline of :func:`envs.reference.load_reference` (linear / slerp resampling, then
    :func:`envs.reference.make_reference`).  ``ground_feet`` lifts the DECODED motion by its own
    median sole depth (a function of the decoded motion only, so it is deployable; the decoder
    reproduces the ungrounded heights of the data it was trained on)."""
    qpos = np.asarray(qpos, dtype=np.float64)
    if qpos.ndim != 2 or qpos.shape[1] != 26 or qpos.shape[0] < 2:
        raise ValueError(f"decoded motion {name!r}: expected qpos (T >= 2, 26) at {FPS} Hz, got {qpos.shape}")
    return make_reference(name, resample_qpos(qpos, FPS, control_hz), control_hz, ground_feet=ground_feet)


class _Clip:
    """Cached per-clip arrays used in the step loop (the big ones shared between envs)."""

    __slots__ = ("ref", "name", "qpos", "qvel", "goal_rows", "joints", "ee_rel", "com", "tilt", "codes", "last",
                 "dec", "dec_rows", "dec_joints", "dec_yaw")

    def __init__(self, ref: ReferenceMotion, cached: bool = True):
        self.ref = ref
        self.name = ref.name
        self.qpos = np.ascontiguousarray(ref.qpos)
        self.qvel = np.ascontiguousarray(ref.qvel)
        # a motion replaced mid-episode (set_motion) is used once: not kept in the shared cache
        self.goal_rows, self.ee_rel = (_clip_tables if cached else _clip_tables.__wrapped__)(ref)
        self.joints = self.goal_rows[:, :19]  # reference joint angles (a view)
        self.com = ref.com
        self.tilt = ref.torso_tilt
        self.codes: np.ndarray | None = None
        self.last = ref.num_frames - 1  # last usable frame index
        # goal="decoded": the decoded motion (control rate) and its goal rows / root yaw
        self.dec: ReferenceMotion | None = None
        self.dec_rows = self.dec_joints = self.dec_yaw = None


class H1TrackingEnv(gym.Env):
    """Motion tracking of LAFAN1-H1 clips (see the module docstring for all details).

    Args:
        clips: clip names and/or :class:`ReferenceMotion` objects (fps must equal
            ``control_hz``); default :func:`default_clips` (walking clips of the train split).
        goal: ``"reference"``, ``"latent"`` or ``"decoded"``.
        action_mode: ``"torque"`` or ``"pd"``.
        latent_codes: for ``goal="latent"``: {clip name: int array (num_segments, 64)}.
        decoded_motion: for ``goal="decoded"``: {clip name: decoded motion}, each either a qpos
            array (T, 26) at 30 Hz (e.g. ``csv_to_qpos(decode_codes(...))``, T = 32 x segments;
            converted with :func:`decoded_reference`, grounded as ``ground_feet``) or a
            :class:`ReferenceMotion` at ``control_hz`` (used as it is).  Decoding happens outside
            the env, once (``lowlevel.motions.decode_clips``): no torch in the step path.
        vocab_size / latent_block_size: latent index range and code length (1024, 64).
        data_root: LAFAN1-H1 data root (see :func:`envs.lafan1.resolve_clip_dir`).
        control_hz, frame_skip: policy rate (100) and physics substeps per action (5).
        max_episode_steps: truncation length in control steps (1000 = 10 s).
        reference_offsets: control frames ahead (>= 1) whose reference frames the ``"reference"`` goal
            (and the decoded frames the ``"decoded"`` goal) holds; default (1, 2, 5), 10-50 ms at
            100 Hz. ValueError for an empty list or an offset below 1.
        pd_target, pd_action_scale: PD target mode (None: "decoded" for ``goal="decoded"``, else
            "reference") and scale (rad per unit action: a number, "torque-range" or a (19,) array,
            default :func:`default_pd_action_scale`; :func:`resolve_pd_action_scale`).
        torque_penalty_weight: w of the reward's torque penalty (default 0).
        min_pelvis_height, max_tilt, max_mean_joint_error, max_qvel: termination thresholds.
        ground_feet: lift each named clip so its typical stance foot stands on the floor
            (:func:`envs.reference.load_reference`; clips given as ReferenceMotion are used as they are).
        pd_gain_scale: multiplies :data:`PD_KP` and :data:`PD_KD` (1 = Unitree's gains; an ablation
            lever: the torque limits stay).
        root_velocity_obs: append the root's linear velocity in the heading frame and its height
            to proprio (63 -> 67 numbers, ``self.proprio_dim``; module docstring).  Default off.
        critic_reference_obs: ``goal="decoded"`` only: append the true reference's goal numbers
            for an asymmetric critic (module docstring); ``self.actor_obs_dim`` numbers come
            first, the policy's own input.  Default off.  ValueError with another goal.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 100}

    def __init__(
        self,
        clips: Sequence[str | ReferenceMotion] | None = None,
        *,
        goal: str = "reference",
        action_mode: str = "torque",
        latent_codes: Mapping[str, np.ndarray] | None = None,
        decoded_motion: Mapping[str, np.ndarray | ReferenceMotion] | None = None,
        vocab_size: int = 1024,
        latent_block_size: int = 64,
        data_root=None,
        control_hz: float = 100.0,
        frame_skip: int = 5,
        max_episode_steps: int = 1000,
        reference_offsets: Sequence[int] = DEFAULT_REFERENCE_OFFSETS,
        pd_target: str | None = None,
        pd_action_scale: float | None = None,
        torque_penalty_weight: float = 0.0,
        min_pelvis_height: float = 0.6,
        max_tilt: float = 1.0,
        max_mean_joint_error: float = 0.5,
        max_qvel: float = 1000.0,
        ground_feet: bool = True,
        root_velocity_obs: bool = False,
        critic_reference_obs: bool = False,
        pd_gain_scale: float = 1.0,
        render_mode: str | None = None,
    ):
        super().__init__()
        if goal not in GOALS:
            raise ValueError(f"goal must be 'reference', 'latent' or 'decoded', got {goal!r}")
        if action_mode not in ("torque", "pd"):
            raise ValueError(f"action_mode must be 'torque' or 'pd', got {action_mode!r}")
        if pd_target is None:
            pd_target = "decoded" if goal == "decoded" else "reference"
        if pd_target not in PD_TARGETS:
            raise ValueError(f"pd_target must be 'reference', 'nominal', 'absolute' or 'decoded', got {pd_target!r}")
        if pd_target == "decoded" and goal != "decoded":
            raise ValueError(f"pd_target='decoded' needs goal='decoded', got goal={goal!r}")
        if pd_target == "reference" and goal == "decoded":
            raise ValueError("pd_target='reference' with goal='decoded' would put the true reference into the "
                             "controller; use pd_target='decoded' (or 'nominal' / 'absolute')")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.goal = goal
        self.action_mode = action_mode
        self.pd_target = pd_target
        #: rad per unit action: a float, or a (19,) array (per joint)
        self.pd_action_scale = resolve_pd_action_scale(pd_action_scale, pd_target)
        self.control_hz = float(control_hz)
        self.frame_skip = int(frame_skip)
        self.max_episode_steps = int(max_episode_steps)
        self.reference_offsets = np.asarray(reference_offsets, dtype=np.int64)
        if self.reference_offsets.ndim != 1 or len(self.reference_offsets) == 0 or (self.reference_offsets < 1).any():
            raise ValueError(f"reference_offsets must be one or more control frames >= 1, got {list(reference_offsets)!r}")
        self.torque_penalty_weight = float(torque_penalty_weight)
        self.min_pelvis_height = float(min_pelvis_height)
        self.max_tilt = float(max_tilt)
        self.max_mean_joint_error = float(max_mean_joint_error)
        self.max_qvel = float(max_qvel)
        self.vocab_size = int(vocab_size)
        self.latent_block_size = int(latent_block_size)
        self.render_mode = render_mode
        self._renderer = None
        self.root_velocity_obs = bool(root_velocity_obs)
        #: proprio numbers: 63, or 67 with root_velocity_obs
        self.proprio_dim = PROPRIO_DIM + (ROOT_VELOCITY_DIM if self.root_velocity_obs else 0)
        if critic_reference_obs and goal != "decoded":
            raise ValueError(f"critic_reference_obs needs goal='decoded', got goal={goal!r}")
        self.critic_reference_obs = bool(critic_reference_obs)

        self.model = load_h1_model()
        self.model.opt.timestep = 1.0 / (self.control_hz * self.frame_skip)
        self.data = mujoco.MjData(self.model)
        m = self.model
        self._site_ids = np.array([mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, s) for s in EE_SITES])
        self._imu = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, "imu")
        self._pelvis = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "pelvis")
        self._torso = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "torso_link")
        self._limits = np.asarray(TORQUE_LIMITS, dtype=np.float64)
        self._neg_limits = -self._limits
        jids = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, j) for j in JOINT_NAMES]
        rng = m.jnt_range[jids]
        self._range_mid = 0.5 * (rng[:, 0] + rng[:, 1])
        self._range_half = 0.5 * (rng[:, 1] - rng[:, 0])
        if not (math.isfinite(pd_gain_scale) and pd_gain_scale > 0):
            raise ValueError(f"pd_gain_scale must be a positive number, got {pd_gain_scale!r}")
        self.pd_gain_scale = float(pd_gain_scale)
        if action_mode == "pd":
            use_position_actuators(m, PD_KP * self.pd_gain_scale, PD_KD * self.pd_gain_scale)
        self._bad_warnings = np.array([int(w) for w in (mujoco.mjtWarning.mjWARN_BADQPOS, mujoco.mjtWarning.mjWARN_BADQVEL,
                                               mujoco.mjtWarning.mjWARN_BADQACC, mujoco.mjtWarning.mjWARN_BADCTRL)])
        # numpy views into self.data's buffers, used in the step loop (self.data is never
        # reallocated, so they stay valid); each attribute access through the bindings costs ~1 us.
        d = self.data
        self._qpos, self._qvel = d.qpos, d.qvel
        self._root_pos = d.qpos[:3]
        self._q_joints = d.qpos[7:]
        self._qdot_joints = d.qvel[6:]
        self._warning_numbers = d.warning.number
        self._pelvis_xmat = d.xmat[self._pelvis]
        self._imu_xmat = d.site_xmat[self._imu]
        self._torso_angvel = d.cvel[self._torso, :3]  # world frame
        self._site_xpos = d.site_xpos
        self._pelvis_subtree_com = d.subtree_com[self._pelvis]  # = whole-robot COM

        # Reference clips.
        if clips is None:
            clips = default_clips(data_root)
        if isinstance(clips, (str, ReferenceMotion)):
            clips = [clips]
        if len(clips) == 0:
            raise ValueError("clips is empty")
        self._clips: list[_Clip] = []
        for c in clips:
            ref = c if isinstance(c, ReferenceMotion) else load_reference(c, self.control_hz, data_root, ground_feet)
            if abs(ref.fps - self.control_hz) > 1e-9:
                raise ValueError(f"reference {ref.name!r} has fps {ref.fps}, expected control_hz {self.control_hz}")
            self._clips.append(_Clip(ref))
        if goal == "latent":
            self._attach_codes(latent_codes)
        elif goal == "decoded":
            self._attach_decoded(decoded_motion, ground_feet)
        for c in self._clips:
            if c.last < 1:
                raise ValueError(f"clip {c.name!r} is too short to track (needs at least 2 control frames)")

        # Spaces.
        self.action_space = spaces.Box(-1.0, 1.0, shape=(len(JOINT_NAMES),), dtype=np.float32)
        if goal in ("reference", "decoded"):
            #: the numbers a policy may act on; the critic's true-reference block follows them
            self.actor_obs_dim = self.proprio_dim + REF_FRAME_DIM * len(self.reference_offsets)
            dim = self.actor_obs_dim + (REF_FRAME_DIM * len(self.reference_offsets) if self.critic_reference_obs else 0)
            self.observation_space = spaces.Box(-np.inf, np.inf, shape=(dim,), dtype=np.float32)
        else:
            self.observation_space = spaces.Dict({
                "proprio": spaces.Box(-np.inf, np.inf, shape=(self.proprio_dim,), dtype=np.float32),
                "latent": spaces.Box(0.0, float(self.vocab_size - 1), shape=(2, self.latent_block_size),
                                     dtype=np.float32),
                "phase": spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32),
            })

        self._clip = self._clips[0]
        self._frame = 0
        self._steps = 0
        self._prev_action = np.zeros(len(JOINT_NAMES))
        self._torque = np.zeros(len(JOINT_NAMES))
        # goal="decoded" root anchor: (cos, sin, tx, ty) of the planar map decoded -> robot
        # (x' = R(yaw) x + t), fixed in segment self._anchor_seg
        self._anchor = np.array([1.0, 0.0, 0.0, 0.0])
        self._anchor_seg = -1

    # ------------------------------------------------------------------ setup
    def _attach_decoded(self, decoded_motion, ground_feet: bool) -> None:
        if decoded_motion is None:
            raise ValueError("goal='decoded' needs decoded_motion={clip name: qpos (T, 26) at 30 Hz or ReferenceMotion}")
        for c in self._clips:
            if c.name not in decoded_motion:
                raise ValueError(f"clip {c.name!r} has no decoded motion (decoded_motion has "
                                 f"{len(decoded_motion)} clips)")
            dec = decoded_motion[c.name]
            if not isinstance(dec, ReferenceMotion):
                dec = decoded_reference(c.name, dec, self.control_hz, ground_feet)
            if abs(dec.fps - self.control_hz) > 1e-9:
                raise ValueError(f"decoded motion of {c.name!r} has fps {dec.fps}, expected control_hz {self.control_hz}")
            c.dec = dec
            c.dec_rows, c.dec_yaw = _decoded_tables(dec)
            c.dec_joints = c.dec_rows[:, :19]
            c.last = min(c.last, dec.num_frames - 1)  # goal and PD target frames need decoded frames

    def _attach_codes(self, latent_codes) -> None:
        if latent_codes is None:
            raise ValueError("goal='latent' needs latent_codes={clip name: int array (num_segments, "
                             f"{self.latent_block_size})}}")
        seg_per_frame = FPS / (SEGMENT_FRAMES * self.control_hz)
        for c in self._clips:
            if c.name not in latent_codes:
                raise ValueError(f"clip {c.name!r} has no latent codes (latent_codes has "
                                 f"{len(latent_codes)} clips)")
            codes = np.asarray(latent_codes[c.name])
            if codes.ndim != 2 or codes.shape[1] != self.latent_block_size or codes.shape[0] < 1:
                raise ValueError(f"latent codes of clip {c.name!r}: expected shape (num_segments, "
                                 f"{self.latent_block_size}), got {codes.shape}")
            if not (np.issubdtype(codes.dtype, np.integer)
                    or (np.issubdtype(codes.dtype, np.floating) and np.isfinite(codes).all()
                        and (codes == np.round(codes)).all())):
                raise ValueError(f"latent codes of clip {c.name!r}: expected integer indices, got {codes.dtype}")
            lo, hi = codes.min(), codes.max()
            if lo < 0 or hi >= self.vocab_size:
                raise ValueError(f"latent codes of clip {c.name!r}: indices must be in [0, {self.vocab_size}), "
                                 f"got range [{lo}, {hi}]")
            frames30 = c.ref.duration * FPS + 1
            max_segments = math.ceil(frames30 / SEGMENT_FRAMES - 1e-9)
            if codes.shape[0] > max_segments:
                raise ValueError(f"latent codes of clip {c.name!r}: {codes.shape[0]} segments but the clip "
                                 f"has at most {max_segments} segments of {SEGMENT_FRAMES} frames")
            c.codes = codes.astype(np.float32)
            # Last frame whose segment has codes: seg(k) = floor(k * seg_per_frame) < num_segments.
            last_cov = math.ceil(codes.shape[0] / seg_per_frame - 1e-9) - 1
            c.last = min(c.last, last_cov)

    @property
    def clip_names(self) -> list[str]:
        return [c.name for c in self._clips]

    def last_frame(self, clip: str) -> int:
        """Last usable reference frame (control rate) of ``clip``: episodes start in
        [0, last_frame) and truncate with "clip_end" on reaching it.  ValueError if unknown."""
        names = self.clip_names
        if clip not in names:
            raise ValueError(f"unknown clip {clip!r}; env clips: {names}")
        return self._clips[names.index(clip)].last

    def set_motion(self, reference: ReferenceMotion, decoded: ReferenceMotion | None = None, *,
                   reanchor: bool = True):
        """Replace the motion of the clip being tracked, mid-episode; returns the new observation.

        The simulator state, frame counter, step count and previous action are kept: only what the
        robot is compared with and (goal="decoded") asked to follow changes, from the current frame
        on.  For a motion stream that grows while it is tracked: append a segment, pass the whole
        stream, step on (``daps command``'s physics path, :mod:`highlevel.physics`).

        Args:
            reference: the clip's new reference motion at ``control_hz``, named as the current clip
                (frames are indexed from the episode's frame 0, like the old one); it must reach past
                the current frame.  Reward and termination are computed against it.
            decoded: goal="decoded" only: the new decoded motion (default: ``reference`` itself, the
                decoded motion then being its own reference); the usable end moves to the shorter.
            reanchor: goal="decoded": fix the root anchor anew at the current frame on the new
                decoded motion (its decoded root at this frame is mapped onto the robot's root), as on
                entering a segment.  False keeps the anchor of the old motion.

        Raises:
            ValueError: goal="latent" (codes are attached at construction), another name or fps,
                or a motion that ends at or before the current frame.
        """
        if self.goal == "latent":
            raise ValueError("set_motion: not available with goal='latent' (its codes are fixed at construction)")
        c = self._clip
        if not isinstance(reference, ReferenceMotion):
            raise ValueError(f"set_motion: reference must be a ReferenceMotion, got {type(reference).__name__}")
        if reference.name != c.name:
            raise ValueError(f"set_motion: the new motion is named {reference.name!r}, the episode tracks {c.name!r}")
        new = _Clip(reference, cached=False)
        if self.goal == "decoded":
            dec = reference if decoded is None else decoded
            new.dec = dec
            new.dec_rows, new.dec_yaw = _decoded_tables.__wrapped__(dec)
            new.dec_joints = new.dec_rows[:, :19]
            new.last = min(new.last, dec.num_frames - 1)
        elif decoded is not None:
            raise ValueError("set_motion: decoded motion given but goal is not 'decoded'")
        for m in (reference, decoded):
            if m is not None and abs(m.fps - self.control_hz) > 1e-9:
                raise ValueError(f"set_motion: motion {m.name!r} has fps {m.fps}, expected control_hz {self.control_hz}")
        if new.last <= self._frame:
            raise ValueError(f"set_motion: the new motion ends at frame {new.last}, not after the current frame {self._frame}")
        self._clips[self._clips.index(c)] = new
        self._clip = new
        if self.goal == "decoded" and reanchor:
            self._set_anchor(self._frame)
        return self._get_obs()

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        if "clip" in options:
            names = self.clip_names
            if options["clip"] not in names:
                raise ValueError(f"reset: unknown clip {options['clip']!r}; env clips: {names}")
            self._clip = self._clips[names.index(options["clip"])]
        else:
            self._clip = self._clips[int(self.np_random.integers(len(self._clips)))]
        c = self._clip
        if "frame" in options:
            frame = int(options["frame"])
            if not 0 <= frame < c.last:
                raise ValueError(f"reset: frame {frame} out of [0, {c.last}) for clip {c.name!r}")
        else:
            frame = int(self.np_random.integers(c.last))  # at least one step left
        self._frame = frame
        self._steps = 0
        self._prev_action[:] = 0.0
        self._torque[:] = 0.0
        qpos0, qvel0 = c.qpos[frame], c.qvel[frame]
        if "qpos" in options:  # a given start state instead of the reference frame's
            qpos0 = np.asarray(options["qpos"], dtype=np.float64)
            qvel0 = np.asarray(options.get("qvel", np.zeros(self.model.nv)), dtype=np.float64)
            if qpos0.shape != (self.model.nq,) or qvel0.shape != (self.model.nv,):
                raise ValueError(f"reset: options qpos/qvel must have shapes ({self.model.nq},) / ({self.model.nv},), "
                                 f"got {qpos0.shape} / {qvel0.shape}")
            if not (np.isfinite(qpos0).all() and np.isfinite(qvel0).all()):
                raise ValueError("reset: options qpos/qvel contain NaN or inf")
        elif "qvel" in options:
            raise ValueError("reset: options qvel needs qpos")
        d = self.data
        mujoco.mj_resetData(self.model, d)
        d.qpos[:] = qpos0
        d.qvel[:] = qvel0
        mujoco.mj_forward(self.model, d)
        if self.goal == "decoded":
            self._set_anchor(frame)
        info = {"clip": c.name, "frame": frame, "termination": None, "truncation": None}
        return self._get_obs(), info

    def _warning_count(self) -> int:
        # self._warning_numbers is a numpy view of data.warning.number: one fancy-index + sum
        # instead of four struct accesses through the bindings.
        return int(self._warning_numbers[self._bad_warnings].sum())

    def step(self, action):
        m, d, c = self.model, self.data, self._clip
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape[0] != len(JOINT_NAMES):
            raise ValueError(f"action must have {len(JOINT_NAMES)} entries, got {a.shape[0]}")
        self._frame = min(self._frame + 1, c.last)
        self._steps += 1
        k = self._frame
        reason = None
        if not np.isfinite(a).all():
            reason = "unstable"
            self._prev_action[:] = np.nan_to_num(np.clip(a, -1.0, 1.0))
        elif not (np.isfinite(self._qpos).all() and np.isfinite(self._qvel).all()):
            reason = "unstable"
            self._prev_action[:] = np.clip(a, -1.0, 1.0)
        else:
            a = np.clip(a, -1.0, 1.0)
            self._prev_action[:] = a
            warn0 = self._warning_count()
            if self.action_mode == "torque":
                np.multiply(a, self._limits, out=self._torque)
                d.ctrl[:] = self._torque
            else:  # joint position targets; MuJoCo's position actuators run the PD law in every substep
                d.ctrl[:] = self._pd_target(a, k)
            mujoco.mj_step(m, d, nstep=self.frame_skip)
            if self.action_mode == "pd":
                self._torque[:] = d.actuator_force  # of the last substep, clipped to the limits
            # Bring the quantities derived from positions and velocities up to the new state (also
            # for an unstable one: its observation then shows the state MuJoCo left, zeros for NaN).
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            mujoco.mj_comVel(m, d)
            qpos, qvel = self._qpos, self._qvel
            if (self._warning_count() != warn0 or not np.isfinite(qpos).all()
                    or not np.isfinite(qvel).all() or np.abs(qvel).max() > self.max_qvel):
                reason = "unstable"

        if reason == "unstable":
            reward = 0.0
            terms = {"pose": 0.0, "vel": 0.0, "end_effector": 0.0, "com": 0.0, "torque_penalty": 0.0}
        else:
            reward, terms = self._reward(k)
            reason = self._termination(k)
        terminated = reason is not None
        trunc_reason = None
        if not terminated:
            if k >= c.last:
                trunc_reason = "clip_end"
            elif self._steps >= self.max_episode_steps:
                trunc_reason = "time_limit"
        info = dict(terms)
        info.update(clip=c.name, frame=k, termination=reason, truncation=trunc_reason)
        if self.goal == "decoded":
            if self._segment(k) != self._anchor_seg:  # entered a new segment: re-base on the robot
                self._set_anchor(k)
            err = np.abs(self._q_joints - c.dec_joints[k])
            info["decoded_joint_error"] = float(err.sum() / err.size)
        return self._get_obs(), float(reward), terminated, trunc_reason is not None, info

    # ------------------------------------------------------------------ pieces
    def _pd_target(self, a: np.ndarray, k: int) -> np.ndarray:
        """Joint position targets (19, rad) of a clipped action for reference frame ``k``."""
        if self.pd_target == "reference":
            return self._clip.joints[k] + self.pd_action_scale * a
        if self.pd_target == "decoded":
            return self._clip.dec_joints[k] + self.pd_action_scale * a
        if self.pd_target == "nominal":
            return NOMINAL_POSE + self.pd_action_scale * a
        return self._range_mid + self._range_half * a

    def _reward(self, k: int):
        c = self._clip
        ee_rel = self._site_xpos[self._site_ids] - self._root_pos
        torque_normalized = self._torque / self._limits if self.torque_penalty_weight else None
        return imitation_reward(
            self._qpos, self._qvel, ee_rel, self._pelvis_subtree_com,
            c.qpos[k], c.qvel[k], c.ee_rel[k], c.com[k],
            torque_normalized, self.torque_penalty_weight,
        )

    def state_reward(self, qpos, qvel, frame: int | None = None, clip: str | None = None):
        """Reward ``(total, terms)`` of the state (qpos, qvel) against reference ``frame`` of ``clip``.

        Sets the simulator state (and the env's current clip/frame) to it; for checks and analysis.
        Defaults: the current clip and frame.
        """
        c = self._clip if clip is None else self._clips[self.clip_names.index(clip)]
        k = self._frame if frame is None else int(frame)
        d = self.data
        d.qpos[:] = qpos
        d.qvel[:] = qvel
        mujoco.mj_forward(self.model, d)
        self._clip, self._frame = c, k
        return self._reward(k)

    def reference_reward(self, frame: int | None = None, clip: str | None = None):
        """Reward of the reference state itself (1.0 up to rounding); see :meth:`state_reward`."""
        c = self._clip if clip is None else self._clips[self.clip_names.index(clip)]
        k = self._frame if frame is None else int(frame)
        return self.state_reward(c.qpos[k], c.qvel[k], k, c.name)

    def _termination(self, k: int) -> str | None:
        c = self._clip
        z = self._root_pos[2]
        if z < self.min_pelvis_height and z < c.qpos[k, 2] - 0.2:
            return "fell"
        cos_tilt = self._imu_xmat[8]
        tilt = math.acos(max(-1.0, min(1.0, cos_tilt)))
        if tilt > self.max_tilt and tilt > c.tilt[k] + 0.5:
            return "tilted"
        joint_err = np.abs(self._q_joints - c.joints[k])
        if joint_err.sum() / joint_err.size > self.max_mean_joint_error:  # = np.mean, without its overhead
            return "diverged"
        return None

    def _write_proprio(self, out: np.ndarray) -> None:
        """Write the 63 (67 with ``root_velocity_obs``) proprioceptive numbers (module docstring) into ``out``."""
        R = self._imu_xmat.reshape(3, 3)
        out[0:19] = self._q_joints
        out[19:38] = self._qdot_joints
        out[38:41] = -R[2]  # R^T (0, 0, -1)
        out[41:44] = self._torso_angvel @ R  # R^T w_world
        out[44:63] = self._prev_action
        if self.root_velocity_obs:
            xm = self._pelvis_xmat
            yaw = math.atan2(xm[3], xm[0])  # heading of the pelvis x axis, as the reference goal's
            cy, sy = math.cos(yaw), math.sin(yaw)
            vx, vy, vz = self._qvel[0], self._qvel[1], self._qvel[2]  # free joint: world-frame linear velocity
            out[63] = cy * vx + sy * vy  # (vx, vy) rotated by -yaw
            out[64] = -sy * vx + cy * vy
            out[65] = vz
            out[66] = self._root_pos[2]

    def _segment(self, k: int) -> int:
        """32-frame (30 Hz) segment of control frame k (as the latent goal's)."""
        return int(math.floor(k * FPS / (SEGMENT_FRAMES * self.control_hz) + 1e-9))

    def _set_anchor(self, k: int) -> None:
        """Fix the planar map that puts the decoded root of frame k on the robot's root (x, y, yaw)."""
        c, xm = self._clip, self._pelvis_xmat
        dyaw = math.atan2(xm[3], xm[0]) - c.dec_yaw[k]
        ca, sa = math.cos(dyaw), math.sin(dyaw)
        x, y = c.dec_rows[k, 19], c.dec_rows[k, 20]
        self._anchor[:] = (ca, sa, self._root_pos[0] - (ca * x - sa * y), self._root_pos[1] - (sa * x + ca * y))
        self._anchor_seg = self._segment(k)

    def decoded_qpos(self, frame: int | None = None) -> np.ndarray:
        """(26,) qpos of the decoded motion at control ``frame`` (default: the current one) with the
        current root anchor applied (where the policy is asked to be); ``goal="decoded"`` only."""
        if self.goal != "decoded":
            raise ValueError("decoded_qpos needs goal='decoded'")
        k = self._frame if frame is None else int(frame)
        q = np.array(self._clip.dec.qpos[k])
        ca, sa, tx, ty = self._anchor
        q[0], q[1] = ca * q[0] - sa * q[1] + tx, sa * q[0] + ca * q[1] + ty
        half = 0.5 * math.atan2(sa, ca)  # rotation about z: q <- (cos h, 0, 0, sin h) * q
        w, x, y, z = q[3:7]
        ch, sh = math.cos(half), math.sin(half)
        q[3:7] = (ch * w - sh * z, ch * x - sh * y, ch * y + sh * x, ch * z + sh * w)
        return q

    def _write_reference_goal(self, out: np.ndarray, true_reference: bool = False) -> None:
        """Write the ``goal="reference"`` / ``"decoded"`` numbers (28 per reference offset, module
        docstring) into ``out``; true_reference: the true clip's even with ``goal="decoded"``
        (the critic's block of ``critic_reference_obs``)."""
        c = self._clip
        fs = np.minimum(self._frame + self.reference_offsets, c.last)
        g = out.reshape(len(fs), REF_FRAME_DIM)
        if self.goal == "decoded" and not true_reference:
            np.take(c.dec_rows, fs, axis=0, out=g)  # decoded joints, root position, root rotation columns
            ca, sa, tx, ty = self._anchor  # anchor: rotate the root position and rotation columns about z
            for j, t in ((19, (tx, ty)), (22, (0.0, 0.0)), (25, (0.0, 0.0))):
                x, y = g[:, j].copy(), g[:, j + 1].copy()
                g[:, j] = ca * x - sa * y + t[0]
                g[:, j + 1] = sa * x + ca * y + t[1]
        else:
            np.take(c.goal_rows, fs, axis=0, out=g)  # reference joints, root position, root rotation columns
        R = self._pelvis_xmat.reshape(3, 3)
        yaw = math.atan2(R[1, 0], R[0, 0])
        cy, sy = math.cos(yaw), math.sin(yaw)
        dp = g[:, 19:22]
        dp -= self._root_pos  # reference root position - current root position (world)
        # (x, y) rotated by -yaw into the heading frame: [cy dx + sy dy, -sy dx + cy dy]
        g[:, 19:21] = dp[:, :2] @ np.array([[cy, -sy], [sy, cy]])
        # reference rotation columns c_j -> R^T c_j (computed as rows c_j^T R)
        g[:, 22:28] = (g[:, 22:28].reshape(-1, 2, 3) @ R).reshape(-1, 6)

    def _latent_goal(self):
        c = self._clip
        s = self._frame * FPS / (SEGMENT_FRAMES * self.control_hz)
        seg = int(math.floor(s + 1e-9))
        phase = min(max(s - seg, 0.0), 0.999999)
        nseg = c.codes.shape[0]
        seg = min(seg, nseg - 1)
        latent = np.stack([c.codes[seg], c.codes[min(seg + 1, nseg - 1)]])
        return latent, np.array([phase], dtype=np.float32)

    def _get_obs(self):
        flat = self.goal != "latent"
        if flat:
            obs = np.empty(self.observation_space.shape[0])
            self._write_reference_goal(obs[self.proprio_dim:self.actor_obs_dim])
            if self.critic_reference_obs:
                self._write_reference_goal(obs[self.actor_obs_dim:], true_reference=True)
        else:
            obs = np.empty(self.proprio_dim)
        self._write_proprio(obs[:self.proprio_dim])
        if not np.isfinite(obs).all():  # non-finite numbers (unstable state) are observed as 0
            np.nan_to_num(obs, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        obs = obs.astype(np.float32)
        if flat:
            return obs
        latent, phase = self._latent_goal()
        return {"proprio": obs, "latent": latent, "phase": phase}

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, 480, 640)
        cam = mujoco.MjvCamera()
        cam.lookat[:] = self.data.qpos[:3]
        cam.distance, cam.azimuth, cam.elevation = 3.0, 135.0, -15.0
        self._renderer.update_scene(self.data, camera=cam)
        return self._renderer.render()

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
