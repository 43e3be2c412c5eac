"""The video stage of `daps command`: CSV rows posed frame by frame in MuJoCo, drawn offscreen, MP4.

Imported only when a video is asked for (`highlevel.command.write_video`): `--no-video` runs never
load the renderer, imageio or PIL. Needs an OpenGL backend (MUJOCO_GL=egl, set by
highlevel/command.py before MuJoCo is first imported).
"""
from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import mujoco
import numpy as np
from PIL import Image, ImageDraw

from daps.io import atomic_write
from envs.lafan1 import csv_to_qpos
from envs.model import load_h1_model
from lowlevel.render import GhostRenderer


def render_rows(rows: np.ndarray, out: Path, prompt: str | list[str], fps: float = 30.0, width: int = 480, height: int = 352,
                ghost: np.ndarray | None = None, mode: str = "kinematic", notes: list[str] | None = None) -> int:
    """Write an MP4 of CSV rows (T, 26) posed frame by frame (MuJoCo kinematics, no simulation:
    for the physics path the rows are the simulated robot's states); returns frames written.

    prompt: one string, or one per frame (T,), drawn on its frame as '"PROMPT" (MODE)'; ghost:
    optional qpos (T, 26) (quaternion w, x, y, z) drawn as a translucent blue robot
    (`lowlevel.render.GhostRenderer`); notes: optional per-frame second line (e.g. "FELL at 2.1 s",
    "" for none). Written atomically; OSError naming the file where writing fails.
    """
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
            for i, (q, label) in enumerate(zip(qpos, labels)):
                data.qpos[:] = q
                mujoco.mj_kinematics(model, data)
                img = Image.fromarray(gr.render(data, None if ghost is None else ghost[i]))
                draw = ImageDraw.Draw(img)
                draw.text((10, 10), f'"{label}" ({mode})', fill=(255, 255, 255))
                if notes is not None and notes[i]:
                    draw.text((10, 26), notes[i], fill=(255, 80, 80))
                w.append_data(np.asarray(img))
        written = len(qpos)

    try:
        atomic_write(out, write)
    finally:
        gr.close()
    return written
