"""The comparison of paper Table 1 on one machine: every method x seed at equal steps and batch.

    compare(...) -> out_dir/
        runs/<method>/seed<s>/    each run's checkpoint, metrics.csv, eval.csv, tb/ (resumable)
        results.csv               one row per run: final validation metrics, steps, train seconds
        results.json              the same plus the per-method summary and the run config
        table.md                  mean +- standard error over seeds per method (Markdown)
        curves.png                validation log p against steps and against training wall time
        reconstructions.png       validation images and each method's reconstruction (seed 0)
        prior_samples.png         decoder means of uniform-prior codes per method (paper Fig. 14)

Runs already complete in out_dir are not trained again (the trainer resumes them), so an
interrupted comparison continues where it stopped.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import torch

from daps.device import resolve_device
from daps.io import atomic_write, atomic_write_text
from daps.metrics import mean_and_standard_error
from daps.objectives.registry import method_spec
from image_bench.config import apply_overrides, preset_config
from image_bench.data import load_image_dataset
from image_bench.evaluate import save_grid
from image_bench.models import prior_samples
from image_bench.train import load_image_vae, train_image_vae

TABLE_METRICS = (  # (key, header, decimals, stochastic methods only)
    ("beta_elbo", "beta-ELBO", 2, True),
    ("elbo", "ELBO", 2, True),
    ("log_p", "log p", 2, False),
    ("l2", "L2", 3, False),
    ("psnr_db", "PSNR dB", 2, False),
    ("codebook_used", "codes used", 3, False),
    ("code_perplexity", "perplexity", 1, False),
    ("steps_per_s", "steps/s", 1, False),
)


def run_name(method: str) -> str:
    """Folder name of a method ("daps:1.0" -> "daps_beta1.0")."""
    name, _, beta = method.partition(":")
    return f"{name}_beta{beta}" if beta else name


def read_eval_csv(path: Path) -> list[dict[str, float]]:
    """Rows of a run's eval.csv as floats. Raises FileNotFoundError naming the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no validation log (did the run fail?)")
    with path.open() as f:
        return [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)]


def summarize(rows: list[dict]) -> dict[str, dict[str, list[float]]]:
    """Per method, per metric: [mean, standard error] over the seeds' final values."""
    out: dict[str, dict[str, list[float]]] = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        out[method] = {}
        for key, *_ in TABLE_METRICS:
            vals = [r[key] for r in mine if key in r]
            if vals:
                out[method][key] = list(mean_and_standard_error(vals))
    return out


