"""`daps command "walk forward" [--then "turn left" ...]`: text -> codes every segment -> motion -> MP4 + JSON.

Every 32 frames (1.07 s at 30 Hz) the high-level prior samples the next segment's 64 codes from
the current prompt's embedding, the root window and the previous segment's codes (absent for the
first segment). Several prompts (`--then`) take turns: each drives `--seconds` of the run (or
`--segments-per-prompt` segments); the text switches at segment boundaries (`prompt_schedule`),
the history (codes and root window) carries over. The root window's past half is the motion
achieved so far (a standing start at the first segment); its future half is an arc at the
commanded --speed (m/s) and --turn (rad/s) when either is given, else the whole COM input is
masked (text alone).

Each segment's codes go to a *follower* (`highlevel.follower.SegmentFollower`), the hook between
the levels: it turns codes into the motion achieved over that segment, which becomes the history
of the next.
`KinematicFollower` (--kinematic) decodes them with the motion VAE (root integrated from the
decoded velocities, each segment continuing from the last frame of the one before);
`highlevel.physics.PhysicsFollower` (the default when a low-level policy exists: models/lowlevel.pt
or --lowlevel) has a goal="decoded" low-level policy follow their decoding with the simulated H1
in MuJoCo, the robot's state carried from segment to segment, and returns the robot's own motion;
it reports falls, and goes on simulating after one. Either way the run covers exactly the asked
time: ceil(frames / 32) segments, the last one cut (physics: simulated up to the end only).

Path: --kinematic plays the codes without physics; --lowlevel POLICY or --physics ask for physics
(one-line error without a usable policy: missing file, a goal other than "decoded", another motion
VAE); with neither, physics runs if models/lowlevel.pt exists, else the kinematic path with a
one-line notice on stderr.

Outputs: OUT.json and, unless --no-video, OUT.mp4 (current prompt drawn on each frame; physics:
the simulated robot with the decoded motion it is asked to follow as a translucent blue ghost,
"FELL" from the fall on; rendered by `highlevel.video`, imported for the video only). OUT.json:
prompts and their segment spans, codes per segment; achieved root speed = net horizontal
displacement / time, path speed = path length / time, turn rate = net heading change / time, for
the whole run and per prompt; physics: "physics" with the fall (fell_at_s, seconds_before_fall,
termination), COM speed, and per segment the robot's and the decoded motion's speed / turn,
decoded joint error, seconds survived. Both written atomically; the JSON first, so it exists even
where rendering is unavailable.

Stages and their cost on 2 cores: benchmarks/command_speed.py (docs/highlevel.md, Speed).
"""
from __future__ import annotations

import math
import os

os.environ.setdefault("MUJOCO_GL", "egl")  # must precede the first `import mujoco` (the GL backend is fixed then)

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from daps.args import finite_number  # noqa: E402
from daps.io import atomic_write_json, check_writable  # noqa: E402
from daps.shipped import HIGHLEVEL, LOWLEVEL, shipped_path  # noqa: E402
from highlevel.annotate import segment_measures  # noqa: E402
from highlevel.dataset import base_frame_path  # noqa: E402
from highlevel.follower import (FPS, SEG, KinematicFollower, SegmentFollower,  # noqa: E402,F401 (re-exported)
                                achieved, standing_rows)
from highlevel.physics import START_POSES, PhysicsFollower, check_policy_file, load_command_policy  # noqa: E402
from highlevel.sampling import Sampling  # noqa: E402,F401 (re-exported)
from highlevel.ship import default_cache_dir, load_highlevel  # noqa: E402
from highlevel.text import EmbeddingCache  # noqa: E402
from motion_vae.models import load_motion_vae  # noqa: E402

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


def check_args(prompts: list[str], out: Path, temperature: float = Sampling.temperature, top_k: int = Sampling.top_k,
               kinematic: bool | None = True, lowlevel: str | Path | None = None, guidance: float = Sampling.guidance,
               candidates: int = Sampling.candidates, speed: float | None = None, turn: float | None = None,
               video: bool = True) -> None:
    """Raise ValueError (one line naming the flag) for bad command-line values: NaN or infinite
    numbers, |speed| > MAX_SPEED m/s, |turn| > MAX_TURN rad/s, an --out that does not end in .mp4
    (.json also allowed without video), an --out (and its .json) that cannot be written,
    kinematic True with a low-level policy given (contradictory)."""
    if not prompts or not prompts[0] or not prompts[0].strip():
        raise ValueError("PROMPT is empty: describe the motion, e.g. daps command \"walk forward\"")
    if any(not p or not p.strip() for p in prompts[1:]):
        raise ValueError("--then prompt is empty: describe the motion, e.g. --then \"turn left\"")
    suffix = Path(out).suffix.lower()
    if suffix != ".mp4" and (video or suffix != ".json"):
        raise ValueError(f"--out {out}: must end in .mp4" + ("" if video else " or .json"))
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
    if video:
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
    return base_frame_path(rows[-32:], rows[-1])


