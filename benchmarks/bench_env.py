"""Throughput of the H1 simulation on one thread, random actions.

Prints, for our primitive-geometry model (``envs/h1.xml``):
  * physics steps/s: bare ``mj_step`` (500 Hz physics) with uniform random torques in the
    actuator ranges, a new action every 5 substeps;
  * control steps/s of ``H1TrackingEnv`` (100 Hz policy, 5 substeps, reward, termination,
    observation), torque and PD action modes, random actions;
and, in the same run, bare physics steps/s (same loop) for Unitree's reference H1 MJCF
(mesh collision geometry) at ``--unitree`` (default $DAPS_UNITREE_H1_XML or ../shared/assets/unitree_h1/h1.xml),
loaded with ``mujoco.MjSpec`` after removing the dummy body ``not_use_body`` with its joint,
motor, sensors and the ``home`` keyframe, and adding a floor plane.  Both models start every
episode from the same LAFAN1 frame (joints mapped by name) and reset every 2 s or when the
pelvis drops below 0.4 m (the table), and once more with no reset on falls, so that the fallen
robot lies on the floor for the rest of each episode (one line under the table).  Control steps/s
for the reference model = physics steps/s / 5.

Usage: ``python benchmarks/bench_env.py [--seconds 5] [--unitree PATH]``
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from envs.model import JOINT_NAMES, load_h1_model  # noqa: E402
from envs.reference import load_reference  # noqa: E402
from envs.tracking import H1TrackingEnv  # noqa: E402

UNITREE_XML = Path(os.environ.get(
    "DAPS_UNITREE_H1_XML", Path(__file__).resolve().parents[2] / "shared" / "assets" / "unitree_h1" / "h1.xml"))
FRAME_SKIP = 5
CLIP = "walk1_subject1"


def load_unitree(path: Path) -> mujoco.MjModel:
    spec = mujoco.MjSpec.from_file(str(path))
    for sensor in list(spec.sensors):
        if "not_use" in sensor.name:
            spec.delete(sensor)
    for act in list(spec.actuators):
        if act.name == "not_use_joint" or act.target == "not_use_joint":
            spec.delete(act)
    for key in list(spec.keys):
        if key.name == "home":
            spec.delete(key)
    spec.delete(spec.body("not_use_body"))  # removes its joint too
    spec.worldbody.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[0, 0, 0.05])
    return spec.compile()


def start_qpos(model: mujoco.MjModel, ref_qpos: np.ndarray) -> np.ndarray:
    """qpos of ``model`` for a LAFAN1 frame (our layout), joints mapped by name."""
    q = model.qpos0.copy()
    q[:7] = ref_qpos[:7]
    for i, name in enumerate(JOINT_NAMES):
        j = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
        q[model.jnt_qposadr[j]] = ref_qpos[7 + i]
    return q


def bench_physics(model: mujoco.MjModel, q0: np.ndarray, seconds: float, seed: int = 0,
                  reset_on_fall: bool = True) -> float:
    """Physics steps/s of 2 s random-torque episodes from ``q0``; with ``reset_on_fall`` an episode
    also ends when the pelvis drops below 0.4 m (as in training), otherwise the robot lies on the
    floor for the rest of the 2 s (many contacts: the costly case for mesh collision geometry)."""
    data = mujoco.MjData(model)
    rng = np.random.default_rng(seed)
    lo, hi = model.actuator_ctrlrange[:, 0], model.actuator_ctrlrange[:, 1]
    actions = rng.uniform(lo, hi, size=(4096, model.nu))
    steps, ctrl_i = 0, 0
    t0 = time.perf_counter()
    while True:
        mujoco.mj_resetData(model, data)
        data.qpos[:] = q0
        for _ in range(200):  # 2 s episodes
            data.ctrl[:] = actions[ctrl_i % 4096]
            ctrl_i += 1
            mujoco.mj_step(model, data, nstep=FRAME_SKIP)
            steps += FRAME_SKIP
            if reset_on_fall and data.qpos[2] < 0.4:
                break
        if time.perf_counter() - t0 > seconds:
            return steps / (time.perf_counter() - t0)


def bench_env(action_mode: str, seconds: float, seed: int = 0) -> float:
    env = H1TrackingEnv([CLIP], action_mode=action_mode, max_episode_steps=200)
    env.action_space.seed(seed)
    env.reset(seed=seed)
    actions = np.random.default_rng(seed).uniform(-1, 1, size=(4096, 19)).astype(np.float32)
    steps = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        _, _, term, trunc, _ = env.step(actions[steps % 4096])
        steps += 1
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="seconds per measurement")
    ap.add_argument("--unitree", type=Path, default=UNITREE_XML, help="Unitree reference h1.xml")
    args = ap.parse_args()

    ref = load_reference(CLIP)
    ours = load_h1_model()
    q_ours = start_qpos(ours, ref.qpos[0])
    print(f"ours: envs/h1.xml  nq={ours.nq} nv={ours.nv} nu={ours.nu} ngeom={ours.ngeom} npair={ours.npair}")
    rows = []  # (what, physics steps/s, control steps/s)
    phys = bench_physics(ours, q_ours, args.seconds)
    rows.append(("ours, bare mj_step", phys, phys / FRAME_SKIP))
    phys_lying = bench_physics(ours, q_ours, args.seconds, reset_on_fall=False)
    env_t = bench_env("torque", args.seconds)
    rows.append(("ours, H1TrackingEnv torque", env_t * FRAME_SKIP, env_t))
    env_pd = bench_env("pd", args.seconds)
    rows.append(("ours, H1TrackingEnv pd", env_pd * FRAME_SKIP, env_pd))

    phys_u = None
    if args.unitree.is_file():
        uni = load_unitree(args.unitree)
        q_uni = start_qpos(uni, ref.qpos[0])
        print(f"Unitree: {args.unitree}  nq={uni.nq} nv={uni.nv} nu={uni.nu} ngeom={uni.ngeom} "
              f"nmesh={uni.nmesh}")
        phys_u = bench_physics(uni, q_uni, args.seconds)
        rows.append(("Unitree, bare mj_step", phys_u, phys_u / FRAME_SKIP))
        phys_u_lying = bench_physics(uni, q_uni, args.seconds, reset_on_fall=False)
    else:
        print(f"reference Unitree model not found at {args.unitree}: skipped")

    w = max(len(r[0]) for r in rows)
    head = f"{'model / loop':<{w}}  {'physics steps/s':>15}  {'control steps/s':>15}"
    if phys_u:
        head += f"  {'vs Unitree':>10}"
    print(head)
    print("-" * len(head))
    for name, p, c in rows:
        line = f"{name:<{w}}  {p:15.0f}  {c:15.0f}"
        if phys_u:
            line += f"  {p / phys_u:9.2f}x"
        print(line)
    if phys_u:
        print(f"no reset on falls (robot lies on the floor for the rest of each 2 s episode): ours "
              f"{phys_lying:.0f}, Unitree {phys_u_lying:.0f} physics steps/s, {phys_lying / phys_u_lying:.2f}x")
    print(f"(physics at 500 Hz, frame_skip {FRAME_SKIP}; env rows: physics steps/s = control steps/s x "
          f"{FRAME_SKIP}, including reward, termination and observation; one thread)")


if __name__ == "__main__":
    main()
