"""Is a reference motion physically possible for the H1?  The centre of pressure it needs.

A motion's centre-of-mass acceleration and rate of change of angular momentum fix the ground
reaction wrench, hence the centre of pressure (COP, the zero-moment point) on the floor z = 0
(Vukobratovic and Borovac 2004; the multi-body form with angular momentum of Kajita et al.,
*Introduction to Humanoid Robotics*, 2014, eq. 3.64):

    p_x = c_x - (c_z m a_x + dL_y/dt) / (m (a_z + g))
    p_y = c_y - (c_z m a_y - dL_x/dt) / (m (a_z + g))

with m the mass, c the COM, a = c'' its acceleration and L the angular momentum about the COM
(MuJoCo ``mj_subtreeVel``), derivatives by central differences.  Real feet can only push, so the
COP must lie inside the support polygon: the convex hull of the sole corners of the feet within
``contact_height`` (2 cm) of the floor.  A frame is **infeasible** when its COP lies more than
``margin`` (5 cm) outside the polygon; frames with no foot near the floor (flight) or nearly
free fall (a_z + g < 2 m/s^2) are not judged.  In single support the stance ankle (pitch only, no
roll on the H1) must produce m (a_z + g) times the COP's distance from the ankle along the foot,
compared with its 40 N m limit.
"""

from __future__ import annotations

import mujoco
import numpy as np

from envs.model import TORQUE_LIMITS, JOINT_NAMES, load_h1_model
from envs.reference import FOOT_GEOMS, ReferenceMotion

__all__ = ["required_cop", "support_polygons", "feasibility", "GRAVITY"]

GRAVITY = 9.81


def required_cop(ref: ReferenceMotion) -> tuple[np.ndarray, np.ndarray]:
    """(cop (T, 2) m, vertical load m (a_z + g) (T,) N) of a reference, derivatives by central
    differences at ``ref.fps`` (ends one-sided)."""
    m = load_h1_model()
    d = mujoco.MjData(m)
    mass = float(m.body_subtreemass[1])
    T = ref.num_frames
    com, L = np.empty((T, 3)), np.empty((T, 3))
    for t in range(T):
        d.qpos[:], d.qvel[:] = ref.qpos[t], ref.qvel[t]
        mujoco.mj_forward(m, d)
        mujoco.mj_subtreeVel(m, d)
        com[t], L[t] = d.subtree_com[1], d.subtree_angmom[1]
    acc = np.gradient(np.gradient(com, 1 / ref.fps, axis=0), 1 / ref.fps, axis=0)
    dL = np.gradient(L, 1 / ref.fps, axis=0)
    fz = mass * (acc[:, 2] + GRAVITY)
    safe = np.where(np.abs(fz) < 1e-6, 1e-6, fz)
    px = com[:, 0] - (com[:, 2] * mass * acc[:, 0] + dL[:, 1]) / safe
    py = com[:, 1] - (com[:, 2] * mass * acc[:, 1] - dL[:, 0]) / safe
    return np.stack([px, py], 1), fz


def _sole_corners(m: mujoco.MjModel, d: mujoco.MjData, geom: int) -> np.ndarray:
    """(4, 3) world corners of the bottom face of a foot box."""
    R, c, h = d.geom_xmat[geom].reshape(3, 3), d.geom_xpos[geom], m.geom_size[geom]
    signs = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]])
    local = np.column_stack([signs[:, 0] * h[0], signs[:, 1] * h[1], -h[2] * np.ones(4)])
    return c + local @ R.T


def support_polygons(ref: ReferenceMotion, contact_height: float = 0.02):
    """Per frame: (corners (K, 2) of the feet within ``contact_height`` of the floor, stance
    flags (left, right), ankle positions (2, 2), foot forward axes (2, 2))."""
    m = load_h1_model()
    d = mujoco.MjData(m)
    geoms = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, g) for g in FOOT_GEOMS]
    ankles = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, b) for b in ("left_ankle_link", "right_ankle_link")]
    out = []
    for t in range(ref.num_frames):
        d.qpos[:] = ref.qpos[t]
        mujoco.mj_kinematics(m, d)
        pts, stance = [], []
        for g in geoms:
            c = _sole_corners(m, d, g)
            on = c[:, 2].min() < contact_height
            stance.append(bool(on))
            if on:
                pts.append(c[c[:, 2] < contact_height + 0.03, :2])
        fwd = np.array([d.geom_xmat[g].reshape(3, 3)[:2, 0] for g in geoms])
        fwd /= np.maximum(np.linalg.norm(fwd, axis=1, keepdims=True), 1e-9)
        out.append((np.concatenate(pts) if pts else np.zeros((0, 2)), stance, d.xpos[ankles, :2].copy(), fwd))
    return out


