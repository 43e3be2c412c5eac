"""The tracking policy's training loop, checkpoints, evaluation and export (lowlevel.tracker)."""
import json
import subprocess
import sys

import pytest
import torch

from lowlevel.tracker import (PPOConfig, evaluate_tracker, export_tracker, is_tracker_file, load_tracker,
                              read_checkpoint, train_tracker)
from envs.mimic.config import preset

SMALL = PPOConfig(n_envs=4, n_steps=32, batch_size=64, n_epochs=2, net_arch=(32, 32), ckpt_every=128, eval_every=128,
                  eval_episodes=2)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("trk")
    r = train_tracker(["walk1_subject1"], d, 256, task=preset("assist", mirror=False), ppo=SMALL, progress=False)
    return d, r


def test_training_writes_a_data_only_checkpoint_and_curve(run):
    d, r = run
    assert r["num_timesteps"] == 256
    ck = torch.load(d / "checkpoint.pt", weights_only=True)  # tensors and plain data only
    assert ck["format"] == "daps-tracker-v1" and ck["num_timesteps"] == 256 and ck["task"]["assist"]
    rows = (d / "progress.csv").read_text().splitlines()
    assert rows[0].startswith("step,wall_s,episode_s") and len(rows) == 1 + 256 // 128
    assert json.loads((d / "config.json").read_text())["clips"] == ["walk1_subject1"]


def test_resume_continues_and_refuses_a_missing_checkpoint(run, tmp_path):
    d, _ = run
    r = train_tracker([], d, 384, resume=True, progress=False)
    assert r["num_timesteps"] == 384 and read_checkpoint(d / "checkpoint.pt")["num_timesteps"] == 384
    with pytest.raises(FileNotFoundError, match="tracker checkpoint not found"):
        train_tracker(["walk1_subject1"], tmp_path / "none", 128, resume=True, progress=False)


def test_export_evaluates_like_the_checkpoint(run, tmp_path):
    d, _ = run
    out = export_tracker(d / "checkpoint.pt", tmp_path / "tracker.pt")
    assert is_tracker_file(out) and "optimizer" not in torch.load(out, weights_only=True)
    a = evaluate_tracker(d / "checkpoint.pt", ["walk2_subject4"], starts=2, seconds=0.5)
    b = evaluate_tracker(out, ["walk2_subject4"], starts=2, seconds=0.5)
    assert a["clips"]["walk2_subject4"]["seconds_tracked"] == b["clips"]["walk2_subject4"]["seconds_tracked"]
    assert a["goal"] == "clip" and 0 <= a["clips"]["walk2_subject4"]["actions_saturated"] <= 1


PAYLOAD = '''
import os, torch
class P:
    def __reduce__(self):
        return (os.system, ("touch {marker}",))
torch.save({{"format": "daps-tracker-v1", "policy": P()}}, "{path}")
'''


def test_a_checkpoint_holding_code_is_refused_without_running_it(tmp_path):
    path, marker = tmp_path / "evil.pt", tmp_path / "ran"
    subprocess.run([sys.executable, "-c", PAYLOAD.format(marker=marker, path=path)], check=True)
    with pytest.raises(ValueError, match="evil.pt: not a tracker checkpoint") as e:
        load_tracker(path)
    assert "\n" not in str(e.value) and not marker.exists()
    assert not is_tracker_file(path) and not marker.exists()
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.pt: not a tracker checkpoint"):
        read_checkpoint(tmp_path / "junk.pt")


def test_cli_train_eval_and_bad_input(tmp_path):
    from typer.testing import CliRunner

    from lowlevel.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["train-tracker", "--clips", "nosuch*", "--run-dir", str(tmp_path / "r")])
    assert res.exit_code == 2 and "--clips" in res.output and not (tmp_path / "r").exists()
    res = runner.invoke(app, ["train-tracker", "--set", "kp=3", "--run-dir", str(tmp_path / "r")])
    assert res.exit_code == 2 and "kp" in res.output
    res = runner.invoke(app, ["train-tracker", "--preset", "nope", "--run-dir", str(tmp_path / "r")])
    assert res.exit_code == 2 and "nope" in res.output
    (tmp_path / "bad.pt").write_bytes(b"xx")
    res = runner.invoke(app, ["eval-tracker", "--ckpt", str(tmp_path / "bad.pt")])
    assert res.exit_code == 2 and "bad.pt" in res.output


def test_a_decoded_goal_tracker_drives_daps_command_physics(tmp_path, follow_segments):
    """A tracker trained on decoded motions is what `daps command` loads: two segments of the
    physics path at 50 Hz, the state carried across the join; a clip-trained one is refused."""
    import numpy as np

    from highlevel.physics import PhysicsFollower, load_command_policy, standing_qpos
    from daps.shipped import MOTION_VAE, shipped_path
    from motion_vae.models import load_motion_vae

    vae_path = shipped_path(MOTION_VAE)
    train_tracker(["walk1_subject1"], tmp_path / "dec", 128, task=preset("mimic", mirror=False), ppo=SMALL,
                  progress=False, motion_vae=vae_path)
    policy = export_tracker(tmp_path / "dec" / "checkpoint.pt", tmp_path / "tracker.pt")
    vae, _, stats, _ = load_motion_vae(vae_path, "cpu")
    model, vecnorm, ck = load_command_policy(policy, vae_path)
    f = PhysicsFollower(model, vecnorm, ck, vae, stats, policy_path=policy)
    rows = follow_segments(f, np.random.default_rng(0).integers(0, 1024, (2, 64)))
    assert np.allclose(rows[0][0, :3], standing_qpos()[:3], atol=1e-6)
    rec = f.record()["physics"]
    assert rec["control_hz"] == 50.0 and rec["segments"][0]["control_steps"] == 54
    if len(rows) == 2:
        assert np.linalg.norm(rows[1][0, :3] - rows[0][-1, :3]) < 0.15
    f.close()
    clip_policy = train_tracker(["walk1_subject1"], tmp_path / "clip", 128, task=preset("mimic", mirror=False),
                                ppo=SMALL, progress=False)["checkpoint"]
    with pytest.raises(ValueError, match="trained on the clips themselves"):
        load_command_policy(clip_policy, vae_path)
