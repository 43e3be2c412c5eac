"""`daps command`'s physics path: the env's motion stream (set_motion, start state), the decoded
stream's frame arithmetic, PhysicsFollower with a tiny goal="decoded" policy, the CLI end to end
(MP4 + JSON on 2 segments) and its one-line errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from envs.lafan1 import default_data_root

pytestmark = pytest.mark.skipif(not default_data_root().exists(), reason="LAFAN1-H1 data not available")

PROMPTS = ["walk forward", "turn left"]
TINY = dict(n_steps=64, batch_size=64, n_epochs=1, net_arch=[32, 32], embed_dim=8, conv_channels=8)


@pytest.fixture(scope="module")
def highlevel_ckpt(tmp_path_factory, text_cache):
    from highlevel.train import preset_config, train_prior

    run = tmp_path_factory.mktemp("hl") / "run"
    train_prior(preset_config("tiny"), run, progress=False, text_cache=text_cache)
    return run / "checkpoint.pt"


@pytest.fixture(scope="module")
def policies(tmp_path_factory):
    """(teacher checkpoint (goal "reference"), export of a tiny goal="decoded" policy trained from it
    with the shipped motion VAE, the high level's)."""
    from lowlevel.checkpoint import export_lowlevel
    from lowlevel.train import train_lowlevel

    root = tmp_path_factory.mktemp("ll")
    train_lowlevel(None, "walk1_subject1", steps=64, run_dir=root / "teacher", n_envs=1, goal="reference",
                   action_mode="pd", pd_target="reference", overrides=TINY, progress=False)
    teacher = root / "teacher" / "checkpoint.pt"
    train_lowlevel(None, "walk1_subject1", steps=64, run_dir=root / "dec", n_envs=1, goal="decoded", action_mode="pd",
                   pd_target="decoded", overrides=TINY, progress=False, init_from=teacher)
    return teacher, export_lowlevel(root / "dec" / "checkpoint.pt", root / "policy.pt")


def _vae():
    from daps.shipped import MOTION_VAE, shipped_path
    from motion_vae.models import load_motion_vae

    vae, _, stats, _ = load_motion_vae(shipped_path(MOTION_VAE), "cpu")
    return vae, stats, shipped_path(MOTION_VAE)


def test_segment_start_matches_env_segments():
    from envs.tracking import H1TrackingEnv
    from envs.reference import make_reference
    from highlevel.physics import segment_start

    q = np.zeros((3, 26))
    q[:, 2], q[:, 3] = 1.0, 1.0
    env = H1TrackingEnv([make_reference("x", q, 100.0)], goal="reference")
    assert [segment_start(j) for j in range(4)] == [0, 107, 214, 320]
    for j in range(1, 40):
        k = segment_start(j)
        assert env._segment(k) == j and env._segment(k - 1) == j - 1


def test_env_start_state_and_set_motion_keep_the_physics():
    from envs.tracking import H1TrackingEnv
    from highlevel.physics import DecodedStream, standing_qpos

    start = standing_qpos("nominal")
    assert 1.0 < start[2] < 1.1  # feet on the floor
    rng = np.random.default_rng(0)
    seg = np.repeat(start[None], 32, 0)
    seg[:, 7:] += 0.05 * rng.standard_normal((32, 19))
    stream = DecodedStream()
    ref = stream.append(seg)
    assert ref.num_frames - 1 >= 107  # reaches the next segment's first control frame (a hold)
    env = H1TrackingEnv([ref], goal="decoded", decoded_motion={ref.name: ref}, action_mode="pd", max_episode_steps=10**9)
    obs, _ = env.reset(options={"clip": ref.name, "frame": 0, "qpos": start})
    assert np.allclose(env.data.qpos, start) and not env.data.qvel.any()
    for _ in range(50):
        env.step(np.zeros(19))
    q, v, frame = env.data.qpos.copy(), env.data.qvel.copy(), env._frame
    ref2 = stream.append(seg)
    assert ref2.num_frames > ref.num_frames and np.array_equal(ref2.qpos[:107], ref.qpos[:107])
    obs2 = env.set_motion(ref2)
    assert np.array_equal(env.data.qpos, q) and np.array_equal(env.data.qvel, v) and env._frame == frame
    assert obs2.shape == obs.shape and env.last_frame(ref.name) == ref2.num_frames - 1
    with pytest.raises(ValueError, match="named"):
        env.set_motion(DecodedStream(name="other").append(seg))
    with pytest.raises(ValueError, match="qpos/qvel"):
        env.reset(options={"clip": ref.name, "frame": 0, "qpos": start[:7]})
    lat = H1TrackingEnv([ref], goal="latent", latent_codes={ref.name: np.zeros((1, 64), np.int64)})
    with pytest.raises(ValueError, match="latent"):
        lat.set_motion(ref)


def test_physics_follower_carries_the_state_across_segments(policies, follow_segments):
    from highlevel.physics import PhysicsFollower, load_command_policy, standing_qpos

    vae, stats, vae_path = _vae()
    model, vecnorm, ck = load_command_policy(policies[1], vae_path)
    f = PhysicsFollower(model, vecnorm, ck, vae, stats, policy_path=policies[1])
    rows = follow_segments(f, np.random.default_rng(0).integers(0, 1024, (2, 64)))
    assert np.allclose(rows[0][0, :3], standing_qpos()[:3], atol=1e-6)  # frame 0: the start state
    rec = f.record()["physics"]
    assert rec["goal"] == "decoded" and len(rec["segments"]) == len(rows)
    s0 = rec["segments"][0]
    assert s0["control_steps"] == 107 and 0 <= s0["seconds_survived"] <= 1.07
    assert set(s0["achieved"]) >= {"root_speed_m_s", "turn_rate_rad_s"} and s0["decoded_joint_error_rad"] is not None
    if len(rows) == 2:  # no reset between segments: the motion is continuous at the join (< 1/30 s apart)
        assert np.linalg.norm(rows[1][0, :3] - rows[0][-1, :3]) < 0.15
        assert rec["segments"][1]["control_steps"] == 107
    else:
        assert rec["fell"] and rec["fell_at_s"] <= 1.07
    assert f.ghost_qpos().shape == (32 * len(rows), 26)
    f.close()


def test_policy_refusals(policies, highlevel_ckpt):
    from daps.trainer import CheckpointError
    from highlevel.physics import load_command_policy

    _, _, vae_path = _vae()
    with pytest.raises(ValueError, match="goal 'reference'"):
        load_command_policy(policies[0], vae_path)
    with pytest.raises(CheckpointError, match="another motion VAE"):
        load_command_policy(policies[1], highlevel_ckpt)  # any other file: sha256 differs
    with pytest.raises(FileNotFoundError, match="low-level policy not found"):
        load_command_policy(policies[1].parent / "missing.pt", vae_path)


def _gl_works(env) -> bool:
    code = ("import mujoco; m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><geom size=\"1\"/></worldbody></mujoco>');"
            "mujoco.Renderer(m, 32, 32).render()")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=120).returncode == 0


