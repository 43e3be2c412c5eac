"""`daps lowlevel train|eval|render`: thin wrappers over lowlevel.train / evaluate / render."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from daps.args import bad_parameter

app = typer.Typer(help="Latent-conditioned low-level imitation policy for the H1 (SB3 PPO in MuJoCo).", no_args_is_help=True)

DataOpt = typer.Option(None, "--data", help="LAFAN1-H1 root (holding h1/*.csv); default $DAPS_LAFAN1_DIR or ../shared/data/lafan1_h1.")


def _policy_file(ckpt: Optional[Path]) -> Path:
    """The given policy file, or the shipped default; FileNotFoundError (one line) if absent."""
    from lowlevel.card import default_model_path

    path = ckpt if ckpt is not None else default_model_path()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: low-level policy not found" + ("" if ckpt is not None else " (no shipped default; pass --ckpt)"))
    return path


@app.command()
def train(
    motion_vae: Optional[Path] = typer.Option(None, "--motion-vae", help="Motion VAE checkpoint that encodes the clips for --goal latent and encodes + decodes them for --goal decoded (default: the shipped models/motion_vae.pt)."),
    clips: str = typer.Option("walk*", "--clips", help="Glob(s) over clip names, comma-separated, within --split."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Total environment steps (default: the preset's)."),
    preset: str = typer.Option("cpu", "--preset", help="cpu ([256, 256] MLP, 32 batched envs) | paper ([2048, 1024, 512] ELU)."),
    run_dir: Path = typer.Option(Path("runs/lowlevel"), "--run-dir", help="Folder for checkpoint.pt, progress.csv and TensorBoard logs."),
    seed: int = typer.Option(0, "--seed"),
    n_envs: Optional[int] = typer.Option(None, "--n-envs", help="Parallel environments (default: the preset's, 32 for cpu)."),
    vec: Optional[str] = typer.Option(None, "--vec", help="batched (all environments in this process, vectorised; the presets' default) | subproc (one process each) | dummy (SB3 DummyVecEnv)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Physics threads of the batched vector env (default: the preset's; cpu 1, 2 may help when a core is idle)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from run_dir/checkpoint.pt up to --steps."),
    action_mode: str = typer.Option("torque", "--action-mode", help="torque (19 motor torques, the paper's; default: learns faster at the cpu budget) | pd."),
    pd_target: str = typer.Option("nominal", "--pd-target", help="nominal (standing pose + action) | reference (residual on the reference joints; leaks the reference, refused with --goal decoded) | decoded (residual on the decoded joints; --goal decoded only) | absolute (joint range)."),
    pd_action_scale: Optional[str] = typer.Option(None, "--pd-action-scale", help="rad of PD target per unit action, or 'torque-range' (per joint: torque limit / kp; ankle 1.0 rad) (default: 0.25 around the reference, 1.0 around the nominal pose)."),
    goal: str = typer.Option("latent", "--goal", help="latent (DAPS codes) | reference (next reference frames) | decoded (the reference goal's layout, filled from the motion VAE's decoding of the clip's codes)."),
    init_from: Optional[Path] = typer.Option(None, "--init-from", help="Start a new run from this low-level checkpoint's policy weights and VecNormalize statistics (identical observation and action spaces, e.g. a --goal reference teacher for --goal decoded)."),
    root_velocity_obs: bool = typer.Option(False, "--root-velocity-obs", help="Also observe the root's linear velocity in the heading frame and its height (proprio 63 -> 67 numbers; stored in the run config)."),
    critic_reference_obs: bool = typer.Option(False, "--critic-reference-obs", help="--goal decoded: an asymmetric critic that also sees the true reference (the actor does not; stored in the run config)."),
    split: str = typer.Option("train", "--split", help="train | val | all: the clips --clips selects from."),
    settings: Optional[list[str]] = typer.Option(
        None, "--set", help="KEY=VALUE overriding a PPO argument (learning_rate, gamma, target_kl=None, n_epochs, ...) or a preset key "
        "(log_std_init, net_arch=[512,256], ...); repeatable; stored in the run config."),
    ckpt_every: Optional[int] = typer.Option(None, "--ckpt-every", help="Checkpoint every N environment steps."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="tqdm progress bar."),
    data: Optional[Path] = DataOpt,
) -> None:
    """Train the policy with PPO (checkpoints, TensorBoard logs, --resume)."""
    from lowlevel.train import parse_settings, train_lowlevel

    with bad_parameter("--set"):
        overrides = parse_settings(settings or [])

    r = train_lowlevel(motion_vae, clips, steps=steps, preset=preset, run_dir=run_dir, seed=seed, n_envs=n_envs, vec=vec, threads=threads,
                       resume=resume, action_mode=action_mode, goal=goal, pd_target=pd_target, pd_action_scale=pd_action_scale, split=split,
                       data_root=data, ckpt_every=ckpt_every, progress=progress, init_from=init_from,
                       root_velocity_obs=root_velocity_obs, critic_reference_obs=critic_reference_obs, overrides=overrides)
    typer.echo(json.dumps(r, indent=2))


@app.command("eval")
def evaluate(
    ckpt: Optional[Path] = typer.Option(None, "--ckpt", help="checkpoint.pt written by `train`, or an export (default: the shipped models/lowlevel.pt)."),
    clips: str = typer.Option("walk2_subject4", "--clips", help="Glob(s) over clip names, comma-separated."),
    split: str = typer.Option("all", "--split", help="train | val | all."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for eval_lowlevel.json and training_curve.png (default: the checkpoint's folder)."),
    starts: int = typer.Option(8, "--starts", help="Episodes per clip, starting at frames spread evenly over the clip (frame 0 first)."),
    max_seconds: float = typer.Option(10.0, "--max-seconds", help="Episode length cap (s); 0 = up to the clip's end."),
    motion_vae: Optional[Path] = typer.Option(None, "--motion-vae", help="Motion VAE to encode clips not stored in the checkpoint and, for --goal decoded policies, to decode the codes (default: the path it was trained with; sha256-checked)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="tqdm progress bar."),
    data: Optional[Path] = DataOpt,
) -> None:
    """Policy vs (a) PD holding the start pose and (b) PD tracking of the reference, on the same
    start frames: JSON + table."""
    from lowlevel.evaluate import evaluate_lowlevel, format_table, plot_training_curve

    ckpt = _policy_file(ckpt)
    out = out or ckpt.parent
    report = evaluate_lowlevel(ckpt, clips, out=out, split=split, max_seconds=max_seconds or None, starts=starts,
                               motion_vae=motion_vae, data_root=data, progress=progress)
    typer.echo(format_table(report))
    typer.echo(f"wrote {out / 'eval_lowlevel.json'}")
    if (ckpt.parent / "progress.csv").is_file():
        typer.echo(f"wrote {plot_training_curve(ckpt.parent, out / 'training_curve.png')}")


@app.command()
def render(
    ckpt: Optional[Path] = typer.Option(None, "--ckpt", help="checkpoint.pt written by `train`, or an export (default: the shipped models/lowlevel.pt)."),
    clip: str = typer.Option(..., "--clip", help="Clip name, e.g. walk2_subject4."),
    out: Path = typer.Option(..., "--out", help="Output .mp4."),
    seconds: Optional[float] = typer.Option(None, "--seconds", help="Render at most this many seconds."),
    start: float = typer.Option(0.0, "--start", help="Start this many seconds into the clip (state set to the reference there)."),
    controller: str = typer.Option("policy", "--controller", help="policy | hold_pose | pd_tracking."),
    fps: int = typer.Option(30, "--fps"),
    motion_vae: Optional[Path] = typer.Option(None, "--motion-vae", help="Motion VAE of latent / decoded policies (default: the path it was trained with)."),
) -> None:
    """MuJoCo offscreen MP4 of the robot with the reference motion as a translucent ghost."""
    from lowlevel.render import render_lowlevel

    r = render_lowlevel(_policy_file(ckpt), clip, out, seconds=seconds, fps=fps, motion_vae=motion_vae, controller=controller, start=start)
    typer.echo(f"wrote {r['out']} ({r['frames']} frames; tracked {r['seconds_tracked']:.2f} s, termination: {r['termination'] or 'none'})")


@app.command()
def export(
    ckpt: Path = typer.Option(..., "--ckpt", help="Training checkpoint (RUN/checkpoint.pt)."),
    out: Path = typer.Option(..., "--out", help="Policy file to write (e.g. models/lowlevel.pt)."),
) -> None:
    """Tensor-only policy file for shipping (loads with weights_only): policy weights, observation
    statistics, config, training-clip codes; no optimiser."""
    from lowlevel.card import export_lowlevel

    path = export_lowlevel(ckpt, out)
    typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


@app.command()
def card(
    model: Path = typer.Option(..., "--model", help="Exported policy (models/lowlevel.pt)."),
    eval_json: Path = typer.Option(..., "--eval-json", help="eval_lowlevel.json written by `daps lowlevel eval` of that policy."),
    command: str = typer.Option(..., "--command", help="The exact training command(s), for the record."),
    run_dir: Path = typer.Option(..., "--run-dir", help="The training run folder (its progress.csv gives the wall time)."),
    out: Path = typer.Option(..., "--out", help="Card to write (models/lowlevel.md)."),
    commit: Optional[str] = typer.Option(None, "--commit", help="Commit of the training code (default: this checkout's HEAD)."),
    machine: Optional[str] = typer.Option(None, "--machine", help="Training machine (default: this one)."),
    notes: str = typer.Option("", "--notes", help="Extra Markdown lines."),
) -> None:
    """Write the policy's model card: command, commit, clips, steps, wall time, machine, evaluation, slice check."""
    from lowlevel.card import write_card
    from motion_vae.card import describe_machine, git_commit

    c = write_card(model, eval_json, command, out, run_dir, commit or git_commit(), machine or describe_machine(), notes)
    typer.echo(f"wrote {out} (slice: {c['slice_seconds_tracked']:.2f} s tracked, joint error {c['slice_joint_error_rad']:.4f} rad)")
