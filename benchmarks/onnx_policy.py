"""The tracker as ONNX against the torch policy: file size, action agreement, time per control step.

    python benchmarks/onnx_policy.py                          # models/lowlevel.pt, walk2_subject4
    python benchmarks/onnx_policy.py --ckpt RUN/checkpoint.pt --clip run2_subject1 --steps 100

Exports ``--ckpt`` with `lowlevel.deploy.export_onnx` into a temporary folder, rolls the torch policy
out on ``--clip`` from 4 start frames (``--steps`` control steps each, the same observations a robot
would send), and reports the largest |action difference| of onnxruntime against the torch policy's
deterministic actions over those observations, then the median time of one batch-1 call (one
robot, one control step) on one core: onnxruntime (1 intra-op thread) and the torch policy as
evaluation calls it (SB3 ``predict`` after the numpy normalisation, 1 torch thread).
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch


def _median_us(fn, x: np.ndarray, repeats: int) -> float:
    for row in x[:20]:  # warm-up
        fn(row[None])
    times = []
    for i in range(repeats):
        row = x[i % len(x)][None]
        t0 = time.perf_counter()
        fn(row)
        times.append(time.perf_counter() - t0)
    return 1e6 * statistics.median(times)


def main() -> None:
    from envs.mimic.config import MimicConfig
    from envs.mimic.env import MimicVecEnv
    from daps.shipped import LOWLEVEL, shipped_path
    from lowlevel.deploy import export_onnx, require_onnx
    from lowlevel.tracker import load_tracker, make_library, policy_actor

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", type=Path, default=shipped_path(LOWLEVEL))
    p.add_argument("--clip", default="walk2_subject4")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--repeats", type=int, default=2000)
    a = p.parse_args()
    _, ort = require_onnx()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        r = export_onnx(a.ckpt, Path(tmp) / "policy.onnx")
        so = ort.SessionOptions()
        so.intra_op_num_threads = so.inter_op_num_threads = 1
        sess = ort.InferenceSession(r["path"], so, providers=["CPUExecutionProvider"])

    model, ck = load_tracker(a.ckpt)
    act = policy_actor(model, ck)
    task = replace(MimicConfig.from_dict(ck["task"]), mirror=False, assist=False)
    lib = make_library([a.clip], task)
    env = MimicVecEnv(lib, 4, task, adaptive=False)
    last = lib.last_frame(0) - a.steps - 1
    obs = env.reset_to([0] * 4, [int(max(0, last) * i / 3) for i in range(4)])
    seen = []
    for _ in range(a.steps):
        seen.append(obs)
        obs = env.step(act(obs))[0]
    obs = np.concatenate(seen)
    expected = act(obs)
    got = sess.run(["actions"], {"obs": obs})[0]
    run = lambda x: sess.run(["actions"], {"obs": x})  # noqa: E731
    out = {
        "checkpoint": str(a.ckpt), "onnx_bytes": r["size_bytes"], "source_bytes": a.ckpt.stat().st_size,
        "observations": len(obs), "clip": a.clip,
        "max_abs_action_diff": float(np.abs(got - expected).max()),
        "max_abs_action": float(np.abs(expected).max()),
        "onnxruntime_us_per_step_1_thread": round(_median_us(run, obs, a.repeats), 1),
        "torch_predict_us_per_step_1_thread": round(_median_us(act, obs, a.repeats), 1),
        "onnxruntime": ort.__version__, "torch": torch.__version__,
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
