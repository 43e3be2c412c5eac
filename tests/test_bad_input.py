"""Bad input through the `daps` commands, table by table: each case ends with exit status 2 and one
line on stderr naming the file or option, and leaves no partial, damaged or stray file; files a
user is handed never run code when read.

1. low-level training checkpoints hold tensors and plain data; older ones holding pickled objects
   are refused without being unpickled;
2. no data loss and no stray files (--text-cache, temporaries of killed writers);
3. one line instead of a traceback or exhaustion (--seconds, --device, --out, IDX files, a full
   disk, binary codes files);
4. no value accepted silently (impossible clips, NaN options, strict JSON, --max-minutes, --resume,
   a folder for a file);
5. the decoded file's path: per-segment and whole-clip errors, segments anchored to the clip.
"""
from __future__ import annotations

import base64
import errno
import gzip
import io
import json
import math
import os
import pickle
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from daps.trainer import CheckpointError
from envs.lafan1 import DataError, default_data_root, load_clip_csv, resolve_clip_dir

pytestmark = pytest.mark.skipif(not default_data_root().exists(), reason="LAFAN1-H1 data not available")

TINY = dict(n_steps=64, batch_size=64, n_epochs=1, net_arch=[32, 32])
CLIP = "walk2_subject4"


def daps(*args, **kw) -> subprocess.CompletedProcess:
    """The real `daps` entry point in a fresh process."""
    exe = [sys.executable, "-c", "from daps.cli import main; main()"]
    return subprocess.run(exe + [str(a) for a in args], capture_output=True, text=True, timeout=300, **kw)


