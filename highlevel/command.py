"""`daps command "walk forward" --kinematic`: text -> codes every segment -> motion -> MP4 + JSON.

Every 32 frames (1.07 s at 30 Hz) the high-level prior samples the next segment's 64 codes from
the prompt's embedding, the root window and the previous segment's codes (absent for the first
segment). The root window's past half is the motion generated so far (a standing start at the
first segment); its future half is an arc at the commanded --speed (m/s) and --turn (rad/s)
when either is given, else the whole COM input is masked (text alone). With --kinematic the
codes are decoded by the motion VAE into joint angles and a root trajectory (integrated from the
decoded velocities, each segment continuing from the last frame of the one before) and played
without physics (MuJoCo kinematics, offscreen, prompt drawn on the frames). The physics path
through the low-level policy is not built yet (no shipped low-level policy in models/).

Outputs: OUT.mp4 and OUT.json (codes per segment; achieved root speed = net horizontal
displacement / time, path speed = path length / time, turn rate = net heading change / time), both
written atomically; the JSON first, so it exists even where rendering is unavailable.
"""
from __future__ import annotations

import json
import math
import os

os.environ.setdefault("MUJOCO_GL", "egl")  # must precede the first `import mujoco` (the GL backend is fixed then)

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from daps.io import atomic_write, atomic_write_text  # noqa: E402

HIGHLEVEL_MODEL_NAME = "highlevel.pt"
START_HEIGHT = 0.98  # m, pelvis height of the standing start (LAFAN1-H1 upright mean ~0.97-1.02)


def default_highlevel_path() -> Path:
    """$DAPS_MODELS_DIR/highlevel.pt, else models/highlevel.pt of the repository (not shipped yet)."""
    root = os.environ.get("DAPS_MODELS_DIR")
    return Path(root) / HIGHLEVEL_MODEL_NAME if root else Path(__file__).resolve().parents[1] / "models" / HIGHLEVEL_MODEL_NAME


def check_args(prompt: str, seconds: float, out: Path, temperature: float, top_k: int, kinematic: bool) -> None:
    """Raise ValueError (one line naming the flag) for bad command-line values."""
    if not prompt or not prompt.strip():
        raise ValueError("PROMPT is empty: describe the motion, e.g. daps command \"walk forward\"")
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"--seconds must be a positive number, got {seconds}")
    if Path(out).suffix.lower() != ".mp4":
        raise ValueError(f"--out {out}: must end in .mp4")
    if temperature < 0 or top_k < 0:
        raise ValueError(f"--temperature and --top-k must be >= 0, got {temperature} and {top_k}")
    if not kinematic:
        raise ValueError("the physics path needs a shipped low-level policy (none in models/ yet); use --kinematic")


def future_arc(speed: float, turn: float, height: float, n: int = 32, fps: float = 30.0) -> np.ndarray:
    """Commanded root path (n, 3) in the base frame: speed (m/s) along a heading turning at turn (rad/s)."""
    k = np.arange(1, n + 1) / fps
    yaw = turn * k
    step = speed / fps
    x = np.cumsum(step * np.cos(yaw))
    y = np.cumsum(step * np.sin(yaw))
    return np.stack([x, y, np.full(n, height)], 1).astype(np.float32)


def past_window(rows: np.ndarray) -> np.ndarray:
    """Last 32 root positions (32, 3) in the base frame of the last row (rows (T >= 32, 26) CSV)."""
    from envs.lafan1 import csv_to_qpos
    from motion_vae.features import heading_yaw

    w = rows[-32:, :3]
    yaw = float(heading_yaw(csv_to_qpos(rows[-1:])[0, 3:7]))
    c, s = math.cos(yaw), math.sin(yaw)
    d = w[:, :2] - rows[-1, :2]
    return np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], w[:, 2]], 1).astype(np.float32)


def standing_rows(n: int = 32, height: float = START_HEIGHT) -> np.ndarray:
    """n identical CSV rows (n, 26): root at (0, 0, height), identity orientation, joints at 0."""
    r = np.zeros((n, 26))
    r[:, 2], r[:, 6] = height, 1.0
    return r


