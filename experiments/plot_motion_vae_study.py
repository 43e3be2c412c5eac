"""Curves of docs/motion_vae_cpu_study.md: validation joint RMSE and code information against
training wall time, from `daps motion-vae train` run folders (eval.csv) and lever runs
(experiments/motion_vae_levers.py, NAME.jsonl).

    python experiments/plot_motion_vae_study.py --runs DAPS=runs/motion_vae_cpu FSQ=runs/fsq_cpu \
        --levers runs/levers/A.jsonl runs/levers/N3.jsonl --out docs/motion_vae_cpu_study.png
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from daps.io import atomic_write  # noqa: E402


def run_curve(folder: Path) -> tuple[list[float], list[float], list[float]]:
    """(minutes, joint RMSE rad, own-minus-shuffled log p nats) from a run folder's eval.csv."""
    with (folder / "eval.csv").open() as f:
        rows = list(csv.DictReader(f))
    return ([float(r["train_seconds"]) / 60 for r in rows], [float(r["joint_rmse_rad"]) for r in rows],
            [float(r["code_info_nats"]) for r in rows])


def lever_curve(path: Path) -> tuple[list[float], list[float], list[float]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r["t"] / 60 for r in rows], [r["jr"] for r in rows], [r["gap"] for r in rows]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="*", default=[], help="LABEL=RUN_DIR")
    p.add_argument("--levers", nargs="*", default=[], type=Path, help="lever .jsonl files (label = file name)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--title", default="LAFAN1-H1 validation, 64 x 1024 codes per 32 frames, 2-core CPU")
    a = p.parse_args()
    curves = [(lab, *run_curve(Path(d))) for lab, d in (r.split("=", 1) for r in a.runs)]
    curves += [(f.stem, *lever_curve(f)) for f in a.levers]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for lab, t, jr, info in curves:
        style = "-o" if lab in dict(r.split("=", 1) for r in a.runs) else "--."
        ax1.plot(t, jr, style, ms=3, label=lab)
        ax2.plot(t, info, style, ms=3, label=lab)
    ax1.set(xlabel="training wall time [min]", ylabel="joint RMSE [rad] (one sampled code)", ylim=(0.1, 0.6))
    ax2.set(xlabel="training wall time [min]", ylabel="log p own code - log p shuffled code [nats]")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    ax1.legend(fontsize=7, ncol=2)
    fig.suptitle(a.title, fontsize=10)
    fig.tight_layout()
    atomic_write(a.out, lambda tmp: fig.savefig(tmp, dpi=100))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
