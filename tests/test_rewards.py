"""DeepMimic reward kernels (envs.rewards) on hand-computed cases; no data needed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from envs.rewards import K_COM, K_EE, K_POSE, K_VEL, imitation_reward, imitation_reward_batch


def _ref_state(seed=0):
    rng = np.random.default_rng(seed)
    qpos = np.concatenate([[0.1, -0.2, 1.0], [1.0, 0.0, 0.0, 0.0], rng.uniform(-0.5, 0.5, 19)])
    qvel = rng.normal(size=25)
    ee = rng.normal(scale=0.5, size=(4, 3))
    com = np.array([0.1, -0.2, 0.9])
    return qpos, qvel, ee, com


def _reward(state, ref, **kw):
    return imitation_reward(*state, *ref, **kw)


def test_constants_are_the_documented_ones():
    # LocoMuJoCo MimicReward qpos_w_exp / qvel_w_exp; DeepMimic end_eff_scale and Eq. 9.
    assert (K_POSE, K_VEL, K_EE, K_COM) == (10.0, 2.0, 40.0, 10.0)


def test_reference_state_scores_one():
    ref = _ref_state()
    total, terms = _reward(ref, ref)
    assert total == pytest.approx(1.0, abs=1e-12)
    assert terms == pytest.approx({"pose": 1.0, "vel": 1.0, "end_effector": 1.0, "com": 1.0, "torque_penalty": 0.0})


def test_pose_kernel_is_the_mean_over_19_hinges_and_the_root():
    ref = _ref_state()
    q, v, e, c = (x.copy() for x in ref)
    q[7:] += 0.2  # 0.2 rad on every hinge, root orientation exact: mean = 19 * 0.04 / 20
    _, terms = _reward((q, v, e, c), ref)
    assert terms["pose"] == pytest.approx(math.exp(-10.0 * 0.038), rel=1e-12)
    assert terms["pose"] == pytest.approx(0.6839, abs=1e-4)  # 0.22 under the old sum kernel
    q = ref[0].copy()
    q[10] += 0.3  # one hinge alone
    assert _reward((q, v, e, c), ref)[1]["pose"] == pytest.approx(math.exp(-10.0 * 0.09 / 20), rel=1e-12)
    q = ref[0].copy()
    q[3:7] = [math.cos(0.1), 0.0, 0.0, math.sin(0.1)]  # root yawed by 0.2 rad (reference: identity)
    assert _reward((q, v, e, c), ref)[1]["pose"] == pytest.approx(math.exp(-10.0 * 0.04 / 20), rel=1e-9)


def test_velocity_end_effector_and_com_kernels():
    ref = _ref_state()
    q, v, e, c = (x.copy() for x in ref)
    v[0:3] += 5.0  # root linear velocity is not part of the velocity term
    v[4] += 1.0  # root angular velocity y: one of 22 terms
    v[20] -= 2.0  # a hinge velocity
    e[2, 0] += 0.1  # one hand 10 cm off: mean over the 4 end effectors
    c[2] -= 0.1  # COM 10 cm low
    total, terms = _reward((q, v, e, c), ref)
    assert terms["vel"] == pytest.approx(math.exp(-2.0 * 5.0 / 22), rel=1e-12)
    assert terms["end_effector"] == pytest.approx(math.exp(-40.0 * 0.01 / 4), rel=1e-12)
    assert terms["com"] == pytest.approx(math.exp(-10.0 * 0.01), rel=1e-12)
    expected = 0.65 * 1.0 + 0.1 * terms["vel"] + 0.15 * terms["end_effector"] + 0.1 * terms["com"]
    assert total == pytest.approx(expected, rel=1e-12)


def test_torque_penalty():
    ref = _ref_state()
    tau = np.zeros(19)
    tau[:5] = 1.0  # five joints at their limit: mean square 5 / 19
    total, terms = _reward(ref, ref, torque_normalized=tau, torque_weight=0.2)
    assert terms["torque_penalty"] == pytest.approx(-0.2 * 5 / 19)
    assert total == pytest.approx(1.0 - 0.2 * 5 / 19)


def test_batch_equals_single():
    rng = np.random.default_rng(3)
    states, refs = [], []
    for i in range(6):
        ref = _ref_state(i)
        q, v, e, c = (x.copy() for x in ref)
        q[7:] += rng.normal(scale=0.2, size=19)
        quat = rng.normal(size=4)
        q[3:7] = quat / np.linalg.norm(quat)
        v += rng.normal(size=25)
        e += rng.normal(scale=0.05, size=(4, 3))
        c += rng.normal(scale=0.05, size=3)
        states.append((q, v, e, c))
        refs.append(ref)
    tau = rng.uniform(-1, 1, size=(6, 19))
    stack = [np.stack([s[j] for s in states]) for j in range(4)] + [np.stack([r[j] for r in refs]) for j in range(4)]
    total, terms = imitation_reward_batch(*stack, torque_normalized=tau, torque_weight=0.1)
    assert total.shape == (6,)
    for i in range(6):
        t1, terms1 = imitation_reward(*states[i], *refs[i], torque_normalized=tau[i], torque_weight=0.1)
        assert total[i] == pytest.approx(t1, rel=1e-12, abs=1e-14)
        for k, val in terms1.items():
            assert terms[k][i] == pytest.approx(val, rel=1e-12, abs=1e-14)
