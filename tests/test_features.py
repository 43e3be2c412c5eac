"""Tests of motion_vae.features: layout, invariances, round trip, errors, speed."""

from __future__ import annotations

import time

import mujoco
import numpy as np
import pytest

from envs.model import BODY_NAMES, JOINT_NAMES
from envs.lafan1 import csv_to_qpos, default_data_root, load_clip_csv, resolve_clip_dir
from motion_vae.features import (
    FeatureBlock,
    compute_features,
    feature_layout,
    feature_names,
    features_to_qpos,
    num_features,
)


def _walk_qpos() -> np.ndarray:
    root = default_data_root()
    try:
        clip_dir = resolve_clip_dir(root)
    except ValueError:
        pytest.skip(f"LAFAN1-H1 data not found at {root}")
    path = clip_dir / "walk1_subject1.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return csv_to_qpos(load_clip_csv(path))


def _yaw(q: np.ndarray) -> float:
    w, x, y, z = q[3:7]
    return float(np.arctan2(2 * (x * y + w * z), 1 - 2 * (y * y + z * z)))


def _blocks() -> dict[str, slice]:
    return {b.name: slice(b.start, b.stop) for b in feature_layout()}


def _yaw_quat(a: float) -> np.ndarray:
    return np.array([np.cos(a / 2), 0.0, 0.0, np.sin(a / 2)])


def _qmul(a, b):
    out = np.empty(4)
    mujoco.mju_mulQuat(out, a, b)
    return out


def test_layout_covers_all_columns():
    layout = feature_layout()
    assert all(isinstance(b, FeatureBlock) for b in layout)
    assert layout[0].start == 0
    for prev, nxt in zip(layout, layout[1:]):
        assert prev.stop == nxt.start and prev.stop > prev.start
    F = num_features()
    assert layout[-1].stop == F == 108
    assert [b.name for b in layout] == [
        "root_height", "root_tilt", "root_lin_vel", "root_ang_vel", "joint_pos", "joint_vel", "body_pos",
    ]
    names = feature_names()
    assert len(names) == F and len(set(names)) == F
    assert names[_blocks()["joint_pos"].start] == f"joint_pos/{JOINT_NAMES[0]}"
    assert "body_pos/left_knee_link/x" in names
    assert not any(n.startswith("body_pos/pelvis/") for n in names)
    assert sum(n.startswith("body_pos/") for n in names) == 3 * (len(BODY_NAMES) - 1)


def test_rejects_bad_input():
    q = np.zeros((5, 26))
    q[:, 3] = 1.0
    with pytest.raises(ValueError, match="shape"):
        compute_features(q[:, :25])
    with pytest.raises(ValueError, match="shape"):
        compute_features(q[0])
    bad = q.copy()
    bad[3, 10] = np.nan
    with pytest.raises(ValueError, match="NaN.*frame 3"):
        compute_features(bad)
    bad = q.copy()
    bad[1, 3] = 0.0
    with pytest.raises(ValueError, match="quaternion"):
        compute_features(bad)
    with pytest.raises(ValueError, match="fps"):
        compute_features(q, fps=0)
    f = compute_features(q)
    assert f.shape == (5, num_features()) and f.dtype == np.float32
    with pytest.raises(ValueError, match="shape"):
        features_to_qpos(f[:, :-1])
    f2 = f.copy()
    f2[2, 0] = np.inf
    with pytest.raises(ValueError, match="NaN"):
        features_to_qpos(f2)


def test_standing_pose_values():
    q = np.zeros((3, 26))
    q[:, 2] = 1.0
    q[:, 3:7] = _yaw_quat(0.7)  # heading-invariant features do not see the yaw
    f = compute_features(q)
    b = _blocks()
    np.testing.assert_allclose(f[:, b["root_height"]], 1.0)
    np.testing.assert_allclose(f[:, b["root_tilt"]], [[1, 0, 0, 0, 1, 0]] * 3, atol=1e-6)
    np.testing.assert_allclose(f[:, b["root_lin_vel"]], 0.0, atol=1e-6)
    np.testing.assert_allclose(f[:, b["joint_vel"]], 0.0, atol=1e-6)
    body = f[0, b["body_pos"]].reshape(-1, 3)
    i = BODY_NAMES.index("left_hip_yaw_link") - 1
    np.testing.assert_allclose(body[i], [0, 0.0875, -0.1742], atol=1e-6)


def test_heading_invariance_and_known_velocities():
    q = _walk_qpos()[1000:1060].copy()
    f = compute_features(q)
    # rotate the whole trajectory by 1 rad about z and shift it: features unchanged
    a = 1.0
    Rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    q2 = q.copy()
    q2[:, :3] = q[:, :3] @ Rz.T + [3.0, -2.0, 0.0]
    q2[:, 3:7] = [_qmul(_yaw_quat(a), qt[3:7]) for qt in q]
    np.testing.assert_allclose(compute_features(q2), f, atol=2e-4)
    # a pure yaw spin at 0.5 rad/s and a forward walk at 1 m/s
    T, fps = 40, 30.0
    q3 = np.zeros((T, 26))
    t = np.arange(T) / fps
    yaw = 0.5 * t
    q3[:, 0], q3[:, 1], q3[:, 2] = 1.0 * t, 0.0, 1.0
    q3[:, 3:7] = [_yaw_quat(y) for y in yaw]
    f3 = compute_features(q3, fps=fps)
    b = _blocks()
    np.testing.assert_allclose(f3[:, b["root_ang_vel"]], [[0, 0, 0.5]] * T, atol=1e-5)
    v = f3[:, b["root_lin_vel"]]
    np.testing.assert_allclose(v[:, 0], np.cos(yaw), atol=1e-3)
    np.testing.assert_allclose(v[:, 1], -np.sin(yaw), atol=1e-3)


def test_round_trip_real_walk():
    q_all = _walk_qpos()
    b = _blocks()
    for s in (0, 2400, 5000):
        q = q_all[s : s + 300]
        f = compute_features(q)
        r = features_to_qpos(f, root_xy0=q[0, :2], yaw0=_yaw(q[0]))
        assert r.shape == q.shape
        np.testing.assert_allclose(r[:, 7:], q[:, 7:], atol=1e-6)  # joints exact (float32)
        np.testing.assert_allclose(r[:, 2], q[:, 2], atol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(r[:, 3:7], axis=1), 1.0)
        # same orientation (tilt and yaw) up to quaternion sign
        dots = np.abs(np.sum(r[:, 3:7] * q[:, 3:7], axis=1))
        assert np.degrees(2 * np.arccos(np.clip(dots, -1, 1))).max() < 2.0
        assert np.linalg.norm(r[:, :2] - q[:, :2], axis=1).max() < 0.02
        # features of the reconstruction match the original ones
        fr = compute_features(r)
        for name in ("root_height", "root_tilt", "joint_pos", "body_pos"):
            np.testing.assert_allclose(fr[:, b[name]], f[:, b[name]], atol=2e-3, err_msg=name)
        for name in ("root_lin_vel", "root_ang_vel"):  # integration smooths these a little
            assert np.abs(fr[:, b[name]] - f[:, b[name]]).mean() < 0.02, name


def test_speed_single_clip():
    q = _walk_qpos()
    t0 = time.perf_counter()
    f = compute_features(q)
    elapsed = time.perf_counter() - t0
    assert f.shape == (len(q), num_features())
    assert elapsed < 5.0, f"compute_features took {elapsed:.2f} s for {len(q)} frames"
