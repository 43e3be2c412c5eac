"""Tests of envs.lafan1: strict CSV loading, split, qpos conversion."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from envs import lafan1 as data
from envs.lafan1 import (
    VAL_CLIPS,
    DataError,
    csv_to_qpos,
    default_data_root,
    list_clips,
    load_clip_csv,
    mirror_qpos,
    qpos_to_csv,
    resample_qpos,
    resolve_clip_dir,
    split_clips,
    write_clip_csv,
)


def _real_root() -> Path:
    root = default_data_root()
    if not (root / "h1").is_dir() and not any(root.glob("*.csv")):
        pytest.skip(f"LAFAN1-H1 data not found at {root}")
    return root


def _good_rows(n: int = 5) -> np.ndarray:
    """A random but physically possible motion: small steps between frames (rad, m)."""
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(1, 26)) + np.cumsum(rng.normal(scale=0.05, size=(n, 26)), axis=0)
    rows[:, 2] = 1.0 + 0.1 * rows[:, 2]
    rows[:, 3:7] /= np.linalg.norm(rows[:, 3:7], axis=1, keepdims=True)
    return rows


def _write(tmp_path: Path, text: str, name: str = "clip_subject1.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _line(values) -> str:
    return ",".join(f"{v:.6f}" for v in values)


def test_default_root_env(monkeypatch, tmp_path):
    monkeypatch.setenv("DAPS_LAFAN1_DIR", str(tmp_path))
    assert default_data_root() == tmp_path
    monkeypatch.delenv("DAPS_LAFAN1_DIR")
    repo = Path(data.__file__).resolve().parents[1]
    assert default_data_root() == repo.parent / "shared" / "data" / "lafan1_h1"


def test_resolve_clip_dir(tmp_path):
    with pytest.raises(DataError, match="LAFAN1_Retargeting_Dataset") as e:
        resolve_clip_dir(tmp_path / "nope")
    assert "DAPS_LAFAN1_DIR" in str(e.value) and "\n" not in str(e.value)
    (tmp_path / "h1").mkdir()
    with pytest.raises(DataError, match="no clip CSV"):
        resolve_clip_dir(tmp_path)
    write_clip_csv(tmp_path / "h1" / "a_subject1.csv", _good_rows())
    assert resolve_clip_dir(tmp_path) == tmp_path / "h1"
    assert resolve_clip_dir(tmp_path / "h1") == tmp_path / "h1"
    assert list_clips(tmp_path) == ["a_subject1"]


def test_good_file_round_trip(tmp_path):
    rows = _good_rows(7)
    p = write_clip_csv(tmp_path / "x.csv", rows)
    assert [f.name for f in tmp_path.iterdir()] == ["x.csv"]  # no temp file left behind
    back = load_clip_csv(p)
    assert back.shape == (7, 26) and back.dtype == np.float64
    np.testing.assert_allclose(back, rows, atol=5e-7)


def test_missing_and_empty(tmp_path):
    with pytest.raises(DataError, match="missing.csv.*not found"):
        load_clip_csv(tmp_path / "missing.csv")
    with pytest.raises(DataError, match=r"^empty\.csv: file is empty$"):
        load_clip_csv(_write(tmp_path, "", "empty.csv"))
    with pytest.raises(DataError, match="file is empty"):
        load_clip_csv(_write(tmp_path, "\n \n", "blank.csv"))


def test_wrong_column_count_names_line(tmp_path):
    rows = _good_rows(20)
    lines = [_line(r) for r in rows]
    lines[16] = _line(rows[16][:25])
    p = _write(tmp_path, "\n".join(lines) + "\n", "walk1_subject1.csv")
    with pytest.raises(DataError) as e:
        load_clip_csv(p)
    assert str(e.value) == "walk1_subject1.csv line 17: expected 26 columns, got 25"


def test_non_number_names_line(tmp_path):
    rows = _good_rows(4)
    lines = [_line(r) for r in rows]
    lines[2] = lines[2].replace(lines[2].split(",")[9], "abc", 1)
    with pytest.raises(DataError, match=r"^c\.csv line 3: column 9 is not a number: 'abc'$"):
        load_clip_csv(_write(tmp_path, "\n".join(lines), "c.csv"))


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_nan_inf_names_line(tmp_path, bad):
    rows = _good_rows(4)
    lines = [_line(r) for r in rows]
    fields = lines[3].split(",")
    fields[12] = bad
    lines[3] = ",".join(fields)
    with pytest.raises(DataError, match=r"^n\.csv line 4: column 12 is not finite"):
        load_clip_csv(_write(tmp_path, "\n".join(lines), "n.csv"))


def test_zero_quaternion(tmp_path):
    rows = _good_rows(3)
    rows[1, 3:7] = 0.0
    with pytest.raises(DataError, match=r"^q\.csv line 2: root quaternion"):
        load_clip_csv(_write(tmp_path, "\n".join(_line(r) for r in rows), "q.csv"))


def test_too_short(tmp_path):
    p = write_clip_csv(tmp_path / "s.csv", _good_rows(5))
    assert load_clip_csv(p, min_frames=5).shape == (5, 26)
    with pytest.raises(DataError, match=r"^s\.csv: clip has 5 frames, need at least 6 \(one segment\)$"):
        load_clip_csv(p, min_frames=6)


def test_single_row(tmp_path):
    p = write_clip_csv(tmp_path / "one.csv", _good_rows(1))
    assert load_clip_csv(p).shape == (1, 26)


def test_qpos_round_trip():
    rows = _good_rows(50)
    rows[:, 3:7] *= 1.7  # unnormalised input gets normalised
    q = csv_to_qpos(rows)
    np.testing.assert_allclose(np.linalg.norm(q[:, 3:7], axis=1), 1.0)
    u = rows[:, 3:7] / np.linalg.norm(rows[:, 3:7], axis=1, keepdims=True)
    np.testing.assert_allclose(q[:, 3], u[:, 3])  # w first
    np.testing.assert_allclose(q[:, 4:7], u[:, :3])
    np.testing.assert_array_equal(q[:, 7:], rows[:, 7:])
    back = qpos_to_csv(q)
    np.testing.assert_allclose(back[:, 3:7], u)
    np.testing.assert_allclose(csv_to_qpos(back), q)
    with pytest.raises(ValueError, match="shape"):
        csv_to_qpos(rows[:, :25])
    bad = rows.copy()
    bad[2, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        qpos_to_csv(bad)


def test_mirror_qpos_is_the_mirror_image_under_forward_kinematics():
    import mujoco

    from envs.model import load_h1_model

    m = load_h1_model()
    d = mujoco.MjData(m)
    rng = np.random.default_rng(0)
    lo, hi = m.jnt_range[1:].T  # joint 0 is the free root
    q = np.concatenate([rng.normal(size=(6, 3)), _good_rows(6)[:, 3:7], rng.uniform(lo, hi, size=(6, 19))], axis=1)
    qm = mirror_qpos(q)
    names = [m.body(i).name for i in range(m.nbody)]
    swap = [names.index(n.replace("left", "#").replace("right", "left").replace("#", "right")) for n in names]

    def body_pos(qpos):
        d.qpos[:] = qpos
        mujoco.mj_kinematics(m, d)
        return d.xpos.copy()

    for a, b in zip(q, qm):  # every body lands where its mirror twin was, reflected in y
        np.testing.assert_allclose(body_pos(b), body_pos(a)[swap] * [1.0, -1.0, 1.0], atol=1e-9)
    np.testing.assert_allclose(mirror_qpos(qm), q)  # an involution
    assert (qm[:, 7:] >= lo - 1e-12).all() and (qm[:, 7:] <= hi + 1e-12).all()  # ranges mirror too
    with pytest.raises(ValueError, match="shape"):
        mirror_qpos(q[:, :25])


def test_real_split_and_fast_load():
    root = _real_root()
    clips = list_clips(root)
    assert len(clips) == 40 and clips == sorted(clips)
    train, val = split_clips(root)
    assert len(train) == 36 and len(val) == 4
    assert sorted(val) == sorted(VAL_CLIPS)
    assert not set(train) & set(val)
    clip_dir = resolve_clip_dir(root)
    t0 = time.perf_counter()
    total = sum(load_clip_csv(clip_dir / f"{c}.csv").shape[0] for c in clips)
    elapsed = time.perf_counter() - t0
    assert total == 264_705
    assert elapsed < 10.0


def test_resample_qpos_plays_the_motion_faster_or_slower():
    qpos = csv_to_qpos(load_clip_csv(_real_root() / "h1" / "walk1_subject1.csv")[:101])
    np.testing.assert_allclose(resample_qpos(qpos, 2.0), qpos[::2], atol=1e-12)  # every other frame, exactly
    slow = resample_qpos(qpos, 0.5)
    assert slow.shape == (201, 26)
    np.testing.assert_allclose(slow[::2], qpos, atol=1e-12)
    np.testing.assert_allclose(slow[1::2, 7:], (qpos[:-1, 7:] + qpos[1:, 7:]) / 2, atol=1e-12)  # joints: midpoints
    np.testing.assert_allclose(np.linalg.norm(slow[:, 3:7], axis=1), 1.0, atol=1e-12)  # unit root quaternions
    fast = resample_qpos(qpos, 1.25)
    assert len(fast) == 81 and np.allclose(fast[-1], qpos[100])
    flipped = qpos.copy()
    flipped[1::2, 3:7] *= -1  # the same rotations on the other hemisphere
    dots = np.sum(resample_qpos(flipped, 0.5)[:, 3:7] * slow[:, 3:7], axis=1)
    np.testing.assert_allclose(np.abs(dots), 1.0, atol=1e-12)  # q and -q: the same in-between rotation
    for speed in (0.1, 5.0):
        with pytest.raises(ValueError, match="speed must be in"):
            resample_qpos(qpos, speed)
