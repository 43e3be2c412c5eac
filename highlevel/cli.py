"""`daps highlevel train|eval|...` and the top-level `daps command` and `daps live`: thin wrappers over the library."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from daps.args import number_list
from daps.cli_options import LAFAN1_DATA
from daps.io import json_text
from highlevel.sampling import Sampling

app = typer.Typer(help="High-level policy: text + root window + history -> the next segment's 64 motion codes.", no_args_is_help=True)

VaeOpt = typer.Option(None, "--motion-vae", help="Motion VAE whose encoder gives the target codes (default: the shipped models/motion_vae.pt).")
# sampling options of `daps command` and `daps highlevel control`: defaults from highlevel.sampling.Sampling
TemperatureOpt = typer.Option(Sampling.temperature, "--temperature", help="Sampling temperature (0 = greedy).")
TopKOpt = typer.Option(Sampling.top_k, "--top-k", help="Sample among the k most likely codes (0 = all).")
GuidanceOpt = typer.Option(Sampling.guidance, "--guidance", help="Classifier-free guidance on text and COM (1 = none; >1 follows them more strongly; docs/highlevel.md: 4 measured best).")
CandidatesOpt = typer.Option(Sampling.candidates, "--candidates", help="With a --speed/--turn goal: code sequences drawn per segment, the one whose decoded speed/turn is closest kept (1 = plain sampling).")


@app.command()
def train(
    run_dir: Path = typer.Option(Path("runs/highlevel"), "--run-dir", help="Folder for checkpoint, CSV and TensorBoard logs."),
    preset: str = typer.Option("cpu", "--preset", help="cpu (about an hour on 2 cores) | tiny (seconds, for tests)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Override the preset's number of steps."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Override the preset's batch size."),
    seed: Optional[int] = typer.Option(None, "--seed"),
    mirror: Optional[bool] = typer.Option(None, "--mirror/--no-mirror", help="Add the training clips' left-right mirror images (default: the preset's)."),
    offsets: Optional[str] = typer.Option(None, "--offsets", help="Start frames of the segment grids per clip, e.g. 0,8,16,24 (default: the preset's 0,16)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from run_dir/checkpoint.pt (a larger --steps extends the run)."),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Stop after this much training time (all sittings); resumable."),
    motion_vae: Optional[Path] = VaeOpt,
    data: Optional[Path] = LAFAN1_DATA,
) -> None:
    """Train the high-level prior on (context -> next-segment codes) pairs; prints held-out scores."""
    import torch

    from daps.args import check_resume, finite_number
    from highlevel.train import preset_config, train_prior, with_overrides

    finite_number(max_minutes, "--max-minutes", positive=True)
    check_resume(run_dir, resume)
    if motion_vae is not None and not motion_vae.is_file():
        raise FileNotFoundError(f"--motion-vae {motion_vae}: file not found")
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    offs = number_list(offsets, "--offsets") if offsets is not None else None
    cfg = with_overrides(preset_config(preset), steps, batch_size, seed, mirror, offs)
    res = train_prior(cfg, run_dir, motion_vae, data, resume, max_minutes * 60 if max_minutes else None)
    typer.echo(json_text({"step": res["step"], "train_pairs": res["train_pairs"], "val_pairs": res["val_pairs"],
                          **{k: round(v, 4) for k, v in res["val"].items()}}))
    typer.echo(f"checkpoint: {run_dir / 'checkpoint.pt'}")


@app.command("eval")
def evaluate(
    ckpt: Optional[Path] = typer.Option(None, "--ckpt", help="High-level checkpoint (RUN/checkpoint.pt) or exported model; default: the shipped models/highlevel.pt."),
    out: Optional[Path] = typer.Option(None, "--out", help="eval.json to write (default: beside a training checkpoint; ./highlevel_eval.json for an exported model)."),
    pairs: int = typer.Option(1024, "--pairs", help="Held-out pairs scored for NLL."),
    rmse_pairs: int = typer.Option(128, "--rmse-pairs", help="Held-out pairs decoded for the joint RMSE."),
    motion_vae: Optional[Path] = typer.Option(None, "--motion-vae", help="Motion VAE to decode with (default: the one the policy was trained against / the shipped one)."),
    data: Optional[Path] = LAFAN1_DATA,
) -> None:
    """Held-out next-segment code NLL (nats/token) and decoded joint RMSE (rad) with the full
    context, history only (text/COM masked) and unconditional (all masked)."""
    from daps.io import atomic_write_json
    from highlevel.card import held_out_metrics
    from daps.shipped import HIGHLEVEL, shipped_path

    path = ckpt or shipped_path(HIGHLEVEL)
    m = held_out_metrics(path, pairs, rmse_pairs, data, motion_vae)
    import torch

    exported = bool(torch.load(path, map_location="cpu", weights_only=True).get("exported"))
    out = out or (Path("highlevel_eval.json") if exported else path.parent / "eval.json")
    atomic_write_json(out, m)
    for k, v in m.items():
        typer.echo(f"{k:>36s}  {v:.4f}" if isinstance(v, float) else f"{k:>36s}  {v}")
    typer.echo(f"wrote {out}")


@app.command()
def export(
    ckpt: Path = typer.Option(..., "--ckpt", help="Training checkpoint (RUN/checkpoint.pt)."),
    out: Path = typer.Option(..., "--out", help="Model file to write (e.g. models/highlevel.pt)."),
    full_precision: bool = typer.Option(False, "--full-precision", help="Keep float32 weights (default: float16 where safe)."),
    motion_vae: Optional[Path] = typer.Option(None, "--motion-vae", help="Motion VAE the run was trained against (default: the file it recorded)."),
) -> None:
    """Slim model file for shipping: weights, config, step, the motion VAE's sha256; no optimiser state."""
    from highlevel.ship import export_highlevel

    if out.suffix != ".pt":
        raise ValueError(f"--out {out}: must end in .pt")
    r = export_highlevel(ckpt, out, half=not full_precision, motion_vae=motion_vae)
    typer.echo(f"wrote {out} ({r['size_bytes'] / 1e6:.2f} MB; {r['half_tensors']} float16 / {r['float32_tensors']} float32 tensors; "
               f"motion VAE {r['motion_vae']} sha256 {r['motion_vae_sha256'][:12]})")


