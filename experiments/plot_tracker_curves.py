"""Mean unassisted episode length (s) against environment steps, one line per training run.

    python experiments/plot_tracker_curves.py --out docs/tracking_curves.png \
        "(a) recipe=runs/cmp/a_mimic/progress.csv" "(d) capture-point feedback=runs/cmp/d_balance/progress.csv"

Each argument is LABEL=PATH to a progress.csv of `daps lowlevel train-tracker` (its
eval_unassisted_s column: the deterministic policy from fixed starts, no assist).
"""
import argparse
import csv

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from daps.io import atomic_write  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="LABEL=path/to/progress.csv")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    fig, ax = plt.subplots(figsize=(7, 4))
    for item in a.runs:
        label, _, path = item.rpartition("=")
        rows = [r for r in csv.DictReader(open(path)) if r["eval_unassisted_s"]]
        ax.plot([int(r["step"]) / 1e6 for r in rows], [float(r["eval_unassisted_s"]) for r in rows], label=label, lw=1.2)
    ax.set_xlabel("environment steps (millions)")
    ax.set_ylabel("mean unassisted episode (s)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(a.out, lambda tmp: fig.savefig(tmp, dpi=110))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
