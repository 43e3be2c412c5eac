"""The physics path of `daps command`: the low-level policy drives the simulated H1 along the codes.

`PhysicsFollower` is the `SegmentFollower` (highlevel/follower.py) that puts the high level's codes
through physics. For each segment j of B parallel rollouts (one MuJoCo H1 each, state carried
across segments, never reset between them):

1. decode: the segment's 64 codes -> 32 CSV rows (30 Hz) with the motion VAE
   (`highlevel.follower.decode_segments`), the root continuing from the ROBOT's current root x, y and
   heading (its height and everything else as decoded);
2. extend the goal: the decoded rows join the decoded stream (`DecodedStream`), resampled to the
   env's control rate (100 Hz) and grounded by the segment's own median sole depth (as training's
   `envs.tracking.decoded_reference` grounds a whole clip by its own); the stream is BOTH the
   env's "reference clip" and its decoded motion (`H1TrackingEnv.set_motion`), and the root anchor
   is fixed anew on the robot at the segment's first control frame, as in training;
3. step: the deterministic policy (observations normalised with its VecNormalize statistics) for
   the control steps of the segment: from the first control frame k0(j) = ceil(32 j / 30 * 100)
   of segment j to that of segment j + 1 (106 or 107 steps, 1.0667 s on average; the last
   segment only up to the run's end, `seconds`);
4. achieved: the robot's qpos recorded at every control frame, resampled to the segment's 32
   frames of 30 Hz (times (32 j + i) / 30 s; linear / slerp) -> the 26-column CSV rows returned to
   the high level (its history for the next segment).

The segment's last ~4 control frames have no decoded frame yet (the next segment is generated
from the motion this one achieves): the stream holds the segment's last decoded frame there; the
next segment replaces that hold when it is appended.

Start (`start_pose`, CLI --start): by default the robot at rest (zero velocity) in the nominal
standing pose of Unitree's RL config (`envs.tracking.NOMINAL_POSE`: hip pitch -0.1, knee 0.3,
ankle -0.2 rad, all else 0), feet on the floor (pelvis 1.034 m), at the origin facing +x: a robot
standing when the command comes, as a real one would. "decoded": at rest in the first frame of
segment 0's decoded motion (as reference state initialisation in training, without the
velocities); "zero": all joints 0 (the pose of the high level's `standing_rows`, straight legs,
pelvis 1.044 m). The high level's history is seeded as on the kinematic path (`standing_rows`: so
a seed gives the same first codes on both paths); from segment 1 on it is the robot's achieved
motion.

Terminations (the env's, against the decoded stream as its reference; reward and
`decoded_joint_error` are reported against the decoded motion, info only): "fell" (pelvis below
0.6 m while the decoded pelvis is 0.2 m higher), "tilted" (torso tilt over 1 rad while the decoded
torso is 0.5 rad less tilted) and "unstable" (simulation blew up) count as a fall; "diverged"
(joint error against the goal) is switched off: a robot that cannot reach a decoded pose is not
fallen (the joint error is reported per segment instead). A fall is recorded once (the JSON says
when: `fell_at_s`) and the simulation goes on, the policy acting, to the end of the run, so the
run lasts the asked time whether the robot fell or not (after "unstable" the last sound state is
held). With `stop_at_fall` a fallen rollout stops instead and `done()` turns true once every
rollout has fallen (for measuring the seconds before a fall, where the rest is not needed).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from daps.io import file_sha256
from daps.trainer import CheckpointError
from envs.lafan1 import csv_to_qpos, qpos_to_csv
from envs.mimic.config import MimicConfig
from envs.reference import ReferenceMotion, interpolate_qpos, make_reference
from envs.tracking import NOMINAL_POSE, H1TrackingEnv
from highlevel.follower import FPS, SEG, SegmentFollower, achieved, decode_segments
from lowlevel.evaluate import policy_actor

__all__ = ["PhysicsFollower", "DecodedStream", "segment_start", "standing_qpos", "load_command_policy", "check_policy_file",
           "FALL_REASONS", "START_POSES"]

FALL_REASONS = ("fell", "tilted", "unstable")
START_POSES = ("nominal", "zero", "decoded")
STREAM_NAME = "command"


def segment_start(j: int, control_hz: float = 100.0) -> int:
    """First control frame of 32-frame segment j: the smallest k with floor(k * 30 / (32 hz)) >= j
    (as `H1TrackingEnv._segment`); 0, 107, 214, 320, ... at 100 Hz."""
    k = int(math.ceil(j * SEG * control_hz / FPS - 1e-6))
    return k


def standing_qpos(pose: str = "nominal") -> np.ndarray:
    """qpos (26,) of the robot standing at the origin facing +x, lowest sole point on the floor:
    joint angles `envs.tracking.NOMINAL_POSE` ("nominal") or all zero ("zero", the pose of the
    high level's `standing_rows`); "decoded" (the first decoded frame, known only once segment 0
    is decoded: `PhysicsFollower` places it) gives the nominal pose here. ValueError for another pose."""
    if pose not in START_POSES:
        raise ValueError(f"start pose must be one of {START_POSES}, got {pose!r}")
    q = np.zeros(26)
    q[3] = 1.0
    q[7:] = 0.0 if pose == "zero" else NOMINAL_POSE
    q[2] = make_reference("start", q[None], 100.0, ground_feet=True).root_height_shift
    return q


def check_policy_file(path: str | Path) -> Path:
    """Path(path) if it is a file; else FileNotFoundError (one line, with how to make one)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: low-level policy not found (export a run with `daps lowlevel export "
                                f"--ckpt RUN/checkpoint.pt --out {path}`, or use --kinematic)")
    return path


