"""The tracking task (envs.mimic): config, motion tables, sampler, terms, env; the COP check."""
from dataclasses import replace

import numpy as np
import pytest

from envs.mimic.config import MimicConfig, preset
from envs.mimic.env import MimicVecEnv
from envs.mimic.motion import MIRROR_SUFFIX, AdaptiveSampler, MotionLibrary, load_motion
from envs.mimic.rewards import REWARD_TERMS
from envs.reference import make_reference
from envs.tracking import NOMINAL_POSE

CFG = MimicConfig()


def _stand(seconds=2.0, lean_hip=0.0, name="stand"):
    n = int(seconds * CFG.control_hz) + 1
    q = np.zeros((n, 26))
    q[:, 2], q[:, 3], q[:, 7:] = 1.0, 1.0, NOMINAL_POSE
    q[:, [9, 14]] += lean_hip  # both hip pitches
    return make_reference(name, q, CFG.control_hz, ground_feet=True)


@pytest.fixture(scope="module")
def walk():
    return MotionLibrary([load_motion("walk1_subject1", CFG.control_hz)], CFG)


def test_config_checks_and_round_trip():
    with pytest.raises(ValueError, match="physics_dt"):
        MimicConfig(physics_dt=0)
    with pytest.raises(ValueError, match="reference_offsets"):
        MimicConfig(reference_offsets=(0,))
    with pytest.raises(ValueError, match="unknown task preset"):
        preset("nope")
    with pytest.raises(ValueError, match="unknown task setting"):
        preset("mimic", kp=1)
    c = preset("assist", kp_scale=2.0)
    assert c.assist and c.kp_scale == 2.0 and c.control_hz == pytest.approx(50.0)
    assert MimicConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown keys"):
        MimicConfig.from_dict({**c.to_dict(), "bogus": 1})


def test_library_velocities_match_finite_differences(walk):
    dt = CFG.control_dt
    g = np.arange(500, 2500, 97)
    fd = (walk.body_pos[g + 1] - walk.body_pos[g - 1]) / (2 * dt)
    assert np.abs(fd).max() > 0.5  # the walk moves
    assert np.abs(fd - walk.body_lin_vel[g]).max() < 0.05


def test_mirror_clip_reflects_the_pelvis_path():
    a = load_motion("walk1_subject1", CFG.control_hz)
    b = load_motion("walk1_subject1" + MIRROR_SUFFIX, CFG.control_hz)
    assert a.num_frames == b.num_frames
    np.testing.assert_allclose(b.qpos[:, 1], -a.qpos[:, 1], atol=1e-9)
    np.testing.assert_allclose(b.qpos[:, [0, 2]], a.qpos[:, [0, 2]], atol=1e-9)


def test_adaptive_sampler_draws_where_episodes_fail(walk):
    s = AdaptiveSampler(walk, replace(CFG, failure_ema=1.0, uniform_share=0.1), np.random.default_rng(0))
    clip, frame = s.sample(2000)
    assert (frame >= 0).all() and (frame < walk.clip_len[0] - 1).all()
    assert np.std(frame) > 0.2 * walk.clip_len[0]  # uniform at first
    fail_frame = 10 * s.frames_per_bin + 3
    s.update(np.zeros(5, np.int64), np.full(5, fail_frame), np.ones(5, bool))
    clip, frame = s.sample(4000)
    near = (frame >= 9 * s.frames_per_bin) & (frame < 11 * s.frames_per_bin)
    assert 0.8 < near.mean() < 0.97  # the failing bin and the one before it, plus the uniform share


def test_env_on_the_reference_scores_one_and_a_fall_terminates():
    stand = MotionLibrary([_stand()], CFG)
    env = MimicVecEnv(stand, 2, CFG, adaptive=False)
    obs = env.reset_to([0, 0], [0, 0])
    assert obs.shape == (2, env.observation_space.shape[0]) and obs.dtype == np.float32
    # a state equal to the reference: every positive term is 1 (up to the one-step motion)
    obs, rew, done, info = env.step(np.zeros((2, 19)))
    assert not done.any()
    for name in ("anchor_ori", "body_ori", "body_ang_vel"):
        assert info[0][name] > 0.95
    assert set(REWARD_TERMS) <= set(info[0])
    # tip env 1 over: the pelvis 0.5 m low ends it by anchor_z
    env.datas[1].qpos[2] -= 0.5
    import mujoco
    mujoco.mj_forward(env.model, env.datas[1])
    env._read(1)
    obs, rew, done, info = env.step(np.zeros((2, 19)))
    assert done[1] and info[1]["termination"] == "anchor_z" and "terminal_observation" in info[1]
    assert info[1]["episode"]["l"] == 2


def test_feet_height_term_sees_a_lifted_sole():
    """The sole-height term is 1 with both soles where the reference has them and falls with a
    5 cm lift of one foot by exp(-(0.05^2 / 2) / 0.05^2); the shipped preset gives it no weight."""
    from envs.mimic.rewards import reward_terms, sole_height
    from envs.mimic.state import anchored, reference_frames

    stand = MotionLibrary([_stand()], CFG)
    env = MimicVecEnv(stand, 1, preset("clearance"), adaptive=False)
    env.reset_to([0], [0])
    h = sole_height(env.robot, env.feet, env.sole_corners)
    assert h.shape == (1, 2) and np.all(np.abs(h) < 0.01)  # grounded stand: soles at the floor
    lifted = replace(env.robot, body_pos=env.robot.body_pos.copy())
    lifted.body_pos[:, env.feet[0], 2] += 0.05
    np.testing.assert_allclose(sole_height(lifted, env.feet, env.sole_corners)[0], h[0] + [0.05, 0.0], atol=1e-9)
    ref = reference_frames(env.lib, env._g(0))
    args = (anchored(env.robot, ref, env.anchor), env.anchor, np.zeros((1, 19)), np.zeros((1, 19)), env.soft_lo,
            env.soft_hi, env.cfg, env.feet, env.sole_corners)
    same = reward_terms(env.robot, ref, *args)["feet_height"][0]
    up = reward_terms(lifted, ref, *args)["feet_height"][0]
    assert same > 0.95 and up == pytest.approx(same * np.exp(-0.5), rel=0.05)
    assert MimicConfig().w_feet_height == 0.0 and preset("clearance").w_feet_height == 1.0


