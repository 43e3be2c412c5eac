"""Paper Table 1's LAFAN1 row on one machine: every method x seed at the same 640-bit bottleneck,
the preset's model sizes and batch, and (with max_minutes) the same training wall time.

    compare(...) -> out_dir/
        runs/<method>/seed<s>/   each run's checkpoint, metrics.csv, eval.csv, tb/ (resumable),
                                 eval.json + reconstruction.png of the final validation, and
                                 result.json: the run's table row and validation curve
        results.csv / .json      one row per run: validation metrics on `segments` fixed segments
                                 (one sampled code each; greedy_*: the most likely code each),
                                 steps, training seconds, steps/s
        table.md                 mean +- standard error over seeds per method (Markdown)
        curves.png               validation joint RMSE and own-minus-shuffled log p against
                                 steps and against training wall time (256 segments, as logged)

Runs already complete in out_dir are not trained again (the trainer resumes them), so an
interrupted comparison continues where it stopped. A run whose result.json exists is neither
trained nor scored again, even without its checkpoint: a comparison too long for one sitting or
one machine can keep only those small files (a few kB each) and go on elsewhere; the table then
gathers rows scored in different processes (each row keeps its own steps/s). `train_seeds`
splits one comparison over processes run side by side (e.g. seed 0 and seed 1 at once, one core
each): a process trains only its seeds and tables the records that exist so far.
"""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

from daps.args import apply_overrides
from daps.compare import Column, final_row, markdown_table, plot_curves, summarize, write_rows_csv
from daps.io import atomic_write_json, atomic_write_text
from daps.objectives.registry import method_spec
from daps.provenance import describe_machine
from motion_vae.config import METHODS, preset_config, set_arch, set_method
from motion_vae.dataset import MotionDataset, load_motion_dataset
from motion_vae.evaluate import evaluate_checkpoint
from motion_vae.train import train_motion_vae

TABLE_COLUMNS = (
    Column("joint_rmse_rad", "joint RMSE rad", 3),
    Column("greedy_joint_rmse_rad", "joint RMSE rad, greedy code", 3),
    Column("log_p", "log p", 1),
    Column("code_info_nats", "own - shuffled log p", 0),
    Column("l2", "L2", 2),
    Column("beta_elbo", "beta-ELBO", 1, True),
    Column("body_pos_rmse_m", "body pos RMSE m", 3),
    Column("root_height_rmse_m", "root height RMSE m", 3),
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
    train_seeds: list[int] | None = None,
) -> dict:
    """Train every method x seed (0 .. seeds-1) from the preset (`motion_vae.config.set_method`:
    same sizes, batch and learning rates; each method's own step budget), each stopped after
    max_minutes of training if given; score every final model on `segments` fixed validation
    segments; write the files of the module docstring. data: the loaded dataset (default: read
    from data_root with the standard split). arch: "transformer" or "conv" for every method
    (default: the preset's). train_seeds: train only these seeds (default: all; [] trains
    nothing and tables the records there are); the other seeds enter the table where their
    result.json exists and are left out otherwise.
    Returns the results.json content.
    Raises ValueError for unknown methods or presets, train_seeds outside 0 .. seeds-1, or
    nothing to table; DataError for bad data."""
    if seeds < 1 or not methods:
        raise ValueError("compare needs at least one method and one seed")
    if train_seeds is not None and not set(train_seeds) <= set(range(seeds)):
        raise ValueError(f"train_seeds {sorted(train_seeds)} must lie in 0 .. {seeds - 1}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; choose {', '.join(METHODS)}")
    cfgs = {m: set_method(preset_config(preset), m) for m in methods}  # validates the preset before training
    if arch is not None:
        cfgs = {m: set_arch(cfg, arch) for m, cfg in cfgs.items()}
    out_dir = Path(out_dir)
    c0 = cfgs[methods[0]]
    limit = max_minutes * 60 if max_minutes is not None else None
    rows, curves, total = [], {}, len(methods) * seeds
    for i, method in enumerate(methods):
        curves[method] = []
        for seed in range(seeds):
            run_dir = out_dir / "runs" / method / f"seed{seed}"
            if progress:
                print(f"[{i * seeds + seed + 1}/{total}] {method} seed {seed} -> {run_dir}", flush=True)
            record = read_run_record(run_dir / "result.json", method, seed, segments, preset, max_minutes)
            if record is None and train_seeds is not None and seed not in train_seeds:
                if progress:
                    print(f"  left out: no result.json yet and seed {seed} is not trained by this process", flush=True)
                continue
            changed = record is None
            if record is None:
                cfg = apply_overrides(copy.deepcopy(cfgs[method]), seed=seed)
                if data is None:  # read only when a run still has to train
                    data = load_motion_dataset(data_root, c0.model.segment_length, mirror=c0.mirror, speeds=c0.speeds)
                train_motion_vae(cfg, run_dir, data=data, device=device, resume=True, progress=progress, time_limit_s=limit)
                row, evals = final_row(method, seed, run_dir)
                final = evaluate_checkpoint(run_dir / "checkpoint.pt", run_dir, data_root=data_root, num_segments=segments, device=device)
                row.update({k: v for k, v in final.items() if isinstance(v, float)})
                row["train_minutes"] = row["train_seconds"] / 60
                record = {"row": row, "evals": evals, "segments": segments, "preset": preset,
                          "max_minutes": max_minutes, "machine": describe_machine()}
            if "greedy_joint_rmse_rad" not in record["row"]:  # new runs, and records written before the column
                greedy = greedy_scores(method, run_dir, record["row"], segments, data_root, device)
                record["row"].update(greedy)
                changed = changed or bool(greedy)
            if changed:
                atomic_write_json(run_dir / "result.json", record)
            rows.append(record["row"])
            curves[method].append(record["evals"])
    if not rows:
        raise ValueError(f"{out_dir}: no finished run (result.json) to table yet")
    curves = {m: c for m, c in curves.items() if c}
    summary = summarize(rows, TABLE_COLUMNS)
    bits = {m: cfgs[m].model.bits for m in methods}
    budget = f"at most {max_minutes:g} min of training each" if max_minutes is not None else "each method's preset steps"
    header = (f"LAFAN1-H1, preset {preset}: {c0.model.block_size} tokens x {c0.model.vocab_size} codes per "
              f"{c0.model.segment_length} frames, H {c0.model.embed_dim} x {c0.model.num_layers}, batch {c0.batch_size}, "
              f"{budget}, {seeds} seed(s); validation on {segments} fixed segments, one code sample each")
    stochastic = {m: method_spec(m).stochastic for m in methods}
    counts = {m: sum(r["method"] == m for r in rows) for m in methods}
    table = f"<!-- {header} -->\n" + markdown_table(summary, seeds, TABLE_COLUMNS, bits, stochastic, counts)
    write_rows_csv(out_dir / "results.csv", rows)
    result = {"dataset": "lafan1-h1", "preset": preset, "seeds": seeds, "methods": methods, "bits": bits,
              "max_minutes": max_minutes, "segments": segments, "runs": rows, "summary": summary,
              "configs": {m: c.to_dict() for m, c in cfgs.items()}}
    atomic_write_json(out_dir / "results.json", result, indent=2)
    atomic_write_text(out_dir / "table.md", table)
    panels = (("joint_rmse_rad", "validation joint RMSE [rad]"), ("code_info_nats", "own - shuffled log p [nats]"))
    plot_curves(curves, out_dir / "curves.png", header.split(";")[0], panels)
    return result