def load_command_policy(path: str | Path, motion_vae_path: str | Path):
    """(model with .predict, VecNormalize, checkpoint dict) of a low-level policy usable by
    `daps command`: a training checkpoint or an export (`lowlevel.checkpoint.load_lowlevel`) of goal
    "decoded", trained with the motion VAE at motion_vae_path (the one that decodes the high
    level's codes; sha256 compared).

    Raises FileNotFoundError (no file), CheckpointError (unreadable, or another motion VAE),
    ValueError (goal "reference": it needs the true clip, which a text command has not; goal
    "latent": not supported by this path), each one line.
    """
    from lowlevel.checkpoint import load_lowlevel  # stable-baselines3: loaded for the physics path only
    from lowlevel.tracker import is_tracker_file, load_tracker

    path = check_policy_file(path)
    if is_tracker_file(path):
        model, ck = load_tracker(path)
        want = (ck.get("motion_vae") or {}).get("sha256")
        if not want:
            raise ValueError(f"{path}: tracker trained on the clips themselves; daps command needs one trained on "
                             "decoded motions (train-tracker --motion-vae), or use --kinematic")
        if want != file_sha256(motion_vae_path):
            raise CheckpointError(f"{path}: low-level policy trained with another motion VAE than the high level's "
                                  f"{motion_vae_path} (sha256 differs): it would follow decodings it never saw")
        return model, None, ck
    model, vecnorm, ck = load_lowlevel(path)
    cfg = ck["config"]
    goal = cfg.get("goal")
    if goal == "reference":
        raise ValueError(f"{path}: low-level policy trained with goal 'reference' observes the true clip, which a text "
                         "command does not have; daps command needs a goal 'decoded' policy (or use --kinematic)")
    if goal != "decoded":
        raise ValueError(f"{path}: low-level policy trained with goal {goal!r}; daps command's physics path supports "
                         "goal 'decoded' only (or use --kinematic)")
    want = (cfg.get("motion_vae") or {}).get("sha256")
    if want and want != file_sha256(motion_vae_path):
        raise CheckpointError(f"{path}: low-level policy trained with another motion VAE than the high level's "
                              f"{motion_vae_path} (sha256 differs): it would follow decodings it never saw")
    return model, vecnorm, ck


