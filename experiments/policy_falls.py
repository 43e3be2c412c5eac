"""Seconds to a fall (not to the task's first tracking termination) of a tracker on a held-out clip.

The tracker's deterministic policy follows the clip's decoding (or the clip, for a clip-trained
tracker) from 8 starts spread over it, for up to 10 s, running on past the task's terminations
until the pelvis is below 0.6 m or tilted over 1 rad; prints the mean seconds to a fall and to the
first termination, the joint error, the share of actions at |a| >= 4 and the mean |a_t - a_(t-1)|.
The comparison figure for the sampling MPC (`experiments/mppi_mimic.py`) in docs/tracking.md::

    python experiments/policy_falls.py models/lowlevel.pt [walk2_subject4]
"""
import sys, numpy as np
from dataclasses import replace
from envs.mimic.config import MimicConfig
from envs.mimic.env import MimicVecEnv
from lowlevel.tracker import load_tracker, policy_actor, make_library, check_motion_vae
path = sys.argv[1]; clip = sys.argv[2] if len(sys.argv) > 2 else "walk2_subject4"
model, ck = load_tracker(path)
task = replace(MimicConfig.from_dict(ck["task"]), assist=False, mirror=False)
lib = make_library([clip], task, motion_vae=check_motion_vae(ck, None))
S, T = 8, 500
env = MimicVecEnv(lib, S, task, adaptive=False, auto_reset=False)
last = lib.last_frame(0) - T
frames = [int(last * i / (S - 1)) for i in range(S)]
obs = env.reset_to([0]*S, frames)
act = policy_actor(model, ck)
tf = np.full(S, T * task.control_dt); tt = np.full(S, T * task.control_dt); err = []
prev = np.zeros((S, 19)); sat = []; da = []
for k in range(T):
    a = act(obs)
    obs, _, d, infos = env.step(a)
    up = tf == T * task.control_dt
    sat.append((np.abs(a[up]) >= 4).mean() if up.any() else np.nan); da.append(np.abs(a - prev)[up].mean() if up.any() else np.nan); prev = a
    R = env.robot.body_mat[:, env.anchor]
    down = (env.robot.qpos[:, 2] < 0.6) | (R[:, 2, 2] < np.cos(1.0))
    tf = np.where(down & up, (k + 1) * task.control_dt, tf)
    tt = np.where(np.array([i["termination"] is not None for i in infos]) & (tt == T * task.control_dt), (k + 1) * task.control_dt, tt)
    g = env._g(0); err.append(np.abs(env.robot.qpos[up, 7:] - lib.qpos[g[up], 7:]).mean() if up.any() else np.nan)
print(f"{path}: fall {tf.mean():.2f} s ({(tf >= 10).sum()}/8 up 10 s) {np.round(tf,1)}; first termination {tt.mean():.2f} s; joint err {np.nanmean(err):.3f}; sat {np.nanmean(sat):.3f}; |da| {np.nanmean(da):.2f}")
