"""Data-parallel training over processes started by `torchrun` (torch.distributed).

torchrun starts one process per device and tells each its place through environment variables:
WORLD_SIZE (processes in all), RANK (this one's, 0 .. WORLD_SIZE-1), LOCAL_RANK (its index on this
machine), MASTER_ADDR and MASTER_PORT. `setup` reads them, joins the process group (NCCL on CUDA,
gloo on the CPU) and picks the device (cuda:LOCAL_RANK when CUDA is present); with WORLD_SIZE
unset or 1 nothing changes and every helper here is a no-op that returns its input.

The scheme (`daps.trainer.train` uses it):
  * one global batch per step, cut into WORLD_SIZE shards of the per-process batch B (global batch
    = B x WORLD_SIZE): every process holds the same data RNG, draws the same global indices and
    keeps its slice (`shard_indices`);
  * each process's loss is a mean over its shard; `average_gradients_` replaces every gradient by
    the mean over processes (one all_reduce), i.e. the gradient of the global-batch mean loss, so
    identical optimiser steps keep the parameters identical everywhere;
  * statistics that steer the run (DAPS's ESS, which adapts eta; PPO's KL coefficient) go through
    `global_mean`, so every process adapts them from the global batch and stays in sync.
"""
from __future__ import annotations

import atexit
import os
from datetime import timedelta
from typing import Any, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from daps.device import resolve_device

# Validation runs on rank 0 while the others wait in the next collective: allow it an hour.
COLLECTIVE_TIMEOUT = timedelta(hours=1)


def world_size() -> int:
    """Processes in the group (1 without one)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank, 0 .. world_size() - 1 (0 without a group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """True on the one process that writes files and prints (rank 0)."""
    return rank() == 0


def launched_world_size() -> int:
    """WORLD_SIZE as set by torchrun (1 when unset). Raises ValueError for a malformed value."""
    raw = os.environ.get("WORLD_SIZE", "1")
    try:
        n = int(raw)
    except ValueError:
        raise ValueError(f"WORLD_SIZE={raw!r} is not a process count") from None
    if n < 1:
        raise ValueError(f"WORLD_SIZE={n} must be >= 1")
    return n


def setup(device: str = "auto") -> torch.device:
    """The device of this process, after joining the process group when torchrun started several.

    Single process (WORLD_SIZE unset or 1): `daps.device.resolve_device(device)`, nothing else.
    Under torchrun with WORLD_SIZE > 1: 'auto' or 'cuda' gives cuda:LOCAL_RANK when CUDA is
    present ('auto' falls back to the CPU), an explicit 'cuda:N' or 'cpu' is kept; then the group
    is joined through the environment (backend NCCL for CUDA, gloo for the CPU) unless it already
    exists, and left again at exit. Call it before building the model (vector_quantize_pytorch
    decides at construction whether to synchronise across processes).

    Raises:
        ValueError: CUDA asked for and absent, or malformed torchrun variables.
    """
    if launched_world_size() == 1 and not (dist.is_available() and dist.is_initialized()):
        return resolve_device(device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device in ("auto", "cuda"):
        dev = torch.device("cuda", local_rank) if torch.cuda.is_available() else resolve_device(device)
    else:
        dev = resolve_device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", timeout=COLLECTIVE_TIMEOUT)
        atexit.register(_leave)
    return dev


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _comm_device() -> torch.device:
    """Where collective buffers must live: the current CUDA device for NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def rank_seed(seed: int, rank_: int) -> int:
    """The seed of rank `rank_`'s own random stream (latent samples): `seed` itself on rank 0
    (so rank 0 starts like a one-process run), a distinct 63-bit seed from (seed, rank) elsewhere."""
    if rank_ == 0:
        return seed
    return int(np.random.SeedSequence([seed, rank_]).generate_state(1, np.uint64)[0]) >> 1


def shard_indices(rng: np.random.Generator, high: int, batch: int, rank_: int = 0, world: int = 1) -> np.ndarray:
    """This process's `batch` indices (batch,) in [0, high) of a global batch of batch x world.

    Every process passes an identical `rng` and draws the same global indices (so the generator
    stays identical everywhere); rank r keeps entries r*batch .. (r+1)*batch - 1. With world = 1
    this is exactly rng.integers(0, high, size=batch).
    """
    idx = rng.integers(0, high, size=batch * world)
    return idx[rank_ * batch : (rank_ + 1) * batch] if world > 1 else idx