@app.command()
def card(
    model: Optional[Path] = typer.Option(None, "--model", help="Exported model file (default: models/highlevel.pt)."),
    command: str = typer.Option(..., "--command", help="The exact training command, for the record."),
    out: Optional[Path] = typer.Option(None, "--out", help="Card to write (default: the model's name with .md)."),
    eval_json: Optional[Path] = typer.Option(None, "--eval-json", help="eval.json of `daps highlevel eval` for that model (default: measured now)."),
    notes: str = typer.Option("", "--notes", help="Extra Markdown lines (e.g. several sittings)."),
    train_commit: Optional[str] = typer.Option(None, "--train-commit", help="Commit of the training code, for runs that did not record it."),
    machine: Optional[str] = typer.Option(None, "--machine", help="Training machine, for runs that did not record it."),
    data: Optional[Path] = LAFAN1_DATA,
) -> None:
    """Write the model card: command, commit, split, steps, wall time, machine, motion VAE sha256,
    held-out NLL per context, and the slice check the shipped-model test re-measures."""
    from highlevel.card import write_card
    from daps.shipped import HIGHLEVEL, shipped_path

    model = model or shipped_path(HIGHLEVEL)
    if eval_json is not None and not eval_json.is_file():
        raise FileNotFoundError(f"--eval-json {eval_json}: file not found")
    c = write_card(model, command, out or model.with_suffix(".md"), notes, train_commit, machine, eval_json, data)
    typer.echo(f"wrote {out or model.with_suffix('.md')} (slice NLL text+com+history {c['slice_nll/text+com+history']:.4f} nats/token)")


