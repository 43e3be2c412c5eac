"""Training speed of every method on the paper's MNIST configuration, in one run.

    python benchmarks/bench_image.py                       # all methods, 2 torch threads, CPU (CUDA too if present)
    python benchmarks/bench_image.py --methods daps,fsq --steps 10 --threads 2 --device cpu
    python benchmarks/bench_image.py --methods daps --precision fp32,bf16        # both, side by side
    torchrun --standalone --nproc_per_node 2 benchmarks/bench_image.py --methods daps --threads 1   # 2 processes x 1 thread

Each method is built by `image_bench` with the `paper` preset (batch 256, 8 tokens x 256 codes,
DAPS/PPO K 8, GR-MCK k 100; ViT patcher, 512-unit MLP Bernoulli decoder) and timed over full
training steps exactly as `daps.trainer.train` runs them: objective.loss, backward, adaptive
gradient clipping, AdamW (and eta's AdamW). Warm-up steps are excluded; the figure is the median.
The batch is synthetic (binary 28 x 28, or standard-normal 32 x 32 x 3 with --dataset cifar10):
speed does not depend on the pixels.
"CPU s/step" is the process CPU time per step over all threads: on a shared machine the wall
time moves with other jobs' load, the CPU time much less. Issue target: >= 10 DAPS steps/s on 2 cores.
--precision bf16 computes the losses under bfloat16 autocast as `daps.trainer.train` does with
`OptimConfig(precision="bf16")`. Under torchrun every process takes batch / processes of the
batch and the step includes the all-reduce of the gradients (`daps.distributed`), as in training.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from daps.objectives.registry import METHODS
from daps import distributed
from daps.args import precision_list
from daps.trainer import adaptive_grad_clip_, keep_freed_memory, precision_context
from image_bench.config import preset_config
from image_bench.train import build_run


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_method(method: str, device: torch.device, steps: int, warmup: int, batch: int, dataset: str = "fashion-mnist",
                 precision: str = "fp32") -> dict:
    """Median wall and CPU seconds per training step of one method (the dataset picks the model:
    MNIST's for mnist / fashion-mnist, the CIFAR-10 one for cifar10); batch is the global batch,
    cut into equal shards under torchrun."""
    cfg = preset_config("paper", method, dataset)
    model, objective = build_run(cfg, device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    obj_params = list(objective.parameters())
    eta_opt = torch.optim.AdamW(obj_params, lr=cfg.optim.eta_lr) if obj_params else None
    gen = torch.Generator(device=device).manual_seed(0)
    g = torch.Generator().manual_seed(0)
    shape = (batch // distributed.world_size(), *cfg.model.event_shape)
    x = (torch.rand(shape, generator=g) < 0.3).float() if cfg.model.likelihood == "bernoulli" else torch.randn(shape, generator=g)
    x = x.to(device)
    wall, cpu = [], []
    for step in range(warmup + steps):
        sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        with precision_context(device, precision):
            loss_vae, loss_eta, _ = objective.loss(model, x, step, cfg.steps, gen)
        opt.zero_grad(set_to_none=True)
        if eta_opt is not None:
            eta_opt.zero_grad(set_to_none=True)
        (loss_vae + loss_eta).backward()
        distributed.average_gradients_(params + obj_params)
        adaptive_grad_clip_(params, cfg.optim.agc_clip)
        opt.step()
        if eta_opt is not None:
            eta_opt.step()
        sync(device)
        if step >= warmup:
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    s = statistics.median(wall)
    return {"method": method, "dataset": dataset, "device": str(device), "batch": batch, "precision": precision,
            "processes": distributed.world_size(), "steps_per_s": 1 / s, "s_per_step": s,
            "min_s": min(wall), "cpu_s_per_step": statistics.median(cpu), "steps": len(wall)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated method names")
    ap.add_argument("--steps", type=int, default=8, help="timed steps per method (after warm-up)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256, help="batch size (paper: 256)")
    ap.add_argument("--dataset", default="fashion-mnist", help="fashion-mnist / mnist (the MNIST model) or cifar10 (the CIFAR-10 model)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (0: torch default)")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: CPU, and CUDA too when available")
    ap.add_argument("--precision", default="fp32", help="fp32, bf16, or both as fp32,bf16")
    args = ap.parse_args()
    try:
        precisions = precision_list(args.precision)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    if distributed.launched_world_size() > 1:
        distributed.setup("cpu" if args.device == "cpu" else "auto")
        if args.batch % distributed.world_size():
            raise SystemExit(f"--batch {args.batch} does not split into {distributed.world_size()} equal shards")
    main_process = distributed.is_main()
    if args.threads:
        torch.set_num_threads(args.threads)
    keep_freed_memory()  # as daps.trainer.train does on the CPU
    from daps.provenance import describe_machine

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) if args.device == "auto" else [args.device]
    say = print if main_process else (lambda *a, **k: None)
    say(f"machine: {describe_machine()}; {distributed.world_size()} process(es) x {torch.get_num_threads()} thread(s), global batch {args.batch}")
    say(f"{'method':>8s}  {'device':>6s}  {'prec':>5s}  {'steps/s':>8s}  {'s/step':>7s}  {'min s':>6s}  {'CPU s/step':>10s}")
    results = []
    for dev in devices:
        for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
            for prec in precisions:
                r = bench_method(method, torch.device(dev), args.steps, args.warmup, args.batch, args.dataset, prec)
                results.append(r)
                say(f"{method:>8s}  {dev:>6s}  {prec:>5s}  {r['steps_per_s']:8.2f}  {r['s_per_step']:7.3f}  {r['min_s']:6.3f}  {r['cpu_s_per_step']:10.3f}", flush=True)
    say(json.dumps(results))


if __name__ == "__main__":
    main()
