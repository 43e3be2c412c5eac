"""`daps motion-vae train|eval|encode|decode`: thin wrappers over the library functions."""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer

from daps.args import PRECISION_HELP, bad_parameter, number_list
from daps.cli_options import DEVICE, LAFAN1_DATA
from daps.io import json_text

app = typer.Typer(help="DAPS motion autoencoder on LAFAN1 motions of the Unitree H1 (32 frames -> 64 codes).", no_args_is_help=True)

CkptOpt = typer.Option(None, "--ckpt", help="Checkpoint written by `train`, or an exported model; default: the shipped models/motion_vae.pt.")


@app.command()
def train(
    run_dir: Path = typer.Option(Path("runs/motion_vae"), "--run-dir", help="Folder for checkpoint, CSV and TensorBoard logs."),
    preset: str = typer.Option("cpu", "--preset", help="paper | official | cpu (within 15 min on 2 cores) | cpu-long (a few hours, resumable)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Override the preset's number of steps."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Override the preset's batch size."),
    seed: Optional[int] = typer.Option(None, "--seed"),
    method: Optional[str] = typer.Option(None, "--method", help="daps (AR encoder) | daps-na | fsq | vqvae | gumbel | grmck; default: the preset's."),
    resume: bool = typer.Option(False, "--resume", help="Continue exactly from run_dir/checkpoint.pt (a larger --steps extends the run)."),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Stop after this much training time (all sittings); resumable."),
    st_warmup_steps: Optional[int] = typer.Option(
        None, "--st-warmup-steps", help="Straight-through (FSQ) warm-start steps before DAPS (daps-na on the lattice); 0 = none."
    ),
    decay_steps: Optional[int] = typer.Option(
        None, "--decay-steps", help="Learning rates fall linearly to 0.1x over the run's last N steps (0 = constant); default: the preset's."
    ),
    arch: Optional[str] = typer.Option(None, "--arch", help="transformer | conv (1D-conv ResNet encoder and decoder); default: the preset's."),
    mirror: Optional[bool] = typer.Option(
        None, "--mirror/--no-mirror", help="Also train on each training clip's left-right mirror image; default: the preset's."
    ),
    speeds: Optional[str] = typer.Option(
        None, "--speeds", help="Also train on each training clip played at these speeds, e.g. 0.8,1.25 (speed augmentation); default: the preset's (none)."
    ),
    lattice_bound: Optional[str] = typer.Option(
        None, "--lattice-bound", help="box | tanh: how the DAPS-NA lattice keeps tokens in the grid (tanh = FSQ's bound, so the warm start is FSQ); default: the preset's."
    ),
    weight_decay: Optional[float] = typer.Option(
        None, "--weight-decay", help="AdamW's decoupled weight decay of the VAE's parameters (default: the preset's, 1e-4)."
    ),
    root_height_variance: Optional[float] = typer.Option(
        None, "--root-height-variance", help="sigma^2 of the root-height feature alone (standardised units; default: the preset's, the model's variance 0.25)."
    ),
    precision: str = typer.Option("fp32", "--precision", help=PRECISION_HELP),
    data: Optional[Path] = LAFAN1_DATA,
    device: str = DEVICE,
) -> None:
    """Train the motion VAE (DAPS by default) and print the final validation metrics.
    Data-parallel under torchrun: --batch-size per process (README)."""
    from daps.args import apply_overrides, check_resume, finite_number
    from daps.distributed import is_main
    from motion_vae.config import parse_speeds, preset_config, set_arch, set_method, set_st_warmup
    from motion_vae.train import train_motion_vae

    finite_number(max_minutes, "--max-minutes", positive=True)
    check_resume(run_dir, resume)
    cfg = preset_config(preset)
    if method is not None:  # before the overrides: it sets the method's own step budget
        cfg = set_method(cfg, method)
    cfg = apply_overrides(cfg, steps=steps, batch_size=batch_size, seed=seed, mirror=mirror)
    if speeds is not None:
        with bad_parameter("--speeds"):
            cfg.speeds = parse_speeds(speeds)
    if arch is not None:
        with bad_parameter("--arch"):
            cfg = set_arch(cfg, arch)
    if st_warmup_steps is not None:
        cfg = set_st_warmup(cfg, st_warmup_steps)
    if decay_steps is not None:
        if decay_steps < 0:
            raise typer.BadParameter(f"must be >= 0, got {decay_steps}", param_hint="--decay-steps")
        cfg.optim.decay_steps = decay_steps
    if lattice_bound is not None:
        with bad_parameter("--lattice-bound"):
            cfg.model = replace(cfg.model, lattice_bound=lattice_bound)  # __post_init__ checks it
    if weight_decay is not None:
        if not (weight_decay >= 0 and math.isfinite(weight_decay)):
            raise typer.BadParameter(f"must be a finite number >= 0, got {weight_decay}", param_hint="--weight-decay")
        cfg.optim.weight_decay = weight_decay
    if root_height_variance is not None:
        with bad_parameter("--root-height-variance"):
            cfg.model = replace(cfg.model, root_height_variance=root_height_variance)
    with bad_parameter("--precision"):
        cfg.optim = replace(cfg.optim, precision=precision)
    limit = max_minutes * 60 if max_minutes is not None else None
    metrics = train_motion_vae(cfg, run_dir, data_root=data, device=device, resume=resume, time_limit_s=limit)
    if not is_main():  # torchrun: rank 0 reports
        return
    val = {k: round(v, 4) for k, v in metrics.items() if k.startswith("val/")}
    typer.echo(json_text(val, indent=2))
    typer.echo(f"checkpoint: {run_dir / 'checkpoint.pt'}")


@app.command("eval")
def evaluate(
    ckpt: Optional[Path] = CkptOpt,
    out: Path = typer.Option(None, "--out", help="Output folder for eval.json and reconstruction.png (default: the checkpoint's folder)."),
    segments: int = typer.Option(1000, "--segments", help="Fixed, seeded validation segments to score."),
    train_segments: int = typer.Option(0, "--train-segments", help="Also score this many fixed segments of the run's training clips (train/... keys): the generalisation gap."),
    clip_segments: int = typer.Option(0, "--clip-segments", help="Also score this many fixed segments of each validation clip on its own (clip/<name>/... keys)."),
    greedy: bool = typer.Option(False, "--greedy", help="Score the most likely code of each segment instead of a sample of q(z|x)."),
    data: Optional[Path] = LAFAN1_DATA,
    device: str = DEVICE,
) -> None:
    """Validation beta-ELBO, ELBO, log p, L2, PSNR and codebook usage; JSON + a reconstruction PNG."""
    from motion_vae.evaluate import evaluate_checkpoint
    from daps.shipped import MOTION_VAE, shipped_path

    out = out or (ckpt.parent if ckpt else Path("runs/motion_vae_default_eval"))  # never write into models/
    ckpt = ckpt or shipped_path(MOTION_VAE)
    if segments <= 0 or train_segments < 0 or clip_segments < 0:
        raise typer.BadParameter("--segments must be positive, --train-segments and --clip-segments >= 0")
    metrics = evaluate_checkpoint(ckpt, out, data_root=data, num_segments=segments, device=device,
                                  train_segments=train_segments, clip_segments=clip_segments, greedy=greedy)
    for k, v in metrics.items():
        typer.echo(f"{k:>22s}  {v:.4f}" if isinstance(v, float) else f"{k:>22s}  {v}")
    typer.echo(f"wrote {out / 'eval.json'} and {out / 'reconstruction.png'}")


@app.command()
def encode(
    ckpt: Optional[Path] = CkptOpt,
    clip: Path = typer.Option(..., "--clip", help="Clip CSV (26 columns, 30 Hz)."),
    out: Path = typer.Option(..., "--out", help="Codes CSV: one 32-frame segment per line, 64 indices."),
    seed: int = typer.Option(0, "--seed", help="Seed of the code sample z ~ q(z|x)."),
    greedy: bool = typer.Option(False, "--greedy", help="Most likely code at every step instead of a sample."),
    device: str = DEVICE,
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
    ckpt: Optional[Path] = CkptOpt,
    codes: Path = typer.Option(..., "--codes", help="Codes CSV written by `encode`."),
    out: Path = typer.Option(..., "--out", help="Joint-angle trajectory CSV in the 26-column clip format."),
    anchor: Optional[Path] = typer.Option(None, "--anchor", help="The original clip CSV, if you have it: start each decoded segment at its root x, y and heading there (no drift from segment to segment)."),
    device: str = DEVICE,
) -> None:
    """Latent indices -> 26-column trajectory CSV. Joint angles, root height and tilt are decoded
    frame by frame; the root's x, y and heading are integrated from the decoded velocities, from
    the origin facing +x, so the path drifts from the original over the segments (see `roundtrip`);
    --anchor CLIP restarts every segment at that clip's root pose."""
    from motion_vae.codec import decode_codes, read_codes_csv
    from envs.lafan1 import load_clip_csv, write_clip_csv
    from motion_vae.models import load_motion_vae
    from daps.device import resolve_device

    model, cfg, stats, _ = load_motion_vae(ckpt, resolve_device(device))
    z, num_frames = read_codes_csv(codes, cfg.model.vocab_size, cfg.model.block_size, cfg.model.segment_length)
    anchor_rows = None
    if anchor is not None:
        anchor_rows = load_clip_csv(anchor)
        first = (len(z) - 1) * cfg.model.segment_length
        if len(anchor_rows) <= first or (num_frames is not None and len(anchor_rows) != num_frames):
            raise ValueError(f"--anchor {anchor}: {len(anchor_rows)} frames, the codes describe "
                             f"{num_frames if num_frames is not None else f'more than {first}'} (another clip?)")
    rows = decode_codes(model, stats, z, anchor_rows=anchor_rows)[:num_frames]
    write_clip_csv(out, rows)
    typer.echo(f"wrote {len(rows)} frames to {out}" + (f" (segments anchored to {anchor})" if anchor is not None else ""))


@app.command()
def export(
    ckpt: Path = typer.Option(..., "--ckpt", help="Training checkpoint (RUN/checkpoint.pt)."),
    out: Path = typer.Option(..., "--out", help="Model file to write (e.g. models/motion_vae.pt)."),
    full_precision: bool = typer.Option(False, "--full-precision", help="Keep float32 weights (default float16)."),
) -> None:
    """Slim model file for shipping: weights, config and feature statistics, no optimiser state."""
    from motion_vae.models import export_motion_vae

    path = export_motion_vae(ckpt, out, half=not full_precision)
    typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


@app.command()
def card(
    model: Path = typer.Option(..., "--model", help="Exported model file (models/motion_vae.pt)."),
    eval_json: Path = typer.Option(..., "--eval-json", help="eval.json written by `daps motion-vae eval` of that model."),
    command: str = typer.Option(..., "--command", help="The exact training command, for the record."),
    out: Path = typer.Option(..., "--out", help="Card to write (models/motion_vae.md)."),
    notes: str = typer.Option("", "--notes", help="Extra Markdown lines (e.g. several sittings)."),
    train_commit: Optional[str] = typer.Option(None, "--train-commit", help="Commit of the training code, for runs that did not record it."),
    machine: Optional[str] = typer.Option(None, "--machine", help="Training machine, for runs that did not record it."),
) -> None:
    """Write a model card: command, commit, split, steps, wall time, machine, metrics, slice check."""
    from motion_vae.card import write_card

    c = write_card(model, eval_json, command, out, notes, train_commit, machine)
    typer.echo(f"wrote {out} (slice joint RMSE {c['slice_joint_rmse_rad']:.4f} rad)")


@app.command()
def roundtrip(
    ckpt: Optional[Path] = CkptOpt,
    clip: Path = typer.Option(..., "--clip", help="Clip CSV (26 columns, 30 Hz), e.g. the held-out walk2_subject4.csv."),
    seed: int = typer.Option(0, "--seed", help="Seed of the code samples."),
    device: str = DEVICE,
) -> None:
    """encode -> decode a whole clip: joint and root-height errors, and the root path's error per
    segment (each segment aligned at its start) and over the whole clip (as `decode` writes it,
    and with --anchor), beside two trivial references."""
    from daps.device import resolve_device
    from envs.lafan1 import load_clip_csv
    from motion_vae.evaluate import clip_round_trip
    from motion_vae.models import load_motion_vae

    model, cfg, stats, _ = load_motion_vae(ckpt, resolve_device(device))
    rows = load_clip_csv(clip, min_frames=cfg.model.segment_length)
    res = clip_round_trip(model, stats, rows, cfg.model.segment_length, seed)
    typer.echo(f"{clip.name}: {len(rows)} frames")
    typer.echo(f"{'':>12s}  {'joint RMSE rad':>14s}  {'root height RMSE m':>18s}  {'segment path error m':>20s}  "
               f"{'clip path error m':>17s}  {'clip heading error rad':>22s}")
    for name, e in res.items():
        typer.echo(f"{name:>12s}  {e['joint_rmse_rad']:14.3f}  {e['root_height_rmse_m']:18.3f}  {e['root_xy_drift_m']:20.3f}  "
                   f"{e['root_path_error_m']:17.3f}  {e['heading_error_rad']:22.3f}")
    typer.echo("segment path error: root xy per segment, each aligned at its start; clip path / heading error: over "
               "the whole clip (round_trip: integrated from the clip's first root pose, as `decode` integrates from "
               "the origin; anchored: `decode --anchor`)")


@app.command("compare")
def compare_cmd(
    methods: str = typer.Option("daps-na,fsq,vqvae,gumbel", "--methods", help="Comma-separated: daps, daps-na, fsq, vqvae, gumbel, grmck."),
    seeds: int = typer.Option(2, "--seeds", help="Seeds 0 .. N-1 per method."),
    preset: str = typer.Option("cpu", "--preset", help="Sizes, batch and learning rates shared by all methods (cpu | cpu-long | paper | official)."),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Equal wall time: stop each run after this much training."),
    segments: int = typer.Option(1000, "--segments", help="Fixed validation segments scored at the end of each run."),
    arch: Optional[str] = typer.Option(None, "--arch", help="transformer | conv for every method; default: the preset's."),
    train_seeds: Optional[str] = typer.Option(None, "--train-seeds", help="Train only these seeds, e.g. 1 or 0,1 (split a comparison over processes side by side); the table gathers the finished runs."),
    table_only: bool = typer.Option(False, "--table-only", help="Train nothing: table the runs whose result.json exists."),
    out: Path = typer.Option(Path("runs/motion_compare"), "--out", help="Output folder (runs/, table.md, results.csv/json, curves.png); resumable."),
    data: Optional[Path] = LAFAN1_DATA,
    device: str = DEVICE,
) -> None:
    """Every method x seed at 640 bits and equal wall time: CSV/JSON, Markdown table (mean +- SE), curves."""
    from motion_vae.compare import compare
    from motion_vae.config import METHODS, preset_config, set_arch

    names = [m.strip() for m in methods.split(",") if m.strip()]
    bad = [m for m in names if m not in METHODS]
    if bad or not names:
        raise typer.BadParameter(f"unknown method(s) {', '.join(bad) or '(none given)'}; choose {', '.join(METHODS)}", param_hint="--methods")
    with bad_parameter("--preset"):
        cfg = preset_config(preset)
    if arch is not None:
        with bad_parameter("--arch"):
            set_arch(cfg, arch)
    for name, v in (("--seeds", seeds), ("--segments", segments), ("--max-minutes", max_minutes if max_minutes is not None else 1)):
        if not (v > 0 and math.isfinite(v)):
            raise typer.BadParameter(f"must be positive, got {v}", param_hint=name)
    only = None  # train every seed
    if table_only:
        only = []
    elif train_seeds is not None:
        try:
            only = number_list(train_seeds, "--train-seeds")
        except ValueError:
            only = []
        if not only or not set(only) <= set(range(seeds)):
            raise typer.BadParameter(f"seeds in 0 .. {seeds - 1} separated by commas, got {train_seeds!r}", param_hint="--train-seeds")
    compare(names, seeds, preset, out, max_minutes=max_minutes, segments=segments, data_root=data, device=device, arch=arch, train_seeds=only)
    typer.echo((out / "table.md").read_text())
    typer.echo(f"wrote {out / 'table.md'}, results.csv, results.json and curves.png")
