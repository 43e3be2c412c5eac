"""Low-level PPO policy: feature extractor shapes, a short end-to-end PPO run with a tiny motion VAE,
checkpoint -> eval, resume, bad input, CLI help and (if a GL backend exists) the ghost render."""
import json
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

from daps.trainer import CheckpointError
from envs.lafan1 import default_data_root

pytestmark = pytest.mark.skipif(not default_data_root().exists(), reason="LAFAN1-H1 data not available")

TINY = dict(n_steps=64, batch_size=64, n_epochs=1, net_arch=[32, 32], embed_dim=8, conv_channels=8)


@pytest.fixture(scope="module")
def mvae(tmp_path_factory):
    from motion_vae.dataset import load_motion_dataset
    from motion_vae.config import MotionVAEConfig
    from motion_vae.config import preset_config
    from motion_vae.train import train_motion_vae

    cfg = preset_config("cpu")
    cfg.model = MotionVAEConfig(num_features=0, vocab_size=64, embed_dim=32, num_heads=2, num_layers=1)
    cfg.daps.st_warmup_steps = 0  # a tiny AR encoder without the lattice: no straight-through warm start
    cfg.optim.decay_steps = 0  # a few steps at the full rate (the preset decays over its last 1500)
    cfg.batch_size, cfg.steps, cfg.log_every, cfg.eval_every, cfg.ckpt_every, cfg.val_segments = 8, 1, 1, 0, 1, 16
    data = load_motion_dataset(train_clips=["walk1_subject1"], val_clips=["walk2_subject4"], max_frames=300)
    run = tmp_path_factory.mktemp("mvae")
    train_motion_vae(cfg, run, device="cpu", progress=False, data=data)
    return run / "checkpoint.pt"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mvae):
    from lowlevel.train import train_lowlevel

    run = tmp_path_factory.mktemp("ll")
    r = train_lowlevel(mvae, "walk1_subject1", steps=128, run_dir=run, n_envs=1, ckpt_every=64,
                       overrides=TINY, progress=False)
    return run, r


def test_extractor_shapes():
    from lowlevel.policy import LatentConvExtractor, policy_kwargs, preset

    space = gym.spaces.Dict({
        "proprio": gym.spaces.Box(-np.inf, np.inf, (63,), np.float32),
        "latent": gym.spaces.Box(0.0, 1023.0, (2, 64), np.float32),
        "phase": gym.spaces.Box(0.0, 1.0, (1,), np.float32),
    })
    ext = LatentConvExtractor(space, embed_dim=16, conv_channels=8)
    assert ext.vocab_size == 1024 and ext.features_dim == 8 * 8 + 63 + 1
    obs = {"proprio": torch.randn(5, 63), "latent": torch.randint(0, 1024, (5, 2, 64)).float(), "phase": torch.rand(5, 1)}
    f = ext(obs)
    assert f.shape == (5, ext.features_dim) and torch.isfinite(f).all()
    # the strided convolutions computed as matrix products equal the Conv1d modules' own forward
    by_conv = ext.conv(ext.embedding(obs["latent"].long().flatten(1)).transpose(1, 2))
    torch.testing.assert_close(f[:, : by_conv.shape[1]], by_conv, rtol=1e-5, atol=1e-6)
    kw = policy_kwargs(preset("paper"), "latent")
    assert kw["net_arch"] == dict(pi=[2048, 1024, 512], vf=[2048, 1024, 512]) and kw["activation_fn"] is torch.nn.ELU
    assert "features_extractor_class" not in policy_kwargs(preset("cpu"), "reference")
    with pytest.raises(ValueError, match="preset"):
        preset("huge")
    with pytest.raises(ValueError, match="Dict"):
        LatentConvExtractor(gym.spaces.Box(-1, 1, (10,)))


def test_training_wall_time_adds_up_sittings(tmp_path):
    from lowlevel.train import training_wall_s

    p = tmp_path / "progress.csv"
    p.write_text("timesteps,wall_s\n100,10\n200,20\n150,3\n250,13\n")  # an old file: the second sitting restarted at 0
    assert training_wall_s(p) == 33 and training_wall_s(p, 200) == 23 and training_wall_s(p, 120) == 10
    assert training_wall_s(p, 50) is None and training_wall_s(tmp_path / "none.csv") is None


