"""Where `daps command`'s time goes, stage by stage, on the shipped models (docs/highlevel.md, Speed).

Runs what `daps command PROMPT --seconds S [--speed V] [--kinematic]` runs, with the same
functions and the CLI's sampling defaults (`highlevel.sampling.Sampling`), and times each stage:
loading the models, text encoding (the encoder's first load and encode; then a cache hit), the
prior's sampling of the 64 codes per segment (guidance, candidates), the motion VAE's decoding,
candidate scoring, the physics (the low-level policy driving MuJoCo) and the video. Prints a
table of seconds per stage per mode and the real-time factor = simulated seconds / wall seconds
of the motion stages (everything but loading, text and video), by wall clock and by this
process's CPU time (the two agree on an idle machine; on a shared one the CPU figure is the
machine-independent part):

    python benchmarks/command_speed.py --seconds 10                     # 4 modes, video of the kinematic run
    python benchmarks/command_speed.py --seconds 1 --modes kinematic --no-video   # seconds (tests)
"""
from __future__ import annotations

import time

T_START, CPU_START = time.perf_counter(), time.process_time()  # before the imports: they are part of loading

import argparse
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import torch  # noqa: E402

import highlevel.follower as follower_mod  # noqa: E402
import highlevel.physics as physics_mod  # noqa: E402
from highlevel.command import FPS, KinematicFollower, generate_batch, prompt_schedule, run_record, write_video  # noqa: E402
from highlevel.physics import PhysicsFollower, load_command_policy  # noqa: E402
from highlevel.sampling import Sampling  # noqa: E402
from highlevel.ship import load_highlevel  # noqa: E402
from highlevel.text import EmbeddingCache  # noqa: E402
from daps.shipped import LOWLEVEL, shipped_path  # noqa: E402
from motion_vae.models import load_motion_vae  # noqa: E402

MODES = {  # name: (physics, COM goal speed m/s or None)
    "kinematic": (False, None), "kinematic+speed": (False, 1.0), "physics": (True, None), "physics+speed": (True, 1.0)}


class Clock:
    """Wall seconds per stage; `wrap(name, fn)` times every call of fn (nested stages are
    subtracted from the stage around them, so the stages add up to the total)."""

    def __init__(self):
        self.total = defaultdict(float)
        self._stack: list[list] = []

    def wrap(self, name, fn):
        def timed(*a, **k):
            self._stack.append([name, time.perf_counter(), 0.0])
            try:
                return fn(*a, **k)
            finally:
                _, t0, inner = self._stack.pop()
                dt = time.perf_counter() - t0
                self.total[name] += dt - inner
                if self._stack:
                    self._stack[-1][2] += dt
        return timed

    def time(self, name, fn, *a, **k):
        return self.wrap(name, fn)(*a, **k)


