"""Speed of the DAPS core: full training steps and autoregressive sampling.

    python benchmarks/bench_daps.py                      # both configs, CPU (or CUDA if present)
    python benchmarks/bench_daps.py --config paper --steps 3 --threads 2
    python benchmarks/bench_daps.py --config mnist --steps 20 --device cpu
    python benchmarks/bench_daps.py --config mnist --precision fp32,bf16 --no-sampling   # both, side by side

(a) One DAPS training step exactly as `daps.trainer.train` runs it (DAPS.loss: KV-cached sampling
    of B*K codes, teacher-forced log q, decoder; backward; adaptive gradient clipping; AdamW on
    the VAE and on log eta), warm-up steps excluded, median over steps, and the peak resident
    memory of the process (each config runs in its own process so the peaks are separate).
    - paper: the LAFAN config (B 256, K 8, block 64, vocab 1024, H 128, 2+2 layers, segments of
      32 x 127 synthetic standard-normal features), built by `motion_vae.models`.
    - mnist: B 256, K 8, block 8, vocab 256, H 64, 1+1 layers; 28x28 binarised synthetic images,
      padded to 28x32 and cut into 2x4 patches of 14x8 (one Dense(H) each, the authors' patcher),
      and their MLP decoder (Embed(V,64) per token -> 512 -> 64 -> 256 -> 784 Bernoulli logits).
    - cpu-long-ar: the motion VAE comparison's DAPS run (`daps motion-vae train --preset cpu-long
      --method daps`: conv stacks, AR encoder on the FSQ lattice, H 128 x 2, B 32, K 8, 104
      features), built by `motion_vae.config` and `motion_vae.train` as training builds it.
    --precision bf16: the losses under bfloat16 autocast, as `daps.trainer.train` runs them with
    `OptimConfig(precision="bf16")` (weights, optimiser, rewards and log q stay float32).
(b) AR sampling throughput (latent tokens/s) at the paper config, with and without the KV cache,
    and the speed-up.
    "CPU s/step" is the process CPU time per step (all threads): on a shared machine the wall time
    varies with other jobs' load, the CPU time much less (divide by the threads for a best case).
(c) On CUDA (--device auto with a GPU, or --device cuda) the same numbers on the GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from daps.args import precision_list
from daps.generative import BernoulliLikelihood, DiscreteVAE
from daps.nn import TransformerConfig, init_weights
from daps.objectives.daps import DAPS, DAPSConfig
from daps.recognition import ARRecognition
from daps.schedules import BetaSchedule
from daps.trainer import OptimConfig, adaptive_grad_clip_, keep_freed_memory, precision_context

REFERENCE = "reference (authors' JAX, 2-core CPU, anchors.md): LAFAN paper config 50 s/step, 15.7 GB; MNIST ~3 steps/s (0.33-0.36 s/step), 2.5 GB"


class MNISTPatcher(nn.Module):
    """(B, 28, 28) -> zero-pad width to 32 -> 2x4 patches of 14x8 -> Dense(H): (B, 8, H)."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Linear(14 * 8, dim)

    def forward(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        x = F.pad(x, (2, 2))  # (B, 28, 32)
        x = x.view(b, 2, 14, 4, 8).permute(0, 1, 3, 2, 4).reshape(b, 8, 14 * 8)
        return self.proj(x)


class MNISTDecoder(nn.Module):
    """z (B, K, T) -> Embed(V, 64) per token -> flatten -> 64 -> ReLU -> 256 -> ReLU -> 784 logits (B, K, 784)."""

    def __init__(self, vocab: int, block: int, dim: int = 64):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.mlp = nn.Sequential(nn.Linear(block * dim, 64), nn.ReLU(), nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 784))
        init_weights(self)

    def forward(self, z: Tensor) -> Tensor:
        b, k, t = z.shape
        return self.mlp(self.embed(z).view(b, k, -1))


