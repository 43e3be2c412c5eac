"""Paper Table 1's LAFAN1 row on one machine: every method x seed at the same 640-bit bottleneck,
the preset's model sizes and batch, and (with max_minutes) the same training wall time.

    compare(...) -> out_dir/
        runs/<method>/seed<s>/   each run's checkpoint, metrics.csv, eval.csv, tb/ (resumable),
                                 eval.json + reconstruction.png of the final validation
        results.csv / .json      one row per run: validation metrics on `segments` fixed segments
                                 (one sampled code each), steps, training seconds, steps/s
        table.md                 mean +- standard error over seeds per method (Markdown)
        curves.png               validation joint RMSE and own-minus-shuffled log p against
                                 steps and against training wall time (256 segments, as logged)

Runs already complete in out_dir are not trained again (the trainer resumes them), so an
interrupted comparison continues where it stopped.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

from daps.compare import Column, final_row, markdown_table, plot_curves, summarize, write_rows_csv
from daps.io import atomic_write_text
from daps.objectives.registry import method_spec
from motion_vae.config import METHODS, apply_overrides, preset_config, set_arch, set_method
from motion_vae.dataset import MotionDataset, load_motion_dataset
from motion_vae.evaluate import evaluate_checkpoint
from motion_vae.train import train_motion_vae

TABLE_COLUMNS = (
    Column("joint_rmse_rad", "joint RMSE rad", 3),
    Column("log_p", "log p", 1),
    Column("code_info_nats", "own - shuffled log p", 0),
    Column("l2", "L2", 2),
    Column("beta_elbo", "beta-ELBO", 1, True),
    Column("body_pos_rmse_m", "body pos RMSE m", 3),
    Column("code_perplexity", "perplexity", 0),
    Column("step", "steps", 0),
    Column("train_minutes", "train min", 1),
    Column("steps_per_s", "steps/s", 1),
)


def compare(
    methods: list[str],
    seeds: int,
    preset: str,
    out_dir: str | Path,
    max_minutes: float | None = None,
    segments: int = 1000,
    data_root: str | Path | None = None,
    device: str = "auto",
    progress: bool = True,
    data: MotionDataset | None = None,
    arch: str | None = None,
) -> dict:
    """Train every method x seed (0 .. seeds-1) from the preset (`motion_vae.config.set_method`:
    same sizes, batch and learning rates; each method's own step budget), each stopped after
    max_minutes of training if given; score every final model on `segments` fixed validation
    segments; write the files of the module docstring. data: the loaded dataset (default: read
    from data_root with the standard split). arch: "transformer" or "conv" for every method
    (default: the preset's). Returns the results.json content.
    Raises ValueError for unknown methods or presets, DataError for bad data."""
    if seeds < 1 or not methods:
        raise ValueError("compare needs at least one method and one seed")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; choose {', '.join(METHODS)}")
    cfgs = {m: set_method(preset_config(preset), m) for m in methods}  # validates the preset before training
    if arch is not None:
        cfgs = {m: set_arch(cfg, arch) for m, cfg in cfgs.items()}
    out_dir = Path(out_dir)
    data = data or load_motion_dataset(data_root, cfgs[methods[0]].model.segment_length, mirror=cfgs[methods[0]].mirror, speeds=cfgs[methods[0]].speeds)
    limit = max_minutes * 60 if max_minutes is not None else None
    rows, curves, total = [], {}, len(methods) * seeds
    for i, method in enumerate(methods):
        curves[method] = []
        for seed in range(seeds):
            run_dir = out_dir / "runs" / method / f"seed{seed}"
            if progress:
                print(f"[{i * seeds + seed + 1}/{total}] {method} seed {seed} -> {run_dir}", flush=True)
            cfg = apply_overrides(copy.deepcopy(cfgs[method]), seed=seed)
            train_motion_vae(cfg, run_dir, data=data, device=device, resume=True, progress=progress, time_limit_s=limit)
            row, evals = final_row(method, seed, run_dir)
            final = evaluate_checkpoint(run_dir / "checkpoint.pt", run_dir, data_root=data_root, num_segments=segments, device=device)
            row.update({k: v for k, v in final.items() if isinstance(v, float)})
            row["train_minutes"] = row["train_seconds"] / 60
            rows.append(row)
            curves[method].append(evals)
    summary = summarize(rows, TABLE_COLUMNS)
    bits = {m: cfgs[m].model.bits for m in methods}
    c0 = cfgs[methods[0]]
    budget = f"at most {max_minutes:g} min of training each" if max_minutes is not None else "each method's preset steps"
    header = (f"LAFAN1-H1, preset {preset}: {c0.model.block_size} tokens x {c0.model.vocab_size} codes per "
              f"{c0.model.segment_length} frames, H {c0.model.embed_dim} x {c0.model.num_layers}, batch {c0.batch_size}, "
              f"{budget}, {seeds} seed(s); validation on {segments} fixed segments, one code sample each")
    stochastic = {m: method_spec(m).stochastic for m in methods}
    table = f"<!-- {header} -->\n" + markdown_table(summary, seeds, TABLE_COLUMNS, bits, stochastic)
    write_rows_csv(out_dir / "results.csv", rows)
    result = {"dataset": "lafan1-h1", "preset": preset, "seeds": seeds, "methods": methods, "bits": bits,
              "max_minutes": max_minutes, "segments": segments, "runs": rows, "summary": summary,
              "configs": {m: c.to_dict() for m, c in cfgs.items()}}
    atomic_write_text(out_dir / "results.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(out_dir / "table.md", table)
    panels = (("joint_rmse_rad", "validation joint RMSE [rad]"), ("code_info_nats", "own - shuffled log p [nats]"))
    plot_curves(curves, out_dir / "curves.png", header.split(";")[0], panels)
    return result
