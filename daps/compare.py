"""What every method-x-seed comparison writes (image_bench.compare, motion_vae.compare): per-run
rows read from the trainer's logs, mean +- standard error over seeds, a Markdown table, a CSV and
validation curves against steps and against training wall time.

A table column is a `Column(key, header, decimals, stochastic_only)`; stochastic_only columns
(ELBO, beta-ELBO) print "-" for the deterministic quantisers, as paper Table 1 does.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import NamedTuple

import numpy as np

from daps.io import atomic_write, atomic_write_text
from daps.metrics import mean_and_standard_error


class Column(NamedTuple):
    """One table column: the row key, its header, decimals shown, and whether it is defined only
    for methods with a stochastic encoder (beta-ELBO)."""

    key: str
    header: str
    decimals: int
    stochastic_only: bool = False


def read_eval_csv(path: Path) -> list[dict[str, float]]:
    """Rows of a run's eval.csv / metrics.csv as floats. Raises FileNotFoundError naming the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no validation log (did the run fail?)")
    with path.open() as f:
        return [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)]


def summarize(rows: list[dict], columns: tuple[Column, ...]) -> dict[str, dict[str, list[float]]]:
    """Per method (in first-seen order), per column key: [mean, standard error] over the seeds' values."""
    out: dict[str, dict[str, list[float]]] = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        out[method] = {}
        for col in columns:
            vals = [r[col.key] for r in mine if col.key in r]
            if vals:
                out[method][col.key] = list(mean_and_standard_error(vals))
    return out


def markdown_table(
    summary: dict, seeds: int, columns: tuple[Column, ...], bits: dict[str, float], stochastic: dict[str, bool],
    counts: dict[str, int] | None = None,
) -> str:
    """Markdown table of mean +- standard error (the mean alone for one seed); "-" where a
    metric is missing or undefined for the method. counts: seeds finished per method (default:
    all `seeds`); a method with fewer is marked "(n of seeds)" and shows its mean alone when n is 1."""
    head = ["method", "bits"] + [c.header for c in columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, m in summary.items():
        n = (counts or {}).get(method, seeds)
        cells = [method if n == seeds else f"{method} ({n} of {seeds} seeds)", f"{bits[method]:.1f}"]
        for c in columns:
            if c.key not in m or (c.stochastic_only and not stochastic[method]):
                cells.append("-")
            else:
                mean, se = m[c.key]
                cells.append(f"{mean:.{c.decimals}f} +- {se:.{c.decimals}f}" if n > 1 else f"{mean:.{c.decimals}f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_rows_csv(path: Path, rows: list[dict]) -> None:
    """One CSV row per run (the union of the rows' keys as columns); atomic."""
    fields = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def plot_curves(
    curves: dict[str, list[list[dict]]], path: Path, title: str, panels: tuple[tuple[str, str], ...] = (("log_p", "validation log p(x|z) [nats]"),)
) -> None:
    """PNG, one row per (key, y label) panel: the metric (mean +- SE over seeds) against training
    steps (left) and training wall time (right). curves: method -> per seed, its eval.csv rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 2, figsize=(11, 4.2 * len(panels)), squeeze=False)
    for row, (key, ylabel) in enumerate(panels):
        for i, (method, runs) in enumerate(curves.items()):
            n = min(len(r) for r in runs)
            steps = np.array([r["step"] for r in runs[0][:n]])
            vals = np.array([[r.get(key, np.nan) for r in run[:n]] for run in runs])  # (seeds, n)
            secs = np.array([[r.get("train_seconds", np.nan) for r in run[:n]] for run in runs]).mean(0)
            mean = vals.mean(0)
            se = vals.std(0, ddof=1) / np.sqrt(len(runs)) if len(runs) > 1 else np.zeros(n)
            for ax, x in zip(axes[row], (steps, secs)):
                ax.plot(x, mean, color=f"C{i}", label=method, lw=1.6)
                ax.fill_between(x, mean - se, mean + se, color=f"C{i}", alpha=0.2, lw=0)
        axes[row, 0].set_ylabel(ylabel)
        axes[row, 1].sharey(axes[row, 0])
    axes[-1, 0].set_xlabel("training step")
    axes[-1, 1].set_xlabel("training wall time [s] (validation excluded)")
    axes[0, 0].legend(fontsize=8)
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)


def final_row(method: str, seed: int, run_dir: Path) -> tuple[dict, list[dict]]:
    """(the run's table row, its eval.csv rows): the last validation metrics, steps, training
    seconds, steps/s and the last logged training log p."""
    evals = read_eval_csv(run_dir / "eval.csv")
    train_log = read_eval_csv(run_dir / "metrics.csv")
    final = evals[-1]
    secs = final.get("train_seconds", float("nan"))
    row = {"method": method, "seed": seed, "step": int(final["step"]), "train_seconds": secs,
           "steps_per_s": final["step"] / secs if secs > 0 else float("nan"),
           "final_train_log_p": train_log[-1].get("log_p", float("nan")) if train_log else float("nan"),
           **{k: v for k, v in final.items() if k not in ("step", "train_seconds")}}
    return row, evals