def test_start_frames():
    from lowlevel.evaluate import start_frames

    assert start_frames(100, 4) == [0, 25, 50, 75]
    assert start_frames(3, 8) == [0, 1, 2]  # never more starts than frames, no duplicates
    assert start_frames(100, 1) == [0]
    with pytest.raises(ValueError, match="starts"):
        start_frames(100, 0)


def test_common_window_joint_error():
    from lowlevel.evaluate import add_common_window_error

    # start 0: B falls after 2 steps, so both are scored over 2 steps; start 1: over 3.
    a = [{"joint_error_per_step": [0.0, 0.2, 0.9, 0.9]}, {"joint_error_per_step": [0.1, 0.1, 0.4]}]
    b = [{"joint_error_per_step": [0.4, 0.6]}, {"joint_error_per_step": [0.3, 0.3, 0.3, 5.0]}]
    add_common_window_error({"a": a, "b": b})
    assert [e["joint_error_common_rad"] for e in a] == pytest.approx([0.1, 0.2])
    assert [e["joint_error_common_rad"] for e in b] == pytest.approx([0.5, 0.3])
    assert all("joint_error_per_step" not in e for e in a + b)
    with pytest.raises(ValueError, match="start frame"):
        add_common_window_error({"a": [{"joint_error_per_step": [0.1]}], "b": []})


def test_short_ppo_run_checkpoint_eval_and_resume(trained, mvae, tmp_path):
    from lowlevel.checkpoint import load_lowlevel
    from lowlevel.evaluate import evaluate_lowlevel, format_table, plot_training_curve
    from lowlevel.train import train_lowlevel

    run, r = trained
    assert r["num_timesteps"] == 128 and (run / "checkpoint.pt").is_file()
    assert any((run / "tb").iterdir()) and (run / "progress.csv").is_file()
    model, vecnorm, ck = load_lowlevel(run / "checkpoint.pt")
    assert ck["config"]["motion_vae"]["vocab_size"] == 64 and set(ck["codes"]) == {"walk1_subject1"}
    assert set(vecnorm.norm_obs_keys) == {"proprio"}
    # goals are the most likely codes (as the high level emits); policies from before kept a sample
    from lowlevel.evaluate import codes_for
    from lowlevel.motions import encode_clips

    greedy, info = encode_clips(mvae, ["walk1_subject1"])
    sampled, _ = encode_clips(mvae, ["walk1_subject1"], greedy=False)
    assert ck["config"]["motion_vae"]["greedy"] is True and info["greedy"] is True
    assert np.array_equal(ck["codes"]["walk1_subject1"], greedy["walk1_subject1"])
    assert not np.array_equal(greedy["walk1_subject1"], sampled["walk1_subject1"])
    old = {"config": {**ck["config"], "motion_vae": {k: v for k, v in ck["config"]["motion_vae"].items() if k != "greedy"}}, "codes": {}}
    assert np.array_equal(codes_for(old, ["walk1_subject1"])["walk1_subject1"], sampled["walk1_subject1"])
    # the cpu preset: batched vector env, fixed exploration std 0.2 per action unit (PPO left it alone)
    assert ck["config"]["vec"] == "batched" and ck["config"]["fixed_std"] is True
    np.testing.assert_allclose(model.policy.log_std.detach().numpy(), np.log(0.2), rtol=1e-7)

    # eval on a validation clip: encoded with the stored motion VAE path.
    rep = evaluate_lowlevel(run / "checkpoint.pt", "walk2_subject4", out=tmp_path, max_seconds=0.3, starts=3)
    assert (tmp_path / "eval_lowlevel.json").is_file()
    res = rep["clips"]["walk2_subject4"]
    assert set(res) == {"policy", "hold_pose", "pd_tracking"}
    for m in res.values():
        assert m["episodes"] == 3 and sum(m["terminations"].values()) == 3
        assert [e["start_frame"] for e in m["per_start"]] == [e["start_frame"] for e in res["policy"]["per_start"]]
        assert 0 < m["seconds_tracked"] <= 0.3 + 1e-9 and m["joint_error_rad"] >= 0 and 0 <= m["reward_per_step"] <= 1
        assert 0 <= m["return_fraction"] <= m["reward_per_step"] + 1e-9
        assert 0 <= m["joint_error_common_rad"] and "joint_error_per_step" not in m["per_start"][0]
    # the window is the shortest episode of each start: for that controller it is the whole episode.
    for i in range(3):
        shortest = min(res.values(), key=lambda m: m["per_start"][i]["steps"])["per_start"][i]
        assert shortest["joint_error_common_rad"] == pytest.approx(shortest["joint_error_rad"])
    assert res["policy"]["per_start"][0]["start_frame"] == 0 and res["policy"]["per_start"][1]["start_frame"] > 0
    # PD tracking of the reference from the T-pose frame 0 stands for 0.3 s and tracks it closely.
    first = res["pd_tracking"]["per_start"][0]
    assert first["finished"] == 1.0 and first["joint_error_rad"] < 0.05
    assert "pd_tracking" in format_table(rep)
    assert plot_training_curve(run, tmp_path / "curve.png").stat().st_size > 0

    # resume continues the step count (and refuses to overwrite without --resume).
    with pytest.raises(ValueError, match="resume"):
        train_lowlevel(mvae, "walk1_subject1", steps=64, run_dir=run, n_envs=1, overrides=TINY, progress=False)
    r2 = train_lowlevel(None, steps=192, run_dir=run, resume=True, progress=False)
    assert r2["start_step"] == 128 and r2["num_timesteps"] == 192
    model2, _, ck2 = load_lowlevel(run / "checkpoint.pt")
    np.testing.assert_allclose(model2.policy.log_std.detach().numpy(), np.log(0.2), rtol=1e-7)  # still fixed
    walls = [float(r.split(",")[1]) for r in (run / "progress.csv").read_text().splitlines()[1:]]
    assert walls == sorted(walls)  # wall_s goes on across sittings
    assert any(not torch.equal(a, b) for a, b in zip(model.policy.parameters(), model2.policy.parameters()))