def test_command_physics_writes_mp4_and_json(highlevel_ckpt, policies, text_cache, tmp_path):
    env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"), OMP_NUM_THREADS="1")
    out = tmp_path / "walk.mp4"
    p = subprocess.run([sys.executable, "-m", "daps.cli", "command", PROMPTS[0], "--then", PROMPTS[1],
                        "--segments-per-prompt", "1", "--lowlevel", str(policies[1]), "--out", str(out),
                        "--model", str(highlevel_ckpt), "--text-cache", str(text_cache.path), "--width", "160", "--height", "128"],
                       env=env, capture_output=True, text=True, timeout=300)
    rec = json.loads(out.with_suffix(".json").read_text())  # written before rendering, GL or not
    ph = rec["physics"]
    assert rec["kinematic"] is False and ph["goal"] == "decoded" and ph["lowlevel"] == str(policies[1])
    assert len(rec["segments"]) == rec["planned_segments"] == 2 and rec["frames"] == 64  # a fall does not end the run
    assert all("physics" in s and len(s["codes"]) == 64 for s in rec["segments"])
    assert rec["prompts"][1]["segments"] == 1
    assert ph["fell"] == any(s["physics"]["fell"] for s in rec["segments"])
    assert 0 < ph["seconds_before_fall"] <= ph["seconds_simulated"] == 2.14  # 214 control frames at 100 Hz
    if not _gl_works(env):
        pytest.skip(f"no OpenGL backend for MUJOCO_GL={env['MUJOCO_GL']} (JSON checked)")
    assert p.returncode == 0, p.stderr
    assert "physics:" in p.stdout
    import imageio.v2 as imageio

    with imageio.get_reader(str(out), format="FFMPEG") as r:
        assert out.stat().st_size > 1000 and r.count_frames() == rec["frames"]
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]  # no temporary left behind