def build(config: str, device: torch.device) -> tuple[nn.Module, DAPS, Tensor]:
    """Model, objective and one synthetic batch for a config name."""
    g = torch.Generator().manual_seed(0)
    if config == "paper":
        from motion_vae.config import MotionVAEConfig
        from motion_vae.models import build_motion_vae

        model = build_motion_vae(MotionVAEConfig(num_features=127))
        x = torch.randn(256, 32, 127, generator=g)
        obj = DAPS(DAPSConfig(num_samples=8, ess_target=0.33, beta=BetaSchedule("exp", 3.0, 0.01)))
    elif config == "mnist":
        cfg = TransformerConfig(vocab_size=256, block_size=8, embed_dim=64, num_heads=4, num_layers=1, mlp_ratio=4)
        rec = ARRecognition(cfg, MNISTPatcher(cfg.embed_dim), num_input_tokens=8)
        model = DiscreteVAE(rec, MNISTDecoder(cfg.vocab_size, cfg.block_size), BernoulliLikelihood())
        x = (torch.rand(256, 28, 28, generator=g) > 0.8).float().flatten(1)  # (B, 784) binary
        rec.input_embed.forward = _unflatten(rec.input_embed.forward)
        obj = DAPS(DAPSConfig(num_samples=8, ess_target=0.33, beta=BetaSchedule("exp", 0.5, 0.01)))
    elif config == "cpu-long-ar":
        from motion_vae.config import preset_config, set_method
        from motion_vae.models import build_motion_vae
        from motion_vae.train import build_run_objective

        cfg = set_method(preset_config("cpu-long"), "daps")
        cfg.model.num_features = 104  # motion_vae.features on LAFAN1-H1
        model = build_motion_vae(cfg.model)
        obj = build_run_objective(cfg, model)
        x = torch.randn(cfg.batch_size, cfg.model.segment_length, 104, generator=g)
    else:
        raise ValueError(f"unknown config {config!r}")
    return model.to(device), obj.to(device), x.to(device)