def generate(prior, vae, stats, emb: np.ndarray, segments: int, speed: float | None = None, turn: float | None = None,
             temperature: float = 1.0, top_k: int = 0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Codes (S, 64) and decoded CSV rows (S*32, 26) for a prompt embedding emb (384,)."""
    import torch

    from motion_vae.codec import decode_codes

    g = torch.Generator().manual_seed(seed)
    hist = standing_rows()
    prev = np.zeros(prior.cfg.block_size, np.int64)
    use_com = speed is not None or turn is not None
    codes, rows = [], []
    for j in range(segments):
        past = past_window(hist)
        fut = future_arc(speed or 0.0, turn or 0.0, float(hist[-1, 2])) if use_com else np.zeros((32, 3), np.float32)
        com = torch.from_numpy(np.concatenate([past, fut])[None])
        mask = torch.tensor([[True, use_com, j > 0]])
        z = prior.sample(torch.from_numpy(emb[None]), com, torch.from_numpy(prev[None]), mask, temperature, top_k, g)[0].numpy()
        seg = decode_codes(vae, stats, z[None], start_rows=hist[-1:] if j > 0 else None)
        codes.append(z)
        rows.append(seg)
        hist, prev = np.concatenate([hist, seg])[-64:], z
    return np.stack(codes), np.concatenate(rows)


def render_rows(rows: np.ndarray, out: Path, prompt: str, fps: float = 30.0, width: int = 480, height: int = 352) -> int:
    """Write an MP4 of CSV rows (T, 26) played kinematically (no physics); returns frames written."""
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
    frames = []
    try:
        for q in qpos:
            data.qpos[:] = q
            mujoco.mj_kinematics(model, data)
            img = Image.fromarray(gr.render(data, None))
            ImageDraw.Draw(img).text((10, 10), f'"{prompt}" (kinematic)', fill=(255, 255, 255))
            frames.append(np.asarray(img))
    finally:
        gr.close()

    def write(tmp):
        with imageio.get_writer(tmp, format="FFMPEG", fps=fps, codec="libx264", quality=7, macro_block_size=16) as w:
            for f in frames:
                w.append_data(f)

    atomic_write(out, write)
    return len(frames)


def run_command(prompt: str, seconds: float, out: str | Path, kinematic: bool = True, model: str | Path | None = None,
                speed: float | None = None, turn: float | None = None, temperature: float = 1.0, top_k: int = 0,
                seed: int = 0, text_cache: str | Path | None = None, video: bool = True,
                width: int = 480, height: int = 352) -> dict:
    """The whole command; returns the JSON record. Raises ValueError / CheckpointError (one line)."""
    out = Path(out)
    check_args(prompt, seconds, out, temperature, top_k, kinematic)
    if not (16 <= width <= 640 and 16 <= height <= 480):
        raise ValueError(f"--width/--height must lie in 16..640 x 16..480 (the model's offscreen buffer), got {width} x {height}")
    import torch

    from daps.trainer import CheckpointError
    from highlevel.text import EmbeddingCache
    from highlevel.train import load_prior
    from motion_vae.models import load_motion_vae

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    path = Path(model) if model else default_highlevel_path()
    if not path.is_file():
        raise CheckpointError(f"{path}: high-level model not found; train one with `daps highlevel train` and pass --model RUN/checkpoint.pt")
    prior, cfg, ck = load_prior(path)
    vae_path = ck.get("extra", {}).get("motion_vae")
    vae, _, stats, _ = load_motion_vae(vae_path if vae_path and Path(vae_path).is_file() else None, "cpu")
    emb = EmbeddingCache(text_cache).encode([prompt.strip()])[0]
    segments = max(1, math.ceil(seconds * 30.0 / 32))
    codes, rows = generate(prior, vae, stats, emb, segments, speed, turn, temperature, top_k, seed)
    rows = rows[: max(2, int(round(seconds * 30.0)))]
    from highlevel.annotate import segment_measures

    m = segment_measures(rows)
    rec = {"prompt": prompt, "seconds": seconds, "frames": len(rows), "kinematic": True, "model": str(path),
           "motion_vae": str(vae_path), "seed": seed, "temperature": temperature, "top_k": top_k,
           "commanded": {"speed_m_s": speed, "turn_rad_s": turn},
           "achieved": {"root_speed_m_s": round(m["speed"], 3),
                        "path_speed_m_s": round(float(np.linalg.norm(np.diff(rows[:, :2], axis=0), axis=1).sum() * 30.0 / (len(rows) - 1)), 3),
                        "turn_rate_rad_s": round(m["yaw_rate"], 3),
                        "mean_root_height_m": round(m["height"], 3)},
           "segments": [{"index": j, "first_frame": 32 * j, "codes": c.tolist()} for j, c in enumerate(codes)],
           "mp4": str(out) if video else None}
    json_path = out.with_suffix(".json")
    atomic_write_text(json_path, json.dumps(rec, indent=1) + "\n")
    if video:
        try:
            rec["video_frames"] = render_rows(rows, out, prompt, width=width, height=height)
        except Exception as e:  # noqa: BLE001 - the GL stack raises many types
            raise ValueError(f"rendering {out} failed (MUJOCO_GL={os.environ.get('MUJOCO_GL')}: {type(e).__name__}); "
                             f"codes written to {json_path}") from None
    return rec
