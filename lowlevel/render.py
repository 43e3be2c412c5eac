"""Offscreen MuJoCo video of a low-level policy with the reference motion as a translucent ghost.

The robot is simulated exactly as in :mod:`lowlevel.evaluate` (deterministic policy, clip from
frame 0; a ``goal="decoded"`` policy follows the decoding of its codes, the ghost still shows the
true reference).  Every rendered frame draws the scene of the simulated robot and then adds, with
``mujoco.mjv_addGeoms``, the geoms of a second ``MjData`` posed at the reference frame; those
ghost geoms get rgba alpha 0.3 (tinted blue).  The ghost is drawing only: it has no physics.

Needs an OpenGL backend: ``MUJOCO_GL=egl`` (set by default here if unset; Debian package
``libegl1``, with ``libgl1-mesa-dri`` for software rendering) or ``MUJOCO_GL=osmesa``
(``libosmesa6``).  The MP4 (H.264) is written with ``imageio`` + ``imageio-ffmpeg`` to a
temporary file and renamed into place.
"""
from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # only effective if mujoco is not imported yet

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

__all__ = ["render_lowlevel", "GhostRenderer"]


class GhostRenderer:
    """Renders an MjData plus a ghost pose (qpos) of the same model."""

    def __init__(self, model, width: int = 640, height: int = 480, ghost_rgba=(0.3, 0.55, 1.0, 0.3)):
        import mujoco

        self.mj = mujoco
        self.model = model
        self.renderer = mujoco.Renderer(model, height, width)
        self.ghost = mujoco.MjData(model)
        self.opt = mujoco.MjvOption()
        self.pert = mujoco.MjvPerturb()
        self.cam = mujoco.MjvCamera()
        self.cam.distance, self.cam.azimuth, self.cam.elevation = 3.5, 135.0, -15.0
        self.rgba = np.asarray(ghost_rgba, dtype=np.float32)

    def render(self, data, ghost_qpos: np.ndarray | None) -> np.ndarray:
        mj = self.mj
        self.cam.lookat[:] = data.qpos[:3]
        self.cam.lookat[2] = 0.9
        self.renderer.update_scene(data, camera=self.cam)
        scn = self.renderer.scene
        if ghost_qpos is not None:
            self.ghost.qpos[:] = ghost_qpos
            mj.mj_kinematics(self.model, self.ghost)
            n0 = scn.ngeom
            mj.mjv_addGeoms(self.model, self.ghost, self.opt, self.pert, int(mj.mjtCatBit.mjCAT_DYNAMIC), scn)
            for i in range(n0, scn.ngeom):
                scn.geoms[i].rgba[:] = self.rgba
        return self.renderer.render()

    def close(self):
        self.renderer.close()


def render_lowlevel(ckpt: str | Path, clip: str, out: str | Path, seconds: float | None = None, fps: int = 30,
                    width: int = 640, height: int = 480, motion_vae: str | Path | None = None,
                    controller: str = "policy", start: float = 0.0) -> dict:
    """Write an MP4 of ``controller`` ("policy", "hold_pose" or "pd_tracking") tracking ``clip``
    from ``start`` seconds into the clip, for at most ``seconds`` (s) or until a termination.

    Returns {"out", "frames", "seconds_tracked", "termination"}.
    """
    import imageio.v2 as imageio
    import torch

    from envs.tracking import H1TrackingEnv
    from daps.io import atomic_write
    from lowlevel.checkpoint import load_lowlevel
    from lowlevel.environment import make_policy_env
    from lowlevel.evaluate import CONTROLLERS, _reference_actor, codes_for, decoded_for, policy_actor, run_episode
    from lowlevel.motions import select_clips

    torch.set_num_threads(1)
    if controller not in CONTROLLERS:
        raise ValueError(f"controller must be one of {CONTROLLERS}, got {controller!r}")
    out = Path(out)
    if out.suffix.lower() != ".mp4":
        raise ValueError(f"{out}: output must be an .mp4 file")
    model, vecnorm, ck = load_lowlevel(ckpt)
    if clip not in select_clips(clip, "all", ck["config"].get("data_root")):
        raise ValueError(f"unknown clip {clip!r}")
    codes = codes_for(ck, [clip], motion_vae, ck["config"].get("data_root"))
    if controller == "policy":
        env = make_policy_env(ck, clip, codes, 10**9, decoded=decoded_for(ck, codes, motion_vae, ck["config"].get("data_root")))
        actor = policy_actor(model, vecnorm)
    else:
        env = H1TrackingEnv([clip], goal="reference", action_mode="pd", max_episode_steps=10**9,
                            pd_target="absolute" if controller == "hold_pose" else "reference",
                            data_root=ck["config"].get("data_root"))
    last = env.last_frame(clip)
    frame = int(round(start * env.control_hz))
    if not 0 <= frame < last:
        raise ValueError(f"start {start} s is outside clip {clip!r} (0 to {last / env.control_hz:.2f} s)")
    if controller != "policy":
        actor = _reference_actor(env, controller, clip, frame)
    horizon = last - frame
    if seconds is not None:
        horizon = max(1, min(horizon, int(round(seconds * env.control_hz))))
    every = max(1, int(round(env.control_hz / fps)))
    gr = GhostRenderer(env.model, width, height)
    frames: list[np.ndarray] = []
    ref = env._clip.qpos  # noqa: SLF001

    def on_step(e, k):
        if e._steps % every == 0:  # noqa: SLF001
            frames.append(gr.render(e.data, ref[k]))

    try:
        res = run_episode(env, actor, clip, horizon, on_step=on_step, frame=frame)
        # Hold the last frame for half a second so a fall is visible.
        if frames:
            frames.extend([frames[-1]] * (fps // 2))

        def write(tmp):
            with imageio.get_writer(tmp, format="FFMPEG", fps=env.control_hz / every, codec="libx264",
                                    quality=7, macro_block_size=16) as w:
                for f in frames:
                    w.append_data(f)

        atomic_write(out, write)
    finally:
        gr.close()
        env.close()
    return {"out": str(out), "frames": len(frames), "seconds_tracked": res["seconds_tracked"],
            "termination": res["termination"]}