def _unflatten(fwd):
    return lambda x: fwd(x.view(-1, 28, 28))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_train(config: str, device: torch.device, steps: int, warmup: int, precision: str = "fp32") -> dict:
    """Median s/step of full DAPS training steps (as daps.trainer.train)."""
    if device.type == "cpu":
        keep_freed_memory()  # as daps.trainer.train does
    torch.manual_seed(0)
    model, obj, x = build(config, device)
    optim = OptimConfig()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=optim.lr, weight_decay=optim.weight_decay)
    eta_opt = torch.optim.AdamW(obj.parameters(), lr=optim.eta_lr, weight_decay=optim.eta_weight_decay)
    gen = torch.Generator(device=device).manual_seed(0)
    times, cpu_times = [], []
    total = warmup + steps
    for step in range(total):
        sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        with precision_context(device, precision):
            loss_vae, loss_eta, _ = obj.loss(model, x, step, total, gen)
        opt.zero_grad(set_to_none=True)
        eta_opt.zero_grad(set_to_none=True)
        (loss_vae + loss_eta).backward()
        adaptive_grad_clip_(params, optim.agc_clip)
        opt.step()
        eta_opt.step()
        sync(device)
        if step >= warmup:
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
    s = statistics.median(times)
    out = {"config": config, "device": str(device), "precision": precision, "s_per_step": s, "steps_per_s": 1 / s,
           "min_s": min(times), "cpu_s_per_step": statistics.median(cpu_times), "steps": len(times),
           "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}
    if device.type == "cuda":
        out["peak_cuda_gb"] = torch.cuda.max_memory_allocated() / 1e9
    return out


def bench_sampling(device: torch.device, batch: int, k: int, reps: int) -> dict:
    """Latent tokens/s of AR sampling at the paper config, with and without the KV cache."""
    torch.manual_seed(0)
    model, _, x = build("paper", device)
    rec, x = model.recognition, x[:batch]
    t_max = rec.cfg.block_size
    out = {"device": str(device), "batch": batch, "K": k, "block": t_max}
    for use_cache, n in ((True, reps), (False, 1)):
        rec.sample(x[:2], k, use_cache=use_cache)  # warm-up
        times = []
        for _ in range(n):
            sync(device)
            t0 = time.perf_counter()
            rec.sample(x, k, torch.Generator(device=device).manual_seed(0), use_cache=use_cache)
            sync(device)
            times.append(time.perf_counter() - t0)
        out["cache" if use_cache else "no_cache"] = batch * k * t_max / statistics.median(times)
    out["speedup"] = out["cache"] / out["no_cache"]
    return out


def run_child(args: argparse.Namespace, what: str, device: str, precision: str = "fp32") -> dict:
    """Run one measurement in a fresh process (own peak RSS); returns its JSON result."""
    cmd = [sys.executable, __file__, "--child", what, "--device", device, "--precision", precision, "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--sample-batch", str(args.sample_batch), "--sample-k", str(args.sample_k),
           "--sample-reps", str(args.sample_reps)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    res = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", choices=["paper", "mnist", "cpu-long-ar", "all"], default="all")
    ap.add_argument("--steps", type=int, default=3, help="timed training steps per config (after warm-up)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                    help="auto: CPU, and CUDA too when available")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    ap.add_argument("--sample-batch", type=int, default=64, help="B for the sampling benchmark (K below)")
    ap.add_argument("--sample-k", type=int, default=8)
    ap.add_argument("--sample-reps", type=int, default=3)
    ap.add_argument("--no-sampling", action="store_true", help="skip the KV-cache sampling benchmark")
    ap.add_argument("--precision", default="fp32", help="fp32, bf16, or both as fp32,bf16 (training steps only)")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.child:  # one measurement, printed as JSON
        device = torch.device(args.device)
        if args.child == "sampling":
            res = bench_sampling(device, args.sample_batch, args.sample_k, args.sample_reps)
        else:
            res = bench_train(args.child, device, args.steps, args.warmup, args.precision)
        print(json.dumps(res))
        return

    if args.device == "auto":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    elif args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: CUDA is not available")
    else:
        devices = [args.device]
    configs = ["paper", "mnist", "cpu-long-ar"] if args.config == "all" else [args.config]
    try:
        precisions = precision_list(args.precision)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {os.cpu_count()} CPUs, "
          f"devices {devices}, steps {args.steps} (+{args.warmup} warm-up)", flush=True)

    print("\n(a) full DAPS training step (loss + backward + AGC + AdamW), median over steps")
    print(f"{'config':11s} {'device':6s} {'prec':5s} {'s/step':>9s} {'steps/s':>9s} {'min s':>9s} {'CPU s/step':>11s} {'peak RSS GB':>12s} {'peak CUDA GB':>13s}")
    for dev in devices:
        for c, prec in [(c, p) for c in configs for p in precisions]:
            r = run_child(args, c, dev, prec)
            cuda_mem = f"{r['peak_cuda_gb']:13.2f}" if "peak_cuda_gb" in r else f"{'-':>13s}"
            print(f"{c:11s} {dev:6s} {prec:5s} {r['s_per_step']:9.3f} {r['steps_per_s']:9.3f} {r['min_s']:9.3f} {r['cpu_s_per_step']:11.3f} {r['peak_rss_gb']:12.2f} {cuda_mem}", flush=True)

    if not args.no_sampling:
        print(f"\n(b) AR sampling at the paper config (block 64, vocab 1024), B={args.sample_batch}, K={args.sample_k}: latent tokens/s")
        print(f"{'device':6s} {'KV cache':>12s} {'no cache':>12s} {'speed-up':>9s}")
        for dev in devices:
            r = run_child(args, "sampling", dev)
            print(f"{dev:6s} {r['cache']:12.0f} {r['no_cache']:12.0f} {r['speedup']:8.1f}x", flush=True)
    print("\n" + REFERENCE)


if __name__ == "__main__":
    main()