class DecodedStream:
    """The decoded motion of the segments appended so far, at the control rate, as one growing
    `envs.reference.ReferenceMotion` (frame k at time k / control_hz s from the run's start).

    Each segment is resampled and grounded on its own (`make_reference(..., ground_feet=True)` on
    its control-rate frames: lifted by its median lowest-sole depth; joint velocities by finite
    differences within the segment, so a root jump between segments does not spike them); its
    frames from its first control frame k0(j) to k0(j+1) - 1 are kept, the frames from k0(j+1) on
    (the last decoded frame held, 2 frames of 30 Hz) are a provisional tail that the next segment
    replaces.
    """

    def __init__(self, control_hz: float = 100.0, name: str = STREAM_NAME):
        self.hz, self.name = float(control_hz), name
        self._parts: list[dict[str, np.ndarray]] = []  # committed frames of each segment
        self.segments = 0
        self.ref = None

    def append(self, qpos30: np.ndarray) -> Any:
        """Append the next segment's decoded qpos (32, 26) at 30 Hz (root quaternion w, x, y, z);
        returns the whole stream as a ReferenceMotion (read-only arrays) reaching at least to the
        first control frame of the segment after it."""
        qpos30 = np.asarray(qpos30, dtype=np.float64)
        if qpos30.shape != (SEG, 26):
            raise ValueError(f"DecodedStream.append: expected qpos ({SEG}, 26), got {qpos30.shape}")
        j = self.segments
        k0, k1 = segment_start(j, self.hz), segment_start(j + 1, self.hz)
        held = np.concatenate([qpos30, qpos30[-1:], qpos30[-1:]])  # two 30 Hz hold frames after the segment
        t_end = (SEG + 1) / FPS
        kmax = int(math.floor((j * SEG / FPS + t_end) * self.hz + 1e-9))
        ks = np.arange(k0, max(kmax, k1 + 1) + 1)
        piece = make_reference(self.name, interpolate_qpos(held, FPS, ks / self.hz - j * SEG / FPS), self.hz, ground_feet=True)
        arrs = {f: np.array(getattr(piece, f)) for f in ("qpos", "qvel", "site_pos", "com", "torso_tilt")}
        if self._parts and np.dot(arrs["qpos"][0, 3:7], self._parts[-1]["qpos"][-1, 3:7]) < 0:
            arrs["qpos"][:, 3:7] *= -1.0  # keep the quaternion sign continuous over the join
        full = {f: np.concatenate([p[f] for p in self._parts] + [a]) for f, a in arrs.items()}
        for a in full.values():
            a.setflags(write=False)
        self._parts.append({f: a[: k1 - k0] for f, a in arrs.items()})
        self.segments += 1
        self.ref = ReferenceMotion(name=self.name, fps=self.hz, qpos=full["qpos"], qvel=full["qvel"],
                                   site_pos=full["site_pos"], com=full["com"], torso_tilt=full["torso_tilt"],
                                   root_height_shift=float(piece.root_height_shift))
        return self.ref


class _Rollout:
    """One simulated robot: env, decoded stream and control-rate records (index = control frame)."""

    def __init__(self):
        self.env = None
        self.obs = None
        self.stream: DecodedStream | None = None
        self.robot: list[np.ndarray] = []   # qpos (26,) at control frames 0, 1, ...
        self.com: list[np.ndarray] = []     # whole-robot COM (3,) world, m
        self.ghost: list[np.ndarray] = []   # anchored decoded qpos (26,): where the policy is asked to be
        self.rows: list[np.ndarray] = []    # achieved CSV rows per segment (32, 26)
        self.ghost30: list[np.ndarray] = []  # ghost qpos per segment at 30 Hz (32, 26)
        self.decoded: list[np.ndarray] = []  # decoded CSV rows per segment (32, 26), world-placed
        self.segments: list[dict] = []
        self.fall_frame: int | None = None  # control frame of the fall (the first terminating state)
        self.termination: str | None = None
        self.frozen = False  # after "unstable": the last sound state is held
        self.done = False  # stop_at_fall and fallen: later segments hold the last state
        self.mpc = None  # the sampling MPC acting instead of the policy (PhysicsFollower's mpc)


