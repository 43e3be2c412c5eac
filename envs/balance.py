"""Balance-corrected references: move the centre of mass so the motion's centre of pressure
falls on the feet, keep the feet where they were.

LAFAN1's human sway is too small for the H1's wide stance and missing ankle roll: followed
exactly, most walking frames need their centre of pressure (COP) centimetres outside the feet
(:mod:`envs.feasibility`).  The correction (the linear inverted pendulum of Kajita et al. 2003,
"Biped walking pattern generation by using preview control of zero-moment point", solved as
one least-squares problem per axis instead of a preview controller):

1. Desired COP p(t): the stance sole centre in single support, the midpoint of the soles in
   double support; frames with no foot near the floor are left free (weight 0).
2. A COM path c(t) per horizontal axis minimising
   sum_t w_t (c_t - (h/g) c''_t - p_t)^2 + lambda sum_t (c_t - c_ref,t)^2
   (h the clip's mean COM height; c - (h/g) c'' is the pendulum's COP), a pentadiagonal system.
3. The pelvis moves by the COM change; both legs are re-solved by damped least squares (MuJoCo
   site Jacobians) so each sole keeps its reference position and orientation; the COM is then
   recomputed and steps 2-3 repeat (``passes``) since the legs' motion moves it too.

:func:`correct_reference` returns the corrected motion; :func:`correction_report` measures what it
changed (footsteps, root path, speed, joint angles) beside the COP check before and after.
"""

from __future__ import annotations

import mujoco
import numpy as np
from scipy import sparse
from scipy.sparse.linalg import spsolve

from envs.model import JOINT_NAMES, load_h1_model
from envs.reference import ReferenceMotion, make_reference

__all__ = ["correct_reference", "correction_report", "desired_cop", "corrected_cached"]

GRAVITY = 9.81
SOLE_SITES = ("left_foot", "right_foot")
_LEG_DOFS = np.array([6 + i for i, j in enumerate(JOINT_NAMES) if j.startswith(("left_", "right_")) and
                      any(k in j for k in ("hip", "knee", "ankle"))])