@app.command()
def control(
    ckpt: Optional[Path] = typer.Option(None, "--ckpt", help="High-level checkpoint or exported model; default: the shipped models/highlevel.pt."),
    out: Path = typer.Option(..., "--out", help="Folder for control.json and control.md."),
    rollouts: int = typer.Option(10, "--rollouts", help="Kinematic rollouts per prompt."),
    segments: int = typer.Option(5, "--segments", help="32-frame segments per rollout (>= 2; the first is not scored)."),
    seed: int = typer.Option(0, "--seed"),
    temperature: float = TemperatureOpt,
    top_k: int = TopKOpt,
    guidance: float = GuidanceOpt,
    candidates: int = CandidatesOpt,
    text_goal: bool = typer.Option(True, "--text-goal/--no-text-goal", help="Each prompt's root speed / turn goal inferred from its text, as daps command does (--no-text-goal: text alone)."),
    categories: Optional[str] = typer.Option(None, "--categories", help="Comma-separated subset of the study's categories (default: all)."),
    speed_turn: bool = typer.Option(True, "--speed-turn/--no-speed-turn", help="Also measure the 8 speed / turn commands."),
    stride: int = typer.Option(32, "--stride", help="Frames between the classifier's training segments."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", help="Use only each clip's first frames for the classifier (tests)."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Classifier-feature and text-embedding cache (default: the policy's highlevel_cache)."),
    data: Optional[Path] = LAFAN1_DATA,
) -> None:
    """Controllability, kinematic, per category: rollouts of training phrasings and of unseen
    paraphrases, labelled by measured root motion (walk, run, stand, turns, backward, sideways,
    crouch) or a motion-type classifier on real segments (dance, fight, jumps, fall and get up);
    commanded vs achieved root speed and turn rate."""
    from daps.args import finite_number
    from highlevel.control import run_control

    finite_number(temperature, "--temperature", low=0)
    finite_number(guidance, "--guidance", low=0)
    if max_frames is not None and max_frames < 32:
        raise ValueError(f"--max-frames must be >= 32, got {max_frames}")
    from highlevel.control import SPEED_TURN, STUDY_CATEGORIES

    cats = tuple(c.strip() for c in categories.split(",")) if categories is not None else STUDY_CATEGORIES
    rec = run_control(ckpt, out, rollouts, segments, seed, temperature, top_k, stride, max_frames, data, None, cache_dir,
                      SPEED_TURN if speed_turn else (), guidance=guidance, candidates=candidates, text_goal=text_goal,
                      categories=cats)
    o = rec["overall"]
    typer.echo(f"overall accuracy: training phrasings {o['training']['accuracy']:.3f}, paraphrases {o['paraphrases']['accuracy']:.3f}; "
               f"wrote {out / 'control.json'} and {out / 'control.md'}")


