"""`daps lowlevel ...`: thin wrappers over lowlevel.train / evaluate / render / checkpoint / card (the earlier policy) and
lowlevel.tracker / tracker_card, envs.feasibility (the balancing tracker)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from daps.args import bad_parameter, parse_settings
from daps.cli_options import LAFAN1_DATA

app = typer.Typer(help="Latent-conditioned low-level imitation policy for the H1 (SB3 PPO in MuJoCo).", no_args_is_help=True)



def _policy_file(ckpt: Optional[Path]) -> Path:
    """The given policy file, or the shipped default; FileNotFoundError (one line) if absent."""
    from daps.shipped import LOWLEVEL, shipped_path

    from lowlevel.tracker import is_tracker_file

    path = ckpt if ckpt is not None else shipped_path(LOWLEVEL)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: low-level policy not found" + ("" if ckpt is not None else " (no shipped default; pass --ckpt)"))
    if is_tracker_file(path):
        raise typer.BadParameter(f"{path} is a balancing tracker (envs.mimic): use `daps lowlevel eval-tracker`, or "
                                 "`daps command` to watch it", param_hint="--ckpt")
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
    data: Optional[Path] = LAFAN1_DATA,
) -> None:
    """Train the policy with PPO (checkpoints, TensorBoard logs, --resume)."""
    from daps.io import json_text
    from lowlevel.train import train_lowlevel

    with bad_parameter("--set"):
        overrides = parse_settings(settings or [])

    r = train_lowlevel(motion_vae, clips, steps=steps, preset=preset, run_dir=run_dir, seed=seed, n_envs=n_envs, vec=vec, threads=threads,
                       resume=resume, action_mode=action_mode, goal=goal, pd_target=pd_target, pd_action_scale=pd_action_scale, split=split,
                       data_root=data, ckpt_every=ckpt_every, progress=progress, init_from=init_from,
                       root_velocity_obs=root_velocity_obs, critic_reference_obs=critic_reference_obs, overrides=overrides)
    typer.echo(json_text(r, indent=2))


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
    data: Optional[Path] = LAFAN1_DATA,
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
    from lowlevel.checkpoint import export_lowlevel

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
    from daps.provenance import describe_machine, git_commit

    c = write_card(model, eval_json, command, out, run_dir, commit or git_commit(), machine or describe_machine(), notes)
    typer.echo(f"wrote {out} (slice: {c['slice_seconds_tracked']:.2f} s tracked, joint error {c['slice_joint_error_rad']:.4f} rad)")


@app.command("train-tracker")
def train_tracker_cmd(
    clips: str = typer.Option("walk*", "--clips", help="Glob(s) over clip names, comma-separated, within --split (mirrors added by the task)."),
    steps: int = typer.Option(5_000_000, "--steps", help="Total environment steps (50 per simulated second per env)."),
    preset: str = typer.Option("mimic", "--preset", help="Task preset: mimic (the shipped recipe) | assist (decaying pelvis assist while training) | balance (capture-point feedback under the policy) | simbicon (that feedback with SIMBICON's torso and swing-hip terms) | corrected | clearance."),
    run_dir: Path = typer.Option(Path("runs/tracker"), "--run-dir", help="Folder for checkpoint.pt, progress.csv and config.json."),
    seed: int = typer.Option(0, "--seed"),
    resume: bool = typer.Option(False, "--resume", help="Continue run_dir/checkpoint.pt up to --steps (its task, PPO settings and clips)."),
    split: str = typer.Option("train", "--split", help="train | val | all: the clips --clips selects from."),
    settings: Optional[list[str]] = typer.Option(None, "--set", help="KEY=VALUE overriding a task setting (kp_scale=2, ...) or a PPO one (n_envs, learning_rate, ent_coef, ...); repeatable."),
    motion_vae: Optional[Path] = typer.Option(None, "--motion-vae", help="Track the decodings of the clips' greedy codes by this motion VAE (the goal `daps command` gives the robot) instead of the clips themselves."),
    init_from: Optional[Path] = typer.Option(None, "--init-from", help="Start from another tracker's weights and observation statistics (same observation size), e.g. a clip-trained policy fine-tuned on decoded motions."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="tqdm progress bar."),
    data: Optional[Path] = LAFAN1_DATA,
) -> None:
    """Train the balancing tracker (envs.mimic, SB3 PPO): 50 Hz policy on 0.005 s physics, learned
    std, action-rate penalty, anchor-relative body rewards, adaptive starts, mirrored clips."""
    from dataclasses import fields

    from daps.io import json_text
    from envs.mimic.config import preset as task_preset
    from lowlevel.motions import select_clips
    from lowlevel.tracker import PPOConfig, train_tracker

    with bad_parameter("--set"):
        overrides = parse_settings(settings or [])
        ppo_keys = {f.name for f in fields(PPOConfig)}
        ppo = PPOConfig(**{k: v for k, v in overrides.items() if k in ppo_keys})
        task = task_preset(preset, **{k: v for k, v in overrides.items() if k not in ppo_keys})
    with bad_parameter("--clips"):
        names = select_clips(clips, split, data)
    r = train_tracker(names, run_dir, steps, task=task, ppo=ppo, seed=seed, resume=resume, data_root=data, progress=progress,
                      motion_vae=motion_vae, init_from=init_from)
    typer.echo(json_text(r, indent=2))


@app.command("eval-tracker")
def eval_tracker_cmd(
    ckpt: Path = typer.Option(..., "--ckpt", help="Tracker checkpoint (RUN/checkpoint.pt) or shipped file."),
    clips: str = typer.Option("walk2_subject4,run2_subject1", "--clips", help="Clip names, comma-separated."),
    starts: int = typer.Option(8, "--starts", help="Episodes per clip, start frames spread evenly."),
    seconds: float = typer.Option(10.0, "--seconds", help="Episode length (s)."),
    out: Optional[Path] = typer.Option(None, "--out", help="JSON report to write (default: beside the checkpoint, eval_tracker.json)."),
    goal: Optional[str] = typer.Option(None, "--goal", help="clip (the true clip) | decoded (the motion VAE's decoding of its codes); default: what the policy was trained on."),
    motion_vae: Optional[Path] = typer.Option(None, "--motion-vae", help="Motion VAE for --goal decoded (default: the one the policy was trained with; sha256-checked)."),
    data: Optional[Path] = LAFAN1_DATA,
) -> None:
    """Deterministic, unassisted episodes on the clips or their decodings (--goal; default: what the policy
    was trained on): seconds tracked, finished, joint and root errors, action smoothness."""
    from daps.io import atomic_write_text, json_text
    from lowlevel.tracker import evaluate_tracker

    names = [c.strip() for c in clips.split(",") if c.strip()]
    with bad_parameter("--ckpt"):
        rep = evaluate_tracker(ckpt, names, starts=starts, seconds=seconds, data_root=data, motion_vae=motion_vae, goal=goal)
    for name, r in rep["clips"].items():
        typer.echo(f"{name}: {r['seconds_tracked']:.2f} s tracked, {r['finished']}/{r['episodes']} finished, joint error "
                   f"{r['joint_error_rad']:.3f} rad, root xy {r['root_xy_error_m']:.3f} m, saturated "
                   f"{100 * r['actions_saturated']:.1f} %, mean |da| {r['mean_abs_action_delta']:.3f}, swing foot dragging "
                   f"{100 * r['swing_foot_drag']:.1f} % of steps")
    path = out or ckpt.parent / "eval_tracker.json"
    atomic_write_text(path, json_text(rep, indent=1))
    typer.echo(f"wrote {path}")


@app.command()
def feasibility(
    clips: str = typer.Option("walk2_subject4", "--clips", help="Clip names or CSV files (LAFAN1-H1 layout, 30 Hz; e.g. the output of `daps motion-vae decode`), comma-separated."),
    margin: float = typer.Option(0.05, "--margin", help="A frame is infeasible when its required centre of pressure lies more than this far (m) outside the support polygon."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the figures as JSON here."),
    corrected: bool = typer.Option(False, "--corrected", help="Also balance-correct each clip (envs.balance, at 50 Hz) and report the check after it and what the correction moved (soles, root path, speed, joints)."),
    data: Optional[Path] = LAFAN1_DATA,
) -> None:
    """Can the H1 follow these motions as they are?  Per clip: the share of frames whose required
    centre of pressure lies more than --margin outside the feet, its median distance, and the stance
    ankle torque (single support) against the 40 N m limit."""
    from daps.io import atomic_write_text, json_text
    from envs.feasibility import feasibility as check
    from envs.lafan1 import FPS
    from envs.reference import load_reference

    if not (margin >= 0 and margin < 1):
        raise typer.BadParameter(f"must be in [0, 1) m, got {margin}", param_hint="--margin")
    rows = []
    for name in [c.strip() for c in clips.split(",") if c.strip()]:
        with bad_parameter("--clips"):
            ref = load_reference(name, FPS, data)
        r = check(ref, margin=margin)
        if corrected:
            from envs.balance import correct_reference, correction_report

            ref50 = load_reference(name, 50.0, data)
            rep = correction_report(ref50, correct_reference(ref50), margin)
            r["corrected"] = rep
            a, b = rep["before"], rep["after"]
            typer.echo(f"{name} at 50 Hz, corrected: COP > {100 * margin:.0f} cm outside in {100 * a['outside_share']:.1f} -> "
                       f"{100 * b['outside_share']:.1f} % of frames, ankle over its limit {100 * a['ankle_over_limit_share']:.0f} -> "
                       f"{100 * b['ankle_over_limit_share']:.0f} %; stance soles moved <= {100 * rep['stance_sole_shift_max_m']:.1f} cm "
                       f"(mean {100 * rep['stance_sole_shift_mean_m']:.1f}), root path {100 * rep['root_path_change_mean_m']:.1f} cm "
                       f"on average, path length x{rep['speed_ratio']:.3f} (net x{rep['net_speed_ratio']:.3f}), joints {rep['joint_change_mean_rad']:.3f} rad")
        rows.append(r)
        typer.echo(f"{r['motion']}: {100 * r['outside_share']:.1f} % of {r['frames_judged']} frames need the COP > "
                   f"{100 * margin:.0f} cm outside the feet (median {100 * r['median_outside_m']:.1f} cm outside); "
                   f"stance ankle p50 {r['ankle_torque_nm']['p50']:.0f} / p90 {r['ankle_torque_nm']['p90']:.0f} N m "
                   f"(limit {r['ankle_limit_nm']:.0f}; over it in {100 * r['ankle_over_limit_share']:.0f} % of "
                   f"{r['single_support_frames']} single-support frames)")
    if out is not None:
        atomic_write_text(out, json_text(rows, indent=1))
        typer.echo(f"wrote {out}")


@app.command("export-tracker")
def export_tracker_cmd(
    ckpt: Path = typer.Option(..., "--ckpt", help="Tracker checkpoint (RUN/checkpoint.pt) or shipped file (models/lowlevel.pt)."),
    out: Path = typer.Option(..., "--out", help="File to write (e.g. models/lowlevel.pt, or lowlevel.onnx with --format onnx)."),
    fmt: str = typer.Option("pt", "--format", help="pt (tensor-only tracker file for this package) | onnx (raw observation -> "
                            "deterministic action graph with the normalisation inside and the robot's facts as metadata; "
                            "needs the deploy extra)."),
) -> None:
    """Tracker file for shipping (policy, observation statistics, configs; no optimiser), or with
    --format onnx the policy for deployment (docs/tracking.md, "Export for deployment")."""
    from daps.io import check_writable

    # errors end in one line naming the file or option (daps.cli.main), and nothing is written
    if fmt not in ("pt", "onnx"):
        raise ValueError(f"--format: choose pt or onnx, got {fmt!r}")
    check_writable(out, "--out")
    if fmt == "onnx":
        from lowlevel.deploy import export_onnx, require_onnx

        try:
            require_onnx()
        except ImportError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
        r = export_onnx(ckpt, out)
        typer.echo(f"wrote {r['path']} ({r['size_bytes'] / 1e6:.2f} MB; max |action - torch policy's| "
                   f"{r['max_abs_diff']:.1e} on observations drawn from its statistics)")
        return
    from lowlevel.tracker import export_tracker

    path = export_tracker(ckpt, out)
    typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


@app.command("card-tracker")
def card_tracker_cmd(
    model: Path = typer.Option(..., "--model", help="Exported tracker (models/lowlevel.pt)."),
    eval_json: Path = typer.Option(..., "--eval-json", help="eval_tracker.json written by `daps lowlevel eval-tracker` of that file."),
    command: str = typer.Option(..., "--command", help="The exact training command(s), for the record."),
    out: Path = typer.Option(..., "--out", help="Card to write (models/lowlevel.md)."),
    commit: Optional[str] = typer.Option(None, "--commit", help="Commit of the training code (default: this checkout's HEAD)."),
    machine: Optional[str] = typer.Option(None, "--machine", help="Training machine (default: this one)."),
    notes: str = typer.Option("", "--notes", help="Extra Markdown lines."),
) -> None:
    """Write the tracker's model card: command, commit, clips, steps, wall time, machine, evaluation, slice check."""
    from lowlevel.tracker_card import write_tracker_card
    from daps.provenance import describe_machine, git_commit

    with bad_parameter("--model"):
        c = write_tracker_card(model, eval_json, command, out, commit or git_commit(), machine or describe_machine(), notes)
    typer.echo(f"wrote {out} (slice: {c['slice_seconds_tracked']:.2f} s tracked, joint error {c['slice_joint_error_rad']:.4f} rad)")