def shard_kwargs() -> dict[str, int]:
    """{} in one process, else {"rank": r, "world": w}: the keywords that make a sampler's
    `sample(rng, batch, **shard_kwargs())` return this process's shard of the global batch."""
    return {} if world_size() == 1 else {"rank": rank(), "world": world_size()}


class _GlobalMean(torch.autograd.Function):
    """Forward: the mean over processes. Backward: the incoming gradient unchanged (see global_mean)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        y = x.detach().clone()
        dist.all_reduce(y)
        return y / dist.get_world_size()

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad


def global_mean(x: Tensor) -> Tensor:
    """The mean of x (any shape, same on every process) over processes; x itself in one process.

    For a statistic m_r that is each process's mean over its shard (equal shard sizes), the result
    is the global-batch mean, identical on every process. Its gradient passes straight to the
    local m_r, so for a loss f(global_mean(m)) each process's gradient is f'(m) dm_r/dtheta, and
    the mean over processes (`average_gradients_`) is f'(m) dm/dtheta: the exact gradient of the
    global-batch loss. Collective: every process must call it.
    """
    if world_size() == 1:
        return x
    return _GlobalMean.apply(x)


def average_gradients_(params: Sequence[nn.Parameter], ok: bool = True) -> bool:
    """Replace each parameter's .grad by its mean over processes, in place, with one all_reduce.

    Args:
        params: the same parameters, in the same order, on every process.
        ok: this process's loss was finite and it ran backward.
    Returns:
        True when `ok` on every process (then step); False otherwise (every process skips).
    A process without a gradient for a parameter counts as zero; a parameter with no gradient
    anywhere keeps .grad None. Collective: every process must call it, once per step.
    In one process: returns `ok` and touches nothing.
    """
    n = world_size()
    if n == 1:
        return ok
    dev = _comm_device()
    parts = [p.grad.detach().flatten() if p.grad is not None else p.detach().new_zeros(p.numel()) for p in params]
    flags = [float(p.grad is not None) for p in params] + [float(ok)]  # small integers: exact in any float type
    flat = torch.cat([t.to(dev) for t in parts] + [torch.tensor(flags, device=dev, dtype=parts[0].dtype if parts else torch.float32)])
    dist.all_reduce(flat)
    counts = flat[-len(flags) :].tolist()
    offset = 0
    for p, count in zip(params, counts):
        g = flat[offset : offset + p.numel()].view_as(p).to(p.device) / n
        offset += p.numel()
        if count == 0:
            p.grad = None
        elif p.grad is None:
            p.grad = g
        else:
            p.grad.copy_(g)
    return counts[-1] == n


def mean_over_processes(values: dict[str, float]) -> dict[str, float]:
    """Each (float) metric averaged over processes: the mean of the per-shard values. Every
    process must pass the same keys in the same order; one process: the dict unchanged."""
    if world_size() == 1 or not values:
        return values
    t = torch.tensor([float(v) for v in values.values()], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return dict(zip(values, (t / world_size()).tolist()))


def rank0_decides(flag: bool) -> bool:
    """Rank 0's `flag` on every process (e.g. out of time: only rank 0's clock excludes
    validation). Collective; `flag` in one process."""
    if world_size() == 1:
        return flag
    t = torch.tensor([float(flag)], device=_comm_device())
    dist.broadcast(t, src=0)
    return bool(t.item() > 0)


def gather_objects(obj: Any) -> list[Any]:
    """[obj of rank 0, obj of rank 1, ...] on every process (pickled); [obj] in one process."""
    if world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any) -> Any:
    """Rank 0's obj on every process (pickled); obj in one process."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, device=_comm_device())
    return box[0]


@torch.no_grad()
def broadcast_state_(*modules: nn.Module) -> None:
    """Copy rank 0's parameters and persistent buffers (the state_dict) into every process's
    modules, in place, as DistributedDataParallel does at construction. One process: nothing."""
    if world_size() == 1:
        return
    dev = _comm_device()
    for module in modules:
        for t in module.state_dict().values():  # detached views of the live tensors
            buf = t.to(dev) if t.device != dev else t
            dist.broadcast(buf, src=0)
            if buf is not t:
                t.copy_(buf)