def command(
    prompt: str = typer.Argument(..., help="What the robot should do, e.g. \"walk forward\"."),
    then: Optional[List[str]] = typer.Option(None, "--then", help="A further prompt, after the one before (repeatable): --then \"turn left\" --then \"run\"."),
    seconds: Optional[float] = typer.Option(None, "--seconds", help="Length of each prompt's part (s; default 4); the text switches at the next segment boundary. A run lasts at most 600 s, all prompts together."),
    segments_per_prompt: Optional[int] = typer.Option(None, "--segments-per-prompt", help="Instead of --seconds: 32-frame segments per prompt (at most 562 segments, 600 s, in all)."),
    out: Path = typer.Option(Path("command.mp4"), "--out", help="MP4 to write; the codes go to the same name with .json."),
    kinematic: bool = typer.Option(False, "--kinematic", help="Decode the codes to joint angles and play them without physics."),
    lowlevel: Optional[Path] = typer.Option(None, "--lowlevel", help="Low-level policy (goal \"decoded\"; checkpoint or export) for the physics path (default: models/lowlevel.pt)."),
    start: str = typer.Option("nominal", "--start", help="Physics start, at rest: nominal (Unitree's standing pose) | decoded (segment 0's first decoded frame) | zero (all joints 0)."),
    physics: bool = typer.Option(False, "--physics", help="Require the physics path (error without a low-level policy); the default whenever models/lowlevel.pt exists."),
    mpc: Optional[bool] = typer.Option(None, "--mpc/--policy", help="Who balances the simulated robot: the sampling MPC (lowlevel/mpc.py, both cores, about real time; the default with a tracker) or, --policy, the learned low-level policy (it falls within 1-2 s)."),
    model: Optional[Path] = typer.Option(None, "--model", help="High-level checkpoint or exported model (default: models/highlevel.pt)."),
    speed: Optional[float] = typer.Option(None, "--speed", help="Commanded root speed (m/s, -10 to 10); with --turn gives the COM goal."),
    turn: Optional[float] = typer.Option(None, "--turn", help="Commanded turn rate (rad/s, + = left; -10 to 10)."),
    temperature: float = TemperatureOpt,
    top_k: int = TopKOpt,
    guidance: float = GuidanceOpt,
    candidates: int = CandidatesOpt,
    text_goal: bool = typer.Option(True, "--text-goal/--no-text-goal", help="Without --speed/--turn: the goal each prompt's nearest annotated texts imply (highlevel/goal.py); --no-text-goal: text alone."),
    seed: int = typer.Option(0, "--seed"),
    text_cache: Optional[Path] = typer.Option(None, "--text-cache", help="Embedding cache (.npz) to read and extend (default: the model's highlevel_cache/text_embeddings.npz, e.g. runs/highlevel_cache for the shipped model)."),
    video: bool = typer.Option(True, "--video/--no-video", help="--no-video: write the JSON only (--out may then end in .json); the renderer is never loaded."),
    width: int = typer.Option(480, "--width", help="Video width (pixels)."),
    height: int = typer.Option(352, "--height", help="Video height (pixels)."),
) -> None:
    """Text -> 64 latent codes every 32-frame segment -> the H1 in MuJoCo driven by the low-level policy
    (or, --kinematic, the decoded motion without physics) -> MP4 + JSON; --then switches prompts mid-run."""
    import os

    if kinematic and physics:
        raise ValueError("give --kinematic or --physics, not both")
    if kinematic and mpc is not None:
        raise ValueError("give --kinematic or --mpc/--policy (they balance the simulated robot), not both")
    if not video:  # no OpenGL at all: MuJoCo loads its GL backend when first imported
        os.environ["MUJOCO_GL"] = "disable"
    from highlevel.command import run_command

    mode = True if kinematic else (False if physics or mpc is not None or lowlevel is not None else None)
    goals = None
    if text_goal and speed is None and turn is None:
        from highlevel.goal import prompt_goals

        goals = prompt_goals([prompt, *(then or [])], text_cache, say=typer.echo)
    rec = run_command([prompt, *(then or [])], seconds, out, mode, model, speed, turn, temperature, top_k, seed,
                      text_cache, video=video, width=width, height=height, segments_per_prompt=segments_per_prompt,
                      lowlevel=lowlevel, start_pose=start, guidance=guidance, candidates=candidates, prompt_goals=goals,
                      mpc=mpc)
    if rec.get("notice"):
        typer.echo(rec["notice"], err=True)
    for p in rec["prompts"]:
        a = p["achieved"] or {}
        typer.echo(f'"{p["prompt"]}": segments {p["first_segment"]}-{p["first_segment"] + p["segments"] - 1}, root speed '
                   f'{a.get("root_speed_m_s")} m/s, turn {a.get("turn_rate_rad_s")} rad/s')
    ph = rec.get("physics")
    if ph:
        fell = f"fell at {ph['fell_at_s']} s ({ph['termination']})" if ph["fell"] else "did not fall"
        typer.echo(f"physics: {fell}; {ph['seconds_simulated']} s simulated, COM speed {ph['com_speed_m_s']} m/s")
    typer.echo(f"{len(rec['segments'])} segments, {rec['frames']} frames ({rec['seconds']} s)")
    typer.echo(f"wrote {out} and {out.with_suffix('.json')}" if video else f"wrote {out.with_suffix('.json')}")


