"""Tests of the H1 tracking environment (envs.reference, envs.rewards, envs.tracking)."""

from __future__ import annotations

import math

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from envs.model import JOINT_NAMES, TORQUE_LIMITS, load_h1_model
from envs.lafan1 import DataError

try:
    from envs.reference import load_reference, make_reference
    from envs.tracking import PROPRIO_DIM, REF_FRAME_DIM, H1TrackingEnv

    _REF = load_reference("walk1_subject1")
except DataError as exc:  # data not installed
    pytest.skip(f"LAFAN1-H1 data not available: {exc}", allow_module_level=True)

CLIP = "walk1_subject1"
BLOCK = 64
VOCAB = 16
NSEG = 3  # tiny fake codes: the first 3 segments (3.2 s) of the clip


def fake_codes(nseg=NSEG, vocab=VOCAB, seed=0):
    return {CLIP: np.random.default_rng(seed).integers(0, vocab, size=(nseg, BLOCK))}


def latent_env(**kw):
    return H1TrackingEnv([CLIP], goal="latent", latent_codes=fake_codes(), vocab_size=VOCAB, **kw)


# ---------------------------------------------------------------- reference


def test_reference_shapes_and_consistency():
    r = _REF
    assert r.fps == 100.0
    T = r.num_frames
    assert r.qpos.shape == (T, 26) and r.qvel.shape == (T, 25)
    assert r.site_pos.shape == (T, 4, 3) and r.com.shape == (T, 3) and r.torso_tilt.shape == (T,)
    # 30 Hz -> 100 Hz over the same time span.
    assert abs(r.duration - (7840 - 1) / 30.0) < 0.011
    np.testing.assert_allclose(np.linalg.norm(r.qpos[:, 3:7], axis=1), 1.0, atol=1e-12)
    # Central-difference qvel is consistent with MuJoCo's integration: qpos[t-1] + 2 dt qvel[t] = qpos[t+1].
    m = load_h1_model()
    for t in (1, 500, T - 2):
        q = r.qpos[t - 1].copy()
        mujoco.mj_integratePos(m, q, r.qvel[t], 2.0 / r.fps)
        np.testing.assert_allclose(q, r.qpos[t + 1], atol=1e-9)


def test_reference_unknown_clip():
    with pytest.raises(ValueError, match="list_clips"):
        load_reference("no_such_clip")


# ---------------------------------------------------------------- env checker / spaces


def test_check_env_reference_goal():
    env = H1TrackingEnv([CLIP])
    check_env(env, skip_render_check=True)
    assert env.observation_space.shape == (PROPRIO_DIM + REF_FRAME_DIM * 3,)


def test_check_env_latent_goal_pd():
    env = latent_env(action_mode="pd")
    check_env(env, skip_render_check=True)
    assert isinstance(env.observation_space, gym.spaces.Dict)


def test_registration():
    import envs  # noqa: F401

    env = gym.make("daps/H1Tracking-v0", clips=[CLIP])
    obs, _ = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape
    env.close()


def test_reset_step_shapes_dtypes():
    env = H1TrackingEnv([CLIP])
    obs, info = env.reset(seed=1)
    assert obs.dtype == np.float32 and obs.shape == env.observation_space.shape
    assert info["clip"] == CLIP
    obs, rew, term, trunc, info = env.step(env.action_space.sample())
    assert obs.dtype == np.float32 and env.observation_space.contains(obs)
    assert isinstance(rew, float) and isinstance(term, bool) and isinstance(trunc, bool)
    for key in ("pose", "vel", "end_effector", "com", "torque_penalty", "termination", "clip", "frame"):
        assert key in info
    # Observation layout: proprio joint angles / prev action.
    env.reset(seed=2)
    a = np.linspace(-0.5, 0.5, 19).astype(np.float32)
    obs, *_ = env.step(a)
    np.testing.assert_allclose(obs[:19], env.data.qpos[7:], atol=1e-5)
    np.testing.assert_allclose(obs[44:63], a, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(obs[38:41]), 1.0, atol=1e-5)

    lenv = latent_env()
    obs, _ = lenv.reset(seed=0)
    assert lenv.observation_space.contains(obs)
    assert obs["latent"].shape == (2, BLOCK) and obs["latent"].dtype == np.float32
    assert obs["proprio"].shape == (PROPRIO_DIM,) and obs["phase"].shape == (1,)


