"""Tests of our own H1 model (envs/h1.xml, envs/model.py)."""

from __future__ import annotations

import os
from pathlib import Path

import mujoco
import numpy as np
import pytest

from envs.model import BODY_NAMES, H1_XML, JOINT_NAMES, TORQUE_LIMITS, load_h1_model

REPO = Path(__file__).resolve().parents[1]
# Unitree's reference model (figures only, never copied into the repository)
REFERENCE_XML = Path(os.environ.get("DAPS_UNITREE_H1_XML", REPO.parent / "shared" / "assets" / "unitree_h1" / "h1.xml"))
DATA_DIR = Path(os.environ.get("DAPS_LAFAN1_DIR", REPO.parent / "shared" / "data" / "lafan1_h1"))


def _walk_qpos(step: int = 5) -> np.ndarray:
    path = DATA_DIR / "h1" / "walk1_subject1.csv"
    if not path.is_file():
        path = DATA_DIR / "walk1_subject1.csv"
    if not path.is_file():
        pytest.skip(f"LAFAN1-H1 data not found at {DATA_DIR}")
    rows = np.loadtxt(path, delimiter=",")[::step]
    return np.concatenate([rows[:, :3], rows[:, [6, 3, 4, 5]], rows[:, 7:]], axis=1)


def test_sizes_and_mass():
    m = load_h1_model()
    assert H1_XML.is_file()
    assert (m.nq, m.nv, m.nu) == (26, 25, 19)
    assert m.nmesh == 0
    assert abs(m.body_mass.sum() - 51.65) < 0.05
    assert m.opt.timestep == pytest.approx(0.002)
    assert tuple(m.body(i).name for i in range(1, m.nbody)) == BODY_NAMES
    assert tuple(m.joint(i).name for i in range(1, m.njnt)) == JOINT_NAMES
    assert m.jnt_type[0] == mujoco.mjtJoint.mjJNT_FREE
    np.testing.assert_allclose(m.dof_damping[6:], 1.0)
    np.testing.assert_allclose(m.dof_armature[6:], 0.1)
    # collision geoms carry no mass: body masses come from inertials only
    for name in ("left_foot", "right_foot", "left_hand", "right_hand", "imu"):
        assert mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, name) >= 0


def test_actuators_in_joint_order_with_torque_limits():
    m = load_h1_model()
    expected = [200, 200, 200, 300, 40] * 2 + [200] + [40, 40, 18, 18] * 2
    np.testing.assert_array_equal(TORQUE_LIMITS, expected)
    for a in range(m.nu):
        assert m.actuator_trnid[a, 0] == a + 1  # joint a+1 (0 is the free joint)
        np.testing.assert_array_equal(m.actuator_ctrlrange[a], [-expected[a], expected[a]])


def test_only_floor_contacts_and_fall_contacts_exist():
    m = load_h1_model()
    d = mujoco.MjData(m)
    d.qpos[2] = 1.05
    d.qpos[3] = 1.0
    touched = set()
    for _ in range(1500):
        mujoco.mj_step(m, d)
        for c in d.contact[: d.ncon]:
            assert 0 in (c.geom1, c.geom2), "robot self-contact should be disabled"
            touched.add(m.body(m.geom_bodyid[c.geom1 + c.geom2]).name)
    assert np.isfinite(d.qpos).all()
    assert {"left_ankle_link", "right_ankle_link"} <= touched
    assert d.qpos[2] < 0.5  # unactuated robot falls


@pytest.mark.skipif(not REFERENCE_XML.is_file(), reason="reference H1 model absent")
def test_body_positions_match_reference_model():
    spec = mujoco.MjSpec.from_file(str(REFERENCE_XML))
    spec.delete(spec.body("not_use_body"))
    for key in list(spec.keys):
        spec.delete(key)
    ref = spec.compile()
    assert (ref.nq, ref.nv) == (26, 25)
    m = load_h1_model()
    assert m.nbody == ref.nbody
    np.testing.assert_allclose(m.body_mass, ref.body_mass, atol=1e-9)
    np.testing.assert_allclose(m.jnt_range, ref.jnt_range, atol=1e-9)
    d, rd = mujoco.MjData(m), mujoco.MjData(ref)
    rng = np.random.default_rng(0)
    walk = DATA_DIR / "h1" / "walk1_subject1.csv"
    qs = list(_walk_qpos(step=50)) if walk.is_file() else []
    for _ in range(5):  # random poses inside the joint ranges
        q = np.zeros(26)
        q[:3] = rng.normal(size=3)
        quat = rng.normal(size=4)
        q[3:7] = quat / np.linalg.norm(quat)
        lo, hi = m.jnt_range[1:, 0], m.jnt_range[1:, 1]
        q[7:] = rng.uniform(lo, hi)
        qs.append(q)
    for q in qs:
        d.qpos[:] = q
        rd.qpos[:] = q
        mujoco.mj_kinematics(m, d)
        mujoco.mj_kinematics(ref, rd)
        np.testing.assert_allclose(d.xpos, rd.xpos, atol=1e-3)
        np.testing.assert_allclose(d.xipos, rd.xipos, atol=1e-3)


