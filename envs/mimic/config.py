"""Configuration of the motion-tracking task (one dataclass, named presets).

The task follows mjlab's tracking task (BeyondMimic, Liao et al. 2025): a 50 Hz policy on
0.005 s physics, PD targets around the reference joint angles, anchor-relative body rewards and
terminations, start times sampled where episodes fail.  Every number lives here; the term
modules (:mod:`envs.mimic.actions`, ``observations``, ``rewards``, ``terminations``) read it.

Presets (:data:`PRESETS`): ``"mimic"`` is the shipped recipe; ``"assist"`` adds the decaying
pelvis assist (training curriculum), ``"balance"`` a capture-point feedback under the policy,
``"simbicon"`` adds SIMBICON's torso and swing-hip terms to that feedback (Yin et al. 2007),
``"corrected"`` tracks balance-corrected references (:mod:`envs.balance`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

__all__ = ["MimicConfig", "PRESETS", "preset", "TRACKED_BODIES", "END_EFFECTOR_BODIES", "ANCHOR_BODY"]

#: Bodies whose poses and velocities enter the body reward terms (mjlab tracks 14 on the G1).
TRACKED_BODIES: tuple[str, ...] = (
    "pelvis", "left_hip_roll_link", "left_knee_link", "left_ankle_link",
    "right_hip_roll_link", "right_knee_link", "right_ankle_link", "torso_link",
    "left_shoulder_roll_link", "left_elbow_link", "right_shoulder_roll_link", "right_elbow_link",
)
#: Bodies whose height error ends an episode (feet and forearms, as mjlab's ankles and wrists).
END_EFFECTOR_BODIES: tuple[str, ...] = ("left_ankle_link", "right_ankle_link", "left_elbow_link", "right_elbow_link")
#: The body the reference is anchored to (the free joint's body).
ANCHOR_BODY = "pelvis"


@dataclass(frozen=True)
class MimicConfig:
    """Every setting of the tracking task.  Units: s, m, rad, N, N m.

    Raises (from ``__post_init__``) ValueError for a non-positive rate, gain, sigma or limit.
    """

    # --- simulation
    physics_dt: float = 0.005          # s per physics step (mjlab: 0.005)
    decimation: int = 4                # physics steps per policy step: 50 Hz control
    kp_scale: float = 3.0              # x Unitree's H1 stiffness (and damping); torque limits stay
    max_episode_s: float = 10.0        # time limit of an episode (s)
    # --- actions: PD target = reference joint angles (next frame) + scale * a,
    # scale = action_scale * torque_limit / kp (mjlab's rule: a = 4 asks for the full torque)
    action_scale: float = 0.25
    action_clip: float = 10.0          # |a| beyond this is clipped (mjlab: none; ours: NaN-safe bound)
    # --- observations: reference frames ahead of the current one (control frames)
    reference_offsets: tuple[int, ...] = (1, 4)
    # --- rewards (mjlab's tracking weights and sigmas); the sum is multiplied by the control dt
    w_anchor_pos: float = 0.5
    w_anchor_ori: float = 0.5
    w_body_pos: float = 1.0
    w_body_ori: float = 1.0
    w_body_lin_vel: float = 1.0
    w_body_ang_vel: float = 1.0
    w_feet_height: float = 0.0         # DeepMimic's end-effector term on sole height (preset "clearance": 1)
    # mjlab's -0.1 costs 0.076 per step at the initial std 1 (19 joints), as much as perfect tracking
    # earns (0.1): staying alive is then worth nothing; -0.02 keeps it a fifth of that
    w_action_rate: float = -0.02
    w_joint_limit: float = -10.0
    sigma_anchor_pos: float = 0.3      # m
    sigma_anchor_ori: float = 0.4      # rad
    sigma_body_pos: float = 0.3        # m
    sigma_body_ori: float = 0.4        # rad
    sigma_body_lin_vel: float = 1.0    # m/s
    sigma_body_ang_vel: float = math.pi  # rad/s
    sigma_feet_height: float = 0.05    # m
    soft_joint_limit: float = 0.9      # share of each joint range inside which no limit penalty
    # --- terminations (mjlab's)
    max_anchor_z_error: float = 0.25   # m
    max_gravity_z_error: float = 0.8   # |g_z in anchor frame, reference - robot|
    max_end_effector_z_error: float = 0.25  # m
    # --- start sampling: by failure rate per bin (mjlab's adaptive sampling)
    bin_s: float = 1.0                 # s per bin
    uniform_share: float = 0.1         # share of starts drawn uniformly
    failure_ema: float = 0.05          # EMA rate of each bin's failure count
    start_noise_rad: float = 0.05      # uniform joint-angle noise at reset (rad)
    start_noise_vel: float = 0.1       # uniform root velocity noise at reset (m/s)
    mirror: bool = True                # add the left-right mirror of every clip
    corrected: bool = False            # track balance-corrected references (envs.balance)
    # --- assist (training curriculum): a capped pelvis wrench towards the reference anchor
    assist: bool = False
    assist_kp_pos: float = 2000.0      # N/m
    assist_kd_pos: float = 200.0       # N s/m
    assist_kp_ori: float = 1000.0      # N m/rad
    assist_kd_ori: float = 100.0       # N m s/rad
    assist_cap_force: float = 600.0    # N, initial cap of the force (scaled by the curriculum)
    assist_cap_torque: float = 300.0   # N m, initial cap of the torque
    assist_success: float = 0.5        # share of unterminated episodes above which the cap falls
    assist_decay: float = 0.9          # cap factor per rollout above the success share
    assist_min_scale: float = 0.02     # below this the assist is off for good
    # --- balance feedback under the policy: capture-point error -> ankle pitch and hip roll targets
    balance: bool = False
    balance_ankle_gain: float = 2.0    # rad of ankle pitch per m of sagittal capture-point error
    balance_hip_roll_gain: float = 2.0  # rad of swing hip roll per m of lateral capture-point error
    balance_limit: float = 0.3         # rad, bound of each feedback offset
    balance_torso_gain: float = 0.0    # rad of stance hip target per rad of pelvis tilt error (SIMBICON)
    balance_swing_world: bool = False  # swing hip keeps its thigh's world angle (SIMBICON)
    tracked_bodies: tuple[str, ...] = field(default=TRACKED_BODIES)
    end_effector_bodies: tuple[str, ...] = field(default=END_EFFECTOR_BODIES)

    def __post_init__(self):
        positive = ("physics_dt", "kp_scale", "max_episode_s", "action_scale", "action_clip", "sigma_anchor_pos",
                    "sigma_anchor_ori", "sigma_body_pos", "sigma_body_ori", "sigma_body_lin_vel",
                    "sigma_body_ang_vel", "sigma_feet_height", "max_anchor_z_error", "max_gravity_z_error", "max_end_effector_z_error",
                    "bin_s")
        for name in positive:
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"MimicConfig.{name} must be a positive number, got {v!r}")
        if int(self.decimation) != self.decimation or self.decimation < 1:
            raise ValueError(f"MimicConfig.decimation must be a positive integer, got {self.decimation!r}")
        if not self.reference_offsets or any(int(o) < 1 for o in self.reference_offsets):
            raise ValueError(f"MimicConfig.reference_offsets must be control frames >= 1, got {self.reference_offsets!r}")
        for name in ("uniform_share", "soft_joint_limit", "failure_ema", "assist_success", "assist_decay"):
            v = getattr(self, name)
            if not (0.0 <= v <= 1.0):
                raise ValueError(f"MimicConfig.{name} must lie in [0, 1], got {v!r}")

    @property
    def control_dt(self) -> float:
        """Seconds per policy step (0.02 at the defaults)."""
        return self.physics_dt * self.decimation

    @property
    def control_hz(self) -> float:
        return 1.0 / self.control_dt

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-able) for checkpoints and model cards."""
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MimicConfig":
        """Inverse of :meth:`to_dict`; ValueError naming an unknown key."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"MimicConfig: unknown keys {unknown}")
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**kw)


PRESETS: dict[str, MimicConfig] = {
    "mimic": MimicConfig(),
    "assist": MimicConfig(assist=True),
    "balance": MimicConfig(balance=True),
    "simbicon": MimicConfig(balance=True, balance_ankle_gain=4.0, balance_torso_gain=1.0, balance_swing_world=True),
    "corrected": MimicConfig(corrected=True),
    "clearance": MimicConfig(w_feet_height=1.0),
}


def preset(name: str, **overrides) -> MimicConfig:
    """A named preset with fields replaced; ValueError naming the preset or field if unknown."""
    if name not in PRESETS:
        raise ValueError(f"unknown task preset {name!r}; choose one of {', '.join(PRESETS)}")
    base = PRESETS[name]
    names = {f.name for f in fields(MimicConfig)}
    for k in overrides:
        if k not in names:
            raise ValueError(f"unknown task setting {k!r}")
    return replace(base, **overrides)
