"""`daps live`: a local web page with the H1 in 3D, moving in real time as typed prompts command it.

Three parts, each on its own thread:

- `LiveMotion` (the segment producer's state): the `daps command` pipeline one 32-frame segment
  at a time. Each segment the high-level prior samples 64 codes from the prompt's embedding, the
  root window (past: the motion achieved so far; future: the speed/turn arc of the COM goal, when
  it is on) and the previous segment's codes, with classifier-free guidance and, with a COM goal,
  sample-and-score candidates (`highlevel.command.pick_candidate`); a follower turns the codes
  into the segment's motion: the motion VAE's decoding (`KinematicFollower`) or the simulated H1
  driven by the low-level tracker (`highlevel.physics.PhysicsFollower`). The prompt, speed and
  turn are read when a segment's generation starts, so a new prompt takes over at a segment
  boundary.
- The producer thread keeps one segment ready ahead of playback, starting each as late as its
  measured generation time allows (so the newest prompt makes the next boundary).
- The player thread plays the segments at 30 frames/s: each frame poses the MuJoCo model
  (`mj_kinematics`) and moves every geom drawn on the page (boxes, spheres, capsules, cylinders)
  to its `geom_xpos` / `geom_xmat`, the view following the robot (the floor grid scrolls under
  it). When the producer is slower than real time (physics on a slow CPU) playback waits at
  segment boundaries; the page shows the generation's real-time factor.

The page is served by viser (its web client is bundled in the Python wheel: no network needed):
prompt box and Send button, COM goal switch with speed and turn sliders, the prompt playing and
the one commanded, the achieved root speed, a fall indicator (physics: the tracker's fall, the
motion then stops until Reset; kinematic: pelvis below 0.6 m) and Stop / Reset buttons.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from highlevel.command import FPS, SEG, KinematicFollower, next_segment, standing_rows
from highlevel.sampling import Sampling
from lowlevel.mpc import MPPIConfig

#: The sampling MPC of `daps live` (the physics path's default): half the default candidates, both
#: cores (0.5 s of wall time per simulated second on the 2-core reference machine; held-out
#: walk2_subject4, 8 starts x 10 s: 6 up, 4 finished without a termination, against 8 and 7 with
#: the default 64, docs/tracking.md).
LIVE_MPC = MPPIConfig(samples=32, threads=2)
FALL_HEIGHT = 0.6  # m, pelvis height under which a kinematic pose counts as down (the tracking env's "fell")
MAX_PROMPT = 200  # characters
SPEED_RANGE = (-1.0, 4.0)  # m/s, the speed slider (LAFAN1 walks ~1.2 m/s, runs up to ~4)
TURN_RANGE = (-1.5, 1.5)  # rad/s, the turn slider (+ = left)
SEG_SECONDS = SEG / FPS


@dataclass
class Segment:
    """One generated segment: index, the prompt and COM goal it was made for, rows (32, 26) CSV
    (root xyz m, quaternion x y z w, 19 joints rad) at 30 Hz, codes (64,), fall_frame (frame
    within the segment at which the robot fell, physics only; None if it did not), and the
    wall time its generation took (s)."""

    index: int
    prompt: str
    goal: tuple[float, float] | None
    rows: np.ndarray
    codes: np.ndarray
    fall_frame: int | None
    seconds: float


class LiveMotion:
    """The `daps command` pipeline, one segment per `step` call, its prompt and COM goal free to
    change between calls.

    Args:
        prior, vae, stats: the high-level prior and the motion VAE (with its feature statistics)
            that decodes its codes (`highlevel.ship.load_highlevel`, `motion_vae.models.load_motion_vae`).
        text: a `highlevel.text.EmbeddingCache` (prompt -> 384-d embedding).
        make_follower: () -> a fresh `SegmentFollower` (kinematic or physics), called at reset.
        guidance, candidates, temperature, top_k, seed: as `daps command` (`generate_batch`).
        text_goal: without a COM goal from the sliders, the goal the prompt's text implies
            (`highlevel.goal`, as `daps command` without --speed/--turn); a prompt outside the data
            plays on text alone.
    """

    def __init__(self, prior, vae, stats, text, make_follower, guidance: float = Sampling.guidance,
                 candidates: int = Sampling.candidates, temperature: float = Sampling.temperature,
                 top_k: int = Sampling.top_k, seed: int = 0, text_goal: bool = True):
        import torch

        self.prior, self.text, self.make_follower = prior, text, make_follower
        self.text_goal, self._goal_map, self._text_goals = text_goal, None, {}
        self.preview = KinematicFollower(vae, stats)
        self.guidance, self.candidates, self.temperature, self.top_k = guidance, candidates, temperature, top_k
        self.generator = torch.Generator().manual_seed(seed)
        self.follower = None
        self.reset()

    @property
    def kinematic(self) -> bool:
        return bool(self.follower.kinematic)

    @property
    def mode(self) -> str:
        """"kinematic", "physics" (the low-level policy) or "physics, MPC" (the sampling MPC balancing)."""
        if self.follower.kinematic:
            return "kinematic"
        return "physics, MPC" if getattr(self.follower, "mpc", None) is not None else "physics"

    def reset(self) -> None:
        """Back to a standing start at the origin: a fresh follower, no history."""
        self.close()
        self.follower = self.make_follower()
        self.hist = standing_rows()[None]  # (1, H, 26) achieved rows, the standing start first
        self.prev = np.zeros((1, self.prior.cfg.block_size), np.int64)
        self.index = 0
        self.fell = False

    def done(self) -> bool:
        """True once the physics robot has fallen: no further segment can be generated."""
        return bool(self.follower.done())

    def step(self, prompt: str, goal: tuple[float, float] | None) -> Segment:
        """Generate the next segment for prompt (non-empty) and goal (speed m/s, turn rad/s) or
        None (COM input masked: text alone). RuntimeError after a fall (reset first)."""
        if self.done():
            raise RuntimeError("the robot has fallen: reset before generating further")
        t0 = time.perf_counter()
        j = self.index
        emb = self.text.encode([prompt])[0]  # (384,)
        speed, turn = goal if goal is not None else (None, None)
        direction = height = None
        if goal is None and self.text_goal:
            speed, turn, direction, height = self.goal_from_text(prompt) or (None,) * 4
        z, rows = next_segment(self.prior, self.follower, self.hist, self.prev, emb, j, speed, turn, self.generator,
                               self.temperature, self.top_k, self.guidance, self.candidates,
                               None if self.follower.kinematic else self.preview,  # kinematic: its own decoding is the preview
                               direction, height)
        self.hist = np.concatenate([self.hist, rows], 1)[:, -64:]
        self.prev = z
        self.index += 1
        fall = None
        if not self.follower.kinematic and not self.fell:
            f = self.follower.fall_frame30(0)
            if f is not None:
                self.fell, fall = True, int(min(SEG - 1, max(0, f - SEG * j)))
        return Segment(j, prompt, goal, rows[0], z[0], fall, time.perf_counter() - t0)

    def goal_from_text(self, prompt: str) -> tuple | None:
        """(speed m/s, turn rad/s, direction rad, pelvis height m) the prompt's text implies
        (`highlevel.goal.GoalMap`, computed once per prompt), or None outside the data."""
        if prompt not in self._text_goals:
            if self._goal_map is None:
                from highlevel.goal import GoalMap

                self._goal_map = GoalMap(cache=self.text)
            self._text_goals[prompt] = self._goal_map.infer(prompt).goal()
        return self._text_goals[prompt]

    def close(self) -> None:
        if self.follower is not None:
            getattr(self.follower, "close", lambda: None)()


class GeomScene:
    """The H1's geoms (envs/h1.xml) as viser primitives, posed from MuJoCo's geom_xpos / geom_xmat.

    Boxes, spheres, capsules and cylinders of the body are drawn with their MuJoCo sizes and
    colours (material colour where a geom has one); the floor plane becomes a grid. `pose(qpos)`
    runs forward kinematics for qpos (26,) (root quaternion w, x, y, z) and moves every geom,
    shifted so the root stays above the origin while the floor grid scrolls beneath it.
    """

    GRID_CELL = 0.5  # m

    def __init__(self, server):
        import mujoco
        import trimesh

        from envs.model import load_h1_model

        self.mujoco = mujoco
        self.model = load_h1_model()
        self.data = mujoco.MjData(self.model)
        m, scene = self.model, server.scene
        self.handles: list[tuple[int, object]] = []
        for g in range(m.ngeom):
            kind, size = int(m.geom_type[g]), m.geom_size[g]
            if kind == mujoco.mjtGeom.mjGEOM_PLANE:
                continue
            rgba = m.mat_rgba[m.geom_matid[g]] if m.geom_matid[g] >= 0 else m.geom_rgba[g]
            color = tuple(int(255 * c) for c in rgba[:3])
            name = f"/h1/geom{g}"
            if kind == mujoco.mjtGeom.mjGEOM_BOX:
                h = scene.add_box(name, color=color, dimensions=tuple(2 * size))
            elif kind == mujoco.mjtGeom.mjGEOM_SPHERE:
                h = scene.add_icosphere(name, radius=float(size[0]), color=color, subdivisions=2)
            elif kind in (mujoco.mjtGeom.mjGEOM_CAPSULE, mujoco.mjtGeom.mjGEOM_CYLINDER):
                make = trimesh.creation.capsule if kind == mujoco.mjtGeom.mjGEOM_CAPSULE else trimesh.creation.cylinder
                mesh = make(height=2 * float(size[1]), radius=float(size[0]))  # along z, centred, as MuJoCo's
                h = scene.add_mesh_simple(name, np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.uint32),
                                          color=color, flat_shading=False)
            else:
                raise ValueError(f"envs/h1.xml: geom {g} has type {kind}, which the live page does not draw")
            self.handles.append((g, h))
        self.floor = scene.add_grid("/floor", width=40.0, height=40.0, cell_size=self.GRID_CELL, section_size=1.0,
                                    plane_color=(235, 235, 235), plane_opacity=1.0, shadow_opacity=0.2)

    def pose(self, qpos: np.ndarray) -> tuple[float, float]:
        """Move the geoms to qpos (26,); returns the root's world x, y (m)."""
        d = self.data
        d.qpos[:] = qpos
        self.mujoco.mj_kinematics(self.model, d)
        x, y = float(qpos[0]), float(qpos[1])
        quat = np.empty(4)
        for g, h in self.handles:
            self.mujoco.mju_mat2Quat(quat, d.geom_xmat[g])
            h.position = d.geom_xpos[g] - (x, y, 0.0)
            h.wxyz = quat.copy()
        self.floor.position = (-(x % 1.0), -(y % 1.0), 0.0)  # the grid repeats every 1 m section
        return x, y

    def set_visible(self, visible: bool) -> None:
        """Show or hide the robot (the floor stays)."""
        for _, h in self.handles:
            h.visible = visible