def test_bad_input(mvae, trained, tmp_path):
    from lowlevel.checkpoint import load_lowlevel
    from lowlevel.evaluate import evaluate_lowlevel
    from lowlevel.train import train_lowlevel

    with pytest.raises(ValueError, match="vec must be one of batched, subproc, dummy"):
        train_lowlevel(mvae, "walk1_subject1", steps=64, run_dir=tmp_path / "v", n_envs=1, vec="threads",
                       overrides=TINY, progress=False)
    with pytest.raises(ValueError, match="no .*clip matches"):
        train_lowlevel(mvae, "nosuchclip*", steps=64, run_dir=tmp_path / "a", n_envs=1, overrides=TINY, progress=False)
    with pytest.raises(ValueError, match="no .*clip matches"):  # validation clips are not in the train split
        train_lowlevel(mvae, "walk2_subject4", steps=64, run_dir=tmp_path / "b", n_envs=1, overrides=TINY, progress=False)
    with pytest.MonkeyPatch.context() as mp:  # no checkpoint given: the shipped default, here missing
        mp.setenv("DAPS_MODELS_DIR", str(tmp_path / "no_models"))
        with pytest.raises(CheckpointError, match="no_models/motion_vae.pt: checkpoint not found"):
            train_lowlevel(None, "walk1_subject1", steps=64, run_dir=tmp_path / "c", n_envs=1, overrides=TINY, progress=False)
    with pytest.raises(CheckpointError, match="expected 'lowlevel-ppo'"):
        load_lowlevel(mvae)  # a motion VAE checkpoint is the wrong kind
    with pytest.raises(CheckpointError, match="not found"):
        evaluate_lowlevel(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError):
        train_lowlevel(None, steps=64, run_dir=tmp_path / "d", resume=True, progress=False)
    with pytest.raises(ValueError, match="no .*clip matches"):
        evaluate_lowlevel(trained[0] / "checkpoint.pt", "nosuchclip")


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A tiny goal="reference" PD-residual run (the teacher of the decoded product)."""
    from lowlevel.train import train_lowlevel

    run = tmp_path_factory.mktemp("teacher")
    train_lowlevel(None, "walk1_subject1", steps=64, run_dir=run, n_envs=1, goal="reference", action_mode="pd",
                   pd_target="reference", overrides=TINY, progress=False)
    return run / "checkpoint.pt"


def test_control_rate_and_per_joint_scale_are_stored_and_rebuilt(tmp_path):
    # --set control_hz=50 (10 physics substeps per action) and --pd-action-scale torque-range go into
    # the run config; evaluation rebuilds the same env: 0.2 s are 10 control steps at 50 Hz.
    from envs.tracking import PD_TORQUE_RANGE_SCALE
    from lowlevel.checkpoint import load_lowlevel
    from lowlevel.environment import control_rate, make_policy_env
    from lowlevel.evaluate import evaluate_lowlevel
    from lowlevel.train import train_lowlevel

    assert control_rate(50) == (50.0, 10) and control_rate(100) == (100.0, 5)
    with pytest.raises(ValueError, match="control_hz must divide the 500 Hz physics rate"):
        control_rate(30)
    with pytest.raises(ValueError, match="control_hz must divide"):  # refused before any work
        train_lowlevel(None, "walk1_subject1", steps=64, run_dir=tmp_path / "bad", n_envs=1, goal="reference",
                       action_mode="pd", pd_target="reference", overrides={**TINY, "control_hz": 30}, progress=False)
    assert not (tmp_path / "bad").exists()
    with pytest.raises(ValueError, match="pd_action_scale"):
        train_lowlevel(None, "walk1_subject1", steps=64, run_dir=tmp_path / "bad2", n_envs=1, goal="reference",
                       action_mode="pd", pd_target="reference", pd_action_scale="torqe-range", overrides=TINY,
                       progress=False)
    run = tmp_path / "hz50"
    train_lowlevel(None, "walk1_subject1", steps=64, run_dir=run, n_envs=1, goal="reference", action_mode="pd",
                   pd_target="reference", pd_action_scale="torque-range", overrides={**TINY, "control_hz": 50},
                   progress=False)
    _, _, ck = load_lowlevel(run / "checkpoint.pt")
    assert ck["config"]["control_hz"] == 50.0 and ck["config"]["pd_action_scale"] == "torque-range"
    env = make_policy_env(ck, "walk1_subject1", None, 100)
    assert (env.control_hz, env.frame_skip, env.model.opt.timestep) == (50.0, 10, pytest.approx(0.002))
    np.testing.assert_array_equal(env.pd_action_scale, PD_TORQUE_RANGE_SCALE)
    rep = evaluate_lowlevel(run / "checkpoint.pt", "walk1_subject1", out=tmp_path, max_seconds=0.2, starts=2)
    res = rep["clips"]["walk1_subject1"]
    for name, hz in (("policy", 50.0), ("pd_tracking", 100.0)):  # same start times, each at its own rate
        eps = res[name]["per_start"]
        assert [e["control_hz"] for e in eps] == [hz, hz]
        assert [e["horizon_s"] for e in eps] == [pytest.approx(0.2)] * 2
        assert [e["start_frame"] / hz for e in eps] == pytest.approx([e["start_frame"] / 100.0 for e in res["pd_tracking"]["per_start"]], abs=0.011)
        assert all(np.isfinite(e["joint_error_common_rad"]) for e in eps)


def test_decoded_goal_from_a_teacher_trains_checkpoints_evaluates_and_resumes(mvae, teacher, tmp_path):
    from lowlevel.evaluate import evaluate_lowlevel, format_table
    from daps.io import file_sha256
    from lowlevel.checkpoint import load_lowlevel
    from lowlevel.train import train_lowlevel

    run = tmp_path / "dec"
    r = train_lowlevel(mvae, "walk1_subject1", steps=128, run_dir=run, n_envs=2, goal="decoded", action_mode="pd",
                       pd_target="decoded", ckpt_every=64, overrides=TINY, progress=False, init_from=teacher)
    assert r["num_timesteps"] == 128 and r["start_step"] == 0
    model, vecnorm, ck = load_lowlevel(run / "checkpoint.pt")
    cfg = ck["config"]
    assert cfg["goal"] == "decoded" and set(ck["codes"]) == {"walk1_subject1"} and cfg["motion_vae"]["sha256"]
    assert cfg["init_from"] == {"path": str(teacher.resolve()), "sha256": file_sha256(teacher), "num_timesteps": 64,
                                "goal": "reference", "action_mode": "pd", "pd_target": "reference"}
    t_model, t_vecnorm, _ = load_lowlevel(teacher)
    assert model.observation_space == t_model.observation_space
    assert vecnorm.obs_rms.count > t_vecnorm.obs_rms.count  # the teacher's statistics, updated further
    # started from the teacher's weights: 2 Adam steps of lr 3e-4 move them by < 1e-2 (a fresh init differs by ~0.1-1)
    diff = max(float((a - b).abs().max()) for a, b in zip(model.policy.state_dict().values(),
                                                           t_model.policy.state_dict().values()))
    assert diff < 1e-2

    rep = evaluate_lowlevel(run / "checkpoint.pt", "walk1_subject1", out=tmp_path, max_seconds=0.2, starts=2)
    res = rep["clips"]["walk1_subject1"]
    assert 0 <= res["policy"]["decoded_joint_error_rad"] < 1 and 0 <= res["policy"]["joint_error_rad"] < 1
    assert np.isnan(res["pd_tracking"]["decoded_joint_error_rad"])  # the references follow the true clip
    table = format_table(rep)
    assert "jerr_dec" in table and f"{res['policy']['decoded_joint_error_rad']:8.3f}" in table

    r2 = train_lowlevel(None, steps=256, run_dir=run, resume=True, progress=False)  # decodes again from the file
    assert r2["start_step"] == 128 and r2["num_timesteps"] == 256


def test_init_from_an_exported_policy(mvae, teacher, tmp_path):
    """--init-from models/lowlevel.pt: fine-tuning the shipped policy on a new motion VAE starts from
    an export (tensors only; its VecNormalize wraps a one-env DummyVecEnv): same weights, its
    observation statistics carried over and updated, no return statistics."""
    from lowlevel.checkpoint import export_lowlevel, load_exported, load_lowlevel
    from lowlevel.train import train_lowlevel

    train_lowlevel(mvae, "walk1_subject1", steps=64, run_dir=tmp_path / "dec", n_envs=1, goal="decoded", action_mode="pd",
                   pd_target="decoded", overrides=TINY, progress=False, init_from=teacher)
    export = export_lowlevel(tmp_path / "dec" / "checkpoint.pt", tmp_path / "policy.pt")
    src_policy, src_vecnorm, _ = load_exported(export)
    r = train_lowlevel(mvae, "walk1_subject1", steps=64, run_dir=tmp_path / "ft", n_envs=1, goal="decoded",
                       action_mode="pd", pd_target="decoded", overrides=TINY, progress=False, init_from=export)
    assert r["start_step"] == 0 and r["num_timesteps"] == 64
    model, vecnorm, ck = load_lowlevel(tmp_path / "ft" / "checkpoint.pt")
    assert ck["config"]["init_from"]["num_timesteps"] == 64
    assert vecnorm.obs_rms.count > src_vecnorm.obs_rms.count  # the export's statistics, updated further
    diff = max(float((a - b).abs().max()) for a, b in zip(model.policy.state_dict().values(),
                                                           src_policy.state_dict().values()))
    assert diff < 1e-2  # started from the export's weights


def test_decoded_goal_and_init_from_bad_input(mvae, trained, teacher, tmp_path):
    from lowlevel.train import train_lowlevel

    with pytest.raises(ValueError, match="true reference"):  # refused before any encoding
        train_lowlevel(mvae, "walk1_subject1", steps=64, run_dir=tmp_path / "a", goal="decoded", action_mode="pd",
                       pd_target="reference", progress=False)
    with pytest.raises(ValueError, match="needs goal 'decoded'"):
        train_lowlevel(None, "walk1_subject1", steps=64, run_dir=tmp_path / "b", goal="reference", action_mode="pd",
                       pd_target="decoded", progress=False)
    # a latent-goal checkpoint cannot start a reference-goal run: one line naming the file and the spaces
    with pytest.raises(ValueError, match=r"checkpoint.pt: cannot initialise .* observation space Dict") as err:
        train_lowlevel(None, "walk1_subject1", steps=64, run_dir=tmp_path / "c", n_envs=1, goal="reference",
                       action_mode="pd", pd_target="nominal", overrides=TINY, progress=False,
                       init_from=trained[0] / "checkpoint.pt")
    assert len(str(err.value).splitlines()) == 1 and not (tmp_path / "c").exists()
    with pytest.raises(ValueError, match="init-from starts a new run"):
        train_lowlevel(None, steps=64, run_dir=trained[0], resume=True, init_from=teacher, progress=False)
    with pytest.raises(CheckpointError, match="not found"):
        train_lowlevel(None, "walk1_subject1", steps=64, run_dir=tmp_path / "d", goal="reference",
                       init_from=tmp_path / "missing.pt", progress=False)


def _cli(*args, env=None):
    exe = [sys.executable, "-c", "from daps.cli import main; main()"]
    return subprocess.run(exe + list(args), capture_output=True, text=True, timeout=300, env=env)


def test_cli_help_and_errors(mvae):
    from typer.testing import CliRunner

    from lowlevel.cli import app

    runner = CliRunner()
    for args in ([], ["train"], ["eval"], ["render"]):
        r = runner.invoke(app, args + ["--help"])
        assert r.exit_code == 0 and "Usage" in r.output, r.output
    p = _cli("lowlevel", "eval", "--ckpt", str(mvae))  # the real `daps` entry point: one line, exit 2
    assert p.returncode == 2 and "expected 'lowlevel-ppo'" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def _gl_works(env) -> bool:
    code = ("import mujoco; m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><geom size=\"1\"/></worldbody></mujoco>');"
            "mujoco.Renderer(m, 32, 32).render()")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=120).returncode == 0


def test_render_writes_mp4(trained, tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    if not _gl_works(env):
        pytest.skip(f"no OpenGL backend for MUJOCO_GL={env['MUJOCO_GL']}")
    out = tmp_path / "v.mp4"
    p = _cli("lowlevel", "render", "--ckpt", str(trained[0] / "checkpoint.pt"), "--clip", "walk1_subject1",
             "--out", str(out), "--seconds", "0.3", env=env)
    assert p.returncode == 0, p.stderr
    assert out.stat().st_size > 1000
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]  # no temporary left behind


@pytest.mark.parametrize("goal", ["latent", "reference", "decoded", "reference-gsde"])
def test_export_loads_weights_only_and_evaluates_like_its_checkpoint(goal, mvae, trained, teacher, tmp_path):
    from lowlevel.checkpoint import EXPORT_KIND, export_lowlevel, is_exported
    from lowlevel.evaluate import evaluate_lowlevel
    from lowlevel.train import train_lowlevel

    if goal == "latent":
        ckpt = trained[0] / "checkpoint.pt"
    elif goal == "reference":
        ckpt = teacher
    elif goal == "reference-gsde":  # --set use_sde=True: SB3's gSDE, its log std a (latent x action) matrix
        gsde = {**TINY, "use_sde": True, "sde_sample_freq": 4, "log_std_init": -3.0}
        train_lowlevel(None, "walk1_subject1", steps=64, run_dir=tmp_path / "sde", n_envs=1, goal="reference",
                       action_mode="pd", pd_target="reference", overrides=gsde, progress=False)
        ckpt = tmp_path / "sde" / "checkpoint.pt"
        assert json.loads((tmp_path / "sde" / "config.json").read_text())["ppo"]["use_sde"] is True
    else:
        train_lowlevel(mvae, "walk1_subject1", steps=64, run_dir=tmp_path / "dec", n_envs=1, goal="decoded", action_mode="pd",
                       pd_target="decoded", overrides=TINY, progress=False, init_from=teacher)
        ckpt = tmp_path / "dec" / "checkpoint.pt"
    out = export_lowlevel(ckpt, tmp_path / "policy.pt")
    raw = torch.load(out, map_location="cpu", weights_only=True)  # tensors and plain values only
    assert raw["kind"] == EXPORT_KIND and "ppo_zip" not in raw and "vecnormalize" not in raw
    assert is_exported(out) and not is_exported(ckpt)
    reports = [evaluate_lowlevel(p, "walk1_subject1", max_seconds=0.3, starts=2, controllers=("policy",))["summary"]["policy"]
               for p in (ckpt, out)]
    for key in ("seconds_tracked", "joint_error_rad", "reward_per_step", "return_fraction"):
        assert reports[1][key] == reports[0][key], key  # the same deterministic actions, step by step


def test_export_bad_input(trained, tmp_path):
    from lowlevel.checkpoint import load_exported

    with pytest.raises(CheckpointError, match="not found"):
        load_exported(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="not a low-level policy export"):
        load_exported(trained[0] / "checkpoint.pt")
    bad = tmp_path / "bad.pt"
    torch.save({"kind": "something-else"}, bad)
    with pytest.raises(CheckpointError, match="not a low-level policy export"):
        load_exported(bad)


def test_root_velocity_obs_is_stored_and_rebuilt_by_eval_export_and_resume(teacher, tmp_path):
    """--root-velocity-obs: stored in the config (absent = off), the checkpoint's env, its export and a
    resume observe 67 proprio numbers; a 63-number teacher cannot initialise such a run."""
    from typer.testing import CliRunner

    from lowlevel.checkpoint import export_lowlevel, load_exported, load_lowlevel
    from lowlevel.cli import app
    from lowlevel.environment import env_kwargs, make_policy_env
    from lowlevel.evaluate import evaluate_lowlevel
    from lowlevel.train import train_lowlevel

    assert "--root-velocity-obs" in CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"}).output
    run = tmp_path / "rv"
    kw = dict(n_envs=2, goal="reference", action_mode="pd", pd_target="reference", overrides=TINY, progress=False)
    train_lowlevel(None, "walk1_subject1", steps=64, run_dir=run, root_velocity_obs=True, **kw)
    model, _, ck = load_lowlevel(run / "checkpoint.pt")
    cfg = ck["config"]
    assert cfg["root_velocity_obs"] is True and env_kwargs(cfg)["root_velocity_obs"] is True
    assert model.observation_space.shape == (67 + 3 * 28,)
    env = make_policy_env(ck, "walk1_subject1", None, 10)
    assert env.root_velocity_obs and env.observation_space == model.observation_space
    _, _, t_ck = load_lowlevel(teacher)  # written without the key: off
    assert "root_velocity_obs" not in env_kwargs(t_ck["config"])
    assert make_policy_env(t_ck, "walk1_subject1", None, 10).observation_space.shape == (63 + 3 * 28,)
    out = export_lowlevel(run / "checkpoint.pt", tmp_path / "policy.pt")
    assert load_exported(out)[0].observation_space == model.observation_space
    reports = [evaluate_lowlevel(p, "walk1_subject1", max_seconds=0.3, starts=2, controllers=("policy",))["summary"]["policy"]
               for p in (run / "checkpoint.pt", out)]
    assert reports[1]["joint_error_rad"] == reports[0]["joint_error_rad"]
    assert train_lowlevel(None, steps=128, run_dir=run, resume=True, progress=False)["num_timesteps"] == 128
    with pytest.raises(ValueError, match="cannot initialise"):
        train_lowlevel(None, "walk1_subject1", steps=64, run_dir=tmp_path / "x", root_velocity_obs=True,
                       init_from=teacher, **kw)


def test_set_overrides_parse_store_and_refuse_resume(trained, tmp_path):
    from lowlevel.train import train_lowlevel

    run, _ = trained
    with pytest.raises(ValueError, match="resumed run keeps"):
        train_lowlevel(None, "walk1_subject1", steps=256, run_dir=run, resume=True, overrides={"gamma": 0.9}, progress=False)
    p = _cli("lowlevel", "train", "--goal", "reference", "--clips", "walk1_subject1", "--run-dir", str(tmp_path / "r"),
             "--set", "gamma=fast")
    assert p.returncode == 2 and "gamma=fast" in p.stderr and not (tmp_path / "r").exists()


def test_training_only_early_termination(tmp_path):
    from daps.trainer import load_checkpoint
    from lowlevel.environment import make_policy_env
    from lowlevel.train import build_vec_env, train_lowlevel

    run = tmp_path / "r"
    train_lowlevel(None, "walk1_subject1", steps=64, run_dir=run, goal="reference", action_mode="pd", pd_target="reference",
                   n_envs=2, overrides={"train_max_mean_joint_error": 1e-4, "n_steps": 32, "batch_size": 32}, progress=False)
    ck = load_checkpoint(run / "checkpoint.pt", "lowlevel-ppo")
    cfg = ck["config"]
    assert cfg["train_max_mean_joint_error"] == 1e-4
    venv = build_vec_env(cfg, None, 2, 0)
    try:
        assert venv.get_attr("max_mean_joint_error") == [1e-4, 1e-4]
        venv.reset()
        _, _, dones, infos = venv.step(np.zeros((2, venv.action_space.shape[0]), np.float32))
        assert all(i["termination"] == "diverged" for i in infos) and dones.all()  # one control step of PD lag exceeds 1e-4 rad
    finally:
        venv.close()
    assert make_policy_env(ck, "walk1_subject1", None, 100).max_mean_joint_error == 0.5  # evaluation keeps the standard threshold


def test_reference_offsets_set_the_goal_horizon_and_are_rebuilt_by_eval_and_export(tmp_path):
    """--set reference_offsets=[...]: the goal holds one 28-number frame per offset; the config
    keeps it, so eval and an export rebuild the same observation; configs without it keep (1, 2, 5)."""
    from envs.tracking import H1TrackingEnv, PROPRIO_DIM, REF_FRAME_DIM
    from lowlevel.checkpoint import export_lowlevel, load_exported, load_lowlevel
    from lowlevel.environment import env_kwargs
    from lowlevel.evaluate import evaluate_lowlevel
    from lowlevel.train import train_lowlevel

    offsets = [1, 5, 20, 50]
    train_lowlevel(None, "walk1_subject1", steps=64, run_dir=tmp_path / "r", n_envs=1, goal="reference",
                   action_mode="pd", pd_target="reference", overrides={**TINY, "reference_offsets": offsets}, progress=False)
    model, _, ck = load_lowlevel(tmp_path / "r" / "checkpoint.pt")
    assert ck["config"]["reference_offsets"] == offsets
    assert model.observation_space.shape == (PROPRIO_DIM + REF_FRAME_DIM * len(offsets),)
    export = export_lowlevel(tmp_path / "r" / "checkpoint.pt", tmp_path / "p.pt")
    assert load_exported(export)[0].observation_space == model.observation_space
    rep = evaluate_lowlevel(export, "walk1_subject1", max_seconds=0.2, starts=1, controllers=("policy",))
    assert rep["summary"]["policy"]["seconds_tracked"] > 0
    old = {k: v for k, v in ck["config"].items() if k != "reference_offsets"}  # a config from before the key
    assert "reference_offsets" not in env_kwargs(old)
    with pytest.raises(ValueError, match="reference_offsets"):
        H1TrackingEnv(["walk1_subject1"], goal="reference", reference_offsets=[0, 5])


def test_asymmetric_critic_widens_a_teacher_and_keeps_the_actor_deployable(mvae, teacher, tmp_path):
    """--critic-reference-obs: a decoded-goal run whose critic also sees the true reference, started
    from a teacher without it (critic widened with zero weights): the actor's actions do not depend
    on the appended block, the value function does; checkpoint, export and resume keep it."""
    from lowlevel.checkpoint import export_lowlevel, load_exported, load_lowlevel
    from lowlevel.evaluate import evaluate_lowlevel
    from lowlevel.policy import AsymmetricCriticPolicy
    from lowlevel.train import _widen_critic, train_lowlevel

    run = tmp_path / "asym"
    r = train_lowlevel(mvae, "walk1_subject1", steps=64, run_dir=run, n_envs=1, goal="decoded", action_mode="pd",
                       pd_target="decoded", overrides=TINY, progress=False, init_from=teacher, critic_reference_obs=True)
    assert r["num_timesteps"] == 64
    model, vecnorm, ck = load_lowlevel(run / "checkpoint.pt")
    policy, d = model.policy, 63 + 3 * 28
    assert isinstance(policy, AsymmetricCriticPolicy) and ck["config"]["critic_reference_obs"] is True
    assert model.observation_space.shape == (d + 3 * 28,) and vecnorm.obs_rms.mean.shape == (d + 3 * 28,)
    obs = torch.randn(4, d + 3 * 28)
    moved = obs.clone()
    moved[:, d:] += 3.0
    with torch.no_grad():
        assert torch.equal(policy.get_distribution(obs).distribution.mean, policy.get_distribution(moved).distribution.mean)
        assert not torch.allclose(policy.predict_values(obs), policy.predict_values(moved))
    # widening: the teacher's value function exactly, whatever the appended numbers
    t_model, _, _ = load_lowlevel(teacher)
    fresh = AsymmetricCriticPolicy(model.observation_space, model.action_space, lambda _: 0.0,
                                   actor_obs_dim=d, net_arch=dict(pi=[32, 32], vf=[32, 32]), activation_fn=torch.nn.ELU)
    fresh.load_state_dict(_widen_critic(t_model.policy.state_dict(), fresh.state_dict()))
    with torch.no_grad():
        np.testing.assert_allclose(fresh.predict_values(moved), t_model.policy.predict_values(obs[:, :d]), rtol=1e-5, atol=1e-5)
    export = export_lowlevel(run / "checkpoint.pt", tmp_path / "policy.pt")
    e_policy, e_vecnorm, _ = load_exported(export)
    assert isinstance(e_policy, AsymmetricCriticPolicy) and e_vecnorm.obs_rms.mean.shape == (d + 3 * 28,)
    reports = [evaluate_lowlevel(p, "walk1_subject1", max_seconds=0.2, starts=2, controllers=("policy",))["summary"]["policy"]
               for p in (run / "checkpoint.pt", export)]
    assert reports[1]["seconds_tracked"] == reports[0]["seconds_tracked"]
    r2 = train_lowlevel(None, steps=128, run_dir=run, resume=True, progress=False)
    assert r2["start_step"] == 64 and r2["num_timesteps"] == 128
    with pytest.raises(ValueError, match="critic_reference_obs needs goal 'decoded'"):
        train_lowlevel(None, "walk1_subject1", steps=64, run_dir=tmp_path / "bad", goal="reference", action_mode="pd",
                       pd_target="reference", overrides=TINY, progress=False, critic_reference_obs=True)