# ---------------------------------------------------------------- RSI and reward


def test_rsi_lands_on_reference_and_reference_reward_is_one():
    env = H1TrackingEnv([CLIP])
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        k = info["frame"]
        np.testing.assert_allclose(env.data.qpos, _REF.qpos[k], atol=1e-12)
        np.testing.assert_allclose(env.data.qvel, _REF.qvel[k], atol=1e-12)
        np.testing.assert_allclose(obs[:19], _REF.qpos[k, 7:], atol=1e-6)
        # Goal: first offset's joints = reference frame k+1; root position offset in heading frame.
        np.testing.assert_allclose(obs[63:82], _REF.qpos[k + 1, 7:], atol=1e-6)
        total, terms = env.reference_reward(frame=k)
        assert total == pytest.approx(1.0, abs=1e-9)
        for name in ("pose", "vel", "end_effector", "com"):
            assert terms[name] == pytest.approx(1.0, abs=1e-9)
        assert terms["torque_penalty"] == 0.0


def test_reward_falls_with_deviation():
    env = H1TrackingEnv([CLIP])
    env.reset(seed=0, options={"frame": 1000})
    q0, v0 = _REF.qpos[1000].copy(), _REF.qvel[1000].copy()
    rewards = []
    for delta in (0.0, 0.05, 0.1, 0.2, 0.4):
        q = q0.copy()
        q[7:] += delta
        v = v0.copy()
        v[6:] += 10 * delta
        rewards.append(env.state_reward(q, v, frame=1000)[0])
    assert rewards[0] == pytest.approx(1.0, abs=1e-9)
    assert all(a > b for a, b in zip(rewards, rewards[1:])), rewards
    # Root orientation error alone lowers the pose term.
    q = q0.copy()
    half = 0.1
    rot = np.array([math.cos(half), 0.0, 0.0, math.sin(half)])
    mujoco.mju_mulQuat(q[3:7], q0[3:7], rot)
    _, terms = env.state_reward(q, v0, frame=1000)
    # mean over 19 hinges + root (20 terms), K_POSE = 10 (LocoMuJoCo qpos_w_exp)
    assert terms["pose"] == pytest.approx(math.exp(-10.0 * (2 * half) ** 2 / 20), rel=1e-6)


def test_torque_penalty():
    env = H1TrackingEnv([CLIP], torque_penalty_weight=0.1)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.ones(19))
    assert info["torque_penalty"] == pytest.approx(-0.1)


# ---------------------------------------------------------------- termination


def test_fallen_state_terminates():
    env = H1TrackingEnv([CLIP])
    env.reset(seed=0, options={"frame": 100})
    env.data.qpos[2] = 0.3
    mujoco.mj_forward(env.model, env.data)
    _, _, term, trunc, info = env.step(np.zeros(19))
    assert term and not trunc and info["termination"] == "fell"


def test_tilted_state_terminates():
    env = H1TrackingEnv([CLIP], action_mode="pd")
    env.reset(seed=0, options={"frame": 100})
    q = env.data.qpos
    q[3:7] = [math.cos(0.75), 0.0, math.sin(0.75), 0.0]  # 1.5 rad pitch
    q[2] = 1.2
    mujoco.mj_forward(env.model, env.data)
    _, _, term, _, info = env.step(np.zeros(19))
    assert term and info["termination"] == "tilted"


