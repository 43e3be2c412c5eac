"""The batched VecEnv (envs.batched.H1BatchedVecEnv) equals N single H1TrackingEnv step by step."""

from __future__ import annotations

import numpy as np
import pytest

from envs.lafan1 import DataError

try:
    from envs.batched import H1BatchedVecEnv
    from envs.reference import load_reference
    from envs.rewards import REWARD_TERMS
    from envs.tracking import H1TrackingEnv

    load_reference("walk1_subject1")
except DataError as exc:  # data not installed
    pytest.skip(f"LAFAN1-H1 data not available: {exc}", allow_module_level=True)

CLIPS = ["walk1_subject1", "walk3_subject2"]
N = 4


def _codes(vocab=16):
    rng = np.random.default_rng(0)
    return {c: rng.integers(0, vocab, size=(4, 64)) for c in CLIPS}  # 4 segments: episodes reach the clip end


_DECODED = {}


def _decoded(frames=400):
    """A stand-in "decoded motion" per clip: the first 400 frames of the reference, rotated 0.3 rad
    about z, moved (2, -1) m, drifting 0.2 m/s in x, joints off by 0.05 rad (shorter than the clip:
    episodes also end at its end)."""
    from envs.reference import make_reference

    if not _DECODED:
        for c in CLIPS:
            q = np.array(load_reference(c).qpos[:frames])
            cz, sz = np.cos(0.3), np.sin(0.3)
            x, y = q[:, 0].copy(), q[:, 1].copy()
            q[:, 0] = cz * x - sz * y + 2.0 + 0.002 * np.arange(frames)
            q[:, 1] = sz * x + cz * y - 1.0
            w, qx, qy, qz = q[:, 3:7].T.copy()
            ch, sh = np.cos(0.15), np.sin(0.15)
            q[:, 3:7] = np.stack([ch * w - sh * qz, ch * qx - sh * qy, ch * qy + sh * qx, ch * qz + sh * w], 1)
            q[:, 7:] += 0.05
            _DECODED[c] = make_reference(c, q, 100.0)
    return dict(_DECODED)


def _kwargs(goal, action_mode, pd_target="reference", **extra):
    """extra: observation options, e.g. root_velocity_obs=True or critic_reference_obs=True."""
    kw = dict(goal=goal, action_mode=action_mode, pd_target=pd_target, max_episode_steps=60, **extra)
    if goal == "latent":
        kw.update(latent_codes=_codes(), vocab_size=16)
    if goal == "decoded":
        kw.update(decoded_motion=_decoded())
    return kw