def test_feet_near_floor_while_walking():
    q = _walk_qpos(step=5)
    m = load_h1_model()
    d = mujoco.MjData(m)
    sid = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, n) for n in ("left_foot", "right_foot")]
    z = np.empty((len(q), 2))
    for t, qt in enumerate(q):
        d.qpos[:] = qt
        mujoco.mj_kinematics(m, d)
        z[t] = d.site_xpos[sid, 2]
    lowest = z.min(axis=1)  # the stance foot
    assert np.median(np.abs(lowest)) < 0.02
    assert np.percentile(np.abs(lowest), 95) < 0.05
    assert lowest.min() > -0.03  # never deep in the floor


def _floor_bodies(m, d) -> set[str]:
    out = set()
    for c in d.contact[: d.ncon]:
        assert 0 in (c.geom1, c.geom2), "only robot-vs-floor contacts are expected"
        out.add(m.body(m.geom_bodyid[c.geom1 + c.geom2]).name)
    return out


def test_every_robot_geom_has_a_floor_pair():
    # Contacts come from explicit <pair>s only (no broad phase): each robot geom must have one.
    m = load_h1_model()
    assert (m.geom_contype == 0).all() and (m.geom_conaffinity == 0).all()
    floor = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "floor")
    paired = {int(g) for g1, g2 in zip(m.pair_geom1, m.pair_geom2) for g in (g1, g2) if g != floor}
    assert all(floor in (g1, g2) for g1, g2 in zip(m.pair_geom1, m.pair_geom2))
    assert paired == set(range(m.ngeom)) - {floor}
    np.testing.assert_array_equal(m.pair_dim, 3)


FALL_BODIES = {"left_ankle_link", "right_ankle_link",  # feet
               "left_knee_link", "right_knee_link",  # shins / knees
               "left_elbow_link", "right_elbow_link",  # forearms / hands
               "pelvis", "torso_link"}


def test_random_torque_falls_touch_floor_with_feet_shins_hands_pelvis_torso():
    # Drops from standing poses tilted 0.3 rad forward, backward and to either side, random torques
    # (30% of the limits): together they must bring every body a fall needs onto the floor.
    m = load_h1_model()
    lo, hi = m.actuator_ctrlrange[:, 0], m.actuator_ctrlrange[:, 1]
    touched = set()
    for i, (axis, angle) in enumerate([((0, 1, 0), 0.3), ((0, 1, 0), -0.3), ((1, 0, 0), 0.3), ((1, 0, 0), -0.3)]):
        d = mujoco.MjData(m)
        d.qpos[2] = 1.0
        mujoco.mju_axisAngle2Quat(d.qpos[3:7], np.array(axis, float), angle)
        rng = np.random.default_rng(i)
        for t in range(1500):
            if t % 5 == 0:
                d.ctrl[:] = 0.3 * rng.uniform(lo, hi)
            mujoco.mj_step(m, d)
            touched |= _floor_bodies(m, d)
        assert np.isfinite(d.qpos).all()
    missing = FALL_BODIES - touched
    assert not missing, f"bodies that never touched the floor: {sorted(missing)}"


@pytest.mark.parametrize("axis,angle", [((0, 1, 0), -np.pi / 2), ((0, 1, 0), np.pi / 2),
                                        ((1, 0, 0), np.pi / 2), ((1, 0, 0), -np.pi / 2)])
def test_lying_robot_rests_on_pelvis_and_torso(axis, angle):
    # Lying on its back, front or either side, the robot rests on the floor (no sinking through it)
    # on its torso.  (The pelvis box is shielded by the hip-yaw housings, as in Unitree's model; it
    # does touch in the random-torque falls above.)
    m = load_h1_model()
    d = mujoco.MjData(m)
    d.qpos[2] = 0.3
    mujoco.mju_axisAngle2Quat(d.qpos[3:7], np.array(axis, float), angle)
    touched = set()
    for t in range(1000):
        mujoco.mj_step(m, d)
        if t >= 900:
            touched |= _floor_bodies(m, d)
    assert {"torso_link"} <= touched, sorted(touched)
    assert d.xpos[1:, 2].min() > -0.05  # nothing sank through the floor
    assert np.abs(d.qvel).max() < 5.0  # came to rest