def live(
    prompt: str = typer.Option("walk forward", "--prompt", help="The first prompt (the page's text box changes it)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to serve on (default: this machine only)."),
    port: int = typer.Option(8080, "--port", help="Port (0: any free one; a busy one moves to the next free one)."),
    kinematic: bool = typer.Option(False, "--kinematic", help="Play the decoded motion without physics."),
    physics: bool = typer.Option(False, "--physics", help="Require the physics path (error without a low-level policy); the default whenever models/lowlevel.pt exists."),
    lowlevel: Optional[Path] = typer.Option(None, "--lowlevel", help="Low-level policy for the physics path (default: models/lowlevel.pt)."),
    model: Optional[Path] = typer.Option(None, "--model", help="High-level checkpoint or exported model (default: models/highlevel.pt)."),
    seconds: Optional[float] = typer.Option(None, "--seconds", help="Stop serving after this many seconds (default: until Ctrl-C)."),
    speed: Optional[float] = typer.Option(None, "--speed", help="Start with a COM goal of this speed (m/s, -1 to 4; with --turn, or turning at 0; the page's sliders change both)."),
    turn: Optional[float] = typer.Option(None, "--turn", help="Start with a COM goal of this turn rate (rad/s, + = left; -1.5 to 1.5; with --speed, or at 0 m/s)."),
    guidance: float = GuidanceOpt,
    candidates: int = CandidatesOpt,
    temperature: float = TemperatureOpt,
    top_k: int = TopKOpt,
    seed: int = typer.Option(0, "--seed"),
    text_cache: Optional[Path] = typer.Option(None, "--text-cache", help="Embedding cache (.npz) to read and extend."),
    text_goal: bool = typer.Option(True, "--text-goal/--no-text-goal", help="With the goal switch off: the goal the prompt's text implies, as daps command does (--no-text-goal: text alone)."),
    mpc: Optional[bool] = typer.Option(None, "--mpc/--policy", help="Who balances the simulated robot: the sampling MPC (lowlevel/mpc.py, 32 candidates, both cores; the default with a tracker) or, --policy, the learned low-level policy (it falls within 1-2 s)."),
) -> None:
    """Serve a local web page with the H1 in 3D moving in real time: type a prompt, steer the COM
    goal with sliders; each 32-frame segment is generated ahead of playback (physics by default,
    --kinematic without)."""
    from highlevel.live import run_live

    if kinematic and (physics or lowlevel is not None):
        raise ValueError("give --kinematic or --physics/--lowlevel, not both")
    mode = True if kinematic else (False if physics or mpc is not None or lowlevel is not None else None)
    goal = None if speed is None and turn is None else (speed or 0.0, turn or 0.0)
    s = run_live(prompt, host, port, seconds, goal, kinematic=mode, lowlevel=lowlevel,
                 model=model, guidance=guidance, candidates=candidates, temperature=temperature, top_k=top_k,
                 seed=seed, text_cache=text_cache, text_goal=text_goal, mpc=mpc)
    fell = f"; the robot fell at {s['fell_at_s']:.1f} s" if s["fell_at_s"] is not None else ""
    played = "no segment played" if s["segment"] is None else f"{s['segment'] + 1} segments played"
    typer.echo(f"stopped ({played}{fell})")
