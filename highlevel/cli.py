"""`daps highlevel train|eval` and the top-level `daps command`: thin wrappers over the library."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="High-level policy: text + root window + history -> the next segment's 64 motion codes.", no_args_is_help=True)

DataOpt = typer.Option(None, "--data", help="LAFAN1-H1 root (holding h1/*.csv); default $DAPS_LAFAN1_DIR or ../shared/data/lafan1_h1.")
VaeOpt = typer.Option(None, "--motion-vae", help="Motion VAE whose encoder gives the target codes (default: the shipped models/motion_vae.pt).")


@app.command()
def train(
    run_dir: Path = typer.Option(Path("runs/highlevel"), "--run-dir", help="Folder for checkpoint, CSV and TensorBoard logs."),
    preset: str = typer.Option("cpu", "--preset", help="cpu (about an hour on 2 cores) | tiny (seconds, for tests)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Override the preset's number of steps."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Override the preset's batch size."),
    seed: Optional[int] = typer.Option(None, "--seed"),
    resume: bool = typer.Option(False, "--resume", help="Continue from run_dir/checkpoint.pt (a larger --steps extends the run)."),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Stop after this much training time (all sittings); resumable."),
    motion_vae: Optional[Path] = VaeOpt,
    data: Optional[Path] = DataOpt,
) -> None:
    """Train the high-level prior on (context -> next-segment codes) pairs; prints held-out scores."""
    import torch

    from highlevel.train import preset_config, train_prior, with_overrides

    if max_minutes is not None and max_minutes <= 0:
        raise ValueError(f"--max-minutes must be positive, got {max_minutes}")
    if motion_vae is not None and not motion_vae.is_file():
        raise FileNotFoundError(f"--motion-vae {motion_vae}: file not found")
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    cfg = with_overrides(preset_config(preset), steps, batch_size, seed)
    res = train_prior(cfg, run_dir, motion_vae, data, resume, max_minutes * 60 if max_minutes else None)
    typer.echo(json.dumps({"step": res["step"], "train_pairs": res["train_pairs"], "val_pairs": res["val_pairs"],
                           **{k: round(v, 4) for k, v in res["val"].items()}}, indent=1))
    typer.echo(f"checkpoint: {run_dir / 'checkpoint.pt'}")


@app.command("eval")
def evaluate(
    ckpt: Path = typer.Option(..., "--ckpt", help="High-level checkpoint (RUN/checkpoint.pt)."),
    out: Optional[Path] = typer.Option(None, "--out", help="eval.json to write (default: beside the checkpoint)."),
    pairs: int = typer.Option(1024, "--pairs", help="Held-out pairs scored for NLL."),
    rmse_pairs: int = typer.Option(128, "--rmse-pairs", help="Held-out pairs decoded for the joint RMSE."),
    data: Optional[Path] = DataOpt,
) -> None:
    """Held-out next-segment code NLL (nats/token) and decoded joint RMSE (rad) with the full
    context, history only (text/COM masked) and unconditional (all masked)."""
    import torch

    from daps.io import atomic_write_text
    from highlevel.dataset import cached_pairs
    from highlevel.text import EmbeddingCache
    from highlevel.train import evaluate_prior, load_prior
    from motion_vae.models import default_model_path, load_motion_vae

    if pairs < 1 or rmse_pairs < 0:
        raise ValueError(f"--pairs must be >= 1 and --rmse-pairs >= 0, got {pairs}, {rmse_pairs}")
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    model, cfg, ck = load_prior(ckpt)
    vae_path = Path(ck["extra"].get("motion_vae") or default_model_path())
    cache = ckpt.parent.parent / "highlevel_cache"
    val = cached_pairs("val", vae_path, cache, root=data, max_frames=cfg.max_frames, clips=cfg.val_clips,
                       offsets=cfg.offsets, text_cache=EmbeddingCache(cache / "text_embeddings.npz"))
    vae, _, stats, _ = load_motion_vae(vae_path, "cpu")
    m = evaluate_prior(model, val, pairs, rmse_pairs, vae, stats, data, cfg.seed)
    m = {"step": ck["step"], "val_clips": sorted(set(val.clip_names)), "val_pairs": len(val), **m}
    out = out or ckpt.parent / "eval.json"
    atomic_write_text(out, json.dumps(m, indent=1) + "\n")
    for k, v in m.items():
        typer.echo(f"{k:>36s}  {v:.4f}" if isinstance(v, float) else f"{k:>36s}  {v}")
    typer.echo(f"wrote {out}")


def command(
    prompt: str = typer.Argument(..., help="What the robot should do, e.g. \"walk forward\"."),
    seconds: float = typer.Option(4.0, "--seconds", help="Length of the motion (s)."),
    out: Path = typer.Option(Path("command.mp4"), "--out", help="MP4 to write; the codes go to the same name with .json."),
    kinematic: bool = typer.Option(False, "--kinematic", help="Decode the codes to joint angles and play them without physics."),
    model: Optional[Path] = typer.Option(None, "--model", help="High-level checkpoint (default: models/highlevel.pt)."),
    speed: Optional[float] = typer.Option(None, "--speed", help="Commanded root speed (m/s); with --turn gives the COM goal."),
    turn: Optional[float] = typer.Option(None, "--turn", help="Commanded turn rate (rad/s, + = left)."),
    temperature: float = typer.Option(1.0, "--temperature", help="Sampling temperature (0 = greedy)."),
    top_k: int = typer.Option(0, "--top-k", help="Sample among the k most likely codes (0 = all)."),
    seed: int = typer.Option(0, "--seed"),
    text_cache: Optional[Path] = typer.Option(None, "--text-cache", help="Embedding cache (.npz) to read and extend."),
    width: int = typer.Option(480, "--width", help="Video width (pixels)."),
    height: int = typer.Option(352, "--height", help="Video height (pixels)."),
) -> None:
    """Text -> 64 latent codes every 32-frame segment -> motion -> MP4 + JSON."""
    from highlevel.command import run_command

    rec = run_command(prompt, seconds, out, kinematic, model, speed, turn, temperature, top_k, seed, text_cache,
                      width=width, height=height)
    a = rec["achieved"]
    typer.echo(f"{len(rec['segments'])} segments, {rec['frames']} frames; root speed {a['root_speed_m_s']} m/s, "
               f"turn {a['turn_rate_rad_s']} rad/s")
    typer.echo(f"wrote {out} and {out.with_suffix('.json')}")
