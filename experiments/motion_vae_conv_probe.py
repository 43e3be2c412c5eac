"""Probe: a 1D-conv FSQ autoencoder on LAFAN1-H1 (64 x 1024 bottleneck): validation and training
joint RMSE (rad) and log p (nats, fixed variance 0.25) against wall time, one JSON line per evaluation.

    python experiments/motion_vae_conv_probe.py --minutes 12 --name conv128                    # blocks on both sides of the resampler
    python experiments/motion_vae_conv_probe.py --minutes 35 --layout frames --name frames      # all blocks at the 32 frames
    python experiments/motion_vae_conv_probe.py --minutes 45 --mirror 1 --name mirror           # + left-right mirrored training clips

A self-contained stand-in written before `--arch conv` existed (docs/motion_vae_cpu_study.md,
docs/motion_vae_cpu_study.md): its own conv stacks and vector_quantize_pytorch's FSQ, plain MSE (the Gaussian
log-likelihood at variance 0.25), AdamW 1e-3, gradient norm clipped at 1; 1000 fixed validation
and 1000 fixed training segments, scored deterministically. The project's version of the
`frames` layout is `daps motion-vae train --arch conv --method fsq`.
"""
import argparse, time, math, json
import numpy as np, torch
from torch import nn
import torch.nn.functional as F
from vector_quantize_pytorch import FSQ
from motion_vae.dataset import load_motion_dataset
from motion_vae.evaluate import raw_unit_errors
ap = argparse.ArgumentParser()
ap.add_argument("--W", type=int, default=128); ap.add_argument("--res", type=int, default=2)
ap.add_argument("--B", type=int, default=32); ap.add_argument("--lr", type=float, default=1e-3)
ap.add_argument("--minutes", type=float, default=12); ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--name", default="conv"); ap.add_argument("--mirror", type=int, default=0); ap.add_argument("--layout", default="split"); ap.add_argument("--eval-every", type=float, default=120)
a = ap.parse_args()
torch.set_num_threads(a.threads); torch.manual_seed(0)
data = load_motion_dataset(None, 32, mirror=bool(a.mirror))
C = data.stats.num_features
class Res(nn.Module):
    def __init__(s, w, d): super().__init__(); s.c1 = nn.Conv1d(w, w, 3, padding=d, dilation=d); s.c2 = nn.Conv1d(w, w, 1)
    def forward(s, x): return x + s.c2(F.relu(s.c1(F.relu(x))))
def stack(w, n): return [Res(w, 3 ** (i % 3)) for i in range(n)]
W, n = a.W, a.res
if a.layout == "split":
    enc = nn.Sequential(nn.Conv1d(C, W, 3, padding=1), *stack(W, n), nn.ConvTranspose1d(W, W, 4, 2, 1), *stack(W, n), nn.ReLU(), nn.Conv1d(W, 4, 1))
    dec = nn.Sequential(nn.Conv1d(4, W, 3, padding=1), *stack(W, n), nn.Conv1d(W, W, 4, 2, 1), *stack(W, n), nn.ReLU(), nn.Conv1d(W, C, 3, padding=1))
else:  # all residual blocks at the 32 frames
    enc = nn.Sequential(nn.Conv1d(C, W, 3, padding=1), *stack(W, 2 * n), nn.ReLU(), nn.ConvTranspose1d(W, W, 4, 2, 1), nn.ReLU(), nn.Conv1d(W, 4, 1))
    dec = nn.Sequential(nn.Conv1d(4, W, 3, padding=1), nn.ReLU(), nn.Conv1d(W, W, 4, 2, 1), *stack(W, 2 * n), nn.ReLU(), nn.Conv1d(W, C, 3, padding=1))
fsq = FSQ([8, 8, 4, 4])
params = list(enc.parameters()) + list(dec.parameters())
print("params", sum(p.numel() for p in params))
opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=1e-4)
def ae(x):  # x (B, 32, C)
    u = enc(x.transpose(1, 2)).transpose(1, 2)  # (B, 64, 4)
    q, idx = fsq(u)
    return dec(q.transpose(1, 2)).transpose(1, 2), idx
val = torch.from_numpy(data.val.fixed(1000, seed=0)); tr = torch.from_numpy(data.train.fixed(1000, seed=0))
def evaluate(x):
    with torch.no_grad():
        mu, idx = ae(x)
    lp = (-(x - mu).square() / (2 * 0.25) - 0.5 * math.log(2 * math.pi * 0.25)).flatten(1).sum(1)
    e = raw_unit_errors(mu.numpy(), x.numpy(), data.stats)
    return round(lp.mean().item(), 1), round(e["joint_rmse_rad"], 4)
rng = np.random.default_rng(0); t0 = time.perf_counter(); step = 0; next_eval = 0
while True:
    el = time.perf_counter() - t0
    if el >= next_eval or el > a.minutes * 60:
        tv = time.perf_counter()
        print(json.dumps({"name": a.name, "step": step, "min": round(el / 60, 2), "val": evaluate(val), "train": evaluate(tr)}), flush=True)
        t0 += time.perf_counter() - tv; next_eval += a.eval_every
        if el > a.minutes * 60: break
    x = torch.from_numpy(data.train.sample(rng, a.B))
    mu, _ = ae(x)
    loss = (x - mu).square().flatten(1).sum(1).mean() * 2  # -log p + const, var 0.25
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(params, 1.0); opt.step(); step += 1