class PhysicsFollower(SegmentFollower):
    """Codes -> the H1 in MuJoCo driven by a goal="decoded" low-level policy (module docstring).

    Args:
        model, vecnorm, ck: the policy as `load_command_policy` returns it (ck["config"] gives the
            env: action mode, PD target and scale).
        vae, stats: the motion VAE that decodes the codes (the high level's; the policy's, checked
            by `load_command_policy`) and its feature statistics.
        start_pose: "nominal" (default) or "zero" (`standing_qpos`), or "decoded": at rest in the
            first frame of segment 0's decoded motion (grounded, at the origin facing +x).
        policy_path: recorded in the JSON.
        seconds: length of the run (s): the last segment is simulated up to that time only (the
            rows after it hold the last state; the command cuts them off). None: whole segments.
        stop_at_fall: a rollout that has fallen is no longer simulated (its later segments hold
            its last state) and `done()` turns true once every rollout has fallen (the
            seconds-before-a-fall benchmark). False (`daps command`): the robot is simulated,
            policy acting, to the end of the run whether it fell or not.
        mpc: a :class:`lowlevel.mpc.MPPIConfig`: the sampling MPC acts instead of the policy (its
            task, the tracker's, sets the gains and action range); about real time on 2 cores.
            ValueError with an older (vecnorm) policy.

    `follow(codes (B, 64) int, history (B, H, 26), index) -> rows (B, 32, 26)`: the robot's motion
    over segment `index` at 30 Hz, CSV layout (root xyz m, quaternion x y z w, 19 joints rad);
    segments must come in order 0, 1, 2, ... `record()`: {"physics": ...} (see `rollout_record`).
    """

    kinematic = False

    def __init__(self, model, vecnorm, ck: dict, vae, stats, start_pose: str = "nominal",
                 policy_path: str | Path | None = None, seconds: float | None = None, stop_at_fall: bool = False,
                 mpc=None):
        if seconds is not None and not seconds > 0:
            raise ValueError(f"PhysicsFollower: seconds must be positive, got {seconds}")
        if mpc is not None and vecnorm is not None:
            raise ValueError("PhysicsFollower: the sampling MPC runs on a tracker's task (lowlevel.tracker), "
                             "not on the older policy's environment")
        self.mpc = mpc
        self.tracker = None
        if vecnorm is None:  # a tracker (lowlevel.tracker): its task config rebuilds the env
            from lowlevel.tracker import policy_actor as tracker_actor  # stable-baselines3: physics path only

            self.tracker = MimicConfig.from_dict(ck["task"])
            act = tracker_actor(model, ck)
            self.act = lambda obs: act(np.asarray(obs, np.float32)[None])[0]
            self.cfg = {"goal": "decoded", "pd_target": "decoded", "task": ck["task"]}
        else:
            self.act = policy_actor(model, vecnorm)
            self.cfg = ck["config"]
        self.ck = ck
        self.vae, self.stats = vae, stats
        self.start = standing_qpos(start_pose)
        self.start_pose = start_pose
        self.policy_path = None if policy_path is None else str(policy_path)
        self._rollouts: list[_Rollout] = []
        self.control_hz = 100.0 if self.tracker is None else self.tracker.control_hz
        self.seconds, self.stop_at_fall = seconds, stop_at_fall
        self._pelvis = None

    # ------------------------------------------------------------------ hook
    def follow(self, codes: np.ndarray, history: np.ndarray, index: int) -> np.ndarray:
        codes = np.asarray(codes)
        if codes.ndim != 2:
            raise ValueError(f"follow: codes must be (B, 64), got {codes.shape}")
        if index == 0:
            self._rollouts = [_Rollout() for _ in range(len(codes))]
        elif len(codes) != len(self._rollouts):
            raise ValueError(f"follow: {len(codes)} rollouts, segment 0 had {len(self._rollouts)}")
        out = []
        for c, r in zip(codes, self._rollouts):
            if len(r.rows) != index:
                raise ValueError(f"follow: segment {index} out of order (rollout at segment {len(r.rows)})")
            out.append(self._follow_one(r, c, index))
        return np.stack(out)

    def done(self) -> bool:
        return bool(self._rollouts) and all(r.done for r in self._rollouts)

    def _make_env(self, ref):
        if self.tracker is not None:
            from lowlevel.tracker import TrackerStream  # stable-baselines3: physics path only

            env = TrackerStream(self.tracker, ref)
            self._pelvis = mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_BODY, "pelvis")
            return env

        from lowlevel.environment import env_kwargs

        kw = env_kwargs(self.cfg)
        kw.pop("data_root", None)
        kw.update(max_episode_steps=10**9, max_mean_joint_error=math.inf)
        env = H1TrackingEnv([ref], decoded_motion={ref.name: ref}, **kw)
        self.control_hz = env.control_hz
        self._pelvis = mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_BODY, "pelvis")
        return env

    def _state(self, env):
        return env.data.qpos.copy(), env.data.subtree_com[self._pelvis].copy()

    def _follow_one(self, r: _Rollout, code: np.ndarray, j: int) -> np.ndarray:
        if r.done:  # fell in an earlier segment (stop_at_fall): hold
            r.rows.append(np.repeat(r.rows[-1][-1:], SEG, 0))
            r.ghost30.append(np.repeat(r.ghost30[-1][-1:], SEG, 0))
            r.decoded.append(np.repeat(r.decoded[-1][-1:], SEG, 0))
            return r.rows[-1]
        now = r.robot[-1] if r.robot else self.start
        dec = decode_segments(self.vae, self.stats, np.asarray(code, np.int64)[None], qpos_to_csv(now[None]))[0]
        r.decoded.append(dec)
        if r.stream is None:
            r.stream = DecodedStream(self.control_hz)
        ref = r.stream.append(csv_to_qpos(dec))
        if j == 0:
            r.env = self._make_env(ref)
            start = np.array(ref.qpos[0]) if self.start_pose == "decoded" else self.start
            r.obs, _ = r.env.reset(options={"clip": ref.name, "frame": 0, "qpos": start})
            if self.mpc is not None:
                from lowlevel.mpc import MPPI

                r.mpc = MPPI(r.env.env, self.mpc)
            q, com = self._state(r.env)
            r.robot, r.com, r.ghost = [q], [com], [r.env.decoded_qpos()]
        else:
            r.obs = r.env.set_motion(ref)  # re-anchored on the robot at this segment's first frame
            r.ghost[-1] = r.env.decoded_qpos()
        hz = self.control_hz
        k0, k1 = segment_start(j, hz), segment_start(j + 1, hz)
        if self.seconds is not None:  # the run ends within this segment: simulate up to its end only
            k1 = min(k1, max(k0 + 1, math.ceil(self.seconds * hz - 1e-6)))
        if len(r.robot) != k0 + 1:
            raise ValueError(f"follow: segment {j} starts at control frame {k0}, but the run ended at {len(r.robot) - 1}")
        fall_here, rew, jerr = None, [], []
        for _ in range(k1 - k0):
            if r.frozen:
                r.robot.append(r.robot[-1])
                r.com.append(r.com[-1])
                r.ghost.append(r.ghost[-1])
                continue
            action = r.mpc.act() if r.mpc is not None else self.act(r.obs)
            r.obs, reward, term, _, info = r.env.step(action)
            reason = info["termination"]
            if reason == "unstable":
                r.frozen = True
                r.robot.append(r.robot[-1])
                r.com.append(r.com[-1])
                r.ghost.append(r.ghost[-1])
            else:
                q, com = self._state(r.env)
                r.robot.append(q)
                r.com.append(com)
                r.ghost.append(r.env.decoded_qpos())
                rew.append(float(reward))
                jerr.append(float(info["decoded_joint_error"]))
            if reason in FALL_REASONS and r.fall_frame is None:
                r.fall_frame, r.termination, fall_here = info["frame"], reason, reason
        # achieved rows: the control-rate records resampled at the segment's 30 Hz frame times
        # (times after k1, where the run ended, hold the last state)
        lo = max(0, k0 - 1)
        t = (j * SEG + np.arange(SEG)) / FPS - lo / hz
        rows = qpos_to_csv(interpolate_qpos(np.stack(r.robot[lo : k1 + 1]), hz, t))
        r.ghost30.append(interpolate_qpos(np.stack(r.ghost[lo : k1 + 1]), hz, t))
        r.rows.append(rows)
        prev = r.rows[-2][-1:] if j > 0 else rows[:0]
        com = np.stack([r.com[k0], r.com[k1]])
        seconds = (k1 - k0) / hz
        survived = seconds if r.fall_frame is None else min(seconds, max(0.0, (r.fall_frame - 1 - k0) / hz))
        r.segments.append({
            "index": j, "fell": fall_here is not None, "termination": fall_here,
            "fell_at_s": None if fall_here is None else round((r.fall_frame - 1) / hz, 3),
            "seconds_survived": round(survived, 3), "control_steps": k1 - k0,
            "achieved": achieved(np.concatenate([prev, rows])),
            "com_speed_m_s": round(float(np.linalg.norm(com[1, :2] - com[0, :2]) / seconds), 3),
            "decoded": achieved(dec),
            "decoded_joint_error_rad": round(float(np.mean(jerr)), 4) if jerr else None,
            "reward_per_step": round(float(np.mean(rew)), 4) if rew else None,
        })
        if r.fall_frame is not None and self.stop_at_fall:
            r.done = True
        return rows

    # ------------------------------------------------------------------ records
    def rollout_record(self, b: int = 0) -> dict:
        """JSON record of rollout b: fell / termination / fell_at_s (s from the start to the last
        state before the terminating one, None if it never fell), seconds_before_fall (fell_at_s,
        or the seconds simulated), COM speed over the run (horizontal COM displacement / time,
        m/s), and per segment: fell, termination, fell_at_s, seconds_survived, control_steps,
        achieved (root speed / path speed / turn rate / height of the robot's rows), com_speed_m_s,
        decoded (the same measures of the decoded rows: what the codes asked for),
        decoded_joint_error_rad (mean |q - q_decoded|), reward_per_step (DeepMimic reward against
        the decoded motion, info)."""
        r = self._rollouts[b]
        hz = self.control_hz
        sim = (len(r.robot) - 1) / hz
        fell_at = None if r.fall_frame is None else round((r.fall_frame - 1) / hz, 3)
        com = np.stack(r.com) if r.com else np.zeros((2, 3))
        end = len(com) - 1 if r.fall_frame is None else min(len(com) - 1, r.fall_frame - 1)
        return {"fell": r.fall_frame is not None, "termination": r.termination, "fell_at_s": fell_at,
                "seconds_before_fall": fell_at if fell_at is not None else round(sim, 3),
                "seconds_simulated": round(sim, 3),
                "com_speed_m_s": round(float(np.linalg.norm(com[end, :2] - com[0, :2]) / max(end / hz, 1e-9)), 3),
                "segments": r.segments}

    def record(self) -> dict:
        """{"physics": {policy, goal, timesteps, control_hz, start, terminations, ...rollout_record(0)}}
        for one rollout, {"physics": {..., "rollouts": [rollout_record(b) ...]}} for several."""
        head = {"lowlevel": self.policy_path, "goal": self.cfg.get("goal"), "pd_target": self.cfg.get("pd_target"),
                "num_timesteps": int(self.ck.get("num_timesteps", 0)), "control_hz": self.control_hz,
                "start": (f"{self.start_pose} standing pose at rest, feet on the floor (pelvis {self.start[2]:.3f} m), "
                          "at the origin facing +x") if self.start_pose != "decoded" else
                         "at rest in segment 0's first decoded frame, feet on the floor, at the origin facing +x",
                "fall_terminations": list(FALL_REASONS),
                "controller": "policy" if self.mpc is None else {"mpc": self.mpc.to_dict()}}
        if len(self._rollouts) == 1:
            return {"physics": {**head, **self.rollout_record(0)}}
        return {"physics": {**head, "rollouts": [self.rollout_record(b) for b in range(len(self._rollouts))]}}

    def ghost_qpos(self, b: int = 0) -> np.ndarray:
        """(S*32, 26) qpos of the decoded motion where the policy was asked to be (anchored on the
        robot), at the achieved rows' 30 Hz frames: the ghost of the video."""
        return np.concatenate(self._rollouts[b].ghost30)

    def fall_frame30(self, b: int = 0) -> int | None:
        """30 Hz frame index (of the achieved rows) at or after the fall, or None."""
        f = self._rollouts[b].fall_frame
        return None if f is None else int(math.ceil((f - 1) / self.control_hz * FPS - 1e-9))

    def close(self) -> None:
        for r in self._rollouts:
            if r.env is not None:
                r.env.close()
