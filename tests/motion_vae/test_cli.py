"""`daps motion-vae`: bad options and data end in one line before any work; export and roundtrip."""
import os

import pytest

from envs.lafan1 import load_clip_csv, resolve_clip_dir
from motion_vae_support import BAD_CSVS, NEEDS_DATA, run_cli

pytestmark = NEEDS_DATA


def test_train_with_missing_data_folder(tmp_path):
    run = tmp_path / "run"
    r = run_cli("motion-vae", "train", "--run-dir", str(run), "--data", str(tmp_path / "nowhere"), "--steps", "1")
    assert r.returncode == 2 and "nowhere" in r.stderr and "not found" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not run.exists()


def test_train_with_a_bad_clip_names_it(tmp_path):
    root = tmp_path / "lafan" / "h1"
    root.mkdir(parents=True)
    src = resolve_clip_dir(None)
    for name in ["dance2_subject2", "fight1_subject2", "run2_subject1", "walk2_subject4"]:
        os.symlink(src / f"{name}.csv", root / f"{name}.csv")
    (root / "walk1_subject1.csv").write_text(BAD_CSVS["nan.csv"][0] * 40)
    run = tmp_path / "run"
    r = run_cli("motion-vae", "train", "--run-dir", str(run), "--data", str(root.parent), "--steps", "1")
    assert r.returncode == 2 and "walk1_subject1.csv line 1" in r.stderr and not run.exists()


def test_train_cli_refuses_a_bad_weight_decay(tmp_path):
    from typer.testing import CliRunner

    from motion_vae.cli import app

    for bad in ("-0.1", "nan"):
        r = CliRunner().invoke(app, ["train", "--weight-decay", bad, "--run-dir", str(tmp_path / "r")])
        assert r.exit_code != 0 and "--weight-decay" in r.output and not (tmp_path / "r").exists()


@pytest.mark.parametrize("option, value", [("--arch", "mlp"), ("--precision", "fp16"), ("--lattice-bound", "sphere"),
                                           ("--speeds", "fast"), ("--root-height-variance", "-1")])
def test_cli_train_refuses_a_bad_option_in_one_line_before_any_work(option, value, tmp_path):
    from typer.testing import CliRunner

    from motion_vae.cli import app

    run = tmp_path / "run"
    r = CliRunner().invoke(app, ["train", "--preset", "cpu", "--run-dir", str(run), option, value])
    assert r.exit_code == 2, r.output
    assert option in r.output and value in r.output
    assert not run.exists()  # no partial output


def test_cli_export_and_roundtrip(tmp_path, trained):
    out = tmp_path / "m.pt"
    r = run_cli("motion-vae", "export", "--ckpt", str(trained), "--out", str(out))
    assert r.returncode == 0 and out.exists(), r.stderr
    clip = tmp_path / "short.csv"
    clip.write_text("\n".join(",".join(f"{v:.6f}" for v in row) for row in load_clip_csv(resolve_clip_dir(None) / "walk2_subject4.csv")[:80]) + "\n")
    r = run_cli("motion-vae", "roundtrip", "--ckpt", str(out), "--clip", str(clip), "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert "80 frames" in r.stdout and all(name in r.stdout for name in ("round_trip", "still_frame", "mean_pose"))
    r = run_cli("motion-vae", "roundtrip", "--ckpt", str(tmp_path / "none.pt"), "--clip", str(clip))
    assert r.returncode == 2 and "none.pt: checkpoint not found" in r.stderr
