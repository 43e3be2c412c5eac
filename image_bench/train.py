"""Train an image VAE with any method of `daps.objectives.registry` through the core trainer."""
from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from daps import distributed
from daps.objectives.registry import build_objective
from daps.trainer import train
from image_bench.config import CHECKPOINT_KIND, ImageTrainConfig
from image_bench.data import ImageDataset, load_image_dataset
from image_bench.evaluate import evaluate_images
from image_bench.models import build_image_vae


def build_run(cfg: ImageTrainConfig, device: torch.device | str = "cpu") -> tuple[nn.Module, nn.Module]:
    """(model, objective) of a run config, seeded with cfg.seed, on `device`."""
    torch.manual_seed(cfg.seed)
    model = build_image_vae(cfg.model).to(device)
    objective = build_objective(cfg.method_name, cfg.objective, model).to(device)
    return model, objective


def train_image_vae(
    cfg: ImageTrainConfig,
    run_dir: str | Path,
    data_root: str | Path | None = None,
    device: str = "auto",
    resume: bool = False,
    progress: bool = True,
    data: ImageDataset | None = None,
    time_limit_s: float | None = None,
) -> dict[str, float]:
    """Train (or resume) one method on one dataset in `run_dir` (checkpoint, metrics.csv, eval.csv,
    tb/); returns the final train + val metrics. Raises ImageDataError for bad data,
    CheckpointError when resuming another kind or config. Under torchrun (WORLD_SIZE > 1) each
    process trains on its shard of a global batch of cfg.batch_size x WORLD_SIZE (`daps.distributed`)."""
    dev = distributed.setup(device)  # joins the torchrun process group, if any, before the model exists
    data = data or load_image_dataset(cfg.dataset, data_root)
    cfg = copy.deepcopy(cfg)
    model, objective = build_run(cfg, dev)
    val_x = torch.from_numpy(data.val.fixed(cfg.val_images)).to(dev)

    shard = distributed.shard_kwargs()  # {} in one process

    def sample_batch(rng):
        return torch.from_numpy(data.train.sample(rng, cfg.batch_size, **shard)).to(dev)

    def evaluate(m):
        return evaluate_images(m, val_x, cfg.beta_final, to_unit=data.to_unit)

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
        extra={"data_root": str(data.root)},
        seed=cfg.seed,
        log_every=cfg.log_every,
        eval_every=cfg.eval_every,
        ckpt_every=cfg.ckpt_every,
        resume=resume,
        progress=progress,
        time_limit_s=time_limit_s,
    )