def _hull(points: np.ndarray) -> np.ndarray:
    """Convex hull (counter-clockwise) of (K, 2) points, Andrew's monotone chain."""
    pts = sorted(set(map(tuple, np.round(points, 9))))
    if len(pts) <= 2:
        return np.array(pts)

    def cross(o, a, b):  # z of (a - o) x (b - o)
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    def half(seq):
        h: list = []
        for p in seq:
            while len(h) >= 2 and cross(h[-2], h[-1], p) <= 0:
                h.pop()
            h.append(p)
        return h
    lower, upper = half(pts), half(reversed(pts))
    return np.array(lower[:-1] + upper[:-1])


def distance_outside(p: np.ndarray, hull: np.ndarray) -> float:
    """Distance (m) from point p (2,) to a convex polygon (K, 2) counter-clockwise; 0 inside."""
    if len(hull) == 0:
        return float("inf")
    if len(hull) == 1:
        return float(np.linalg.norm(p - hull[0]))
    a, b = hull, np.roll(hull, -1, axis=0)
    e = b - a
    inside = len(hull) >= 3 and (e[:, 0] * (p[1] - a[:, 1]) - e[:, 1] * (p[0] - a[:, 0]) >= 0).all()
    if inside:
        return 0.0
    t = np.clip(np.einsum("ij,ij->i", p - a, e) / np.maximum(np.einsum("ij,ij->i", e, e), 1e-12), 0, 1)
    return float(np.min(np.linalg.norm(a + t[:, None] * e - p, axis=1)))


def feasibility(ref: ReferenceMotion, margin: float = 0.05, contact_height: float = 0.02) -> dict:
    """The COP check of the module docstring over one motion.

    Returns {"frames_judged", "outside_share" (COP more than ``margin`` outside), "median_outside_m"
    (median distance over all judged frames, 0 inside), "single_support_frames",
    "ankle_torque_nm" (p50, p90 of the stance ankle torque in single support), "ankle_limit_nm",
    "ankle_over_limit_share"}.  Raises ValueError for a motion shorter than 3 frames.
    """
    if ref.num_frames < 3:
        raise ValueError(f"{ref.name}: needs at least 3 frames for accelerations, got {ref.num_frames}")
    cop, fz = required_cop(ref)
    polys = support_polygons(ref, contact_height)
    limit = float(TORQUE_LIMITS[JOINT_NAMES.index("left_ankle_joint")])
    min_load = 2.0 * load_mass()  # a_z + g below 2 m/s^2: nearly free fall, not judged
    dist, torques = [], []
    for t, (pts, stance, ankle, fwd) in enumerate(polys):
        if not any(stance) or fz[t] < min_load:
            continue
        dist.append(distance_outside(cop[t], _hull(pts)))
        if sum(stance) == 1:
            s = stance.index(True)
            torques.append(abs(float(fz[t] * np.dot(cop[t] - ankle[s], fwd[s]))))
    dist_a, torq = np.array(dist), np.array(torques)
    return {
        "motion": ref.name, "frames": ref.num_frames, "frames_judged": len(dist_a),
        "outside_share": float((dist_a > margin).mean()) if len(dist_a) else 0.0,
        "median_outside_m": float(np.median(dist_a)) if len(dist_a) else 0.0,
        "margin_m": margin,
        "single_support_frames": len(torq),
        "ankle_torque_nm": {"p50": float(np.percentile(torq, 50)) if len(torq) else 0.0,
                            "p90": float(np.percentile(torq, 90)) if len(torq) else 0.0},
        "ankle_limit_nm": limit,
        "ankle_over_limit_share": float((torq > limit).mean()) if len(torq) else 0.0,
    }


def load_mass() -> float:
    """Total mass (kg) of the H1 model."""
    return float(load_h1_model().body_subtreemass[1])