def test_nan_action_ends_the_episode_as_unstable():
    stand = MotionLibrary([_stand()], CFG)
    env = MimicVecEnv(stand, 1, CFG, adaptive=False)
    env.reset_to([0], [0])
    a = np.zeros((1, 19))
    a[0, 3] = np.nan
    obs, rew, done, info = env.step(a)
    assert done[0] and info[0]["termination"] == "unstable" and rew[0] == 0.0
    assert np.isfinite(obs).all()


def test_assist_holds_the_robot_up_longer(walk):
    lens = {}
    for assist in (False, True):
        env = MimicVecEnv(walk, 8, replace(CFG, assist=assist), seed=1, adaptive=False)
        env.reset_to([0] * 8, list(range(100, 5000, 612))[:8])
        alive, t = np.ones(8, bool), np.zeros(8)
        for _ in range(150):
            _, _, done, _ = env.step(np.zeros((8, 19)))
            t += alive
            alive &= ~done
        lens[assist] = t.mean()
    assert lens[True] > 1.5 * lens[False]


def test_feasibility_still_pose_and_lean():
    from envs.feasibility import feasibility

    still = feasibility(_stand(1.0))
    assert still["frames_judged"] > 0 and still["outside_share"] == 0.0
    lean = feasibility(_stand(1.0, lean_hip=-1.4, name="lean"))  # bent far forward over the toes
    assert lean["outside_share"] == 1.0 and lean["median_outside_m"] > 0.1


def _rot(axis, angle):
    c, s = np.cos(angle), np.sin(angle)
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    R = np.eye(3)
    R[i, i], R[i, j], R[j, i], R[j, j] = c, -s, s, c
    return R


def test_pelvis_tilt_error_reads_pitch_and_roll_in_the_heading_frame():
    """A pelvis pitched forward 0.2 rad (about its own y) reads pitch +0.2, roll 0, whatever its
    heading; one rolled 0.1 rad with the left side up reads roll +0.1; the reference's tilt is
    subtracted."""
    from envs.mimic.actions import pelvis_tilt_error

    for yaw in (0.0, 1.3, -2.5):
        H = _rot("z", yaw)
        p, r = pelvis_tilt_error((H @ _rot("y", 0.2))[None], H[None])
        assert p[0] == pytest.approx(0.2, abs=1e-9) and r[0] == pytest.approx(0.0, abs=1e-9)
        p, r = pelvis_tilt_error((H @ _rot("x", 0.1))[None], H[None])
        assert p[0] == pytest.approx(0.0, abs=1e-9) and r[0] == pytest.approx(0.1, abs=1e-9)
        p, r = pelvis_tilt_error((H @ _rot("y", 0.2))[None], (H @ _rot("y", 0.05))[None])
        assert p[0] == pytest.approx(0.15, abs=1e-9)


def test_simbicon_terms_move_the_hips_against_a_forward_pitch():
    """With the pelvis pitched 0.1 rad forward of the reference: in double support both hip pitch
    targets move by +torso_gain * 0.1 (pushing the pelvis back); with the left foot in swing its hip
    pitch moves by -0.1 (the thigh keeps its world angle) and the right, in stance, by +0.1.
    The capture-point preset ('balance') leaves the hips alone in double support."""
    from envs.mimic.actions import balance_offsets
    from envs.mimic.state import anchored, reference_frames
    from envs.model import JOINT_NAMES

    stand = MotionLibrary([_stand()], CFG)
    env = MimicVecEnv(stand, 1, CFG, adaptive=False)
    env.reset_to([0], [0])
    ref = anchored(env.robot, reference_frames(env.lib, env._g(0)), env.anchor)
    tilted = replace(env.robot, body_mat=env.robot.body_mat.copy())
    tilted.body_mat[:, env.anchor] = _rot("y", 0.1) @ tilted.body_mat[:, env.anchor]
    lp, rp = JOINT_NAMES.index("left_hip_pitch_joint"), JOINT_NAMES.index("right_hip_pitch_joint")
    cfg = preset("simbicon", balance_ankle_gain=0.0, balance_hip_roll_gain=0.0)
    out = balance_offsets(tilted, ref, env.anchor, env.feet, cfg)
    assert out[0, lp] == pytest.approx(0.1 * cfg.balance_torso_gain, abs=1e-6) and out[0, rp] == pytest.approx(out[0, lp])
    assert np.abs(balance_offsets(tilted, ref, env.anchor, env.feet, preset("balance"))[0, [lp, rp]]).max() < 1e-9
    swing = replace(ref, body_pos=ref.body_pos.copy())
    swing.body_pos[:, env.feet[0], 2] += 0.05  # the reference lifts the left foot
    out = balance_offsets(tilted, swing, env.anchor, env.feet, cfg)
    assert out[0, lp] == pytest.approx(-0.1, abs=1e-6) and out[0, rp] == pytest.approx(0.1, abs=1e-6)