def test_nan_gives_unstable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MuJoCo writes its warnings to MUJOCO_LOG.TXT in the cwd
    env = H1TrackingEnv([CLIP])
    env.reset(seed=0)
    obs, rew, term, _, info = env.step(np.full(19, np.nan, dtype=np.float32))
    assert term and info["termination"] == "unstable" and rew == 0.0
    assert np.isfinite(obs).all()
    env.reset(seed=0)
    env.data.qpos[10] = np.nan
    obs, rew, term, _, info = env.step(np.zeros(19))
    assert term and info["termination"] == "unstable"
    assert np.isfinite(obs).all()
    env.reset(seed=0)
    env.data.qvel[8] = 1e9
    _, _, term, _, info = env.step(np.zeros(19))
    assert term and info["termination"] == "unstable"


def _steps_until_termination(env, max_steps):
    env.reset(seed=0, options={"frame": 0})
    for t in range(max_steps):
        _, _, term, trunc, info = env.step(np.zeros(19))
        assert not trunc
        if term:
            return t + 1, info["termination"]
    return max_steps, None


def test_pd_holding_a_standing_pose_outlasts_zero_torque():
    # Unitree's gains are soft (ankle kp 40): holding a fixed target does not balance the robot
    # for long, but it must keep it up well beyond a limp robot (0.48 s) and at least 1 s.
    stand = make_reference("stand", np.repeat(_REF.qpos[:1], 300, axis=0), 100.0)
    pd_steps, _ = _steps_until_termination(H1TrackingEnv([stand], action_mode="pd"), 200)
    limp_steps, why = _steps_until_termination(H1TrackingEnv([stand], action_mode="torque"), 200)
    assert why == "fell" and limp_steps < 60
    assert pd_steps >= 100 and pd_steps > 2 * limp_steps


def test_pd_defaults_are_unitree_h1_gains():
    from envs.tracking import PD_ACTION_SCALE, PD_KD, PD_KP

    # unitree_rl_gym legged_gym/envs/h1/h1_config.py (H1RoughCfg.control), JOINT_NAMES order:
    # hip yaw/roll/pitch, knee, ankle (x2), torso, shoulder pitch/roll/yaw, elbow (x2).
    leg_kp, leg_kd = [150, 150, 150, 200, 40], [2, 2, 2, 4, 2]
    arm_kp, arm_kd = [150, 150, 150, 100], [2, 2, 2, 2]
    np.testing.assert_array_equal(PD_KP, leg_kp * 2 + [300] + arm_kp * 2)
    np.testing.assert_array_equal(PD_KD, leg_kd * 2 + [6] + arm_kd * 2)
    assert PD_ACTION_SCALE == 0.25
    assert H1TrackingEnv([CLIP], action_mode="pd", pd_target="reference").pd_action_scale == 0.25
    env = H1TrackingEnv([CLIP], action_mode="pd", pd_target="nominal")
    assert env.pd_action_scale == 1.0  # around standing the action must span the motion itself
    # the position actuators carry exactly these gains and the motors' torque limits
    m = env.model
    np.testing.assert_array_equal(m.actuator_gainprm[:, 0], PD_KP)
    np.testing.assert_array_equal(m.actuator_biasprm[:, 1:3], -np.stack([PD_KP, PD_KD], axis=1))
    np.testing.assert_array_equal(m.actuator_forcerange[:, 1], TORQUE_LIMITS)
    assert H1TrackingEnv([CLIP]).model.actuator_gainprm[0, 0] == 1.0  # torque mode keeps plain motors
    with pytest.raises(ValueError, match="pd_action_scale"):
        H1TrackingEnv([CLIP], action_mode="pd", pd_action_scale=-1.0)