def markdown_table(summary: dict, seeds: int, bits: dict[str, float]) -> str:
    """Markdown table of mean +- standard error; "-" where a metric is undefined (ELBO of a
    deterministic quantiser, as paper Table 1)."""
    head = ["method", "bits"] + [h for _, h, _, _ in TABLE_METRICS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, m in summary.items():
        stochastic = method_spec(method.split(":")[0]).stochastic
        cells = [method, f"{bits[method]:.1f}"]
        for key, _, dec, needs_q in TABLE_METRICS:
            if key not in m or (needs_q and not stochastic):
                cells.append("-")
            else:
                mean, se = m[key]
                cells.append(f"{mean:.{dec}f} +- {se:.{dec}f}" if seeds > 1 else f"{mean:.{dec}f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_curves(curves: dict[str, list[list[dict]]], path: Path, title: str) -> None:
    """PNG: validation log p (mean +- SE over seeds) against steps (left) and training seconds (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for i, (method, runs) in enumerate(curves.items()):
        n = min(len(r) for r in runs)
        steps = np.array([row["step"] for row in runs[0][:n]])
        logp = np.array([[row["log_p"] for row in r[:n]] for r in runs])  # (seeds, n)
        secs = np.array([[row.get("train_seconds", np.nan) for row in r[:n]] for r in runs]).mean(0)
        mean = logp.mean(0)
        se = logp.std(0, ddof=1) / np.sqrt(len(runs)) if len(runs) > 1 else np.zeros(n)
        for ax, x in zip(axes, (steps, secs)):
            ax.plot(x, mean, color=f"C{i}", label=method, lw=1.6)
            ax.fill_between(x, mean - se, mean + se, color=f"C{i}", alpha=0.2, lw=0)
    axes[0].set_xlabel("training step")
    axes[1].set_xlabel("training wall time [s] (validation excluded)")
    axes[0].set_ylabel("validation log p(x|z) [nats / image]")
    axes[0].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)


def compare(
    dataset: str,
    methods: list[str],
    seeds: int,
    preset: str,
    out_dir: str | Path,
    data_root: str | Path | None = None,
    device: str = "auto",
    steps: int | None = None,
    batch_size: int | None = None,
    progress: bool = True,
) -> dict:
    """Train every method x seed (0 .. seeds-1) with the preset at equal steps and batch; write
    the files listed in the module docstring. Returns the results.json content.
    Raises ValueError for unknown methods/presets, ImageDataError for bad data."""
    if seeds < 1 or not methods:
        raise ValueError("compare needs at least one method and one seed")
    cfgs = {m: preset_config(preset, m, dataset) for m in methods}  # validates every name before training
    out_dir = Path(out_dir)
    dev = resolve_device(device)
    data = load_image_dataset(dataset, data_root)
    rows, curves, total = [], {}, len(methods) * seeds
    for i, method in enumerate(methods):
        curves[method] = []
        for seed in range(seeds):
            cfg = apply_overrides(preset_config(preset, method, dataset), steps=steps, batch_size=batch_size, seed=seed)
            run_dir = out_dir / "runs" / run_name(method) / f"seed{seed}"
            if progress:
                print(f"[{i * seeds + seed + 1}/{total}] {method} seed {seed} -> {run_dir}", flush=True)
            train_image_vae(cfg, run_dir, data=data, device=str(dev), resume=True, progress=progress)
            evals = read_eval_csv(run_dir / "eval.csv")
            train_log = read_eval_csv(run_dir / "metrics.csv")
            final = evals[-1]
            secs = final.get("train_seconds", float("nan"))
            rows.append({"method": method, "seed": seed, "step": int(final["step"]), "train_seconds": secs,
                         "steps_per_s": final["step"] / secs if secs > 0 else float("nan"),
                         "final_train_log_p": train_log[-1].get("log_p", float("nan")) if train_log else float("nan"),
                         **{k: v for k, v in final.items() if k not in ("step", "train_seconds")}})
            curves[method].append(evals)
    summary = summarize(rows)
    bits = {m: cfgs[m].model.bits for m in methods}
    cfg0 = cfgs[methods[0]]
    header = (f"{dataset}, preset {preset}: {cfg0.model.block_size} tokens x {cfg0.model.vocab_size} codes, "
              f"{steps or cfg0.steps} steps at batch {batch_size or cfg0.batch_size}, {seeds} seed(s); "
              f"validation on {cfg0.val_images} test images, one code sample each (nats / image)")
    table = f"<!-- {header} -->\n" + markdown_table(summary, seeds, bits)
    fields = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out_dir / "results.csv", buf.getvalue())
    result = {"dataset": dataset, "preset": preset, "seeds": seeds, "methods": methods, "bits": bits,
              "steps": steps or cfg0.steps, "batch_size": batch_size or cfg0.batch_size, "runs": rows, "summary": summary}
    atomic_write_text(out_dir / "results.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(out_dir / "table.md", table)
    plot_curves(curves, out_dir / "curves.png", header.split(";")[0])
    _pictures(methods, out_dir, data, dev)
    return result


def _pictures(methods: list[str], out_dir: Path, data, dev: torch.device) -> None:
    """reconstructions.png and prior_samples.png from each method's seed-0 checkpoint."""
    x = torch.from_numpy(data.val.fixed(10)).to(dev)
    recs, priors = [data.to_unit(x).cpu().numpy()], []
    for method in methods:
        model, _, _ = load_image_vae(out_dir / "runs" / run_name(method) / "seed0" / "checkpoint.pt", dev)
        with torch.no_grad():
            z, _ = model.recognition.sample(x, 1, torch.Generator(device=dev).manual_seed(0))
            recs.append(data.to_unit(model.reconstruct(z)[:, 0]).cpu().numpy())
            priors.append(data.to_unit(prior_samples(model, 10, torch.Generator(device=dev).manual_seed(0))).cpu().numpy())
    save_grid(recs, ["data", *methods], out_dir / "reconstructions.png", "validation images and decoder means of their codes (seed 0)")
    save_grid(priors, list(methods), out_dir / "prior_samples.png", "decoder means of uniform-prior codes (seed 0)")
