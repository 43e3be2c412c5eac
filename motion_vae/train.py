"""Train a motion autoencoder on LAFAN1-H1: data, model, objective (DAPS, DAPS-NA or FSQ), the core trainer."""
from __future__ import annotations

import copy
from pathlib import Path

import torch

from daps import distributed
from daps.objectives.daps import DAPS
from daps.objectives.registry import build_objective
from daps.provenance import describe_machine, git_commit
from daps.trainer import train
from motion_vae.config import CHECKPOINT_KIND, MotionTrainConfig, method_name
from motion_vae.dataset import MotionDataset, load_motion_dataset
from motion_vae.evaluate import evaluate_segments
from motion_vae.models import build_motion_vae


def build_run_objective(cfg: MotionTrainConfig, model: torch.nn.Module) -> torch.nn.Module:
    """The objective of the run's method: DAPS (cfg.daps) for daps / daps-na, else the registry's
    (`daps.objectives.registry`) with cfg.objective."""
    name = method_name(cfg)
    return DAPS(cfg.daps) if name in ("daps", "daps-na") else build_objective(name, cfg.objective, model)


def train_motion_vae(
    cfg: MotionTrainConfig,
    run_dir: str | Path,
    data_root: str | Path | None = None,
    device: str = "auto",
    resume: bool = False,
    progress: bool = True,
    data: MotionDataset | None = None,
    time_limit_s: float | None = None,
) -> dict[str, float]:
    """Train (or resume) a motion VAE in `run_dir`; returns the final train + val metrics.

    time_limit_s: stop early after this much training wall time (see `daps.trainer.train`).
    Under torchrun (WORLD_SIZE > 1) each process trains on its shard of a global batch of
    cfg.batch_size x WORLD_SIZE on cuda:LOCAL_RANK (or the CPU), see `daps.distributed`.

    Raises DataError for bad data, CheckpointError when resuming another kind or config,
    ValueError for a straight-through warm start on an encoder without the lattice head.
    """
    if cfg.daps.st_warmup_steps and not (cfg.model.recognition == "na" and cfg.model.lattice):
        raise ValueError("st_warmup_steps needs the DAPS-NA encoder on the lattice (recognition 'na', lattice true)")
    dev = distributed.setup(device)  # joins the torchrun process group, if any, before the model exists
    data = data or load_motion_dataset(data_root, cfg.model.segment_length, mirror=cfg.mirror, speeds=cfg.speeds)
    cfg = copy.deepcopy(cfg)
    cfg.model.num_features = data.stats.num_features
    torch.manual_seed(cfg.seed)
    model = build_motion_vae(cfg.model).to(dev)
    objective = build_run_objective(cfg, model).to(dev)
    val_x = torch.from_numpy(data.val.fixed(cfg.val_segments, seed=0)).to(dev)

    shard = distributed.shard_kwargs()  # {} in one process

    def sample_batch(rng):
        return torch.from_numpy(data.train.sample(rng, cfg.batch_size, **shard)).to(dev)

    def evaluate(m):
        return evaluate_segments(m, val_x, data.stats, beta_final=cfg.beta_final)

    return train(
        kind=CHECKPOINT_KIND,
        model=model,
        objective=objective,
        sample_batch=sample_batch,
        evaluate=evaluate,
        steps=cfg.steps,
        optim=cfg.optim,
        run_dir=Path(run_dir),
        config=cfg.to_dict(),
        config_defaults=MotionTrainConfig.added_field_defaults(),
        extra={
            "stats": data.stats.to_dict(),
            "feature_names": data.feature_names,
            "train_clips": data.train.names,
            "val_clips": data.val.names,
            "commit": git_commit(),
            "machine": describe_machine(),
        },
        seed=cfg.seed,
        log_every=cfg.log_every,
        eval_every=cfg.eval_every,
        ckpt_every=cfg.ckpt_every,
        resume=resume,
        progress=progress,
        time_limit_s=time_limit_s,
    )


__all__ = ["train_motion_vae"]