def _escape(text: str) -> str:
    """text with Markdown's special characters escaped (a prompt shown as typed)."""
    return "".join("\\" + c if c in "\\`*_{}[]()#+-.!|<>~" else c for c in text)


class LiveServer:
    """The live page: a viser server, the segment producer and the 30 Hz player.

    `start()` binds host:port (port 0: a free one; a busy port moves to the next free one, viser's
    way: `url` tells where), `stop()` ends both threads and the server and frees the port.
    `command(prompt)`, `set_goal(speed, turn)`, `stop_motion()`, `reset()` are what the page's
    controls call. `state()` is a snapshot for status displays and tests.
    """

    def __init__(self, motion: LiveMotion, prompt: str = "walk forward", host: str = "127.0.0.1", port: int = 8080,
                 goal: tuple[float, float] | None = None):
        self.motion, self.host, self.port = motion, host, port
        self.server = self.scene = None
        self._lock = threading.Condition()
        self._quit = threading.Event()
        self._threads: list[threading.Thread] = []
        self.commanded = self._clean(prompt)
        self.goal = goal
        self.stand_up = True  # reset by itself 1.5 s after a fall (physics)
        self.falls = 0  # since the server started
        self.gen_seconds: float | None = None  # smoothed wall time per segment
        self._reset_state()
        self.error: str | None = None

    # ------------------------------------------------------------------ controls
    @staticmethod
    def _clean(prompt: str) -> str:
        p = " ".join(str(prompt).split())[:MAX_PROMPT]
        if not p:
            raise ValueError("prompt is empty: describe the motion, e.g. \"walk forward\"")
        return p

    def command(self, prompt: str) -> None:
        """Command a new prompt (whitespace collapsed, at most 200 characters): it takes over at the
        first segment boundary its generation can make; resumes a stopped robot. ValueError if empty."""
        p = self._clean(prompt)
        with self._lock:
            self.commanded, self.playing_on = p, True
            self._lock.notify_all()

    def set_goal(self, speed: float | None, turn: float | None = 0.0) -> None:
        """COM goal for the next segments: speed (m/s) and turn rate (rad/s, + = left); None: off."""
        with self._lock:
            self.goal = None if speed is None else (float(speed), float(turn or 0.0))
            self._lock.notify_all()

    def stop_motion(self) -> None:
        """Hold the robot where it is (a new prompt or Reset starts it again)."""
        with self._lock:
            self.playing_on = False
            self._lock.notify_all()

    def reset(self) -> None:
        """Back to the standing start at the origin, and play."""
        with self._lock:
            self._reset_pending = True
            self.playing_on = True
            self._lock.notify_all()

    def _reset_state(self) -> None:
        self.queue: list[Segment] = []
        self.current: Segment | None = None
        self.frame = 0.0  # position in the current segment, frames (30 Hz)
        self.playing_on = True
        self._reset_pending = False
        self.fell_at: float | None = None  # s of motion played when the robot fell (physics)
        self.played = 0.0  # s of motion played since the reset
        self._fallen_for = 0.0  # s the fallen robot has lain still at the end of its motion
        self._prev_rows: np.ndarray | None = None  # the segment played before the current one
        self.qpos = None
        self._idle_row: np.ndarray | None = standing_rows(1)[0]  # shown once until the first segment is ready

    def state(self) -> dict:
        """Snapshot: commanded and playing prompt, COM goal, segment index, achieved root speed (m/s
        over the last second played), fell_at_s (s into the motion since the last reset, or None),
        falls since the start, down (kinematic: pelvis below 0.6 m), stopped, kinematic, the
        generation's real-time factor (segment length / generation time) and the last error."""
        with self._lock:
            speed = None
            if self.current is not None:  # over the last second of motion (up to 30 frames back)
                rows = self.current.rows if self._prev_rows is None else np.concatenate([self._prev_rows, self.current.rows])
                i = min(SEG - 1, int(self.frame)) + len(rows) - SEG
                k = min(int(FPS), i)
                speed = float(np.linalg.norm(rows[i, :2] - rows[i - k, :2]) * FPS / k) if k > 0 else None
            rtf = SEG_SECONDS / self.gen_seconds if self.gen_seconds else None
            return {"commanded": self.commanded, "playing": self.current.prompt if self.current else None,
                    "goal": self.goal, "segment": self.current.index if self.current else None,
                    "speed_m_s": speed, "fell_at_s": self.fell_at, "falls": self.falls, "down": self._down(), "stopped": not self.playing_on,
                    "kinematic": self.motion.kinematic, "mode": self.motion.mode, "real_time_factor": rtf,
                    "error": self.error}

    def _down(self) -> bool:
        return self.qpos is not None and self.motion.kinematic and float(self.qpos[2]) < FALL_HEIGHT

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.server.get_port()}/"

    # ------------------------------------------------------------------ life cycle
    def start(self) -> "LiveServer":
        """Serve the page and start producing and playing segments."""
        import viser

        self.motion.reset()
        self.motion.text.encode([self.commanded])  # the text encoder loads now, not on the first segment
        self.server = viser.ViserServer(host=self.host, port=self.port, label="daps live", verbose=False)
        try:
            # looking at a point right of the robot: the control panel covers the page's right side
            self.server.initial_camera.position = (3.0, -2.3, 1.5)
            self.server.initial_camera.look_at = (0.4, 0.3, 0.75)
            self.scene = GeomScene(self.server)
            self._build_gui()
        except BaseException:
            self.server.stop()
            raise
        for target in (self._produce, self._play):
            t = threading.Thread(target=target, name=f"live{target.__name__}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop both threads (the producer finishes the segment it is generating) and the server."""
        self._quit.set()
        with self._lock:
            self._lock.notify_all()
        for t in self._threads:
            t.join(timeout)
        self._threads = [t for t in self._threads if t.is_alive()]
        if self.server is not None:
            self.server.stop()
        self.motion.close()

    @property
    def alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    # ------------------------------------------------------------------ page
    def _build_gui(self) -> None:
        gui = self.server.gui
        gui.configure_theme(control_width="large")
        self.status = gui.add_markdown(self._status_text(self.state()))
        self.prompt_box = gui.add_text("Prompt", initial_value=self.commanded, hint="What the robot should do")
        send = gui.add_button("Send")
        self.goal_on = gui.add_checkbox("COM goal", initial_value=self.goal is not None,
                                        hint="Steer the centre of mass at the speed and turn rate below")
        s0, t0 = self.goal if self.goal is not None else (1.0, 0.0)
        self.speed = gui.add_slider("Speed (m/s)", min=SPEED_RANGE[0], max=SPEED_RANGE[1], step=0.1, initial_value=s0)
        self.turn = gui.add_slider("Turn (rad/s)", min=TURN_RANGE[0], max=TURN_RANGE[1], step=0.05, initial_value=t0)
        buttons = gui.add_button_group("Motion", ("Stop", "Reset"))
        stand_up = gui.add_checkbox("Stand up after a fall", initial_value=self.stand_up,
                                    hint="Physics: reset to the standing start 1.5 s after a fall")

        @stand_up.on_update
        def _(_event) -> None:
            self.stand_up = stand_up.value

        @send.on_click
        def _(_event) -> None:
            try:
                self.command(self.prompt_box.value)
            except ValueError:
                self.prompt_box.value = self.commanded

        def goal_changed(event) -> None:
            if event.target is not self.goal_on:
                self.goal_on.value = True  # moving a slider turns the goal on
            self.set_goal(self.speed.value if self.goal_on.value else None, self.turn.value)

        for h in (self.goal_on, self.speed, self.turn):
            h.on_update(goal_changed)

        @buttons.on_click
        def _(event) -> None:
            (self.stop_motion if event.target.value == "Stop" else self.reset)()

    def _status_text(self, s: dict) -> str:
        mode = s["mode"]
        rtf = "" if s["real_time_factor"] is None else f" · generation x{s['real_time_factor']:.2f} real time"
        speed = "-" if s["speed_m_s"] is None else f"{s['speed_m_s']:.2f} m/s"
        goal = "off" if s["goal"] is None else f"{s['goal'][0]:.1f} m/s, {s['goal'][1]:+.2f} rad/s"
        if s["fell_at_s"] is not None:
            fall = f"**FELL** at {s['fell_at_s']:.1f} s" + (": standing up again" if self.stand_up else ": Reset to stand up again")
        else:
            fall = "**DOWN** (pelvis below 0.6 m)" if s["down"] else "no"
            fall += f" ({s['falls']} so far)" if s["falls"] else ""
        lines = [f"**Playing:** {_escape(s['playing']) if s['playing'] else '(starting)'}",
                 f"**Commanded:** {_escape(s['commanded'])}",
                 f"**Achieved speed:** {speed} · **COM goal:** {goal}",
                 f"**Fall:** {fall}",
                 f"**Mode:** {mode}{rtf}" + (" · **stopped**" if s["stopped"] else "")
                 + (f" · segment {s['segment']}" if s["segment"] is not None else "")]
        if s["error"]:
            lines.append(f"**Error:** {_escape(s['error'])}")
        return "  \n".join(lines)

    def _show(self, row: np.ndarray) -> None:
        from envs.lafan1 import csv_to_qpos

        q = csv_to_qpos(row[None])[0]
        with self.server.atomic():
            self.scene.pose(q)
        self.qpos = q

    def set_robot_visible(self, visible: bool) -> None:
        """Show or hide the robot on the page (the floor stays)."""
        with self.server.atomic():
            self.scene.set_visible(visible)

    # ------------------------------------------------------------------ threads
    def _lead(self) -> float:
        """Seconds before the playing segment ends at which the next one's generation starts."""
        return 0.15 + 1.5 * (self.gen_seconds or SEG_SECONDS)

    def _need_segment(self) -> bool:
        if self._reset_pending:
            return True
        if not self.playing_on or self.queue or self.motion.done():
            return False
        if self.current is None:
            return True
        return (SEG - self.frame) / FPS <= self._lead()

    def _produce(self) -> None:
        while not self._quit.is_set():
            with self._lock:
                while not self._quit.is_set() and not self._need_segment():
                    self._lock.wait(0.05)
                if self._quit.is_set():
                    return
                if self._reset_pending:
                    self._reset_state()
                    reset = True
                else:
                    reset = False
                prompt, goal = self.commanded, self.goal
            if reset:
                self.motion.reset()
                continue
            try:
                seg = self.motion.step(prompt, goal)
            except Exception as e:  # noqa: BLE001 - shown on the page; the server stays up for Reset
                with self._lock:
                    self.error = f"{type(e).__name__}: {e}"
                    self.playing_on = False
                continue
            with self._lock:
                if self._reset_pending:
                    continue  # made for the motion before the reset
                a = 0.5 if self.gen_seconds is not None else 1.0
                self.gen_seconds = (1 - a) * (self.gen_seconds or 0.0) + a * seg.seconds
                self.queue.append(seg)
                self.error = None

    def _play(self) -> None:
        tick, last_status, shown = 1.0 / FPS, 0.0, None
        t_prev = time.perf_counter()
        while not self._quit.is_set():
            now = time.perf_counter()
            dt, t_prev = now - t_prev, now
            with self._lock:
                row = self._advance(dt)
                if self.fell_at is not None and self.motion.done() and not self.queue and self.frame >= SEG - 1:
                    self._fallen_for += dt
                    if self.stand_up and self._fallen_for > 1.5:
                        self.reset()
            if row is not None:
                self._show(row)
            if now - last_status > 0.25:
                text = self._status_text(self.state())
                if text != shown:
                    self.status.content = shown = text
                last_status = now
            self._quit.wait(max(0.0, tick - (time.perf_counter() - now)))

    def _advance(self, dt: float) -> np.ndarray | None:
        """Move playback on by dt seconds (under the lock); the row to show, or None to keep the pose."""
        if self.current is None:
            if not self.queue:
                row, self._idle_row = self._idle_row, None
                return row
            self.current, self.frame = self.queue.pop(0), 0.0
            return self.current.rows[0]
        cur = self.current
        if not self.playing_on:
            return None
        self.frame += dt * FPS
        while self.frame >= SEG:
            if not self.queue:  # the producer is behind: wait on the last frame
                self.frame = SEG - 1e-6
                break
            self.frame -= SEG
            self.played += SEG_SECONDS
            self._prev_rows = cur.rows
            self.current = cur = self.queue.pop(0)
        f = min(SEG - 1, int(self.frame))
        if cur.fall_frame is not None and f >= cur.fall_frame and self.fell_at is None:
            self.fell_at = self.played + cur.fall_frame / FPS  # the segment plays on: the fall is seen to its end
            self.falls += 1
        self._lock.notify_all()
        return cur.rows[f]


def load_live_motion(kinematic: bool | None = None, lowlevel: str | Path | None = None, model: str | Path | None = None,
                     guidance: float = Sampling.guidance, candidates: int = Sampling.candidates,
                     temperature: float = Sampling.temperature, top_k: int = Sampling.top_k, seed: int = 0,
                     text_cache: str | Path | None = None, text_goal: bool = True,
                     mpc: bool | None = None) -> tuple[LiveMotion, str | None]:
    """(LiveMotion, notice or None) with the shipped models (or the given ones). kinematic: True =
    no physics; False = physics required; None = physics when a low-level policy exists
    (`highlevel.command.choose_path`; the notice says when it falls back to kinematic). mpc: who
    balances the simulated robot: None (default) the sampling MPC (`LIVE_MPC`, both cores, about twice
    real time on the 2-core reference machine) when the low-level file is a tracker, else that older
    policy; True the MPC; False the low-level policy. Raises ValueError / CheckpointError /
    FileNotFoundError (one line) for bad options or files."""
    from daps.args import finite_number
    from highlevel.command import choose_path

    finite_number(temperature, "--temperature", low=0)
    finite_number(guidance, "--guidance", low=0)
    if top_k < 0:
        raise ValueError(f"--top-k must be >= 0, got {top_k}")
    if candidates < 1:
        raise ValueError(f"--candidates must be >= 1, got {candidates}")
    if kinematic is True and lowlevel is not None:
        raise ValueError("give --kinematic or --lowlevel/--physics, not both")
    if kinematic is True and mpc is not None:
        raise ValueError("give --kinematic or --mpc/--policy (they balance the simulated robot), not both")
    ll_path, notice = choose_path(False if mpc is not None else kinematic, lowlevel)
    if ll_path is not None:
        from highlevel.physics import check_policy_file

        check_policy_file(ll_path)
    import torch

    from highlevel.ship import load_highlevel
    from highlevel.text import EmbeddingCache
    from motion_vae.models import load_motion_vae

    text = EmbeddingCache(text_cache)
    torch.set_num_threads(1)  # small matrices: one thread is faster than two (docs/highlevel.md, Speed)
    prior, _, _, vae_path = load_highlevel(model)
    vae, _, stats, _ = load_motion_vae(vae_path, "cpu")
    if ll_path is not None:
        from highlevel.physics import PhysicsFollower, load_command_policy

        ll_model, vecnorm, ll_ck = load_command_policy(ll_path, vae_path)

        def make_follower():
            return PhysicsFollower(ll_model, vecnorm, ll_ck, vae, stats, "nominal", ll_path, stop_at_fall=True,
                                   mpc=LIVE_MPC if mpc or (mpc is None and vecnorm is None) else None)
    else:
        def make_follower():
            return KinematicFollower(vae, stats)
    return LiveMotion(prior, vae, stats, text, make_follower, guidance, candidates, temperature, top_k, seed,
                      text_goal), notice


def run_live(prompt: str = "walk forward", host: str = "127.0.0.1", port: int = 8080, seconds: float | None = None,
             goal: tuple[float, float] | None = None, **motion_kw) -> dict:
    """Serve the live page until Ctrl-C or, with seconds, that many seconds, printing its address
    (and, on stderr, a notice when it falls back to the kinematic path); returns the final
    `LiveServer.state()`. motion_kw go to `load_live_motion`. ValueError for a bad prompt, port,
    seconds or goal (one line, before the slow loads)."""
    import typer

    from daps.args import finite_number

    if not " ".join(str(prompt).split()):
        raise ValueError("--prompt is empty: describe the motion, e.g. --prompt \"walk forward\"")
    if not 0 <= port <= 65535:
        raise ValueError(f"--port must lie in 0..65535, got {port}")
    finite_number(seconds, "--seconds", positive=True)
    if goal is not None:
        finite_number(goal[0], "--speed", *SPEED_RANGE)
        finite_number(goal[1], "--turn", *TURN_RANGE)
    motion, notice = load_live_motion(**motion_kw)
    if notice:
        typer.echo(notice, err=True)
    live = LiveServer(motion, prompt, host, port, goal)
    live.start()
    typer.echo(f"daps live ({motion.mode}): open {live.url} (Ctrl-C to stop)")
    end = math.inf if seconds is None else time.monotonic() + seconds
    try:
        while time.monotonic() < end and live.alive:
            time.sleep(min(0.5, max(0.0, end - time.monotonic())))
    except KeyboardInterrupt:
        pass
    finally:
        state = live.state()
        live.stop()
    return state