def _assert_obs_close(a, b, i=None):
    if isinstance(a, dict):
        for key in a:
            _assert_obs_close(a[key], b[key] if i is None else b[key][i])
    else:
        np.testing.assert_allclose(a, b if i is None else b[i], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("goal, action_mode, pd_target, threads, obs_options", [
    ("reference", "torque", "reference", 1, {}), ("latent", "pd", "nominal", 2, {}),
    ("reference", "pd", "reference", 1, {}), ("decoded", "pd", "decoded", 1, {}),
    ("reference", "pd", "reference", 1, {"root_velocity_obs": True}), ("reference", "pd", "torque-range", 1, {}),
    ("decoded", "pd", "decoded", 1, {"critic_reference_obs": True}),  # the asymmetric critic's true-reference block
])
def test_batched_equals_single_envs_step_by_step(goal, action_mode, pd_target, threads, obs_options):
    per_joint = pd_target == "torque-range"  # per-joint action scale, around the reference
    kw = _kwargs(goal, action_mode, "reference" if per_joint else pd_target, **obs_options)
    if per_joint:
        kw["pd_action_scale"] = "torque-range"
    venv = H1BatchedVecEnv(N, CLIPS, threads=threads, **kw)
    singles = [H1TrackingEnv(CLIPS, **kw) for _ in range(N)]
    venv.seed(7)
    obs = venv.reset()
    for i, e in enumerate(singles):
        o, info = e.reset(seed=7 + i)
        _assert_obs_close(o, obs, i)
        assert venv.reset_infos[i]["frame"] == info["frame"] and venv.reset_infos[i]["clip"] == info["clip"]
    rng = np.random.default_rng(1)
    scale = 0.3 if action_mode == "torque" else 1.0  # random torques fall quickly: several auto-resets
    ends, anchors = set(), set()
    for step in range(120):
        a = (scale * rng.uniform(-1, 1, size=(N, 19))).astype(np.float32)
        if step == 30:
            a[1, 3] = np.nan  # a non-finite action ends that episode as "unstable"
        obs, rew, done, infos = venv.step(a)
        assert rew.dtype == np.float32 and done.dtype == bool and len(infos) == N
        for i, e in enumerate(singles):
            o, r, term, trunc, info = e.step(a[i])
            assert done[i] == (term or trunc), (step, i)
            assert rew[i] == pytest.approx(r, rel=1e-5, abs=1e-6), (step, i)
            for key in REWARD_TERMS:
                assert infos[i][key] == pytest.approx(info[key], rel=1e-6, abs=1e-9), (step, i, key)
            for key in ("clip", "frame", "termination", "truncation"):  # labels and counters: exact
                assert infos[i][key] == info[key], (step, i, key)
            if goal == "decoded":
                assert infos[i]["decoded_joint_error"] == pytest.approx(info["decoded_joint_error"], rel=1e-6, abs=1e-9)
                anchors.add(e._anchor_seg)  # noqa: SLF001
            if term or trunc:
                ends.add(info["termination"] or info["truncation"])
                assert infos[i]["TimeLimit.truncated"] == (trunc and not term)
                _assert_obs_close(o, infos[i]["terminal_observation"])
                o, _ = e.reset()  # the batch resets at once, from the same np_random
                assert venv.reset_infos[i]["frame"] == e._frame  # noqa: SLF001
            else:
                assert "terminal_observation" not in infos[i]
            _assert_obs_close(o, obs, i)
            if goal == "decoded":  # the root anchors (after the auto-reset, if any)
                np.testing.assert_allclose(venv._anchor[i], e._anchor, rtol=1e-9, atol=1e-9)  # noqa: SLF001
    assert "unstable" in ends and len(ends) >= 2, ends  # auto-reset paths were exercised
    if goal == "decoded":
        assert len(anchors) >= 2 and "clip_end" in ends  # re-anchoring at segment starts; the decoded end
    venv.close()


def test_vec_env_api_and_bad_input():
    venv = H1BatchedVecEnv(2, CLIPS, max_episode_steps=10)
    assert venv.num_envs == 2 and venv.observation_space.shape == (63 + 3 * 28,)
    assert venv.get_attr("clip_names") == [CLIPS, CLIPS]
    assert venv.env_method("last_frame", CLIPS[0], indices=[1]) == [H1TrackingEnv(CLIPS).last_frame(CLIPS[0])]
    venv.set_attr("max_tilt", 0.9, indices=0)
    assert venv.get_attr("max_tilt") == [0.9, 1.0]
    assert venv.env_is_wrapped(object) == [False, False]
    venv.set_options({"clip": CLIPS[1], "frame": 5})
    venv.reset()
    assert [i["frame"] for i in venv.reset_infos] == [5, 5] and venv.reset_infos[0]["clip"] == CLIPS[1]
    with pytest.raises(ValueError, match="shape"):
        venv.step(np.zeros((3, 19)))
    with pytest.raises(ValueError, match="num_envs"):
        H1BatchedVecEnv(0, CLIPS)
    with pytest.raises(ValueError, match="threads"):
        H1BatchedVecEnv(2, CLIPS, threads=0)


def test_sb3_wrappers_and_ppo_run_on_top():
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

    venv = VecNormalize(VecMonitor(H1BatchedVecEnv(4, CLIPS, **_kwargs("latent", "pd", "nominal"))),
                        norm_obs_keys=["proprio"])
    model = PPO("MultiInputPolicy", venv, n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu",
                policy_kwargs=dict(net_arch=[16]))
    model.learn(64)
    assert model.num_timesteps == 64
    venv.close()


def _yaw_quat(psi):
    return np.array([np.cos(psi / 2), 0.0, 0.0, np.sin(psi / 2)])


def test_root_velocity_obs_numbers():
    """root_velocity_obs appends [root linear velocity in the heading frame (3) | root height (1)] to
    proprio (63 -> 67), single and batched env alike; everything else is unchanged."""
    psi, v_head, z = 0.7, np.array([0.5, -0.2, 0.1]), 1.05
    c, s_ = np.cos(psi), np.sin(psi)
    qpos = np.array(load_reference(CLIPS[0]).qpos[20])
    qpos[2], qpos[3:7] = z, _yaw_quat(psi)  # upright, heading psi
    qvel = np.zeros(25)
    qvel[:3] = [c * v_head[0] - s_ * v_head[1], s_ * v_head[0] + c * v_head[1], v_head[2]]  # world frame
    qvel[3:6] = [0.0, 0.0, 0.3]
    kw = _kwargs("reference", "pd", "reference")
    on = H1TrackingEnv(CLIPS, root_velocity_obs=True, **kw)
    off = H1TrackingEnv(CLIPS, **kw)
    assert on.proprio_dim == 67 and off.proprio_dim == 63
    assert on.observation_space.shape == (67 + 3 * 28,) and off.observation_space.shape == (63 + 3 * 28,)

    def observe(env, qp, qv):  # the env's observation of the state (qp, qv) at clip 0, frame 20
        env.reset(options={"clip": CLIPS[0], "frame": 20})
        env.state_reward(qp, qv)  # sets the state (mj_forward)
        return env._get_obs()  # noqa: SLF001

    o_on, o_off = observe(on, qpos, qvel), observe(off, qpos, qvel)
    np.testing.assert_allclose(o_on[63:67], [*v_head, z], atol=1e-6)
    assert np.array_equal(o_on[:63], o_off[:63]) and np.array_equal(o_on[67:], o_off[63:])
    venv = H1BatchedVecEnv(2, CLIPS, root_velocity_obs=True, **kw)
    venv.set_options({"clip": CLIPS[0], "frame": 20})
    venv.reset()
    venv.env_method("state_reward", qpos, qvel)
    for i in range(2):
        venv._gather(i)  # noqa: SLF001
    np.testing.assert_allclose(venv._observe(np.arange(2)), np.stack([o_on, o_on]), rtol=1e-6, atol=1e-6)  # noqa: SLF001
    venv.close()
    # rotating the robot and its velocity by the same yaw leaves the numbers as they are
    q2, v2 = qpos.copy(), qvel.copy()
    q2[3:7] = _yaw_quat(psi + 1.2)
    c2, s2 = np.cos(1.2), np.sin(1.2)
    v2[:2] = [c2 * qvel[0] - s2 * qvel[1], s2 * qvel[0] + c2 * qvel[1]]
    np.testing.assert_allclose(observe(on, q2, v2)[63:67], [*v_head, z], atol=1e-6)
    # free fall from 3 m, holding the pose, no velocity: after 0.1 s the root falls at g t (heading
    # frame z = world z) and has dropped g t^2 / 2; no horizontal velocity appears
    qpos[2] = 3.0
    o = observe(on, qpos, np.zeros(25))
    np.testing.assert_allclose(o[63:67], [0.0, 0.0, 0.0, 3.0], atol=1e-9)
    for _ in range(10):
        o, *_ = on.step(np.zeros(19))
    g, t = 9.81, 0.1
    np.testing.assert_allclose(o[63:66], [0.0, 0.0, -g * t], atol=0.03)
    assert o[66] == pytest.approx(3.0 - 0.5 * g * t * t, abs=0.01)


def test_critic_reference_obs_appends_the_true_reference_goal():
    """critic_reference_obs (goal="decoded"): [proprio | decoded goal | true reference goal]; the
    first actor_obs_dim numbers are the decoded-goal env's, the appended block the reference-goal
    env's at the same state; refused with another goal."""
    kw = _kwargs("decoded", "pd", "decoded")
    on = H1TrackingEnv(CLIPS, critic_reference_obs=True, **kw)
    off = H1TrackingEnv(CLIPS, **kw)
    ref = H1TrackingEnv(CLIPS, **_kwargs("reference", "pd", "reference"))
    assert on.actor_obs_dim == off.actor_obs_dim == 63 + 3 * 28 and on.observation_space.shape == (63 + 6 * 28,)
    start = {"clip": CLIPS[0], "frame": 20}
    on.reset(seed=3, options=start)
    off.reset(seed=3, options=start)
    ref.reset(seed=3, options=start)
    a = np.full(19, 0.1, np.float32)
    for _ in range(5):
        o_on, o_off = on.step(a)[0], off.step(a)[0]
    np.testing.assert_array_equal(o_on[:on.actor_obs_dim], o_off)
    ref.state_reward(on.data.qpos.copy(), on.data.qvel.copy(), frame=on._frame)  # noqa: SLF001 - the same state
    o_ref = ref._get_obs()  # noqa: SLF001
    np.testing.assert_allclose(o_on[on.actor_obs_dim:], o_ref[63:], rtol=1e-6, atol=1e-6)
    assert not np.allclose(o_on[63:on.actor_obs_dim], o_on[on.actor_obs_dim:])  # the decoded goal is not the true one
    with pytest.raises(ValueError, match="critic_reference_obs needs goal='decoded'"):
        H1TrackingEnv(CLIPS, critic_reference_obs=True, **_kwargs("reference", "pd", "reference"))
