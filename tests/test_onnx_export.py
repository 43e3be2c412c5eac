"""The shipped tracker as ONNX (lowlevel.deploy, `daps lowlevel export-tracker --format onnx`): the graph
acts as the torch policy on real observations, its metadata says what the simulator used, and bad
input ends in one line with nothing written."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from daps.io import file_sha256  # noqa: E402
from envs.lafan1 import default_data_root  # noqa: E402
from daps.shipped import LOWLEVEL, shipped_path  # noqa: E402

SHIPPED = shipped_path(LOWLEVEL)
CLIP = "walk2_subject4"
pytestmark = pytest.mark.skipif(not SHIPPED.is_file(), reason="no shipped low-level policy (models/lowlevel.pt)")
needs_data = pytest.mark.skipif(not default_data_root().exists(), reason="LAFAN1-H1 data not available")


def daps(*args, pre: str = "") -> subprocess.CompletedProcess:
    """The real `daps` entry point in a fresh process (``pre``: Python run before it)."""
    exe = [sys.executable, "-c", f"{pre}from daps.cli import main; main()"]
    return subprocess.run(exe + [str(a) for a in args], capture_output=True, text=True, timeout=600)


def one_line_error(r: subprocess.CompletedProcess, *words: str) -> str:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr[-2000:]
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """models/lowlevel.pt exported by the command a user runs."""
    out = tmp_path_factory.mktemp("onnx") / "lowlevel.onnx"
    r = daps("lowlevel", "export-tracker", "--ckpt", SHIPPED, "--format", "onnx", "--out", out)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"wrote {out}" in r.stdout
    return out


@pytest.fixture(scope="module")
def tracker():
    from lowlevel.tracker import load_tracker

    return load_tracker(SHIPPED)


def _rollout(tracker, steps: int = 30, starts: int = 4):
    """(observations acted on (steps * starts, 161), the env, the per-step (obs, action, ctrl) of env 0,
    the observation after the last step): the torch policy tracking a real clip from ``starts`` frames."""
    from dataclasses import replace

    from envs.mimic.config import MimicConfig
    from envs.mimic.env import MimicVecEnv
    from lowlevel.tracker import make_library, policy_actor

    model, ck = tracker
    task = replace(MimicConfig.from_dict(ck["task"]), mirror=False, assist=False)
    lib = make_library([CLIP], task)
    env = MimicVecEnv(lib, starts, task, adaptive=False)
    act = policy_actor(model, ck)
    obs = env.reset_to([0] * starts, [0, 150, 300, 450])
    seen, trace = [], []
    for _ in range(steps):
        a = act(obs)
        seen.append(obs)
        prev = obs
        obs, _, _, _ = env.step(a)
        trace.append((prev[0], a[0], np.array(env.datas[0].ctrl)))
    return np.concatenate(seen), env, trace, obs


def _session(path: Path, threads: int = 1):
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = threads
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


@needs_data
def test_onnx_acts_as_the_torch_policy_on_real_observations(exported, tracker):
    from lowlevel.tracker import policy_actor

    obs = _rollout(tracker)[0]
    expected = policy_actor(*tracker)(obs)
    sess = _session(exported)
    assert [i.name for i in sess.get_inputs()] == ["obs"] and [o.name for o in sess.get_outputs()] == ["actions"]
    got = sess.run(["actions"], {"obs": obs})[0]
    assert got.dtype == np.float32 and got.shape == (len(obs), 19)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    one = sess.run(["actions"], {"obs": obs[:1]})[0]  # the batch axis is free: one robot, one row
    np.testing.assert_allclose(one, expected[:1], atol=1e-4, rtol=0)
    assert np.abs(expected).max() > 0.5  # a policy that acts, not a constant


def test_metadata_holds_what_the_simulator_used(exported, tracker):
    from envs.mimic.observations import obs_dim
    from envs.model import JOINT_NAMES, TORQUE_LIMITS
    from envs.tracking import NOMINAL_POSE, PD_KD, PD_KP
    from lowlevel.deploy import ONNX_FORMAT, read_metadata

    _, ck = tracker
    props = {p.key: p.value for p in onnx.load(str(exported)).metadata_props}
    meta = {k: json.loads(v) for k, v in props.items()}  # every value is a JSON string
    assert meta["format"] == ONNX_FORMAT and meta["source_format"] == "daps-tracker-v1"
    assert meta == read_metadata(exported)
    assert meta["joint_names"] == list(JOINT_NAMES)
    assert ck["task"]["kp_scale"] == meta["kp_scale"] == 3.0
    np.testing.assert_allclose(meta["joint_stiffness"], PD_KP * 3.0)
    np.testing.assert_allclose(meta["joint_damping"], PD_KD * 3.0)
    np.testing.assert_allclose(meta["torque_limits"], TORQUE_LIMITS)
    np.testing.assert_allclose(meta["action_scale"], 0.25 * TORQUE_LIMITS / (PD_KP * 3.0))  # a = 4: the full torque
    np.testing.assert_allclose(meta["default_joint_pos"], NOMINAL_POSE)
    assert meta["action_clip"] == 10.0 and meta["control_hz"] == 50.0 and meta["physics_dt"] == 0.005
    assert meta["decimation"] == 4 and meta["control_dt"] == pytest.approx(0.02)
    assert meta["reference_offsets"] == [1, 4] and meta["anchor_body"] == "pelvis"
    assert sum(meta["observation_sizes"]) == obs_dim(2) == meta["input"]["shape"][1] == 161
    assert len(meta["observation_names"]) == len(meta["observation_sizes"])
    assert meta["output"]["shape"] == ["batch", 19]
    assert meta["observation_normalization"] == {"epsilon": 1e-8, "clip": 10.0, "in_graph": True}
    assert meta["source_sha256"] == file_sha256(SHIPPED) and meta["source_file"] == "lowlevel.pt"
    assert meta["motion_vae_sha256"] == ck["motion_vae"]["sha256"] and len(meta["motion_vae_sha256"]) == 64
    assert meta["goal"] == "decoded" and meta["num_timesteps"] == ck["num_timesteps"]


@needs_data
def test_gains_layout_and_pd_rule_match_the_env(exported, tracker):
    """What the metadata tells a runtime reproduces the simulator: its gains, the observation's
    blocks where the metadata puts them, and ctrl = ref_joint_pos@+1 + action_scale * action."""
    from lowlevel.deploy import read_metadata

    meta = read_metadata(exported)
    _, env, trace, last = _rollout(tracker, steps=5, starts=4)
    np.testing.assert_allclose(meta["joint_stiffness"], env.kp)
    np.testing.assert_allclose(meta["joint_damping"], env.kd)
    start = np.cumsum([0] + meta["observation_sizes"])
    block = {n: slice(a, b) for n, a, b in zip(meta["observation_names"], start[:-1], start[1:])}
    np.testing.assert_allclose(last[:, block["joint_pos"]], env.robot.qpos[:, 7:], atol=1e-6)
    np.testing.assert_allclose(last[:, block["anchor_height"]][:, 0], env.robot.qpos[:, 2], atol=1e-6)
    np.testing.assert_allclose(last[:, block["projected_gravity_b"]], -env.robot.body_mat[:, env.anchor, 2, :], atol=1e-6)
    assert not trace[0][0][block["prev_action"]].any()  # an episode starts with no previous action
    for o, a, ctrl in trace:
        target = o[block["ref_joint_pos@+1"]] + np.asarray(meta["action_scale"]) * np.clip(a, -10, 10)
        np.testing.assert_allclose(ctrl, target, atol=1e-5)
    for (_, a, _), (o_next, _, _) in zip(trace, trace[1:]):
        np.testing.assert_allclose(o_next[block["prev_action"]], a, atol=1e-6)


@pytest.mark.parametrize("case", ["garbage", "not a tracker", "absent"])
def test_bad_source_is_refused_in_one_line_and_nothing_written(case, tmp_path):
    src = {"garbage": tmp_path / "bad.pt", "not a tracker": SHIPPED.parent / "motion_vae.pt", "absent": tmp_path / "none.pt"}[case]
    if case == "garbage":
        src.write_bytes(b"\x00not a checkpoint" * 40)
    out = tmp_path / "out" / "p.onnx"
    out.parent.mkdir()
    out.write_bytes(b"previous export")  # a failed export keeps what was there
    one_line_error(daps("lowlevel", "export-tracker", "--ckpt", src, "--format", "onnx", "--out", out), str(src))
    assert out.read_bytes() == b"previous export" and [p.name for p in out.parent.iterdir()] == ["p.onnx"]


def test_unknown_format_and_missing_onnx_are_one_line(tmp_path):
    out = tmp_path / "p.onnx"
    one_line_error(daps("lowlevel", "export-tracker", "--ckpt", SHIPPED, "--format", "tflite", "--out", out), "--format")
    hide = "import sys; sys.modules['onnx'] = None; "  # as if the deploy extra were not installed
    line = one_line_error(daps("lowlevel", "export-tracker", "--ckpt", SHIPPED, "--format", "onnx", "--out", out, pre=hide),
                          "daps-humanoid[deploy]")
    assert "onnx" in line and not out.exists() and list(tmp_path.iterdir()) == []


def test_a_graph_that_disagrees_with_torch_is_never_written(tmp_path, monkeypatch):
    """The check runs on the temporary file: a failure leaves the target as it was and no temporary."""
    import lowlevel.deploy as deploy

    out = tmp_path / "p.onnx"
    out.write_bytes(b"previous export")
    monkeypatch.setattr(deploy, "CHECK_ATOL", -1.0)  # no graph can pass
    with pytest.raises(RuntimeError, match="differ from the torch policy"):
        deploy.export_onnx(SHIPPED, out, probes=8)
    assert out.read_bytes() == b"previous export" and list(tmp_path.iterdir()) == [out]


def test_the_default_format_is_still_the_tracker_file(tmp_path):
    from lowlevel.tracker import is_tracker_file

    out = tmp_path / "tracker.pt"
    r = daps("lowlevel", "export-tracker", "--ckpt", SHIPPED, "--out", out)
    assert r.returncode == 0, r.stderr[-2000:]
    assert is_tracker_file(out)


def test_a_tracker_with_balance_feedback_is_refused(tracker):
    """Its PD targets depend on the simulator's centre of mass, which the graph cannot see."""
    from lowlevel.deploy import deployment_metadata

    ck = dict(tracker[1], task={**tracker[1]["task"], "balance": True})
    with pytest.raises(ValueError, match="lowlevel.pt: the capture-point balance feedback"):
        deployment_metadata(ck, SHIPPED)