GREEDY_KEYS = ("joint_rmse_rad", "log_p", "code_info_nats")


def greedy_scores(method: str, run_dir: Path, row: dict, segments: int, data_root, device: str) -> dict[str, float]:
    """greedy_<metric> (joint RMSE rad, log p and own - shuffled log p, nats) of a run's final model
    scored with the most likely code of each validation segment (`evaluate_checkpoint(greedy=True)`,
    written to run_dir/greedy/): what a sampled code costs against the encoder's mode. The
    quantisers' codes are their own mode, so their row's values are copied. {} for a stochastic
    run whose checkpoint is gone (a record kept alone): its table cell stays "-"."""
    if not method_spec(method).stochastic:
        return {f"greedy_{k}": row[k] for k in GREEDY_KEYS}
    if not (run_dir / "checkpoint.pt").is_file():
        return {}
    m = evaluate_checkpoint(run_dir / "checkpoint.pt", run_dir / "greedy", data_root=data_root, num_segments=segments,
                            device=device, greedy=True)
    return {f"greedy_{k}": m[k] for k in GREEDY_KEYS}


def read_run_record(path: Path, method: str, seed: int, segments: int, preset: str, max_minutes: float | None) -> dict | None:
    """A finished run's result.json ({"row", "evals", "segments", "preset", "max_minutes",
    "machine"}), or None when the run has none. Raises ValueError naming the file when it is
    malformed, or belongs to another method, seed, preset, time budget or number of validation
    segments than this comparison."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        row, evals = record["row"], record["evals"]
        ok = row["method"] == method and int(row["seed"]) == seed and isinstance(evals, list)
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a comparison run record ({e})") from None
    if not ok:
        raise ValueError(f"{path}: a record of {row.get('method')} seed {row.get('seed')}, expected {method} seed {seed}")
    # strict JSON stores a metric that was not finite as null: back to NaN for the table and curves
    record["row"] = {k: math.nan if v is None else v for k, v in row.items()}
    record["evals"] = [{k: math.nan if v is None else v for k, v in e.items()} for e in evals]
    for key, want in (("segments", segments), ("preset", preset), ("max_minutes", max_minutes)):
        if record.get(key) != want:
            raise ValueError(f"{path}: {key} {record.get(key)!r} in the record, this comparison has {want!r}")
    return record