def test_torque_range_action_scale_spans_each_motor():
    # "torque-range": rad per unit action = torque limit / kp per joint, so a unit action against a
    # static error asks for the motor's whole torque; the targets are reference + scale * action.
    from envs.tracking import PD_KP, PD_TORQUE_RANGE_SCALE, resolve_pd_action_scale

    np.testing.assert_allclose(PD_TORQUE_RANGE_SCALE * PD_KP, TORQUE_LIMITS)
    assert PD_TORQUE_RANGE_SCALE[JOINT_NAMES.index("left_ankle_joint")] == pytest.approx(1.0)   # 40 N m / 40
    assert PD_TORQUE_RANGE_SCALE[JOINT_NAMES.index("left_knee_joint")] == pytest.approx(1.5)    # 300 / 200
    env = H1TrackingEnv([CLIP], action_mode="pd", pd_target="reference", pd_action_scale="torque-range")
    env.reset(options={"clip": CLIP, "frame": 10})
    a = np.linspace(-1, 1, 19).astype(np.float32)
    env.step(a)
    np.testing.assert_allclose(env.data.ctrl, env._clip.joints[11] + PD_TORQUE_RANGE_SCALE * a, atol=1e-6)  # noqa: SLF001
    assert resolve_pd_action_scale("0.5", "reference") == 0.5
    assert resolve_pd_action_scale(None, "nominal") == 1.0
    for bad in ("torque", "nan", -0.1, np.ones(3), -np.ones(19)):
        with pytest.raises(ValueError, match="pd_action_scale"):
            resolve_pd_action_scale(bad, "reference")


def test_pd_gain_scale_multiplies_both_gains_not_the_limits():
    from envs.tracking import PD_KD, PD_KP

    m = H1TrackingEnv([CLIP], action_mode="pd", pd_gain_scale=3.0).model
    np.testing.assert_allclose(m.actuator_gainprm[:, 0], 3.0 * PD_KP)
    np.testing.assert_allclose(m.actuator_biasprm[:, 1:3], -3.0 * np.stack([PD_KP, PD_KD], axis=1))
    np.testing.assert_array_equal(m.actuator_forcerange[:, 1], TORQUE_LIMITS)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="pd_gain_scale"):
            H1TrackingEnv([CLIP], action_mode="pd", pd_gain_scale=bad)


def test_position_actuators_equal_the_pd_law_in_python():
    # kp (target - q) - kd qdot, clipped to the torque limits, recomputed at every substep.
    from envs.tracking import PD_KD, PD_KP

    env = H1TrackingEnv([CLIP], action_mode="pd", pd_target="reference")
    env.reset(seed=0, options={"frame": 500})
    m2 = load_h1_model()
    d2 = mujoco.MjData(m2)
    d2.qpos[:], d2.qvel[:] = env.data.qpos, env.data.qvel
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.uniform(-1, 1, 19)
        target = env._clip.joints[env._frame + 1] + 0.25 * a  # noqa: SLF001 - the reference of the next frame
        env.step(a)
        for _ in range(5):
            tau = np.clip(PD_KP * (target - d2.qpos[7:]) - PD_KD * d2.qvel[6:], -TORQUE_LIMITS, TORQUE_LIMITS)
            d2.ctrl[:] = tau
            mujoco.mj_step(m2, d2)
    np.testing.assert_allclose(env.data.qpos, d2.qpos, atol=1e-10)
    np.testing.assert_allclose(env.data.qvel, d2.qvel, atol=1e-8)


def test_reference_feet_stand_on_the_floor():
    # Unitree's retargeted clips put the stance foot ~1 cm into the floor; load_reference lifts each
    # clip so that the median lowest sole point is at z = 0.
    raw = load_reference(CLIP, ground_feet=False)
    assert raw.root_height_shift == 0.0
    shift = _REF.root_height_shift
    assert 0.001 < shift < 0.03
    np.testing.assert_allclose(_REF.qpos[:, 2] - raw.qpos[:, 2], shift, atol=1e-12)
    np.testing.assert_allclose(_REF.site_pos[..., 2] - raw.site_pos[..., 2], shift, atol=1e-12)
    np.testing.assert_allclose(_REF.qpos[:, 3:], raw.qpos[:, 3:])
    m = load_h1_model()
    d = mujoco.MjData(m)
    feet = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, g) for g in ("left_foot", "right_foot")]
    lows = []
    for q in _REF.qpos[::10]:
        d.qpos[:] = q
        mujoco.mj_kinematics(m, d)
        lows.append(min(d.geom_xpos[g, 2] - np.abs(d.geom_xmat[g, 6:9]) @ m.geom_size[g] for g in feet))
    assert abs(np.median(lows)) < 0.002  # typical stance foot on the floor (was -0.6 cm)


