"""The one training loop: optimiser steps, logging (TensorBoard + CSV), checkpoints, resume.

Reads top to bottom like a CleanRL script. Every run lives in one folder:

    run_dir/checkpoint.pt   latest state (atomic write), enough to resume exactly
    run_dir/metrics.csv     one row per logged training step
    run_dir/eval.csv        one row per validation pass
    run_dir/tb/             TensorBoard event files

Exact resume: model, objective (log eta), both optimisers, the step, the torch generator that
draws latent samples and the numpy generator that draws data all come back from the checkpoint.

Data-parallel under torchrun (`daps.distributed`): every process trains on its shard of each
global batch (per-process batch x processes) and averages gradients before each step, so all keep
identical parameters, eta and optimiser states. Rank 0 alone validates, logs, shows progress and
writes the checkpoint, which then also holds every rank's latent-sample generator; it resumes only
with the same number of processes.
"""
from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from daps import distributed
from daps.io import atomic_write

CHECKPOINT_FORMAT = "daps-checkpoint-v1"


class CheckpointError(ValueError):
    """A checkpoint file that is missing, unreadable, or from another kind of model or config."""


@dataclass
class OptimConfig:
    """AdamW for the VAE (lr, weight_decay) preceded by unit-wise adaptive gradient clipping
    (agc_clip, NFNets; 0 disables), and a separate AdamW for log eta (facts Sec. 3).

    recognition_lr: the encoder's own learning rate (None = lr). A slower encoder than decoder
    keeps the codes' entropy while the decoder learns to read them (a two-timescale update).
    decay_steps: warmup-stable-decay schedule: both learning rates stay constant, then fall
        linearly to min_lr_factor x their value over the last decay_steps steps of the run (0 =
        constant throughout). A run extended with --resume decays at its new end.
    precision: "fp32", or "bf16" for mixed precision: the losses are computed under
        `torch.autocast` with bfloat16 matrix products while weights, optimiser states, rewards
        log p(x|z), log q(z|x) and the sampler's CDF stay float32 (`precision_context`). On CPUs
        with AVX512-BF16 or AMX and on recent GPUs the products run several times faster; a
        resume may switch it.
    """

    lr: float = 3e-4
    recognition_lr: float | None = None
    weight_decay: float = 1e-4
    agc_clip: float = 1.0
    eta_lr: float = 1e-3
    eta_weight_decay: float = 0.0
    decay_steps: int = 0
    min_lr_factor: float = 0.1
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")


PRECISIONS = ("fp32", "bf16")


def precision_context(device: torch.device | str, precision: str):
    """The context a step's losses are computed in: bfloat16 autocast for "bf16", none for "fp32"."""
    device_type = torch.device(device).type
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16")


def lr_factor(step: int, steps: int, optim: OptimConfig) -> float:
    """Multiplier of the VAE learning rates at `step` (0-based) of a `steps`-step run: 1, then a
    linear fall to optim.min_lr_factor over the last optim.decay_steps steps."""
    if optim.decay_steps <= 0:
        return 1.0
    left = steps - step  # steps still to take, this one included
    if left > optim.decay_steps:
        return 1.0
    return optim.min_lr_factor + (1.0 - optim.min_lr_factor) * max(left - 1, 0) / optim.decay_steps


def adaptive_grad_clip_(params: list[nn.Parameter], clip: float, eps: float = 1e-3) -> None:
    """Unit-wise adaptive gradient clipping (Brock et al. 2021), in place.

    A unit is one output row of a matrix or kernel (the norm runs over every other axis), and a
    whole vector or scalar (bias, LayerNorm gain, log eta) is one unit, as in
    optax.adaptive_grad_clip, which the authors use. Each unit's gradient norm is capped at
    clip * max(||param unit||, eps).
    """
    for p in params:
        if p.grad is None:
            continue
        dims = tuple(range(1, p.ndim)) if p.ndim > 1 else tuple(range(p.ndim))
        # vector_norm: Tensor.norm over 3 dims (a Conv2d kernel) is rejected as a matrix norm
        p_norm = torch.linalg.vector_norm(p.detach(), dim=dims, keepdim=True) if dims else p.detach().abs()
        g_norm = torch.linalg.vector_norm(p.grad, dim=dims, keepdim=True) if dims else p.grad.abs()
        max_norm = p_norm.clamp_min(eps) * clip
        scale = torch.where(g_norm > max_norm, max_norm / g_norm.clamp_min(1e-6), torch.ones_like(g_norm))
        p.grad.mul_(scale)


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse instead of returning it to the OS.

    A DAPS step allocates and frees many tensors of tens to hundreds of MB; by default glibc
    serves each from fresh mmap'd pages, and the page faults cost about a quarter of the step on
    CPU (paper LAFAN config, 2 cores: 21 -> 15 s/step, peak memory 5.8 -> 8.8 GB). Returns False
    where the C library is not glibc (nothing changes then).
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc mallopt parameter ids
        return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):
        return False


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file in the same folder, then rename: never a half-written file.

    The bytes are serialised in memory and written by Python, so a failing write (a full disk, a
    file size limit) raises OSError naming `path` ("No space left on device"), not the C++
    writer's bare RuntimeError."""

    def write(tmp: str) -> None:
        buf = io.BytesIO()
        torch.save(obj, buf)
        with open(tmp, "wb") as f:
            f.write(buf.getbuffer())

    atomic_write(path, write)


