"""Encoding clips to codes and decoding codes to clips, and their bad inputs."""
import numpy as np
import pytest

from envs.lafan1 import DataError, load_clip_csv, resolve_clip_dir
from motion_vae.codec import decode_codes, encode_clip, read_codes_csv, write_codes_csv
from motion_vae.models import load_motion_vae
from motion_vae_support import BAD_CSVS, NEEDS_DATA, run_cli

pytestmark = NEEDS_DATA


def test_encode_decode_round_trip_shapes(trained):
    model, cfg, stats, _ = load_motion_vae(trained)
    rows = load_clip_csv(resolve_clip_dir(None) / "walk2_subject4.csv")[:100]
    codes = encode_clip(model, stats, rows)
    assert codes.shape == (4, 64) and codes.min() >= 0 and codes.max() < 64  # 3 segments + the padded tail
    assert np.array_equal(codes, encode_clip(model, stats, rows))  # seeded: deterministic
    greedy = encode_clip(model, stats, rows, greedy=True)
    assert np.array_equal(greedy[:3], encode_clip(model, stats, rows[:96], greedy=True))  # padding leaves whole segments alone
    out = decode_codes(model, stats, codes, rows)
    assert out.shape == (128, 26) and np.isfinite(out).all()
    assert np.allclose(out[0, :2], rows[0, :2])  # root starts where the clip starts


@pytest.mark.parametrize("name", list(BAD_CSVS))
def test_encode_rejects_bad_clip_file(tmp_path, trained, name):
    text, message = BAD_CSVS[name]
    clip = tmp_path / name
    clip.write_text(text)
    out = tmp_path / "codes.csv"
    r = run_cli("motion-vae", "encode", "--ckpt", str(trained), "--clip", str(clip), "--out", str(out), "--device", "cpu")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and message in lines[0], r.stderr
    assert not out.exists()


def test_decode_rejects_bad_codes(tmp_path, trained):
    bad = tmp_path / "codes.csv"
    bad.write_text(",".join(["1"] * 64) + "\n" + ",".join(["1"] * 63 + ["64"]) + "\n")
    out = tmp_path / "traj.csv"
    r = run_cli("motion-vae", "decode", "--ckpt", str(trained), "--codes", str(bad), "--out", str(out), "--device", "cpu")
    assert r.returncode == 2 and "codes.csv line 2: code 64 outside [0, 64)" in r.stderr and not out.exists()
    with pytest.raises(DataError, match="expected 64 codes, got 3"):
        bad.write_text("1,2,3\n")
        read_codes_csv(bad, 64, 64)
    with pytest.raises(DataError, match="100 frames do not fit 1 segments"):
        bad.write_text("# frames: 100\n" + ",".join(["1"] * 64) + "\n")
        read_codes_csv(bad, 64, 64)


def test_cli_encode_then_decode(tmp_path, trained):
    clip = resolve_clip_dir(None) / "walk2_subject4.csv"
    codes, traj = tmp_path / "codes.csv", tmp_path / "traj.csv"
    r = run_cli("motion-vae", "encode", "--ckpt", str(trained), "--clip", str(clip), "--out", str(codes), "--device", "cpu")
    assert r.returncode == 0, r.stderr
    z, num_frames = read_codes_csv(codes, 64, 64)
    n = len(load_clip_csv(clip))
    assert num_frames == n and len(z) == -(-n // 32)
    r = run_cli("motion-vae", "decode", "--ckpt", str(trained), "--codes", str(codes), "--out", str(traj), "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert load_clip_csv(traj).shape == (n, 26)  # every frame back, the padded tail cut off
    write_codes_csv(tmp_path / "again.csv", z, num_frames)
    assert (tmp_path / "again.csv").read_text() == codes.read_text()