def test_truncation_at_clip_end_and_time_limit():
    env = latent_env()
    last = math.ceil(NSEG * 32 / 30 * 100) - 1  # last frame whose segment has codes
    assert env.last_frame(CLIP) == last
    with pytest.raises(ValueError, match="unknown clip"):
        env.last_frame("walk9_subject9")
    env.reset(seed=0, options={"frame": last - 1})
    _, _, term, trunc, info = env.step(np.zeros(19))
    assert trunc and not term and info["truncation"] == "clip_end"
    env = H1TrackingEnv([CLIP], action_mode="pd", max_episode_steps=3)
    env.reset(seed=0, options={"frame": 10})
    for _ in range(3):
        _, _, term, trunc, info = env.step(np.zeros(19))
    assert trunc and info["truncation"] == "time_limit"


# ---------------------------------------------------------------- latent goal


def test_latent_segment_mapping():
    codes = fake_codes()[CLIP]
    env = latent_env()
    obs, _ = env.reset(seed=0, options={"frame": 0})
    np.testing.assert_array_equal(obs["latent"][0], codes[0])
    np.testing.assert_array_equal(obs["latent"][1], codes[1])
    assert obs["phase"][0] == 0.0
    # t = 1.1 s -> 33 frames at 30 Hz -> segment 1, phase 1/32.
    obs, _ = env.reset(seed=0, options={"frame": 110})
    np.testing.assert_array_equal(obs["latent"][0], codes[1])
    np.testing.assert_array_equal(obs["latent"][1], codes[2])
    assert obs["phase"][0] == pytest.approx(1.0 / 32.0, abs=1e-6)
    # Last segment: the next one repeats it.
    obs, _ = env.reset(seed=0, options={"frame": 300})
    np.testing.assert_array_equal(obs["latent"][0], codes[2])
    np.testing.assert_array_equal(obs["latent"][1], codes[2])


@pytest.mark.parametrize(
    "codes, match",
    [
        ({CLIP: np.zeros((3, 63), dtype=np.int64)}, "walk1_subject1"),
        ({CLIP: np.full((3, 64), VOCAB, dtype=np.int64)}, "walk1_subject1"),
        ({CLIP: -np.ones((3, 64), dtype=np.int64)}, "walk1_subject1"),
        ({CLIP: np.full((3, 64), 0.5)}, "walk1_subject1"),
        ({CLIP: np.zeros(64, dtype=np.int64)}, "walk1_subject1"),
        ({CLIP: np.zeros((10_000, 64), dtype=np.int64)}, "walk1_subject1"),
        ({"walk2_subject1": np.zeros((3, 64), dtype=np.int64)}, "walk1_subject1"),
        (None, "latent_codes"),
    ],
)
def test_bad_latent_codes_raise(codes, match):
    with pytest.raises(ValueError, match=match):
        H1TrackingEnv([CLIP], goal="latent", latent_codes=codes, vocab_size=VOCAB)


def test_nominal_pd_targets_the_nominal_pose_plus_action():
    from envs.tracking import NOMINAL_POSE

    env = H1TrackingEnv([CLIP], action_mode="pd", pd_target="nominal")
    assert env.pd_action_scale == 1.0
    env.reset(seed=0, options={"frame": 0})
    a = np.zeros(19)
    a[14] = 0.25  # left elbow: target nominal + 0.25 rad
    a[18] = -0.15  # right elbow: nominal - 0.15 rad
    for _ in range(50):  # 0.5 s: the joints settle towards their targets
        env.step(a)
    q = env.data.qpos[7:]
    # the arms carry little load, so Unitree's soft gains settle them near their targets (the
    # legs carry the body: their steady-state error under kp 150-200 is 0.2-0.4 rad)
    assert abs(q[14] - (NOMINAL_POSE[14] + 0.25)) < 0.05
    assert abs(q[18] - (NOMINAL_POSE[18] - 0.15)) < 0.05
    assert np.abs(q[11:] - (NOMINAL_POSE[11:] + a[11:])).max() < 0.15
    with pytest.raises(ValueError, match="pd_target"):
        H1TrackingEnv([CLIP], action_mode="pd", pd_target="sideways")