def generate_batch(prior, follower: SegmentFollower, emb: np.ndarray | None, segments: int, speed: float | None = None,
                   turn: float | None = None, temperature: float = Sampling.temperature, top_k: int = Sampling.top_k,
                   seed: int = 0, batch: int = 1, guidance: float = Sampling.guidance,
                   candidates: int = Sampling.candidates, preview: SegmentFollower | None = None,
                   direction=None, height=None, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """B = batch parallel rollouts: codes (B, S, 64) int64 and achieved rows (B, S*32, 26); S is
    `segments`, or fewer when the follower is done() earlier.

    emb: per-segment prompt embeddings (S, 384) (a (384,) vector is used for every segment), or
    None for no text (the text input masked: the history/COM-only policy). speed (m/s) / turn
    (rad/s): the COM goal of every segment, or per-segment goals (S,), NaN where a segment has
    none (both None: COM masked). direction (rad, 0 = forward, + = left) / height (m, pelvis):
    optional parts of the goal, scalar or per segment (None or NaN: forward travel scored by
    speed alone, the current height). Rollouts draw independent
    codes from one torch generator seeded with seed. guidance: classifier-free guidance weight on
    text and COM (`HighLevelPrior.sample`; 1 = none). candidates N > 1 (with a COM goal): each
    segment draws N code sequences per rollout, decodes them with `preview` (a
    `KinematicFollower`; default: the follower itself when it is kinematic, whose decoding of the
    kept candidate is then the segment) and keeps the one whose root speed and turn rate come
    closest to the goal (`pick_candidate`): sample-and-score planning on top of the prior.
    progress: a tqdm bar over the segments on stderr when it is a terminal.
    Raises ValueError for bad emb or candidates.
    """
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
    for j in tqdm(range(segments), desc="segments", unit="seg", leave=False, disable=None if progress else True):
        goal = use_com and bool(np.isfinite(speeds[j]) and np.isfinite(turns[j]))
        z, seg = next_segment(prior, follower, hist, prev, None if emb is None else emb[j], j,
                              speeds[j] if goal else None, turns[j] if goal else None, g, temperature, top_k, guidance,
                              n, preview, None if np.isnan(dirs[j]) else dirs[j],
                              None if np.isnan(heights[j]) else heights[j])
        codes.append(z)
        rows.append(seg)
        hist, prev = np.concatenate([hist, seg], 1)[:, -64:], z
        if follower.done():
            break
    return np.stack(codes, 1), np.concatenate(rows, 1)


def next_segment(prior, follower: SegmentFollower, hist: np.ndarray, prev: np.ndarray, emb: np.ndarray | None, index: int,
                 speed: float | None, turn: float | None, generator: torch.Generator,
                 temperature: float = Sampling.temperature, top_k: int = Sampling.top_k,
                 guidance: float = Sampling.guidance, candidates: int = 1,
                 preview: SegmentFollower | None = None, direction: float | None = None,
                 height: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The next segment of B rollouts (`generate_batch`'s step; `daps live` calls it one segment at a
    time): hist (B, H >= 32, 26) the motion so far, prev (B, 64) the last segment's codes, emb (384,)
    the prompt's embedding or None (text masked), speed / turn the COM goal or both None (masked),
    direction (rad, + = left of the heading) / height (m) its optional parts (`pick_candidate`).
    With a goal and candidates N > 1, N code sequences per rollout share the encoded context and the
    one `preview` decodes closest to the goal is kept. Returns codes (B, 64) int64 and the
    follower's rows (B, 32, 26)."""
    batch, t_max = len(hist), prior.cfg.block_size
    use_com = speed is not None or turn is not None
    n = candidates if use_com else 1
    past = np.stack([past_window(h) for h in hist])
    fut = (np.stack([future_arc(speed or 0.0, turn or 0.0, float(h[-1, 2]) if height is None else height,
                                direction=direction or 0.0) for h in hist]) if use_com
           else np.zeros((batch, 32, past.shape[-1]), np.float32))
    com = torch.from_numpy(np.concatenate([past, fut], 1).astype(np.float32))
    text = torch.from_numpy(np.repeat(np.asarray(emb, np.float32)[None], batch, 0)) if emb is not None else torch.zeros(batch, 384)
    mask = torch.tensor([[emb is not None, use_com, index > 0]]).expand(batch, 3)
    # rollout b's candidates are rows b*n ... b*n+n-1; they share its encoded context
    z = prior.sample(text, com, torch.from_numpy(prev), mask, temperature, top_k, generator, guidance, samples=n).numpy()
    if n == 1:
        return z, follower.follow(z, hist, index)
    z, seg = pick_candidate(z.reshape(batch, n, t_max), hist, index, preview or follower, speed or 0.0, turn or 0.0,
                            direction, height)
    if preview is not None and preview is not follower:
        seg = follower.follow(z, hist, index)
    return z, seg


def pick_candidate(z: np.ndarray, hist: np.ndarray, index: int, preview: SegmentFollower, speed: float,
                   turn: float, direction: float | None = None, height: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For each rollout, the candidate codes z (B, N, 64) whose decoded segment (continuing from
    hist (B, H, 26), via preview) has the root speed (m/s) and turn rate (rad/s) closest to the
    goal, by (speed error)^2 + (turn error)^2 over the segment and its preceding frame. With a
    direction (rad, 0 = forward, + = left) the speed error is that of the velocity vector in the
    segment's first heading frame; with a height (m), 4 (mean pelvis height error)^2 is added.
    Returns (codes (B, 64), their decoded rows (B, 32, 26))."""
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
    best = err.reshape(b, n).argmin(1)
    return z[np.arange(b), best], seg.reshape(b, n, *seg.shape[1:])[np.arange(b), best]


def generate(prior, vae, stats, emb: np.ndarray, segments: int, speed: float | None = None, turn: float | None = None,
             temperature: float = Sampling.temperature, top_k: int = Sampling.top_k, seed: int = 0,
             guidance: float = Sampling.guidance, candidates: int = Sampling.candidates) -> tuple[np.ndarray, np.ndarray]:
    """One kinematic rollout: codes (S, 64) and decoded CSV rows (S*32, 26) for a prompt
    embedding emb (384,) or per-segment embeddings (S, 384)."""
    c, r = generate_batch(prior, KinematicFollower(vae, stats), emb, segments, speed, turn, temperature, top_k, seed, 1,
                          guidance, candidates)
    return c[0], r[0]


def choose_path(kinematic: bool | None, lowlevel: str | Path | None) -> tuple[Path | None, str | None]:
    """(low-level policy path or None for the kinematic path, notice or None).

    kinematic True: kinematic. A lowlevel path, or kinematic False (--physics): physics with that
    path (default models/lowlevel.pt); a missing file is left to `load_command_policy` to refuse.
    kinematic None (no flag): physics if models/lowlevel.pt exists, else kinematic with a notice.
    """
    if kinematic is True:
        return None, None
    if lowlevel is not None:
        return Path(lowlevel), None
    default = shipped_path(LOWLEVEL)
    if kinematic is False or default.is_file():
        return default, None
    return None, (f"notice: no low-level policy at {default}: playing the codes without physics (--kinematic); "
                  "pass --lowlevel POLICY for the physics path")


def run_command(prompt: str | list[str], seconds: float | None, out: str | Path, kinematic: bool | None = True,
                model: str | Path | None = None, speed: float | None = None, turn: float | None = None,
                temperature: float = Sampling.temperature, top_k: int = Sampling.top_k, seed: int = 0,
                text_cache: str | Path | None = None, video: bool = True, width: int = 480, height: int = 352,
                segments_per_prompt: int | None = None, motion_vae: str | Path | None = None,
                lowlevel: str | Path | None = None, start_pose: str = "nominal", guidance: float = Sampling.guidance,
                candidates: int = Sampling.candidates, prompt_goals: list | None = None, mpc: bool | None = None) -> dict:
    """The whole command; returns the JSON record. prompt: one prompt or a list (the first, then
    each --then); seconds: length of each prompt's part (None: 4 s, or segments_per_prompt
    segments each); the run covers exactly that time (enough segments, the last one cut).
    kinematic: True = no physics; False = physics required (lowlevel or models/lowlevel.pt); None
    = physics when a policy exists (lowlevel or models/lowlevel.pt), else kinematic with a notice
    (rec["notice"]). lowlevel: a goal="decoded" low-level policy (training checkpoint or export).
    start_pose: the physics start, at rest ("nominal", "decoded" or "zero":
    `highlevel.physics.PhysicsFollower`). temperature, top_k, guidance, candidates: `Sampling`.
    video: False writes the JSON only (out may then end in .json) and never imports the renderer.
    text_cache: the prompt embeddings' cache file (default: `default_text_cache`). prompt_goals:
    per prompt (speed m/s, turn rad/s[, direction rad, pelvis height m]) or None (no goal), e.g.
    inferred from the text (`highlevel.goal`); used when speed and turn are both None.
    mpc: who balances the simulated robot. None (default): the sampling MPC (`lowlevel.mpc`, both
    cores, about real time on 2 cores) when the low-level file is a tracker (its task sets the gains
    and action range), else that older policy; True: the MPC (ValueError without the physics path or
    with an older policy); False: the low-level policy (it falls within 1-2 s).
    Raises ValueError / CheckpointError / FileNotFoundError (one line).
    """
    out = Path(out)
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    check_args(prompts, out, temperature, top_k, kinematic, lowlevel, guidance, candidates, speed, turn, video)
    plan, n_frames = prompt_schedule(len(prompts), seconds, segments_per_prompt)
    if video and not (16 <= width <= 640 and 16 <= height <= 480):
        raise ValueError(f"--width/--height must lie in 16..640 x 16..480 (the model's offscreen buffer), got {width} x {height}")
    if start_pose not in START_POSES:
        raise ValueError(f"--start must be one of {', '.join(START_POSES)}, got {start_pose!r}")
    ll_path, notice = choose_path(kinematic, lowlevel)
    if mpc is True and ll_path is None:
        raise ValueError("--mpc balances the simulated robot: it needs the physics path (not --kinematic)")
    if ll_path is not None:
        check_policy_file(ll_path)  # before the slow loads
    given_cache = EmbeddingCache(text_cache) if text_cache else None  # not a cache: refused before the slow loads
    # one thread: the prior's per-token steps are tiny tensors, where a second OpenMP thread costs
    # more than it gives (docs/highlevel.md, Speed: layer norm 16 us on one thread, ms on two)
    torch.set_num_threads(1)
    path = Path(model) if model else shipped_path(HIGHLEVEL)
    prior, cfg, ck, vae_path = load_highlevel(path, motion_vae)
    vae, _, stats, _ = load_motion_vae(vae_path, "cpu")
    if ll_path is not None:
        ll_model, vecnorm, ll_ck = load_command_policy(ll_path, vae_path)
        mpc_cfg = None
        if mpc or (mpc is None and vecnorm is None):
            from lowlevel.mpc import MPPIConfig

            mpc_cfg = MPPIConfig(threads=max(1, min(2, os.cpu_count() or 1)))
        follower: SegmentFollower = PhysicsFollower(ll_model, vecnorm, ll_ck, vae, stats, start_pose, ll_path,
                                                    seconds=n_frames / FPS, mpc=mpc_cfg)
    else:
        follower = KinematicFollower(vae, stats)
    prompts = [p.strip() for p in prompts]
    table = given_cache if given_cache is not None else default_text_cache(path, ck)
    emb = table.encode(prompts)[plan]  # (S, 384)
    goal_dir = goal_height = None  # (height is the video's)
    commanded = {"speed_m_s": speed, "turn_rad_s": turn}
    if speed is None and turn is None and prompt_goals and any(g is not None for g in prompt_goals):
        commanded["from_text"] = [None if g is None else dict(zip(("speed_m_s", "turn_rad_s", "direction_rad", "height_m"), g))
                                  for g in prompt_goals]
        full = [tuple(g) + (np.nan,) * (4 - len(g)) if g is not None else (np.nan,) * 4 for g in prompt_goals]
        speed, turn, goal_dir, goal_height = (np.array([full[k][i] for k in plan]) for i in range(4))
    try:
        codes, rows = generate_batch(prior, follower, emb, len(plan), speed, turn, temperature, top_k, seed, 1, guidance,
                                     candidates, None if follower.kinematic else KinematicFollower(vae, stats),
                                     goal_dir, goal_height, progress=True)
        rec = run_record(follower, prompts, plan, codes[0], rows[0][:n_frames], seconds, segments_per_prompt)
    except BaseException:
        follower.close()
        raise
    rec.update({"model": str(path), "step": ck["step"], "motion_vae": str(vae_path), "seed": seed,
                "temperature": temperature, "top_k": top_k, "guidance": guidance, "candidates": candidates,
                "commanded": commanded, "mp4": str(out) if video else None})
    if notice:
        rec["notice"] = notice
    json_path = out.with_suffix(".json")
    atomic_write_json(json_path, rec)  # first: the codes are kept even where rendering fails
    try:
        if video:
            rec["video_frames"] = write_video(rows[0][:n_frames], follower, prompts, plan, rec, out, width, height)
    finally:
        follower.close()
    return rec


def default_text_cache(path: str | Path, ck: dict) -> EmbeddingCache:
    """The embeddings of prompts already seen, kept beside the high-level model's other caches
    (`highlevel.ship.default_cache_dir`/text_embeddings.npz, as `daps highlevel control` keeps
    them): a prompt seen before skips loading the text encoder (seconds). In memory only where
    that file cannot be written or is not a cache."""
    cache = default_cache_dir(path, ck) / "text_embeddings.npz"
    try:
        check_writable(cache, "text cache")
        return EmbeddingCache(cache)
    except ValueError:
        return EmbeddingCache(None)


def run_record(follower: SegmentFollower, prompts: list[str], plan: list[int], codes: np.ndarray, rows: np.ndarray,
               seconds: float | None, segments_per_prompt: int | None) -> dict:
    """The JSON record of a run (prompts with their segment spans and achieved measures, codes
    per segment, the follower's record) for codes (S, 64), achieved rows (T, 26) cut to the run's
    length and the prompt index of every planned segment."""
    spans = []
    for i, p in enumerate(prompts):
        segs = [j for j, k in enumerate(plan[: len(codes)]) if k == i]
        if not segs:  # not reached: a follower that stopped early (done())
            spans.append({"index": i, "prompt": p, "first_segment": None, "segments": 0, "first_frame": None,
                          "frames": 0, "achieved": None})
            continue
        f0, f1 = SEG * segs[0], min(len(rows), SEG * (segs[-1] + 1))
        spans.append({"index": i, "prompt": p, "first_segment": segs[0], "segments": len(segs), "first_frame": f0,
                      "frames": f1 - f0, "achieved": achieved(rows[max(0, f0 - 1) : f1]) if f1 - f0 >= 2 else None})
    extra = follower.record()
    phys = extra.get("physics")
    seg_phys = phys.pop("segments", None) if phys else None
    return {"prompt": prompts[0], "prompts": spans,
            "seconds_per_prompt": None if segments_per_prompt else (seconds or DEFAULT_SECONDS),
            "segments_per_prompt": segments_per_prompt, "frames": len(rows), "seconds": round(len(rows) / FPS, 4),
            "kinematic": follower.kinematic, "achieved": achieved(rows), **extra,
            "segments": [{"index": j, "first_frame": SEG * j, "prompt_index": int(plan[j]), "codes": c.tolist(),
                          **({"physics": seg_phys[j]} if seg_phys else {})}
                         for j, c in enumerate(codes)],
            "planned_segments": len(plan)}


def write_video(rows: np.ndarray, follower: SegmentFollower, prompts: list[str], plan: list[int], rec: dict, out: Path,
                width: int, height: int) -> int:
    """The optional last stage: the MP4 of a run's achieved rows (T, 26) (`highlevel.video`, imported
    here only), the prompt on every frame; physics: the decoded motion as a ghost and "FELL at"
    from the fall on. Returns the frames written; ValueError (one line) where rendering fails."""
    from highlevel.video import render_rows  # MuJoCo's renderer, imageio, PIL: for the video only

    labels = [prompts[plan[f // SEG]] for f in range(len(rows))]
    ghost = notes = None
    if not follower.kinematic:
        ghost = follower.ghost_qpos(0)[: len(rows)]
        f_fall = follower.fall_frame30(0)
        if f_fall is not None:
            ph = rec["physics"]
            msg = f"FELL at {ph['fell_at_s']:.2f} s ({ph['termination']})"
            notes = ["" if f < f_fall else msg for f in range(len(rows))]
    try:
        return render_rows(rows, out, labels, width=width, height=height, ghost=ghost,
                           mode="kinematic" if follower.kinematic else "physics", notes=notes)
    except Exception as e:  # noqa: BLE001 - the GL stack raises many types
        if isinstance(e, OSError) and e.filename == str(out):  # writing the file failed (a full disk, ...)
            raise
        raise ValueError(f"rendering {out} failed (MUJOCO_GL={os.environ.get('MUJOCO_GL')}: {type(e).__name__}); "
                         f"codes written to {out.with_suffix('.json')}") from None