def _feet(model, data, qpos: np.ndarray, sites) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sole centres (T, 2, 3), sole rotations (T, 2, 3, 3), COM (T, 3)) of a motion."""
    T = len(qpos)
    pos, rot, com = np.empty((T, 2, 3)), np.empty((T, 2, 3, 3)), np.empty((T, 3))
    for t in range(T):
        data.qpos[:] = qpos[t]
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        pos[t], rot[t] = data.site_xpos[sites], data.site_xmat[sites].reshape(2, 3, 3)
        com[t] = data.subtree_com[1]
    return pos, rot, com


def desired_cop(sole: np.ndarray, contact_height: float = 0.03) -> tuple[np.ndarray, np.ndarray]:
    """(desired COP (T, 2), weight (T,)) from sole centres (T, 2, 3): the stance sole, the
    midpoint in double support, weight 0 in flight.  A sole is in contact below ``contact_height``
    (m) above the lower one plus 1 cm, or when it is the lower one."""
    z = sole[:, :, 2]
    low = z.min(1, keepdims=True)
    contact = z <= np.maximum(low + 0.01, contact_height)
    n = contact.sum(1)
    p = np.where(n[:, None] > 0, (sole[:, :, :2] * contact[:, :, None]).sum(1) / np.maximum(n, 1)[:, None], 0.0)
    return p, (n > 0).astype(float)


def _com_path(c_ref: np.ndarray, p: np.ndarray, w: np.ndarray, h: float, dt: float, lam: float) -> np.ndarray:
    """Least-squares COM path (T,) of one axis (module docstring, step 2): the normal equations
    (A^T W A + lam I) c = A^T W p + lam c_ref with A = I - (h/g) D2, D2 the second difference
    (zero in the end rows), a sparse banded system."""
    T, k = len(c_ref), h / (GRAVITY * dt * dt)
    main, off = np.full(T, 1.0 + 2.0 * k), np.full(T - 1, -k)
    main[[0, -1]] = 1.0
    upper, lower = off.copy(), off.copy()
    upper[0], lower[-1] = 0.0, 0.0  # end rows of D2 are zero
    A = sparse.diags([lower, main, upper], [-1, 0, 1], format="csc")
    W = sparse.diags(w)
    M = (A.T @ W @ A + lam * sparse.identity(T)).tocsc()
    return spsolve(M, A.T @ (w * p) + lam * c_ref)


def _ik_legs(model, data, q: np.ndarray, sites, sole_pos: np.ndarray, sole_rot: np.ndarray, iters: int = 3,
             damping: float = 1e-3, w_rot: float = 0.3) -> np.ndarray:
    """Leg joint angles of q (26,) (root fixed) moved so both soles reach (2, 3) positions and
    (2, 3, 3) orientations, by damped least squares; returns the new qpos."""
    q = q.copy()
    jp, jr = np.empty((3, model.nv)), np.empty((3, model.nv))
    for _ in range(iters):
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        err, J = [], []
        for s, sid in enumerate(sites):
            mujoco.mj_jacSite(model, data, jp, jr, sid)
            R = data.site_xmat[sid].reshape(3, 3)
            E = sole_rot[s] @ R.T
            rot_err = 0.5 * np.array([E[2, 1] - E[1, 2], E[0, 2] - E[2, 0], E[1, 0] - E[0, 1]])
            err += [sole_pos[s] - data.site_xpos[sid], w_rot * rot_err]
            J += [jp[:, _LEG_DOFS], w_rot * jr[:, _LEG_DOFS]]
        e, Jm = np.concatenate(err), np.concatenate(J)
        dq = Jm.T @ np.linalg.solve(Jm @ Jm.T + damping * np.eye(len(e)), e)
        q[1 + _LEG_DOFS] += dq  # qpos index = dof index + 1 for hinge joints after the free joint
    return q


def correct_reference(ref: ReferenceMotion, lam: float = 0.5, passes: int = 2, smooth: int = 2) -> ReferenceMotion:
    """The motion with its COM moved so the pendulum COP stays on the feet (module docstring).

    Args:
        ref: a motion at its control rate.  lam: weight of staying near the reference COM path
            (larger: smaller correction).  passes: COM path / leg IK rounds.  smooth: half-width
            (frames) of the moving average applied to the pelvis shift.
    Returns a new ReferenceMotion named ``ref.name`` (feet not re-grounded: they keep their heights).
    Raises ValueError for a motion shorter than 5 frames.
    """
    if ref.num_frames < 5:
        raise ValueError(f"{ref.name}: balance correction needs at least 5 frames, got {ref.num_frames}")
    model = load_h1_model()
    data = mujoco.MjData(model)
    sites = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, s) for s in SOLE_SITES]
    dt = 1.0 / ref.fps
    sole0, rot0, com0 = _feet(model, data, ref.qpos, sites)
    p, w = desired_cop(sole0)
    h = float(np.mean(com0[:, 2]))
    target = np.stack([_com_path(com0[:, a], p[:, a], w, h, dt, lam) for a in range(2)], 1)
    q = np.array(ref.qpos)
    com = com0
    kernel = np.ones(2 * smooth + 1) / (2 * smooth + 1)
    for _ in range(passes):
        shift = target - com[:, :2]
        shift = np.stack([np.convolve(np.pad(shift[:, a], smooth, mode="edge"), kernel, "valid") for a in range(2)], 1)
        q[:, :2] += shift
        for t in range(len(q)):
            q[t] = _ik_legs(model, data, q[t], sites, sole0[t], rot0[t])
        _, _, com = _feet(model, data, q, sites)
    return make_reference(ref.name, q, ref.fps, ground_feet=False)


def correction_report(ref: ReferenceMotion, corrected: ReferenceMotion, margin: float = 0.05) -> dict:
    """What the correction changed: max and mean sole displacement of stance frames (m), mean root
    path change (m), path-length ratio (``speed_ratio``: the sway adds length) and net-displacement
    ratio (``net_speed_ratio``), mean |joint change| (rad), and the COP check of both."""
    from envs.feasibility import feasibility

    model = load_h1_model()
    data = mujoco.MjData(model)
    sites = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, s) for s in SOLE_SITES]
    s0, _, _ = _feet(model, data, ref.qpos, sites)
    s1, _, _ = _feet(model, data, corrected.qpos, sites)
    stance = s0[:, :, 2] <= s0[:, :, 2].min(1, keepdims=True) + 0.01
    foot_err = np.linalg.norm(s1 - s0, axis=-1)[stance]
    path = lambda q: np.sum(np.linalg.norm(np.diff(q[:, :2], axis=0), axis=1))  # noqa: E731
    return {
        "stance_sole_shift_max_m": float(foot_err.max()), "stance_sole_shift_mean_m": float(foot_err.mean()),
        "root_path_change_mean_m": float(np.mean(np.linalg.norm(corrected.qpos[:, :2] - ref.qpos[:, :2], axis=1))),
        "speed_ratio": float(path(corrected.qpos) / max(path(ref.qpos), 1e-9)),
        "net_speed_ratio": float(np.linalg.norm(corrected.qpos[-1, :2] - corrected.qpos[0, :2])
                                 / max(np.linalg.norm(ref.qpos[-1, :2] - ref.qpos[0, :2]), 1e-9)),
        "joint_change_mean_rad": float(np.mean(np.abs(corrected.qpos[:, 7:] - ref.qpos[:, 7:]))),
        "before": feasibility(ref, margin), "after": feasibility(corrected, margin),
    }


def corrected_cached(ref: ReferenceMotion, cache_dir=None, **kw) -> ReferenceMotion:
    """:func:`correct_reference` of ``ref``, stored as ``<cache>/<name>-<hash>.npy`` (the hash of
    its qpos, rate and settings) so a motion is corrected once per machine.  Cache folder:
    ``cache_dir``, else $DAPS_CACHE_DIR, else ~/.cache/daps/balance.  A corrupt entry is recomputed."""
    import hashlib
    import os
    from pathlib import Path

    from daps.io import atomic_write

    root = Path(cache_dir or os.environ.get("DAPS_CACHE_DIR") or Path.home() / ".cache" / "daps") / "balance"
    h = hashlib.sha256(np.ascontiguousarray(ref.qpos).tobytes() + repr((ref.fps, sorted(kw.items()))).encode()).hexdigest()[:16]
    path = root / f"{ref.name.replace('/', '_')}-{h}.npy"
    if path.is_file():
        try:
            q = np.load(path, allow_pickle=False)
            if q.shape == ref.qpos.shape and np.isfinite(q).all():
                return make_reference(ref.name, q, ref.fps, ground_feet=False)
        except (ValueError, OSError):
            pass
    out = correct_reference(ref, **kw)
    atomic_write(path, lambda tmp: np.save(open(tmp, "wb"), out.qpos))
    return out