# ---------------------------------------------------------------- decoded goal


def _planar_moved(qpos, yaw, dx, dy, joint_offset=0.0):
    """qpos (T, 26) rotated by ``yaw`` about z, moved by (dx, dy), joints + ``joint_offset``."""
    q = np.array(qpos)
    c, s = math.cos(yaw), math.sin(yaw)
    x, y = q[:, 0].copy(), q[:, 1].copy()
    q[:, 0], q[:, 1] = c * x - s * y + dx, s * x + c * y + dy
    w, qx, qy, qz = q[:, 3:7].T.copy()
    ch, sh = math.cos(yaw / 2), math.sin(yaw / 2)
    q[:, 3:7] = np.stack([ch * w - sh * qz, ch * qx - sh * qy, ch * qy + sh * qx, ch * qz + sh * w], 1)
    q[:, 7:] += joint_offset
    return q


def test_decoded_goal_with_the_true_motion_equals_the_reference_goal():
    ref_env = H1TrackingEnv([CLIP], action_mode="pd", pd_target="reference")
    dec_env = H1TrackingEnv([CLIP], goal="decoded", action_mode="pd", decoded_motion={CLIP: _REF})
    assert dec_env.pd_target == "decoded" and dec_env.pd_action_scale == 0.25
    assert dec_env.observation_space == ref_env.observation_space  # same network input as the teacher's
    check_env(dec_env, skip_render_check=True)
    for frame in (0, 250):
        o_ref, _ = ref_env.reset(options={"frame": frame})
        o_dec, _ = dec_env.reset(options={"frame": frame})
        np.testing.assert_allclose(o_dec, o_ref, atol=1e-6)  # at RSI the anchor is the identity
        seg = dec_env._segment(frame)  # noqa: SLF001
        a = np.full(19, 0.1)
        while True:  # same PD targets (decoded = reference): equal until the next segment starts
            o_ref, r_ref, *_ = ref_env.step(a)
            o_dec, r_dec, term, trunc, info = dec_env.step(a)
            assert not (term or trunc)
            assert r_dec == pytest.approx(r_ref, abs=1e-12)  # reward against the true reference
            assert info["decoded_joint_error"] == pytest.approx(np.abs(dec_env.data.qpos[7:] - _REF.qpos[info["frame"], 7:]).mean())
            if dec_env._segment(info["frame"]) != seg:  # noqa: SLF001
                break
            np.testing.assert_allclose(o_dec, o_ref, atol=1e-5)
        # entering a new segment re-bases the decoded root on the robot (x, y, heading)
        q = dec_env.decoded_qpos()
        np.testing.assert_allclose(q[:2], dec_env.data.qpos[:2], atol=1e-12)
        assert q[2] == _REF.qpos[info["frame"], 2] and np.array_equal(q[7:], _REF.qpos[info["frame"], 7:])
        R_dec, R_robot = np.zeros(9), dec_env.data.xmat[1]
        mujoco.mju_quat2Mat(R_dec, q[3:7])
        assert math.atan2(R_dec[3], R_dec[0]) == pytest.approx(math.atan2(R_robot[3], R_robot[0]), abs=1e-9)
        assert np.abs(o_dec - o_ref).max() > 1e-3  # the reference goal still sees the drifted true root


