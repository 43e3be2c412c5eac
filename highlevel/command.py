"""`daps command "walk forward" [--then "turn left" ...]`: text -> codes every segment -> motion -> MP4 + JSON.

Every 32 frames (1.07 s at 30 Hz) the high-level prior samples the next segment's 64 codes from
the current prompt's embedding, the root window and the previous segment's codes (absent for the
first segment). Several prompts (`--then`) take turns: each drives `--seconds` of the run (or
`--segments-per-prompt` segments); the text switches at segment boundaries (`prompt_schedule`),
the history (codes and root window) carries over. The root window's past half is the motion
achieved so far (a standing start at the first segment); its future half is an arc at the
commanded --speed (m/s) and --turn (rad/s) when either is given, else the whole COM input is
masked (text alone).

Each segment's codes go to a *follower* (`SegmentFollower`), the hook between the levels: it
turns codes into the motion achieved over that segment, which becomes the history of the next.
`KinematicFollower` (--kinematic) decodes them with the motion VAE (root integrated from the
decoded velocities, each segment continuing from the last frame of the one before);
`highlevel.physics.PhysicsFollower` (the default when a low-level policy exists: models/lowlevel.pt
or --lowlevel) has a goal="decoded" low-level policy follow their decoding with the simulated H1
in MuJoCo, the robot's state carried from segment to segment, and returns the robot's own motion;
it reports falls, and the run ends with the segment in which the robot fell.

Path: --kinematic plays the codes without physics; --lowlevel POLICY or --physics ask for physics
(one-line error without a usable policy: missing file, a goal other than "decoded", another motion
VAE); with neither, physics runs if models/lowlevel.pt exists, else the kinematic path with a
one-line notice on stderr.

Outputs: OUT.mp4 (current prompt drawn on each frame; physics: the simulated robot with the
decoded motion it is asked to follow as a translucent blue ghost, "FELL" from the fall on, the
last frame held 0.5 s) and OUT.json (prompts and their segment spans, codes per segment; achieved
root speed = net horizontal displacement / time, path speed = path length / time, turn rate = net
heading change / time, for the whole run and per prompt; physics: "physics" with the fall
(fell_at_s, seconds_before_fall, termination), COM speed, and per segment the robot's and the
decoded motion's speed / turn, decoded joint error, seconds survived), both written atomically; the
JSON first, so it exists even where rendering is unavailable.
"""
from __future__ import annotations

import math
import os

os.environ.setdefault("MUJOCO_GL", "egl")  # must precede the first `import mujoco` (the GL backend is fixed then)

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from daps.io import atomic_write, atomic_write_json  # noqa: E402

from highlevel.ship import HIGHLEVEL_MODEL_NAME, default_highlevel_path  # noqa: E402,F401 (re-exported)

START_HEIGHT = 0.98  # m, pelvis height of the standing start (LAFAN1-H1 upright mean ~0.97-1.02)
SEG, FPS = 32, 30.0
DEFAULT_SECONDS = 4.0
MAX_SECONDS = 600.0  # s, the longest run (all prompts together)
MAX_SPEED, MAX_TURN = 10.0, 10.0  # |--speed| m/s and |--turn| rad/s: beyond any LAFAN1 motion