def run_mode(name: str, prior, vae, stats, policy, emb, seconds: float, seed: int, video: bool, out_dir: Path,
             width: int, height: int) -> dict:
    """One run of `daps command` in mode `name` (MODES), timed by stage; returns the row of the table."""
    physics, speed = MODES[name]
    clock = Clock()
    plan, n_frames = prompt_schedule(1, seconds)
    # every decode and every physics step of this run goes through the clock
    follower_mod_decode, physics_mod_decode = follower_mod.decode_segments, physics_mod.decode_segments
    follower_mod.decode_segments = clock.wrap("decode (motion VAE)", follower_mod_decode)
    physics_mod.decode_segments = clock.wrap("decode (motion VAE)", physics_mod_decode)
    sample = prior.sample
    prior.sample = clock.wrap("sampling (prior)", sample)
    try:
        if physics:
            model, vecnorm, ck = policy
            f = PhysicsFollower(model, vecnorm, ck, vae, stats, seconds=n_frames / FPS)
            f._follow_one = clock.wrap("physics (policy + MuJoCo)", f._follow_one)
        else:
            f = KinematicFollower(vae, stats)
        preview = None if not physics else KinematicFollower(vae, stats)
        t0, c0 = time.perf_counter(), time.process_time()
        codes, rows = clock.time("other (windows, scoring)", generate_batch, prior, f, emb[plan], len(plan), speed, None,
                                 seed=seed, preview=preview)
        motion_wall, motion_cpu = time.perf_counter() - t0, time.process_time() - c0
        rows = rows[0][:n_frames]
        rec = run_record(f, ["walk forward"], plan, codes[0], rows, seconds, None)
        if video:
            clock.time("video (render + encode)", write_video, rows, f, ["walk forward"], plan, rec,
                       out_dir / f"{name.replace('+', '_')}.mp4", width, height)
        f.close()
    finally:
        follower_mod.decode_segments, physics_mod.decode_segments = follower_mod_decode, physics_mod_decode
        prior.sample = sample
    sim = len(rows) / FPS
    row = {"mode": name, "simulated_s": round(sim, 3), **{k: round(v, 3) for k, v in clock.total.items()},
           "motion_wall_s": round(motion_wall, 3), "real_time_factor": round(sim / motion_wall, 2),
           "motion_cpu_s": round(motion_cpu, 3), "real_time_factor_cpu": round(sim / motion_cpu, 2)}
    if physics:
        row["fell_at_s"] = rec["physics"]["fell_at_s"]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="motion per run (s)")
    ap.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    ap.add_argument("--prompt", default="walk forward")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (daps command uses 1)")
    ap.add_argument("--video", default="kinematic", help="modes whose video is rendered and timed, comma-separated ('' = none)")
    ap.add_argument("--no-video", action="store_true", help="render no video")
    ap.add_argument("--width", type=int, default=480)
    ap.add_argument("--height", type=int, default=352)
    ap.add_argument("--highlevel", default=None, help="default: models/highlevel.pt")
    ap.add_argument("--lowlevel", default=str(shipped_path(LOWLEVEL)))
    ap.add_argument("--text-cache", default=None, help="embedding cache (.npz) to read and extend; the encoder's first "
                    "load is then not timed (default: a temporary cache, after timing the encoder)")
    ap.add_argument("--json", default=None, help="also write the table here")
    a = ap.parse_args()
    modes = [m for m in a.modes.split(",") if m]
    bad = [m for m in modes if m not in MODES]
    if bad:
        sys.exit(f"--modes: unknown {bad}; choose from {', '.join(MODES)}")
    video_modes = set() if a.no_video else {m for m in a.video.split(",") if m}
    torch.set_num_threads(a.threads)
    load = {"imports (torch, MuJoCo, ...)": time.perf_counter() - T_START}
    t = time.perf_counter()
    prior, _, _, vae_path = load_highlevel(a.highlevel)
    load["load prior"] = time.perf_counter() - t
    t = time.perf_counter()
    vae, _, stats, _ = load_motion_vae(vae_path, "cpu")
    load["load motion VAE"] = time.perf_counter() - t
    policy = None
    if any(MODES[m][0] for m in modes):
        t = time.perf_counter()
        policy = load_command_policy(a.lowlevel, vae_path)
        load["load low-level policy"] = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(a.text_cache) if a.text_cache else Path(tmp) / "text.npz"
        if a.text_cache is None:
            t = time.perf_counter()
            EmbeddingCache(None).encode([a.prompt])  # the encoder's first load and encode
            load["text encoding (encoder load + encode)"] = time.perf_counter() - t
        EmbeddingCache(cache).encode([a.prompt])
        t = time.perf_counter()
        emb = EmbeddingCache(cache).encode([a.prompt])
        load["text encoding (cache hit)"] = time.perf_counter() - t
        rows = [run_mode(m, prior, vae, stats, policy, emb, a.seconds, a.seed, m in video_modes, Path(tmp), a.width, a.height)
                for m in modes]
    s = Sampling()
    print(f"daps command stages, {a.seconds:g} s of '{a.prompt}', guidance {s.guidance:g}, candidates {s.candidates} "
          f"(with --speed 1.0), {a.threads} torch thread(s)")
    for k, v in load.items():
        print(f"  {k:42s} {v:7.2f} s")
    summary = ["motion_wall_s", "simulated_s", "real_time_factor", "motion_cpu_s", "real_time_factor_cpu", "fell_at_s"]
    stages = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in summary and k != "mode"]
    print("| stage (s) | " + " | ".join(r["mode"] for r in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for k in stages + summary:
        print(f"| {k} | " + " | ".join(str(r.get(k, "-")) for r in rows) + " |")
    if a.json:
        Path(a.json).write_text(json.dumps({"load": load, "modes": rows, "seconds": a.seconds, "threads": a.threads,
                                            "process_cpu_s": time.process_time() - CPU_START}, indent=1))


if __name__ == "__main__":
    main()
