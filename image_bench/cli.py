"""`daps image-bench train|eval|compare`: thin wrappers over the library functions."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from daps.args import PRECISION_HELP, bad_parameter
from daps.cli_options import DEVICE
from daps.io import json_text

app = typer.Typer(help="Discrete image autoencoders: every method of paper Table 1 on MNIST / Fashion-MNIST (64 bits), CIFAR-10 (576 bits) and ImageNet-256 (10,240 bits).", no_args_is_help=True)

DataOpt = typer.Option(None, "--data", help="Folder with the IDX files (CIFAR-10: the python batches); default $DAPS_FASHION_MNIST_DIR / "
                       "$DAPS_MNIST_DIR / $DAPS_CIFAR10_DIR / $DAPS_IMAGENET_DIR (train/ and val/ ImageFolder trees), else /usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist).")
DatasetOpt = typer.Option("fashion-mnist", "--dataset", help="fashion-mnist | mnist | cifar10 | imagenet.")
PresetOpt = typer.Option("cpu", "--preset", help="cpu (minutes on 2 cores) | paper (App. H: batch 256, 250k steps).")
METHOD_HELP = "daps | daps-na | gumbel | grmck | ppo | vqvae | fsq, optionally ':BETA_FINAL' (e.g. daps:1.0)."


@app.command()
def train(
    method: str = typer.Option("daps", "--method", help=METHOD_HELP),
    dataset: str = DatasetOpt,
    preset: str = PresetOpt,
    run_dir: Path = typer.Option(Path("runs/image_bench"), "--run-dir", help="Folder for checkpoint, CSV and TensorBoard logs."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Override the preset's number of steps."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Override the preset's batch size."),
    seed: Optional[int] = typer.Option(None, "--seed"),
    resume: bool = typer.Option(False, "--resume", help="Continue exactly from run_dir/checkpoint.pt (a larger --steps extends the run)."),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Stop after this much training time; resumable."),
    precision: str = typer.Option("fp32", "--precision", help=PRECISION_HELP),
    data: Optional[Path] = DataOpt,
    device: str = DEVICE,
) -> None:
    """Train one method and print the final validation metrics. Data-parallel under torchrun:
    --batch-size per process (README)."""
    from dataclasses import replace

    from daps.args import apply_overrides, check_resume, finite_number
    from daps.distributed import is_main
    from image_bench.config import preset_config
    from image_bench.train import train_image_vae

    finite_number(max_minutes, "--max-minutes", positive=True)
    check_resume(run_dir, resume)
    cfg = apply_overrides(preset_config(preset, method, dataset), steps=steps, batch_size=batch_size, seed=seed)
    with bad_parameter("--precision"):
        cfg.optim = replace(cfg.optim, precision=precision)
    limit = max_minutes * 60 if max_minutes is not None else None
    metrics = train_image_vae(cfg, run_dir, data_root=data, device=device, resume=resume, time_limit_s=limit)
    if not is_main():  # torchrun: rank 0 reports
        return
    typer.echo(json_text({k: round(v, 4) for k, v in metrics.items() if k.startswith("val/")}, indent=2))
    typer.echo(f"checkpoint: {run_dir / 'checkpoint.pt'}")


@app.command("eval")
def evaluate(
    ckpt: Path = typer.Option(..., "--ckpt", help="Checkpoint written by `train`."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for eval.json, reconstructions.png, prior_samples.png (default: the checkpoint's)."),
    images: int = typer.Option(0, "--images", help="Validation images to score (0: all 10,000)."),
    fid_weights: Optional[Path] = typer.Option(
        None, "--fid-weights", help="TorchScript FID Inception (NVIDIA's inception-2015-12-05.pt, as StyleGAN2-ADA and clean-fid use): adds fid_recon."
    ),
    data: Optional[Path] = DataOpt,
    device: str = DEVICE,
) -> None:
    """Validation beta-ELBO, ELBO, log p, L2, PSNR, codebook usage (+ FID with --fid-weights); JSON + reconstruction and prior-sample grids."""
    from image_bench.evaluate import evaluate_checkpoint

    out = out or ckpt.parent
    metrics = evaluate_checkpoint(ckpt, out, data_root=data, num_images=images, device=device, fid_weights=fid_weights)
    for k, v in metrics.items():
        typer.echo(f"{k:>16s}  {v:.4f}" if isinstance(v, float) else f"{k:>16s}  {v}")
    typer.echo(f"wrote {out / 'eval.json'}, {out / 'reconstructions.png'}, {out / 'prior_samples.png'}")


@app.command()
def compare(
    methods: str = typer.Option("daps,daps:1.0,daps-na,gumbel,grmck,ppo,vqvae,fsq", "--methods", help="Comma-separated; each " + METHOD_HELP),
    dataset: str = DatasetOpt,
    seeds: int = typer.Option(3, "--seeds", help="Seeds 0 .. N-1 per method."),
    preset: str = PresetOpt,
    out: Path = typer.Option(Path("runs/image_bench_compare"), "--out", help="Output folder (resumable)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Override the preset's steps (all methods)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Override the preset's batch (all methods)."),
    data: Optional[Path] = DataOpt,
    device: str = DEVICE,
) -> None:
    """Every method x seed at equal steps and batch: CSV/JSON, Markdown table (mean +- SE), curves and image grids."""
    from image_bench.compare import compare as run_compare

    names = [m.strip() for m in methods.split(",") if m.strip()]
    run_compare(dataset, names, seeds, preset, out, data_root=data, device=device, steps=steps, batch_size=batch_size)
    typer.echo((out / "table.md").read_text())
    typer.echo(f"wrote {out}/results.csv, results.json, table.md, curves.png, reconstructions.png, prior_samples.png")