def prompt_schedule(n_prompts: int, seconds: float | None = None, segments_per_prompt: int | None = None) -> tuple[list[int], int]:
    """Which prompt drives each segment, and the run's length in frames.

    With segments_per_prompt k: n_prompts * k segments, prompt i on segments i*k ... i*k+k-1,
    n_prompts * k * 32 frames. Else each prompt lasts `seconds` (s): the run has
    round(n_prompts * seconds * 30) frames, ceil(frames / 32) segments, and segment j (first frame
    32 j) follows the prompt whose time span holds that frame, so switches land on the first
    segment boundary at or after each multiple of `seconds`. Returns (prompt index per segment,
    frames). ValueError (one line naming the option) for bad values, and for a run longer than
    MAX_SECONDS (600 s, all prompts together).
    """
    if n_prompts < 1:
        raise ValueError("need at least one prompt")
    if segments_per_prompt is not None:
        if seconds is not None:
            raise ValueError("give --seconds or --segments-per-prompt, not both")
        if segments_per_prompt < 1:
            raise ValueError(f"--segments-per-prompt must be >= 1, got {segments_per_prompt}")
        if n_prompts * segments_per_prompt * SEG / FPS > MAX_SECONDS:
            raise ValueError(f"--segments-per-prompt {segments_per_prompt}: a run lasts at most {MAX_SECONDS:g} s "
                             f"({int(MAX_SECONDS * FPS // SEG)} segments, all prompts together)")
        return [i for i in range(n_prompts) for _ in range(segments_per_prompt)], n_prompts * segments_per_prompt * SEG
    seconds = DEFAULT_SECONDS if seconds is None else seconds
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"--seconds must be a positive number, got {seconds}")
    if n_prompts * seconds > MAX_SECONDS:
        raise ValueError(f"--seconds {seconds:g}: a run lasts at most {MAX_SECONDS:g} s (all prompts together), "
                         f"asked for {n_prompts} x {seconds:g} s")
    per = seconds * FPS
    frames = max(2, int(round(n_prompts * per)))
    segments = max(1, math.ceil(frames / SEG))
    return [min(n_prompts - 1, int((SEG * j + 1e-6) // per)) for j in range(segments)], frames


def check_args(prompts: list[str], out: Path, temperature: float, top_k: int, kinematic: bool | None = True,
               lowlevel: str | Path | None = None, guidance: float = 1.0, candidates: int = 1,
               speed: float | None = None, turn: float | None = None) -> None:
    """Raise ValueError (one line naming the flag) for bad command-line values: NaN or infinite
    numbers, |speed| > MAX_SPEED m/s, |turn| > MAX_TURN rad/s, an --out (and its .json) that cannot
    be written, kinematic True with a low-level policy given (contradictory)."""
    from daps.args import finite_number
    from daps.io import check_writable

    if not prompts or not prompts[0] or not prompts[0].strip():
        raise ValueError("PROMPT is empty: describe the motion, e.g. daps command \"walk forward\"")
    if any(not p or not p.strip() for p in prompts[1:]):
        raise ValueError("--then prompt is empty: describe the motion, e.g. --then \"turn left\"")
    if Path(out).suffix.lower() != ".mp4":
        raise ValueError(f"--out {out}: must end in .mp4")
    finite_number(temperature, "--temperature", low=0)
    if top_k < 0:
        raise ValueError(f"--top-k must be >= 0, got {top_k}")
    finite_number(guidance, "--guidance", low=0)
    finite_number(speed, "--speed", -MAX_SPEED, MAX_SPEED)
    finite_number(turn, "--turn", -MAX_TURN, MAX_TURN)
    if candidates < 1:
        raise ValueError(f"--candidates must be >= 1, got {candidates}")
    if kinematic is True and lowlevel is not None:
        raise ValueError("give --kinematic or --lowlevel/--physics, not both")
    check_writable(out, "--out")
    check_writable(Path(out).with_suffix(".json"), "--out")


def future_arc(speed: float, turn: float, height: float, n: int = 32, fps: float = 30.0, direction: float = 0.0) -> np.ndarray:
    """Commanded root path (n, 5) in the base frame, as `highlevel.dataset.com_window`'s goal rows:
    speed (m/s) along a heading turning at turn (rad/s), travelling at `direction` (rad, 0 =
    forward, pi = backward, + = left) from it; x, y (m), height (m), cos and sin of the heading change."""
    k = np.arange(1, n + 1) / fps
    yaw = turn * k
    step = speed / fps
    x = np.cumsum(step * np.cos(yaw + direction))
    y = np.cumsum(step * np.sin(yaw + direction))
    return np.stack([x, y, np.full(n, height), np.cos(yaw), np.sin(yaw)], 1).astype(np.float32)


def past_window(rows: np.ndarray) -> np.ndarray:
    """Last 32 root rows (32, 5) in the base frame of the last row (rows (T >= 32, 26) CSV), as
    `highlevel.dataset.com_window`'s history rows."""
    from highlevel.dataset import base_frame_path

    return base_frame_path(rows[-32:], rows[-1])


def standing_rows(n: int = 32, height: float = START_HEIGHT) -> np.ndarray:
    """n identical CSV rows (n, 26): root at (0, 0, height), identity orientation, joints at 0."""
    r = np.zeros((n, 26))
    r[:, 2], r[:, 6] = height, 1.0
    return r


class SegmentFollower:
    """The hook where a lower level consumes the high level's codes, one segment at a time.

    `follow(codes, history, index)`: codes (B, 64) int64 of segment `index` for B parallel
    rollouts; history (B, H >= 32, 26) CSV rows (root xyz m, root quaternion x y z w, 19 joint
    angles rad) of the motion achieved so far (a standing start before segment 0). Returns the
    rows (B, 32, 26) achieved while following the codes. `record()`: extra JSON fields of the run
    (the physics follower reports falls and COM there). `done()`: True when no rollout can go on
    (the physics follower: every robot has fallen); generation then stops early.
    """

    kinematic = True

    def follow(self, codes: np.ndarray, history: np.ndarray, index: int) -> np.ndarray:
        raise NotImplementedError

    def record(self) -> dict:
        return {}

    def done(self) -> bool:
        return False


class KinematicFollower(SegmentFollower):
    """Decodes codes with the motion VAE, no physics: each rollout's segment continues from the
    root position and heading of its last achieved frame (from the VAE's own pose at segment 0)."""

    def __init__(self, vae, stats):
        self.vae, self.stats = vae, stats

    def follow(self, codes: np.ndarray, history: np.ndarray, index: int) -> np.ndarray:
        from motion_vae.codec import decode_codes

        return np.stack([decode_codes(self.vae, self.stats, c[None], start_rows=h[-1:] if index > 0 else None)
                         for c, h in zip(codes, history)])


def generate_batch(prior, follower: SegmentFollower, emb: np.ndarray | None, segments: int, speed: float | None = None,
                   turn: float | None = None, temperature: float = 1.0, top_k: int = 0, seed: int = 0,
                   batch: int = 1, guidance: float = 1.0, candidates: int = 1,
                   preview: SegmentFollower | None = None, direction=None, height=None) -> tuple[np.ndarray, np.ndarray]:
    """B = batch parallel rollouts: codes (B, S, 64) int64 and achieved rows (B, S*32, 26); S is
    `segments`, or fewer when the follower is done() earlier (every physics rollout fell).

    emb: per-segment prompt embeddings (S, 384) (a (384,) vector is used for every segment), or
    None for no text (the text input masked: the history/COM-only policy). speed (m/s) / turn
    (rad/s): the COM goal of every segment, or per-segment goals (S,), NaN where a segment has
    none (both None: COM masked). direction (rad, 0 = forward, + = left) / height (m, pelvis):
    optional parts of the goal, scalar or per segment (None or NaN: forward travel scored by
    speed alone, the current height). Rollouts draw independent
    codes from one torch generator seeded with seed. guidance: classifier-free guidance weight on
    text and COM (`HighLevelPrior.sample`; 1 = none). candidates N > 1 (with a COM goal): each
    segment draws N code sequences per rollout, decodes them with `preview` (a
    `KinematicFollower`; default: the follower itself when it is kinematic) and keeps the one
    whose root speed and turn rate come closest to the goal (`pick_candidate`): sample-and-score
    planning on top of the prior. Raises ValueError for bad emb or candidates.
    """
    import torch

    if candidates < 1:
        raise ValueError(f"--candidates must be >= 1, got {candidates}")
    g = torch.Generator().manual_seed(seed)
    t_max = prior.cfg.block_size
    if emb is not None:
        emb = np.asarray(emb, np.float32)
        emb = np.broadcast_to(emb, (segments, emb.shape[-1])) if emb.ndim == 1 else emb
        if len(emb) != segments:
            raise ValueError(f"emb: expected {segments} per-segment embeddings, got {len(emb)}")
    hist = np.repeat(standing_rows()[None], batch, 0)
    prev = np.zeros((batch, t_max), np.int64)
    use_com = speed is not None or turn is not None
    speeds, turns, dirs, heights = (np.broadcast_to(np.asarray(v if v is not None else 0.0 if i < 2 else np.nan, np.float64),
                                                    (segments,)) for i, v in enumerate((speed, turn, direction, height)))
    n = candidates if use_com else 1
    if n > 1 and preview is None:
        if not follower.kinematic:
            raise ValueError("candidates > 1 with a physics follower needs a kinematic preview follower")
        preview = follower
    codes, rows = [], []
    for j in range(segments):
        past = np.stack([past_window(h) for h in hist])
        goal = use_com and bool(np.isfinite(speeds[j]) and np.isfinite(turns[j]))
        n = candidates if goal else 1
        hj = (lambda h: float(h[-1, 2])) if np.isnan(heights[j]) else (lambda h: float(heights[j]))  # noqa: E731
        fut = (np.stack([future_arc(speeds[j], turns[j], hj(h), direction=np.nan_to_num(dirs[j])) for h in hist]) if goal
               else np.zeros((batch, 32, past.shape[-1]), np.float32))
        com = torch.from_numpy(np.concatenate([past, fut], 1))
        text = torch.from_numpy(np.repeat(emb[j][None], batch, 0)) if emb is not None else torch.zeros(batch, 384)
        mask = torch.tensor([[emb is not None, goal, j > 0]]).expand(batch * n, 3)
        rep = lambda a: a.repeat_interleave(n, 0) if n > 1 else a  # noqa: E731  rollout b's candidates are rows b*n ... b*n+n-1
        z = prior.sample(rep(text), rep(com), rep(torch.from_numpy(prev)), mask, temperature, top_k, g, guidance).numpy()
        if n > 1:
            z = pick_candidate(z.reshape(batch, n, t_max), hist, j, preview, speeds[j], turns[j],
                               None if np.isnan(dirs[j]) else dirs[j], None if np.isnan(heights[j]) else heights[j])
        seg = follower.follow(z, hist, j)
        codes.append(z)
        rows.append(seg)
        hist, prev = np.concatenate([hist, seg], 1)[:, -64:], z
        if follower.done():
            break
    return np.stack(codes, 1), np.concatenate(rows, 1)


def pick_candidate(z: np.ndarray, hist: np.ndarray, index: int, preview: SegmentFollower, speed: float,
                   turn: float, direction: float | None = None, height: float | None = None) -> np.ndarray:
    """For each rollout, the candidate codes z (B, N, 64) whose decoded segment (continuing from
    hist (B, H, 26), via preview) has the root speed (m/s) and turn rate (rad/s) closest to the
    goal, by (speed error)^2 + (turn error)^2 over the segment and its preceding frame; (B, 64).
    With a direction (rad, 0 = forward, + = left) the speed error is that of the velocity vector
    in the segment's first heading frame; with a height (m), 4 (mean pelvis height error)^2 is added."""
    from highlevel.annotate import segment_measures

    b, n, t = z.shape
    seg = preview.follow(z.reshape(b * n, t), np.repeat(hist, n, 0), index)  # (B N, 32, 26)
    last = np.repeat(hist[:, -1:], n, 0)
    err = np.empty(b * n)
    for i, r in enumerate(np.concatenate([last, seg], 1)):
        m = segment_measures(r)
        if direction is None:
            err[i] = (m["speed"] - speed) ** 2
        else:
            err[i] = (m["speed"] * np.cos(m["direction"]) - speed * np.cos(direction)) ** 2 + \
                     (m["speed"] * np.sin(m["direction"]) - speed * np.sin(direction)) ** 2
        err[i] += (m["yaw_rate"] - turn) ** 2 + (0.0 if height is None else 4 * (m["height"] - height) ** 2)
    return z[np.arange(b), err.reshape(b, n).argmin(1)]


def generate(prior, vae, stats, emb: np.ndarray, segments: int, speed: float | None = None, turn: float | None = None,
             temperature: float = 1.0, top_k: int = 0, seed: int = 0, guidance: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """One kinematic rollout: codes (S, 64) and decoded CSV rows (S*32, 26) for a prompt
    embedding emb (384,) or per-segment embeddings (S, 384)."""
    c, r = generate_batch(prior, KinematicFollower(vae, stats), emb, segments, speed, turn, temperature, top_k, seed, 1, guidance)
    return c[0], r[0]


def achieved(rows: np.ndarray) -> dict:
    """Root measures of CSV rows (T >= 2, 26): speed (net displacement / time, m/s), path speed
    (path length / time, m/s), turn rate (net heading change / time, rad/s), mean height (m)."""
    from highlevel.annotate import segment_measures

    m = segment_measures(rows)
    return {"root_speed_m_s": round(m["speed"], 3),
            "path_speed_m_s": round(float(np.linalg.norm(np.diff(rows[:, :2], axis=0), axis=1).sum() * FPS / (len(rows) - 1)), 3),
            "turn_rate_rad_s": round(m["yaw_rate"], 3),
            "mean_root_height_m": round(m["height"], 3)}


def render_rows(rows: np.ndarray, out: Path, prompt: str | list[str], fps: float = 30.0, width: int = 480, height: int = 352,
                ghost: np.ndarray | None = None, mode: str = "kinematic", notes: list[str] | None = None,
                hold: int = 0) -> int:
    """Write an MP4 of CSV rows (T, 26) posed frame by frame (MuJoCo kinematics, no simulation:
    for the physics path the rows are the simulated robot's states); returns frames written.

    prompt: one string, or one per frame (T,), drawn on its frame as '"PROMPT" (MODE)'; ghost:
    optional qpos (T, 26) (quaternion w, x, y, z) drawn as a translucent blue robot
    (`lowlevel.render.GhostRenderer`); notes: optional per-frame second line (e.g. "FELL at 2.1 s",
    "" for none); hold: the last frame repeated this many more times.
    """
    import imageio.v2 as imageio
    import mujoco
    from PIL import Image, ImageDraw

    from envs.lafan1 import csv_to_qpos
    from envs.model import load_h1_model
    from lowlevel.render import GhostRenderer

    model = load_h1_model()
    data = mujoco.MjData(model)
    gr = GhostRenderer(model, width, height)
    for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION):
        gr.renderer.scene.flags[flag] = 0  # software (llvmpipe) rendering: ~3x faster without them
    qpos = csv_to_qpos(rows)
    labels = [prompt] * len(qpos) if isinstance(prompt, str) else list(prompt)
    written = 0

    def write(tmp):  # frames go to the encoder as they are drawn: memory does not grow with the run
        nonlocal written
        with imageio.get_writer(tmp, format="FFMPEG", fps=fps, codec="libx264", quality=7, macro_block_size=16) as w:
            frame = None
            for i, (q, label) in enumerate(zip(qpos, labels)):
                data.qpos[:] = q
                mujoco.mj_kinematics(model, data)
                img = Image.fromarray(gr.render(data, None if ghost is None else ghost[i]))
                draw = ImageDraw.Draw(img)
                draw.text((10, 10), f'"{label}" ({mode})', fill=(255, 255, 255))
                if notes is not None and notes[i]:
                    draw.text((10, 26), notes[i], fill=(255, 80, 80))
                frame = np.asarray(img)
                w.append_data(frame)
            for _ in range(hold if frame is not None else 0):
                w.append_data(frame)
        written = len(qpos) + (hold if len(qpos) else 0)

    try:
        atomic_write(out, write)
    finally:
        gr.close()
    return written


def choose_path(kinematic: bool | None, lowlevel: str | Path | None) -> tuple[Path | None, str | None]:
    """(low-level policy path or None for the kinematic path, notice or None).

    kinematic True: kinematic. A lowlevel path, or kinematic False (--physics): physics with that
    path (default models/lowlevel.pt); a missing file is left to `load_command_policy` to refuse.
    kinematic None (no flag): physics if models/lowlevel.pt exists, else kinematic with a notice.
    """
    from lowlevel.card import default_model_path

    if kinematic is True:
        return None, None
    if lowlevel is not None:
        return Path(lowlevel), None
    default = default_model_path()
    if kinematic is False or default.is_file():
        return default, None
    return None, (f"notice: no low-level policy at {default}: playing the codes without physics (--kinematic); "
                  "pass --lowlevel POLICY for the physics path")


def run_command(prompt: str | list[str], seconds: float | None, out: str | Path, kinematic: bool | None = True,
                model: str | Path | None = None, speed: float | None = None, turn: float | None = None,
                temperature: float = 1.0, top_k: int = 0, seed: int = 0, text_cache: str | Path | None = None,
                video: bool = True, width: int = 480, height: int = 352, segments_per_prompt: int | None = None,
                motion_vae: str | Path | None = None, lowlevel: str | Path | None = None,
                start_pose: str = "nominal", guidance: float = 1.0, candidates: int = 1,
                prompt_goals: list | None = None) -> dict:
    """The whole command; returns the JSON record. prompt: one prompt or a list (the first, then
    each --then); seconds: length of each prompt's part (None: 4 s, or segments_per_prompt
    segments each). kinematic: True = no physics; False = physics required (lowlevel or
    models/lowlevel.pt); None = physics when a policy exists (lowlevel or models/lowlevel.pt), else
    kinematic with a notice (rec["notice"]). lowlevel: a goal="decoded" low-level policy (training
    checkpoint or export). start_pose: the physics start, at rest ("nominal", "decoded" or "zero":
    `highlevel.physics.PhysicsFollower`). guidance: classifier-free guidance weight on text and COM
    (`highlevel.model.HighLevelPrior.sample`; 1 = none). candidates: code sequences drawn per
    segment when --speed/--turn give a goal, the one closest to it kept (`generate_batch`). A physics run ends with the segment in which the robot
    fell: rec["frames"] and rec["segments"] are then fewer than planned, and a prompt never
    reached has "segments": 0. prompt_goals: per prompt (speed m/s, turn rad/s[, direction rad,
    pelvis height m]) or None (no goal),
    e.g. inferred from the text (`highlevel.goal`); used when speed and turn are both None. Raises ValueError / CheckpointError / FileNotFoundError (one line).
    """
    out = Path(out)
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    check_args(prompts, out, temperature, top_k, kinematic, lowlevel, guidance, candidates, speed, turn)
    plan, n_frames = prompt_schedule(len(prompts), seconds, segments_per_prompt)
    if not (16 <= width <= 640 and 16 <= height <= 480):
        raise ValueError(f"--width/--height must lie in 16..640 x 16..480 (the model's offscreen buffer), got {width} x {height}")
    from highlevel.physics import START_POSES

    if start_pose not in START_POSES:
        raise ValueError(f"--start must be one of {', '.join(START_POSES)}, got {start_pose!r}")
    ll_path, notice = choose_path(kinematic, lowlevel)
    if ll_path is not None:
        from highlevel.physics import check_policy_file

        check_policy_file(ll_path)  # before the slow loads
    import torch

    from highlevel.ship import load_highlevel
    from highlevel.text import EmbeddingCache
    from motion_vae.models import load_motion_vae

    text_table = EmbeddingCache(text_cache)  # a file that is not a cache: refused before the slow loads
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    path = Path(model) if model else default_highlevel_path()
    prior, cfg, ck, vae_path = load_highlevel(path, motion_vae)
    vae, _, stats, _ = load_motion_vae(vae_path, "cpu")
    if ll_path is not None:
        from highlevel.physics import PhysicsFollower, load_command_policy

        ll_model, vecnorm, ll_ck = load_command_policy(ll_path, vae_path)
        follower: SegmentFollower = PhysicsFollower(ll_model, vecnorm, ll_ck, vae, stats, start_pose, ll_path)
    else:
        follower = KinematicFollower(vae, stats)
    prompts = [p.strip() for p in prompts]
    table = text_table.encode(prompts)
    emb = table[plan]  # (S, 384)
    goal_dir = goal_height = None  # (height is the video's)
    commanded = {"speed_m_s": speed, "turn_rad_s": turn}
    if speed is None and turn is None and prompt_goals and any(g is not None for g in prompt_goals):
        commanded["from_text"] = [None if g is None else dict(zip(("speed_m_s", "turn_rad_s", "direction_rad", "height_m"), g))
                                  for g in prompt_goals]
        full = [tuple(g) + (np.nan,) * (4 - len(g)) if g is not None else (np.nan,) * 4 for g in prompt_goals]
        speed, turn, goal_dir, goal_height = (np.array([full[k][i] for k in plan]) for i in range(4))
    try:
        codes, rows = generate_batch(prior, follower, emb, len(plan), speed, turn, temperature, top_k, seed, 1, guidance,
                                     candidates, None if follower.kinematic else KinematicFollower(vae, stats), goal_dir, goal_height)
    except BaseException:
        getattr(follower, "close", lambda: None)()
        raise
    codes, rows = codes[0], rows[0][:n_frames]
    n_frames = len(rows)
    spans = []
    for i, p in enumerate(prompts):
        segs = [j for j, k in enumerate(plan[: len(codes)]) if k == i]
        if not segs:  # not reached: the robot fell before
            spans.append({"index": i, "prompt": p, "first_segment": None, "segments": 0, "first_frame": None,
                          "frames": 0, "achieved": None})
            continue
        f0, f1 = SEG * segs[0], min(n_frames, SEG * (segs[-1] + 1))
        spans.append({"index": i, "prompt": p, "first_segment": segs[0], "segments": len(segs), "first_frame": f0,
                      "frames": f1 - f0, "achieved": achieved(rows[max(0, f0 - 1) : f1]) if f1 - f0 >= 2 else None})
    extra = follower.record()
    phys = extra.get("physics")
    seg_phys = phys.pop("segments", None) if phys else None
    rec = {"prompt": prompts[0], "prompts": spans, "seconds_per_prompt": None if segments_per_prompt else (seconds or DEFAULT_SECONDS),
           "segments_per_prompt": segments_per_prompt, "frames": len(rows), "kinematic": follower.kinematic, "model": str(path),
           "step": ck["step"], "motion_vae": str(vae_path), "seed": seed, "temperature": temperature, "top_k": top_k, "guidance": guidance, "candidates": candidates,
           "commanded": commanded,
           "achieved": achieved(rows), **extra,
           "segments": [{"index": j, "first_frame": SEG * j, "prompt_index": int(plan[j]), "codes": c.tolist(),
                         **({"physics": seg_phys[j]} if seg_phys else {})}
                        for j, c in enumerate(codes)],
           "planned_segments": len(plan), "mp4": str(out) if video else None}
    if notice:
        rec["notice"] = notice
    json_path = out.with_suffix(".json")
    atomic_write_json(json_path, rec)
    if video:
        labels = [prompts[plan[f // SEG]] for f in range(len(rows))]
        ghost = notes = None
        hold = 0
        if not follower.kinematic:
            ghost = follower.ghost_qpos(0)[: len(rows)]
            f_fall = follower.fall_frame30(0)
            if f_fall is not None:
                msg = f"FELL at {phys['fell_at_s']:.2f} s ({phys['termination']})"
                notes = ["" if f < f_fall else msg for f in range(len(rows))]
                hold = int(FPS // 2)
        try:
            rec["video_frames"] = render_rows(rows, out, labels, width=width, height=height, ghost=ghost,
                                              mode="kinematic" if follower.kinematic else "physics", notes=notes, hold=hold)
        except Exception as e:  # noqa: BLE001 - the GL stack raises many types
            if isinstance(e, OSError) and e.filename == str(out):  # writing the file failed (a full disk, ...)
                raise
            raise ValueError(f"rendering {out} failed (MUJOCO_GL={os.environ.get('MUJOCO_GL')}: {type(e).__name__}); "
                             f"codes written to {json_path}") from None
        finally:
            getattr(follower, "close", lambda: None)()
    else:
        getattr(follower, "close", lambda: None)()
    return rec