def load_checkpoint(path: Path, kind: str) -> dict:
    """Load a checkpoint written by `train` and check it is of the expected kind.

    Raises:
        CheckpointError: missing file, unreadable/corrupt file, wrong format or kind.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)  # no arbitrary unpickling of files users download
    except Exception as e:  # torch raises many types for a damaged file
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a {CHECKPOINT_FORMAT} checkpoint")
    if ckpt.get("kind") != kind:
        raise CheckpointError(f"{path}: checkpoint holds a {ckpt.get('kind')!r} model, expected {kind!r}")
    return ckpt


# fields of a run's schedule, not of its state: a resumed run may change them (the learning rate
# is set afresh every step; the warm start is checked against the resumed step, `_check_schedule`),
# and the arithmetic of the products (precision), which the state does not depend on
SCHEDULE_FIELDS = ("steps", "optim.decay_steps", "optim.min_lr_factor", "daps.st_warmup_steps", "optim.precision")


def _without_steps(config: dict, defaults: dict | None = None) -> dict:
    """The run config less its schedule (`SCHEDULE_FIELDS`): resuming with a larger `steps`, or
    another decay or warm-start length, continues the same run.

    Optimiser fields and top-level fields in `defaults` added since a checkpoint was written
    compare at their defaults, so older runs still resume."""
    out = {k: v for k, v in config.items() if k != "steps"}
    for k, v in (defaults or {}).items():  # one level deep: {"model": {"arch": ...}} fills fields of config["model"]
        out[k] = {**v, **out.get(k, {})} if isinstance(v, dict) else out.get(k, v)
    if isinstance(out.get("optim"), dict):
        out["optim"] = {**{f.name: f.default for f in fields(OptimConfig)}, **out["optim"]}
    for key in SCHEDULE_FIELDS[1:]:
        section, name = key.split(".")
        if isinstance(out.get(section), dict):
            out[section] = {k: v for k, v in out[section].items() if k != name}
    return out


def _check_schedule(path: Path, old: dict, new: dict, step: int) -> None:
    """Refuse a resume that would move the end of a warm start already passed (or reached) at
    `step`: the state after it is not a warm-start state. Raises CheckpointError."""
    was, now = (c.get("daps", {}).get("st_warmup_steps", 0) for c in (old, new))
    if was != now and step >= min(was, now):
        raise CheckpointError(
            f"{path}: checkpoint at step {step} is past the warm start's end ({was}); it cannot become {now}"
        )


class _NoLog:
    """What processes other than rank 0 log to: nothing."""

    def write(self, step: int, values: dict[str, float]) -> None:
        pass

    def close(self) -> None:
        pass


class MetricsLog:
    """Append-only CSV plus TensorBoard scalars; on resume, rows after the resumed step are dropped."""

    def __init__(self, run_dir: Path, name: str, start_step: int):
        from torch.utils.tensorboard import SummaryWriter

        self.path = run_dir / f"{name}.csv"
        self.fields: list[str] | None = None
        if self.path.exists() and start_step > 0:
            with self.path.open() as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= start_step]
            if rows:
                self.fields = list(rows[0].keys())
                self._rewrite(rows)
            else:
                self.path.unlink()
        elif self.path.exists():
            self.path.unlink()
        self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=start_step if start_step > 0 else None)
        self.prefix = "" if name == "metrics" else f"{name}/"

    def _rewrite(self, rows: list[dict]) -> None:
        with self.path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields)
            w.writeheader()
            w.writerows(rows)

    def write(self, step: int, values: dict[str, float]) -> None:
        row = {"step": step, **values}
        if self.fields is None:
            self.fields = list(row.keys())
            self._rewrite([])
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore").writerow(row)
        for k, v in values.items():
            self.tb.add_scalar(self.prefix + k, v, step)
        self.tb.flush()

    def close(self) -> None:
        self.tb.close()


def train(
    *,
    kind: str,
    model: nn.Module,
    objective: nn.Module,
    sample_batch: Callable[[np.random.Generator], Tensor],
    evaluate: Callable[[nn.Module], dict[str, float]] | None,
    steps: int,
    optim: OptimConfig,
    run_dir: Path,
    config: dict,
    extra: dict | None = None,
    config_defaults: dict | None = None,
    seed: int = 0,
    log_every: int = 10,
    eval_every: int = 0,
    ckpt_every: int = 100,
    resume: bool = False,
    progress: bool = True,
    time_limit_s: float | None = None,
) -> dict[str, float]:
    """Train `model` with `objective` (e.g. `daps.objectives.daps.DAPS`) for `steps` steps.

    Args:
        kind: checkpoint kind tag (e.g. "motion_vae"); resume refuses other kinds.
        sample_batch: draws one training batch (B, *event) on the model's device from a numpy RNG.
            Under torchrun the RNG is identical on every process and sample_batch must return this
            process's shard of one global batch and consume the same draws everywhere
            (`daps.distributed.shard_indices`).
        evaluate: validation metrics of the model, run every `eval_every` steps and at the end
            (rank 0 only under torchrun).
        config: the full run configuration (JSON-able); stored in the checkpoint, and resume
            refuses a checkpoint whose config differs in anything but its schedule
            (`SCHEDULE_FIELDS`: a run can be extended over several sittings, its learning-rate
            decay or a warm start not yet over changed; schedules that depend on the total are
            then stretched from the resumed step on).
        extra: stored in the checkpoint as is (e.g. feature statistics).
        config_defaults: values of config fields that older checkpoints lack (fields added
            later; a dict value holds fields of a nested section), so those checkpoints still
            resume when the fields are at their defaults.
        time_limit_s: stop once this many seconds of training (all sittings, validation
            excluded) are spent: evaluate, checkpoint, return. The step reached is in the
            checkpoint; `resume` continues from it. A new run takes at least one step, so a
            checkpoint always exists afterwards.
    Returns:
        The last training metrics (means over processes) merged with the final validation metrics
        ("val/..." keys); the same on every process.
    Raises:
        CheckpointError: resume from a checkpoint of another kind or config, or one written by
            another number of processes.
        ValueError: time_limit_s not a positive finite number.
    """
    if time_limit_s is not None and not (time_limit_s > 0 and math.isfinite(time_limit_s)):
        raise ValueError(f"time limit must be a positive number of seconds, got {time_limit_s}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    world, rank = distributed.world_size(), distributed.rank()
    main = rank == 0
    if next(model.parameters()).device.type == "cpu":
        keep_freed_memory()
    ckpt_path = run_dir / "checkpoint.pt"
    device = next(model.parameters()).device
    vae_params = [p for p in model.parameters() if p.requires_grad]
    rec_ids = {id(p) for p in model.recognition.parameters()}
    groups = [
        {"params": [p for p in vae_params if id(p) in rec_ids], "lr": optim.lr if optim.recognition_lr is None else optim.recognition_lr},
        {"params": [p for p in vae_params if id(p) not in rec_ids], "lr": optim.lr},
    ]
    base_lrs = [g["lr"] for g in groups]
    opt = torch.optim.AdamW(groups, lr=optim.lr, weight_decay=optim.weight_decay)
    # DAPS has log eta; deterministic objectives (FSQ) have no parameters of their own
    objective_params = list(objective.parameters())
    eta_opt = torch.optim.AdamW(objective_params, lr=optim.eta_lr, weight_decay=optim.eta_weight_decay) if objective_params else None
    synced = vae_params + [p for p in objective_params if p.requires_grad]  # gradients averaged over processes
    torch_gen = torch.Generator(device=device).manual_seed(distributed.rank_seed(seed, rank))  # own latent noise per rank
    np_rng = np.random.default_rng(seed)
    start, elapsed0 = 0, 0.0

    if resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path, kind)
        if ckpt.get("exported"):
            raise CheckpointError(f"{ckpt_path}: an exported model (weights only) cannot be resumed; use the run's checkpoint")
        if _without_steps(ckpt["config"], config_defaults) != _without_steps(config, config_defaults):
            raise CheckpointError(f"{ckpt_path}: checkpoint was written with another config; use a new run dir")
        if ckpt["step"] > steps:
            raise CheckpointError(f"{ckpt_path}: checkpoint is at step {ckpt['step']}, past the {steps} steps asked for")
        _check_schedule(ckpt_path, ckpt["config"], config, ckpt["step"])
        if ckpt.get("world_size", 1) != world:
            raise CheckpointError(
                f"{ckpt_path}: checkpoint was written by {ckpt.get('world_size', 1)} process(es), not {world}; "
                "the global batch and random streams differ, resume with as many (torchrun --nproc_per_node)"
            )
        model.load_state_dict(ckpt["model"])
        objective.load_state_dict(ckpt["objective"])
        opt.load_state_dict(ckpt["optimizer"])
        if eta_opt is not None:
            eta_opt.load_state_dict(ckpt["eta_optimizer"])
        torch_gen.set_state(ckpt["rng"]["torch_ranks"][rank] if world > 1 else ckpt["rng"]["torch"])
        np_rng.bit_generator.state = ckpt["rng"]["numpy"]
        start = ckpt["step"]
        elapsed0 = ckpt.get("train_seconds", 0.0)

    distributed.broadcast_state_(model, objective)  # start from rank 0's weights everywhere, as DDP does

    def train_seconds() -> float:
        """Wall time spent in training steps over every sitting (validation excluded)."""
        return elapsed0 + time.perf_counter() - t0 - eval_seconds

    def save(step: int) -> None:
        """Write the checkpoint from rank 0; collective under torchrun (gathers the ranks' generators)."""
        rng_states = distributed.gather_objects(torch_gen.get_state())
        if not main:
            return
        ckpt = {
            "format": CHECKPOINT_FORMAT,
            "kind": kind,
            "config": config,
            "step": step,
            "train_seconds": train_seconds(),
            "model": model.state_dict(),
            "objective": objective.state_dict(),
            "optimizer": opt.state_dict(),
            "eta_optimizer": eta_opt.state_dict() if eta_opt is not None else {},
            "rng": {"torch": torch_gen.get_state(), "numpy": np_rng.bit_generator.state},
            "extra": extra or {},
        }
        if world > 1:  # absent in one process: its checkpoints stay as they were
            ckpt["world_size"] = world
            ckpt["rng"]["torch_ranks"] = rng_states
        atomic_torch_save(ckpt, ckpt_path)

    log, eval_log = (MetricsLog(run_dir, "metrics", start), MetricsLog(run_dir, "eval", start)) if main else (_NoLog(), _NoLog())
    metrics: dict[str, float] = {}
    val_metrics: dict[str, float] = {}
    skipped, eval_seconds = 0, 0.0
    t0 = time.perf_counter()

    def run_eval(step: int) -> dict[str, float]:
        nonlocal eval_seconds
        te = time.perf_counter()
        values = evaluate(model)
        eval_seconds += time.perf_counter() - te
        eval_log.write(step, {"train_seconds": train_seconds(), **values})
        return values

    if evaluate is not None and start == 0 and main:
        run_eval(0)  # the untrained model: the baseline every curve starts from
    bar = tqdm(range(start, steps), initial=start, total=steps, desc=kind, disable=not (progress and main), dynamic_ncols=True)
    for step in bar:
        if step == start and start > 0 and time_limit_s is not None and distributed.rank0_decides(train_seconds() >= time_limit_s):
            break  # resumed with its time already spent: no extra step (a comparison re-run stays put)
        model.train()
        factor = lr_factor(step, steps, optim)
        for g, base in zip(opt.param_groups, base_lrs):
            g["lr"] = base * factor  # set every step: a resumed optimiser state carries the old lr
        x = sample_batch(np_rng)
        with precision_context(x.device, optim.precision):
            loss_vae, loss_eta, metrics = objective.loss(model, x, step, steps, torch_gen)

        opt.zero_grad(set_to_none=True)
        if eta_opt is not None:
            eta_opt.zero_grad(set_to_none=True)
        finite = bool(torch.isfinite(loss_vae) and torch.isfinite(loss_eta))
        if finite:
            (loss_vae + loss_eta).backward()  # disjoint parameters: each optimiser sees its own loss
        # torchrun: mean gradient over processes (= the global batch's), step only if every loss was finite
        if distributed.average_gradients_(synced, finite):
            if optim.agc_clip > 0:
                adaptive_grad_clip_(vae_params, optim.agc_clip)
            opt.step()
            if eta_opt is not None:
                eta_opt.step()
        else:
            skipped += 1  # like optax.apply_if_finite: drop a non-finite update, keep training

        done = step + 1
        out_of_time = time_limit_s is not None and distributed.rank0_decides(train_seconds() >= time_limit_s)
        last = done == steps or out_of_time
        if done % log_every == 0 or last:
            metrics = distributed.mean_over_processes(metrics)
            metrics["steps_per_s"] = (done - start) / (train_seconds() - elapsed0)
            metrics["lr"] = opt.param_groups[-1]["lr"]
            metrics["skipped_steps"] = skipped
            log.write(done, metrics)
            bar.set_postfix({k: f"{metrics[k]:.4g}" for k in ("log_p", "ess_frac", "eta") if k in metrics})
        if evaluate is not None and ((eval_every and done % eval_every == 0) or last) and main:
            val_metrics = run_eval(done)
        if done % ckpt_every == 0 or last:
            save(done)
        if out_of_time:
            break
    bar.close()
    log.close()
    eval_log.close()
    val_metrics = distributed.broadcast_object(val_metrics)
    metrics.update({f"val/{k}": v for k, v in val_metrics.items()})
    metrics["train_seconds"] = train_seconds()
    return metrics