def one_line_error(r: subprocess.CompletedProcess, *names: str) -> str:
    """Assert exit status 2 and one stderr line naming each of `names`; return that line."""
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr[-2000:]
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in Path(folder).rglob(".*"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny goal="reference" low-level run (64 environment steps)."""
    from lowlevel.train import train_lowlevel

    d = tmp_path_factory.mktemp("ll")
    train_lowlevel(None, "walk1_subject1", steps=64, run_dir=d, n_envs=1, goal="reference", action_mode="pd",
                   pd_target="reference", overrides=TINY, progress=False)
    return d


# ----------------------------------------------------------------------------- 1. code in checkpoints
class _Payload:
    """What a hostile file holds: unpickling it creates `marker` (it could do anything)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _sb3_zip() -> bytes:
    """A genuine, harmless SB3 PPO zip (a tiny Pendulum policy)."""
    from stable_baselines3 import PPO

    buf = io.BytesIO()
    PPO("MlpPolicy", "Pendulum-v1", n_steps=8, batch_size=8, policy_kwargs=dict(net_arch=[4]), device="cpu").save(buf)
    return buf.getvalue()


def _zip_with_payload(marker: str) -> bytes:
    """An SB3-style zip whose "data" JSON holds a serialised object: PPO.load unpickles it."""
    buf = io.BytesIO()
    evil = base64.b64encode(pickle.dumps(_Payload(marker))).decode()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("data", json.dumps({"policy_kwargs": {":type:": "<class 'dict'>", ":serialized:": evil}}))
    return buf.getvalue()


def _crafted(tmp_path: Path, where: str) -> tuple[Path, Path]:
    """(checkpoint in the older layout with a payload in `where`, the marker it would create)."""
    marker = tmp_path / f"pwned_{where}"
    cfg = {"goal": "reference", "action_mode": "pd", "pd_target": "reference", "clips": ["walk1_subject1"],
           "seed": 0, "net_arch": [32, 32], "embed_dim": 8, "conv_channels": 8}
    ck = {"format": "daps-checkpoint-v1", "kind": "lowlevel-ppo", "config": cfg, "num_timesteps": 64,
          "ppo_zip": _zip_with_payload(str(marker)) if where == "zip" else _sb3_zip(),
          "vecnormalize": pickle.dumps(_Payload(str(marker))) if where == "vecnormalize" else pickle.dumps(None),
          "codes": None, "motion_vae": None}
    path = tmp_path / f"{where}.pt"
    torch.save(ck, path)
    return path, marker


COMMANDS = {  # how a user hands a low-level checkpoint to the product
    "lowlevel eval": lambda f, t: ["lowlevel", "eval", "--ckpt", f, "--out", t / "ev", "--no-progress"],
    "lowlevel export": lambda f, t: ["lowlevel", "export", "--ckpt", f, "--out", t / "p.pt"],
    "command --lowlevel": lambda f, t: ["command", "walk forward", "--lowlevel", f, "--out", t / "c.mp4"],
    "train --init-from": lambda f, t: ["lowlevel", "train", "--goal", "reference", "--action-mode", "pd", "--pd-target",
                                       "reference", "--clips", "walk1_subject1", "--run-dir", t / "r", "--init-from", f],
}


@pytest.mark.parametrize("where", ["zip", "vecnormalize"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_checkpoint_holding_pickled_objects_is_refused_never_run(where, command, tmp_path):
    path, marker = _crafted(tmp_path, where)
    before = set(tmp_path.iterdir())
    line = one_line_error(daps(*COMMANDS[command](path, tmp_path)), path.name, "pickled")
    assert "refused" in line
    assert not marker.exists()  # the payload never ran
    assert set(tmp_path.iterdir()) == before  # and nothing was written


@pytest.mark.parametrize("where", ["zip", "vecnormalize"])
def test_reading_a_pickled_checkpoint_raises_before_unpickling(where, tmp_path):
    from lowlevel.checkpoint import load_lowlevel

    path, marker = _crafted(tmp_path, where)
    with pytest.raises(CheckpointError, match="pickled"):
        load_lowlevel(path)
    assert not marker.exists()


def test_training_checkpoints_hold_tensors_and_plain_data_only(run):
    from lowlevel.checkpoint import load_lowlevel

    raw = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)

    def plain(x) -> bool:
        if isinstance(x, dict):
            return all(isinstance(k, (str, int)) and plain(v) for k, v in x.items())
        if isinstance(x, (list, tuple)):
            return all(plain(v) for v in x)
        return x is None or isinstance(x, (bool, int, float, str, torch.Tensor))

    assert plain(raw) and {"policy", "optimizer", "spaces", "vecnormalize"} <= set(raw)
    model, vecnorm, ck = load_lowlevel(run / "checkpoint.pt")  # the SB3 objects, rebuilt
    for a, b in zip(model.policy.state_dict().values(), raw["policy"].values()):
        assert torch.equal(a, b)
    np.testing.assert_array_equal(vecnorm.obs_rms.mean, raw["vecnormalize"]["obs_rms"][""]["mean"].numpy())
    assert model.num_timesteps == 64 and not vecnorm.training


# ----------------------------------------------------------------------------- 2. data loss and stray files
class _StubEncoder:
    def encode(self, texts):
        return np.ones((len(texts), 384), np.float32)


@pytest.mark.parametrize("name", ["tc.bin", "tc", "tc.npz"])
def test_a_new_text_cache_gets_the_cache_and_no_stray_file(name, tmp_path):
    from highlevel.text import EmbeddingCache

    cache = EmbeddingCache(tmp_path / name)
    cache._encoder = _StubEncoder()
    cache.encode(["walk forward"])
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no hidden ".tc.bin.XXXX.bin.npz"
    with np.load(tmp_path / name, allow_pickle=False) as z:
        assert list(z["texts"]) == ["walk forward"] and z["vectors"].shape == (1, 384)
    assert EmbeddingCache(tmp_path / name).encode(["walk forward"]).shape == (1, 384)  # read back, no encoder


@pytest.mark.parametrize("kind", ["random bytes", "a clip CSV", "a folder", "an npz of other arrays"])
def test_a_text_cache_that_is_not_one_is_refused_and_left_untouched(kind, tmp_path):
    path = tmp_path / "tc.bin"
    if kind == "random bytes":
        path.write_bytes(np.random.default_rng(0).bytes(200_000))
    elif kind == "a clip CSV":
        path.write_bytes((resolve_clip_dir() / f"{CLIP}.csv").read_bytes()[:50_000])
    elif kind == "a folder":
        path.mkdir()
    else:
        np.savez(tmp_path / "other.npz", weights=np.zeros(3))
        (tmp_path / "other.npz").rename(path)
    before = path.read_bytes() if path.is_file() else None
    r = daps("command", "walk forward", "--kinematic", "--text-cache", path, "--out", tmp_path / "c.mp4")
    one_line_error(r, str(path), "not a text-embedding cache")
    assert (path.read_bytes() if path.is_file() else None) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tc.bin"]


def _killed_writer(target: Path) -> None:
    """A process killed in the middle of an atomic write of `target` (as SIGKILL during a checkpoint)."""
    code = ("import os, signal, sys\nfrom daps.io import atomic_write\n"
            "def w(tmp):\n    open(tmp, 'wb').write(b'x' * 4096)\n    os.kill(os.getpid(), signal.SIGKILL)\n"
            "atomic_write(sys.argv[1], w)\n")
    r = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, timeout=120)
    assert r.returncode == -signal.SIGKILL


@pytest.mark.parametrize("target", ["checkpoint.pt", "config.json"])
def test_temporaries_of_a_killed_run_are_removed_by_the_next_run(target, run, tmp_path):
    from lowlevel.train import train_lowlevel

    folder = tmp_path / "r"
    folder.mkdir()
    for f in ("checkpoint.pt", "config.json", "progress.csv"):
        (folder / f).write_bytes((run / f).read_bytes())
    _killed_writer(folder / target)
    (folder / f".{target}.notes").write_text("a file of the user's")
    assert len([n for n in hidden(folder) if n.startswith(f".{target}.") and n != f".{target}.notes"]) == 1
    train_lowlevel(None, steps=128, run_dir=folder, resume=True, progress=False)
    assert hidden(folder) == [f".{target}.notes"]


# ----------------------------------------------------------------------------- 3. one line, not a traceback
def _under_a_file(t: Path) -> Path:
    (t / "afile").write_text("x")
    return t / "afile" / "c.mp4"


COMMAND_OPTIONS = {  # daps command "walk forward" --kinematic ... -> the option named
    "--seconds 1e9": (["--seconds", "1e9"], "--seconds"),
    "--seconds 1e7": (["--seconds", "1e7"], "--seconds"),
    "--segments-per-prompt 10**6": (["--segments-per-prompt", "1000000"], "--segments-per-prompt"),
    "--out under a file": ("under", "--out"),
    "--speed nan": (["--speed", "nan"], "--speed"),
    "--speed 1e30": (["--speed", "1e30"], "--speed"),
    "--turn inf": (["--turn", "inf"], "--turn"),
    "--temperature nan": (["--temperature", "nan"], "--temperature"),
    "--guidance inf": (["--guidance", "inf"], "--guidance"),
}


@pytest.mark.parametrize("case", list(COMMAND_OPTIONS))
def test_command_options_are_checked_before_any_work(case, tmp_path):
    args, option = COMMAND_OPTIONS[case]
    out = tmp_path / "c.mp4"
    if args == "under":
        out, args = _under_a_file(tmp_path), []
    before = set(tmp_path.iterdir())
    one_line_error(daps("command", "walk forward", "--kinematic", "--out", out, *args), option)
    assert set(tmp_path.iterdir()) == before


def test_command_help_states_the_bound():
    r = daps("command", "--help", env={**os.environ, "COLUMNS": "300"})
    assert r.returncode == 0 and "600 s" in r.stdout


TRAIN_CASES = {  # command line (the run folder added) -> the option or file named
    "motion-vae --device bogus": (["motion-vae", "train", "--device", "bogus"], "--device"),
    "image-bench --device bogus": (["image-bench", "train", "--device", "bogus"], "--device"),
    "motion-vae encode --device bogus": (["motion-vae", "encode", "--clip", "x.csv", "--out", "x", "--device", "bogus"], "--device"),
    "motion-vae --max-minutes -1": (["motion-vae", "train", "--max-minutes", "-1"], "--max-minutes"),
    "motion-vae --max-minutes nan": (["motion-vae", "train", "--max-minutes", "nan"], "--max-minutes"),
    "highlevel --max-minutes nan": (["highlevel", "train", "--max-minutes", "nan"], "--max-minutes"),
    "image-bench --max-minutes -1": (["image-bench", "train", "--max-minutes", "-1"], "--max-minutes"),
    "motion-vae --resume, no checkpoint": (["motion-vae", "train", "--resume"], "--resume"),
    "highlevel --resume, no checkpoint": (["highlevel", "train", "--resume"], "--resume"),
    "image-bench --resume, no checkpoint": (["image-bench", "train", "--resume"], "--resume"),
}


@pytest.mark.parametrize("case", list(TRAIN_CASES))
def test_training_options_are_refused_in_one_line(case, tmp_path):
    args, name = TRAIN_CASES[case]
    run_dir = tmp_path / "run"
    extra = [] if "encode" in args else ["--run-dir", run_dir]
    one_line_error(daps(*args, *extra), name)
    assert not run_dir.exists()


def _idx(shape, body: bytes = b"") -> bytes:
    return bytes([0, 0, 0x08, len(shape)]) + np.array(shape, ">u4").tobytes() + body


IDX_CASES = {  # file bytes -> words of the one line
    "damaged gzip body": (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\xff" * 64, "damaged gzip"),
    "truncated gzip": (gzip.compress(_idx((2, 28, 28), bytes(2 * 784)))[:40], "unreadable"),
    "huge shape": (_idx((2**32 - 1,) * 3, bytes(16)), str(16 + (2**32 - 1) ** 3)),
    "short body": (_idx((2, 28, 28), bytes(10)), "expected 1584"),
}


@pytest.mark.parametrize("case", list(IDX_CASES))
def test_damaged_idx_files_are_named_in_one_line(case, tmp_path):
    from image_bench.data import ImageDataError, read_idx

    data, words = IDX_CASES[case]
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(data)
    with pytest.raises(ImageDataError) as e:
        read_idx(path)
    assert str(path) in str(e.value) and words in str(e.value) and "\n" not in str(e.value)
    if case == "damaged gzip body":  # and through the command
        one_line_error(daps("image-bench", "train", "--dataset", "mnist", "--data", tmp_path, "--run-dir",
                            tmp_path / "run", "--device", "cpu"), str(path), "damaged gzip")
        assert not (tmp_path / "run").exists()


def _enospc(tmp: str) -> None:
    with open("/dev/full", "wb") as f:  # writing there fails as a full disk does
        torch.save({"w": torch.zeros(100_000)}, f)


@pytest.mark.parametrize("write, reason", [
    (_enospc, "no space left on device"),
    (lambda tmp: (_ for _ in ()).throw(OSError(errno.EROFS, os.strerror(errno.EROFS))), "read-only file system"),
])
def test_a_failing_disk_is_named_in_one_line(write, reason, tmp_path):
    from daps.cli import one_line
    from daps.io import atomic_write

    if write is _enospc and not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"the last good checkpoint")
    with pytest.raises(OSError) as e:
        atomic_write(path, write)
    assert one_line(e.value) == f"{path}: {reason}"
    assert path.read_bytes() == b"the last good checkpoint" and hidden(tmp_path) == []


def test_a_file_size_limit_while_saving_is_named_in_one_line(run, tmp_path):
    """torch's own writer failed with "basic_ios::clear: iostream error"; the file is named now."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (16_384, 16_384))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    out = tmp_path / "policy.pt"
    r = daps("lowlevel", "export", "--ckpt", run / "checkpoint.pt", "--out", out, preexec_fn=limit,
             env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert one_line_error(r, str(out)).endswith("file too large")
    assert list(tmp_path.iterdir()) == []


CODES_CASES = {  # codes file contents -> words of the one line
    "binary": (bytes(range(256)) * 8, "binary"),
    "zeros": (bytes(4096), "binary"),
    "folder": (None, "is a folder"),
}


@pytest.mark.parametrize("case", list(CODES_CASES))
def test_a_codes_file_that_is_not_text_is_named(case, tmp_path):
    data, words = CODES_CASES[case]
    codes = tmp_path / "codes.bin"
    codes.mkdir() if data is None else codes.write_bytes(data)
    one_line_error(daps("motion-vae", "decode", "--codes", codes, "--out", tmp_path / "out.csv", "--device", "cpu"),
                   str(codes), words)
    assert not (tmp_path / "out.csv").exists()


# ----------------------------------------------------------------------------- 4. values accepted silently
def _clip_lines(n: int = 40) -> list[list[str]]:
    return [line.split(",") for line in (resolve_clip_dir() / f"{CLIP}.csv").read_text().splitlines()[:n]]


CLIP_CASES = {  # (line, column, value) -> words of the one line
    "a joint at 1e30": (10, 12, "1e30", "line 10: column 12 is 1e+30: physically impossible"),
    "root x at 5 km": (3, 0, "5000", "line 3: column 0 is 5000: physically impossible"),
    "root height 50 m": (7, 2, "50", "line 7: column 2 is 50"),
    "quaternion part 1e30": (5, 4, "1e30", "line 5: column 4"),
    "a joint jumping 4 rad": (20, 9, None, "line 20: column 9"),
}


@pytest.mark.parametrize("case", list(CLIP_CASES))
def test_physically_impossible_clips_are_refused_naming_line_and_column(case, tmp_path):
    line, col, value, words = CLIP_CASES[case]
    rows = _clip_lines()
    rows[line - 1][col] = value if value is not None else f"{float(rows[line - 2][col]) + 4.0:.6f}"
    clip = tmp_path / "bad.csv"
    clip.write_text("\n".join(",".join(r) for r in rows) + "\n")
    with pytest.raises(DataError) as e:
        load_clip_csv(clip)
    assert str(e.value).startswith(f"bad.csv {words}"), str(e.value)
    if case == "a joint at 1e30":  # through `encode`: no codes file
        one_line_error(daps("motion-vae", "encode", "--clip", clip, "--out", tmp_path / "z.csv", "--device", "cpu"),
                       "bad.csv line 10: column 12")
        assert not (tmp_path / "z.csv").exists()


def test_every_lafan1_clip_is_physically_possible():
    for path in sorted(resolve_clip_dir().glob("*.csv")):
        load_clip_csv(path)


def test_encode_a_folder_says_so(tmp_path):
    one_line_error(daps("motion-vae", "encode", "--clip", tmp_path, "--out", tmp_path / "z.csv"), str(tmp_path), "is a folder")


def _strict(text: str):
    def refuse(token):
        raise ValueError(f"not strict JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def test_json_is_written_strictly():
    from daps.io import json_text

    obj = {"a": math.nan, "b": [math.inf, 1.5], "c": np.float32("nan"), "d": np.arange(2), "e": None, "f": np.float64(2.0)}
    assert _strict(json_text(obj)) == {"a": None, "b": [None, 1.5], "c": None, "d": [0, 1], "e": None, "f": 2.0}


def test_evaluation_reports_are_strict_json(run, tmp_path):
    from lowlevel.evaluate import evaluate_lowlevel

    rep = evaluate_lowlevel(run / "checkpoint.pt", "walk1_subject1", out=tmp_path, max_seconds=0.1, starts=1)
    assert any(math.isnan(m["decoded_joint_error_rad"]) for m in rep["summary"].values())  # not defined here
    _strict((tmp_path / "eval_lowlevel.json").read_text())  # null in the file, not NaN


# ----------------------------------------------------------------------------- 5. the decoded file's path
@pytest.fixture(scope="module")
def shipped():
    from motion_vae.models import load_motion_vae

    model, cfg, stats, _ = load_motion_vae(None, "cpu")
    return model, stats


def test_roundtrip_reports_per_segment_and_whole_clip_path_errors(shipped, tmp_path):
    from motion_vae.evaluate import clip_round_trip

    model, stats = shipped
    rows = load_clip_csv(resolve_clip_dir() / f"{CLIP}.csv")[:320]
    res = clip_round_trip(model, stats, rows)
    assert set(res) == {"round_trip", "anchored", "still_frame", "mean_pose"}
    for e in res.values():
        assert {"root_xy_drift_m", "root_path_error_m", "heading_error_rad"} <= set(e)
    assert res["mean_pose"]["root_path_error_m"] == 0 and res["mean_pose"]["heading_error_rad"] == 0
    # anchoring removes the drift carried from segment to segment
    assert res["anchored"]["root_path_error_m"] < res["round_trip"]["root_path_error_m"]
    assert res["anchored"]["heading_error_rad"] < res["round_trip"]["heading_error_rad"]
    clip = tmp_path / "short.csv"
    clip.write_text("\n".join(",".join(f"{v:.6f}" for v in r) for r in rows[:96]) + "\n")
    r = daps("motion-vae", "roundtrip", "--clip", clip, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert "segment path error m" in r.stdout and "clip path error m" in r.stdout and "anchored" in r.stdout


ANCHOR_CASES = {  # decode options -> (exit status, what the file's segment starts hold, or the one line)
    "no anchor": ([], 0, "origin"),
    "--anchor the clip": (["--anchor", "clip"], 0, "clip"),
    "--anchor another clip": (["--anchor", "other"], 2, "--anchor"),
    "--anchor a folder": (["--anchor", "folder"], 2, "is a folder"),
}


@pytest.mark.parametrize("case", list(ANCHOR_CASES))
def test_decode_anchors_each_segment_to_the_clip(case, shipped, tmp_path):
    from motion_vae.codec import encode_clip, write_codes_csv
    from motion_vae.features import heading_yaw
    from envs.lafan1 import csv_to_qpos

    model, stats = shipped
    rows = load_clip_csv(resolve_clip_dir() / f"{CLIP}.csv")[100:200]
    clip = tmp_path / "clip.csv"
    clip.write_text("\n".join(",".join(f"{v:.6f}" for v in r) for r in rows) + "\n")
    (tmp_path / "other.csv").write_text("\n".join(",".join(f"{v:.6f}" for v in r) for r in rows[:50]) + "\n")
    (tmp_path / "folder").mkdir()
    codes = write_codes_csv(tmp_path / "codes.csv", encode_clip(model, stats, rows, greedy=True), num_frames=len(rows))
    args, status, want = ANCHOR_CASES[case]
    args = [tmp_path / f"{a}.csv" if a in ("clip", "other") else tmp_path / a if a == "folder" else a for a in args]
    out = tmp_path / "decoded.csv"
    r = daps("motion-vae", "decode", "--codes", codes, "--out", out, "--device", "cpu", *args)
    if status:
        one_line_error(r, want)
        assert not out.exists()
        return
    assert r.returncode == 0, r.stderr
    dec = load_clip_csv(out)
    assert dec.shape == rows.shape
    starts = np.arange(0, len(rows), 32)
    yaw = lambda r: heading_yaw(csv_to_qpos(r)[:, 3:7])  # noqa: E731
    if want == "origin":  # integrated from the origin facing +x, over the whole file
        np.testing.assert_allclose(dec[0, :2], 0, atol=1e-6) and np.testing.assert_allclose(yaw(dec[:1]), 0, atol=1e-5)
        assert np.abs(dec[starts[1:], :2] - rows[starts[1:], :2]).max() > 0.1
    else:
        np.testing.assert_allclose(dec[starts, :2], rows[starts, :2], atol=1e-5)
        np.testing.assert_allclose(np.angle(np.exp(1j * (yaw(dec[starts]) - yaw(rows[starts])))), 0, atol=1e-5)
