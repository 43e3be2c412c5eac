"""`daps motion-vae train|eval|encode|decode`: thin wrappers over the library functions."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="DAPS motion autoencoder on LAFAN1 motions of the Unitree H1 (32 frames -> 64 codes).", no_args_is_help=True)

DataOpt = typer.Option(None, "--data", help="LAFAN1-H1 root (holding h1/*.csv); default $DAPS_LAFAN1_DIR or ../shared/data/lafan1_h1.")
DeviceOpt = typer.Option("auto", "--device", help="auto (CUDA when present), cpu or cuda.")


@app.command()
def train(
    run_dir: Path = typer.Option(Path("runs/motion_vae"), "--run-dir", help="Folder for checkpoint, CSV and TensorBoard logs."),
    preset: str = typer.Option("cpu", "--preset", help="paper | official | cpu (about 10 min on 2 cores)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Override the preset's number of steps."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Override the preset's batch size."),
    seed: Optional[int] = typer.Option(None, "--seed"),
    resume: bool = typer.Option(False, "--resume", help="Continue exactly from run_dir/checkpoint.pt."),
    data: Optional[Path] = DataOpt,
    device: str = DeviceOpt,
) -> None:
    """Train the motion VAE with DAPS and print the final validation metrics."""
    from motion_vae.config import apply_overrides, preset_config
    from motion_vae.train import train_motion_vae

    cfg = apply_overrides(preset_config(preset), steps=steps, batch_size=batch_size, seed=seed)
    metrics = train_motion_vae(cfg, run_dir, data_root=data, device=device, resume=resume)
    val = {k: round(v, 4) for k, v in metrics.items() if k.startswith("val/")}
    typer.echo(json.dumps(val, indent=2))
    typer.echo(f"checkpoint: {run_dir / 'checkpoint.pt'}")


@app.command("eval")
def evaluate(
    ckpt: Path = typer.Option(..., "--ckpt", help="Checkpoint written by `train`."),
    out: Path = typer.Option(None, "--out", help="Output folder for eval.json and reconstruction.png (default: the checkpoint's folder)."),
    segments: int = typer.Option(1000, "--segments", help="Fixed, seeded validation segments to score."),
    data: Optional[Path] = DataOpt,
    device: str = DeviceOpt,
) -> None:
    """Validation beta-ELBO, ELBO, log p, L2, PSNR and codebook usage; JSON + a reconstruction PNG."""
    from motion_vae.evaluate import evaluate_checkpoint

    out = out or ckpt.parent
    metrics = evaluate_checkpoint(ckpt, out, data_root=data, num_segments=segments, device=device)
    for k, v in metrics.items():
        typer.echo(f"{k:>22s}  {v:.4f}" if isinstance(v, float) else f"{k:>22s}  {v}")
    typer.echo(f"wrote {out / 'eval.json'} and {out / 'reconstruction.png'}")


@app.command()
def encode(
    ckpt: Path = typer.Option(..., "--ckpt"),
    clip: Path = typer.Option(..., "--clip", help="Clip CSV (26 columns, 30 Hz)."),
    out: Path = typer.Option(..., "--out", help="Codes CSV: one 32-frame segment per line, 64 indices."),
    seed: int = typer.Option(0, "--seed", help="Seed of the code sample z ~ q(z|x)."),
    greedy: bool = typer.Option(False, "--greedy", help="Most likely code at every step instead of a sample."),
    device: str = DeviceOpt,
) -> None:
    """Clip CSV -> latent indices (64 per 32-frame segment)."""
    from motion_vae.codec import encode_clip, write_codes_csv
    from envs.lafan1 import load_clip_csv
    from motion_vae.models import load_motion_vae
    from daps.device import resolve_device

    model, cfg, stats, _ = load_motion_vae(ckpt, resolve_device(device))
    rows = load_clip_csv(clip, min_frames=cfg.model.segment_length)
    codes = encode_clip(model, stats, rows, seed=seed, segment_length=cfg.model.segment_length, greedy=greedy)
    write_codes_csv(out, codes, num_frames=len(rows))
    typer.echo(f"wrote {len(codes)} segments x {codes.shape[1]} codes ({len(rows)} frames) to {out}")


@app.command()
def decode(
    ckpt: Path = typer.Option(..., "--ckpt"),
    codes: Path = typer.Option(..., "--codes", help="Codes CSV written by `encode`."),
    out: Path = typer.Option(..., "--out", help="Joint-angle trajectory CSV in the 26-column clip format."),
    device: str = DeviceOpt,
) -> None:
    """Latent indices -> 26-column trajectory CSV (root integrated from the decoded velocities)."""
    from motion_vae.codec import decode_codes, read_codes_csv
    from envs.lafan1 import write_clip_csv
    from motion_vae.models import load_motion_vae
    from daps.device import resolve_device

    model, cfg, stats, _ = load_motion_vae(ckpt, resolve_device(device))
    z, num_frames = read_codes_csv(codes, cfg.model.vocab_size, cfg.model.block_size, cfg.model.segment_length)
    rows = decode_codes(model, stats, z)[:num_frames]
    write_clip_csv(out, rows)
    typer.echo(f"wrote {len(rows)} frames to {out}")
