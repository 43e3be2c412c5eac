"""The sampling MPC (lowlevel.mpc): settings, balance on a standing reference, the physics path."""
from __future__ import annotations

import numpy as np
import pytest

from envs.lafan1 import default_data_root
from envs.mimic.config import MimicConfig
from envs.mimic.env import MimicVecEnv
from envs.mimic.motion import MotionLibrary
from envs.reference import make_reference
from envs.tracking import NOMINAL_POSE
from lowlevel.mpc import MPPI, MPPIConfig, smooth_noise

CFG = MimicConfig(mirror=False)


def _stand_env(seconds: float = 5.0) -> MimicVecEnv:
    q = np.zeros((int(seconds * CFG.control_hz) + 1, 26))
    q[:, 2], q[:, 3], q[:, 7:] = 1.0, 1.0, NOMINAL_POSE
    lib = MotionLibrary([make_reference("stand", q, CFG.control_hz, ground_feet=True)], CFG)
    return MimicVecEnv(lib, 1, CFG, adaptive=False, auto_reset=False)


@pytest.mark.parametrize("kw", [dict(samples=0), dict(horizon=0), dict(knots=1), dict(knots=30), dict(sigma=0.0),
                                dict(temperature=-1.0), dict(sigma=float("nan")), dict(plan_substeps=-1),
                                dict(joint_weight=float("nan")), dict(ee_weight=-1.0), dict(ee_points=0),
                                dict(vel_weight=-1.0), dict(action_weight=float("inf")),
                                dict(ee_points=21)])
def test_config_rejects_bad_settings(kw):
    with pytest.raises(ValueError, match="MPPIConfig"):
        MPPIConfig(**kw)


def test_smooth_noise_passes_through_its_knots():
    rng = np.random.default_rng(0)
    e = smooth_noise(rng, 4, 9, 3, 0.5)
    assert e.shape == (4, 9, 19)
    np.testing.assert_allclose(e[:, 1], 0.75 * e[:, 0] + 0.25 * e[:, 4])  # linear between knots 0 and 4
    z = smooth_noise(np.random.default_rng(0), 4, 9, 3, 0.5, zero_start=True)
    assert np.all(z[:, 0] == 0) and np.all(z[:, 4] != 0)  # the applied step unperturbed, the rest free


def test_mpc_keeps_the_standing_robot_up_where_zero_action_falls():
    """Unitree's ankle gains cannot hold the standing pose (it topples after ~2.5 s with zero action);
    the MPC of `daps live` (32 candidates, 0.4 s ahead) keeps it up for 3.5 s, within the task's action range."""
    steps = int(3.5 * CFG.control_hz)
    env = _stand_env()
    env.reset_to([0], [0])
    fell_zero = None
    for k in range(steps):
        env.step(np.zeros((1, 19)))
        if env.fallen()[0]:
            fell_zero = k
            break
    assert fell_zero is not None
    env.reset_to([0], [0])
    mpc = MPPI(env, MPPIConfig(samples=32))
    for _ in range(steps):
        a = mpc.act()
        assert np.all(np.abs(a) <= CFG.action_clip + 1e-9)
        env.step(a[None])
        assert not env.fallen()[0]


def test_coarse_planning_model_is_a_copy_with_a_larger_timestep():
    env = _stand_env(1.0)
    dt = env.model.opt.timestep
    mpc = MPPI(env, MPPIConfig(samples=4, horizon=5, knots=2, plan_substeps=2))
    assert mpc.plan_model is not env.model and env.model.opt.timestep == dt
    assert mpc.plan_model.opt.timestep == pytest.approx(dt * CFG.decimation / 2)
    assert MPPI(env, MPPIConfig(samples=4, horizon=5, knots=2, plan_substeps=CFG.decimation)).plan_model is env.model
    with pytest.raises(ValueError, match="must divide"):
        MPPI(env, MPPIConfig(samples=4, horizon=5, knots=2, plan_substeps=3))


def test_end_effector_cost_is_zero_on_the_reference_and_fires_where_the_task_would_terminate():
    """The hands' and feet's heights of the standing pose against themselves cost nothing; the pelvis
    0.3 m lower puts every end effector past the task's 0.25 m: 100 per costed step, scaled to the horizon."""
    env = _stand_env(1.0)
    env.reset_to([0], [0])
    cfg = MPPIConfig(samples=4, horizon=8, knots=2, ee_weight=20.0, ee_points=4)
    mpc = MPPI(env, cfg)
    q = np.repeat(env.datas[0].qpos[None, None], 4, 1)  # (1, P, 26)
    z_ref = np.repeat(env.datas[0].xpos[mpc.ee_ids, 2][None], 4, 0)  # (P, E)
    assert mpc.end_effector_cost(q, z_ref)[0] == pytest.approx(0.0, abs=1e-9)
    low = q.copy()
    low[..., 2] -= 0.3
    expect = (20.0 * 4 * 0.3 ** 2 + 100) * 4 * (cfg.horizon / 4)
    assert mpc.end_effector_cost(low, z_ref)[0] == pytest.approx(expect, rel=1e-6)


def test_mpc_refuses_a_task_with_feedback_outside_its_rollouts():
    env = _stand_env(1.0)
    env.cfg = MimicConfig(balance=True)
    with pytest.raises(ValueError, match="balance feedback"):
        MPPI(env)


@pytest.mark.skipif(not default_data_root().exists(), reason="LAFAN1-H1 data not available")
def test_physics_follower_with_the_mpc(follow_segments):
    """daps command's physics path with the MPC acting: one segment simulated, the controller recorded;
    an older (VecNormalize) policy is refused."""
    from daps.shipped import LOWLEVEL, MOTION_VAE, shipped_path
    from highlevel.physics import PhysicsFollower, load_command_policy
    from motion_vae.models import load_motion_vae

    vae, _, stats, _ = load_motion_vae(shipped_path(MOTION_VAE), "cpu")
    model, vecnorm, ck = load_command_policy(shipped_path(LOWLEVEL), shipped_path(MOTION_VAE))
    cfg = MPPIConfig(samples=8, horizon=5, knots=2)
    f = PhysicsFollower(model, vecnorm, ck, vae, stats, mpc=cfg, seconds=0.5)
    rows = follow_segments(f, np.random.default_rng(0).integers(0, 1024, (1, 64)))
    rec = f.record()["physics"]
    assert len(rows) == 1 and rec["controller"] == {"mpc": cfg.to_dict()}
    assert rec["seconds_simulated"] == pytest.approx(0.5, abs=0.021)
    with pytest.raises(ValueError, match="sampling MPC"):
        PhysicsFollower(model, object(), ck, vae, stats, mpc=cfg)