def test_decoded_goal_anchoring_and_pd_target():
    short = make_reference("short", _REF.qpos[:300], 100.0)
    base = H1TrackingEnv([short], action_mode="pd", pd_target="reference")
    o_ref, _ = base.reset(options={"frame": 40})
    # a planar rigid motion of the whole decoded trajectory is removed by the anchor
    moved = make_reference("short", _planar_moved(short.qpos, 0.7, 3.0, -2.0), 100.0)
    env = H1TrackingEnv([short], goal="decoded", action_mode="pd", decoded_motion={"short": moved})
    o_dec, _ = env.reset(options={"frame": 40})
    np.testing.assert_allclose(o_dec, o_ref, atol=1e-6)
    # decoded joints 0.1 rad off: only the goal's joint numbers differ, by exactly that
    off = make_reference("short", _planar_moved(short.qpos, 0.0, 0.0, 0.0, 0.1), 100.0)
    env = H1TrackingEnv([short], goal="decoded", action_mode="pd", decoded_motion={"short": off})
    o_dec, _ = env.reset(options={"frame": 40})
    diff = (o_dec - o_ref)[PROPRIO_DIM:].reshape(3, REF_FRAME_DIM)
    np.testing.assert_allclose(diff[:, :19], 0.1, atol=1e-6)
    np.testing.assert_allclose(diff[:, 19:], 0.0, atol=1e-6)
    assert np.array_equal(o_dec[:PROPRIO_DIM], o_ref[:PROPRIO_DIM])
    a = np.linspace(-1, 1, 19)  # PD target = decoded joints of frame k + 1 + 0.25 action
    np.testing.assert_allclose(env._pd_target(a, 41), off.qpos[41, 7:] + 0.25 * a)  # noqa: SLF001
    _, _, _, _, info = env.step(np.zeros(19))
    assert env.data.ctrl == pytest.approx(off.qpos[41, 7:])
    assert info["decoded_joint_error"] == pytest.approx(np.abs(env.data.qpos[7:] - off.qpos[41, 7:]).mean())
    # a decoded motion shorter than the clip ends the usable part there
    env = H1TrackingEnv([CLIP], goal="decoded", decoded_motion={CLIP: short})
    assert env.last_frame(CLIP) == 299


def test_decoded_motion_given_at_30hz_is_resampled_and_grounded_like_a_clip():
    from envs.lafan1 import csv_to_qpos, load_clip_csv, resolve_clip_dir

    qpos30 = csv_to_qpos(load_clip_csv(resolve_clip_dir() / f"{CLIP}.csv"))
    env = H1TrackingEnv([CLIP], goal="decoded", decoded_motion={CLIP: qpos30})
    np.testing.assert_array_equal(env._clips[0].dec.qpos, _REF.qpos)  # noqa: SLF001 - load_reference's pipeline
    o_dec, _ = env.reset(options={"frame": 10})
    o_ref, _ = H1TrackingEnv([CLIP]).reset(options={"frame": 10})
    np.testing.assert_allclose(o_dec, o_ref, atol=1e-6)


def test_decoded_goal_bad_input():
    dec = {CLIP: _REF}
    with pytest.raises(ValueError, match="leak|true reference"):
        H1TrackingEnv([CLIP], goal="decoded", action_mode="pd", pd_target="reference", decoded_motion=dec)
    with pytest.raises(ValueError, match="needs goal='decoded'"):
        H1TrackingEnv([CLIP], action_mode="pd", pd_target="decoded")
    with pytest.raises(ValueError, match="decoded_motion"):
        H1TrackingEnv([CLIP], goal="decoded")
    with pytest.raises(ValueError, match="no decoded motion"):
        H1TrackingEnv([CLIP], goal="decoded", decoded_motion={"other": _REF})
    with pytest.raises(ValueError, match="fps"):
        H1TrackingEnv([CLIP], goal="decoded", decoded_motion={CLIP: make_reference(CLIP, _REF.qpos[:50], 30.0)})
    with pytest.raises(ValueError, match=r"\(T >= 2, 26\)"):
        H1TrackingEnv([CLIP], goal="decoded", decoded_motion={CLIP: np.zeros((10, 19))})
    with pytest.raises(ValueError, match="goal must be"):
        H1TrackingEnv([CLIP], goal="codes")
    with pytest.raises(ValueError, match="decoded_qpos"):
        H1TrackingEnv([CLIP]).decoded_qpos()