@pytest.mark.parametrize("seconds", [1.5, 3.0])
def test_command_physics_covers_the_asked_seconds(seconds, highlevel_ckpt, policies, text_cache, tmp_path):
    """The physics run lasts the asked time whether the robot fell or not: enough segments, the
    last one simulated up to the end only; a fall is recorded once, the simulation goes on."""
    from highlevel.command import run_command

    rec = run_command("walk forward", seconds, tmp_path / "p.json", kinematic=False, lowlevel=policies[1],
                      model=highlevel_ckpt, text_cache=text_cache.path, video=False)
    ph = rec["physics"]
    assert rec["frames"] == round(30 * seconds) and rec["seconds"] == seconds
    assert len(rec["segments"]) == rec["planned_segments"] == -(-round(30 * seconds) // 32)
    assert ph["seconds_simulated"] == seconds and sum(s["physics"]["control_steps"] for s in rec["segments"]) == 100 * seconds
    assert sum(s["physics"]["fell"] for s in rec["segments"]) == int(ph["fell"])  # recorded once
    assert ph["seconds_before_fall"] <= seconds
    assert not (tmp_path / "p.mp4").exists()


def test_kinematic_fallback_notice_and_explicit_physics_error(highlevel_ckpt, text_cache, tmp_path, monkeypatch):
    from highlevel.command import run_command

    monkeypatch.setenv("DAPS_MODELS_DIR", str(tmp_path / "none"))  # no shipped low-level policy there
    rec = run_command("walk forward", None, tmp_path / "k.mp4", kinematic=None, model=highlevel_ckpt,
                      text_cache=text_cache.path, video=False, segments_per_prompt=1)
    assert rec["kinematic"] is True and rec["notice"].startswith("notice: no low-level policy at")
    assert "\n" not in rec["notice"] and "physics" not in rec
    with pytest.raises(FileNotFoundError, match="low-level policy not found"):
        run_command("walk forward", None, tmp_path / "p.mp4", kinematic=False, model=highlevel_ckpt,
                    text_cache=text_cache.path, video=False, segments_per_prompt=1)


@pytest.mark.parametrize("kind, message", [("teacher", "goal 'reference'"), ("missing", "low-level policy not found")])
def test_command_bad_policy_one_line_error(kind, message, policies, highlevel_ckpt, text_cache, monkeypatch, capsys, tmp_path):
    from daps import cli

    path = policies[0] if kind == "teacher" else tmp_path / "missing.pt"
    monkeypatch.setattr(sys, "argv", ["daps", "command", "walk forward", "--lowlevel", str(path), "--model", str(highlevel_ckpt),
                                      "--text-cache", str(text_cache.path), "--out", str(tmp_path / "x.mp4")])
    with pytest.raises(SystemExit) as e:
        cli.main()
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not list(tmp_path.glob("x.*"))


def test_command_bad_start_one_line_error(monkeypatch, capsys, tmp_path):
    from daps import cli

    monkeypatch.setattr(sys, "argv", ["daps", "command", "walk", "--start", "sitting", "--out", str(tmp_path / "x.mp4")])
    with pytest.raises(SystemExit) as e:
        cli.main()
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "--start must be one of" in err, err


def test_command_speed_benchmark_runs(text_cache, tmp_path):
    """benchmarks/command_speed.py on a tiny setting: one second per mode, the shipped models, no video."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "speed.json"
    p = subprocess.run([sys.executable, str(root / "benchmarks" / "command_speed.py"), "--seconds", "1", "--modes",
                        "kinematic,physics+speed", "--no-video", "--text-cache", str(text_cache.path), "--json", str(out)],
                       env=dict(os.environ, PYTHONPATH=str(root)), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    rec = json.loads(out.read_text())
    kin, phys = rec["modes"]
    assert kin["mode"] == "kinematic" and phys["mode"] == "physics+speed"
    for row in (kin, phys):
        assert row["simulated_s"] == 1.0 and row["real_time_factor"] > 0 and row["sampling (prior)"] > 0
        assert row["decode (motion VAE)"] > 0
    assert phys["physics (policy + MuJoCo)"] > 0 and "physics (policy + MuJoCo)" not in kin
    assert "| real_time_factor |" in p.stdout



def test_command_mpc_with_kinematic_one_line_error(monkeypatch, capsys, tmp_path):
    from daps import cli

    monkeypatch.setattr(sys, "argv", ["daps", "command", "walk", "--kinematic", "--mpc", "--out", str(tmp_path / "x.mp4")])
    with pytest.raises(SystemExit) as e:
        cli.main()
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "--kinematic or --mpc" in err, err
    assert not list(tmp_path.glob("x.*"))


@pytest.mark.slow
@pytest.mark.skipif(not default_data_root().exists(), reason="LAFAN1-H1 data not available")
def test_command_balances_by_the_mpc_by_default_and_by_the_policy_on_request(text_cache, tmp_path):
    """With the shipped tracker the physics path's default controller is the sampling MPC (it keeps
    the robot up through a 1.5 s walk); --policy puts the learned policy back."""
    from highlevel.command import run_command

    kw = dict(kinematic=False, text_cache=text_cache.path, video=False)
    rec = run_command("walk forward", 1.5, tmp_path / "m.json", **kw)
    ph = rec["physics"]
    assert ph["controller"]["mpc"]["samples"] == 64 and ph["seconds_simulated"] == 1.5 and not ph["fell"]
    assert run_command("walk forward", 0.5, tmp_path / "p.json", mpc=False, **kw)["physics"]["controller"] == "policy"
