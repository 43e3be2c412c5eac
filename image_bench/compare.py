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

from pathlib import Path

import torch

from daps.args import apply_overrides
from daps.compare import Column, final_row, markdown_table, plot_curves, summarize, write_rows_csv
from daps.device import resolve_device
from daps.io import atomic_write_json, atomic_write_text
from daps.objectives.registry import method_spec
from image_bench.checkpoint import load_image_vae
from image_bench.config import preset_config
from image_bench.data import load_image_dataset
from image_bench.evaluate import save_grid
from image_bench.models import prior_samples
from image_bench.train import train_image_vae

TABLE_COLUMNS = (
    Column("beta_elbo", "beta-ELBO", 2, True),
    Column("elbo", "ELBO", 2, True),
    Column("log_p", "log p", 2),
    Column("l2", "L2", 3),
    Column("psnr_db", "PSNR dB", 2),
    Column("codebook_used", "codes used", 3),
    Column("code_perplexity", "perplexity", 1),
    Column("steps_per_s", "steps/s", 1),
)


def run_name(method: str) -> str:
    """Folder name of a method ("daps:1.0" -> "daps_beta1.0")."""
    name, _, beta = method.partition(":")
    return f"{name}_beta{beta}" if beta else name


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
            row, evals = final_row(method, seed, run_dir)
            rows.append(row)
            curves[method].append(evals)
    summary = summarize(rows, TABLE_COLUMNS)
    bits = {m: cfgs[m].model.bits for m in methods}
    stochastic = {m: method_spec(m.split(":")[0]).stochastic for m in methods}
    cfg0 = cfgs[methods[0]]
    header = (f"{dataset}, preset {preset}: {cfg0.model.block_size} tokens x {cfg0.model.vocab_size} codes, "
              f"{steps or cfg0.steps} steps at batch {batch_size or cfg0.batch_size}, {seeds} seed(s); "
              f"validation on {cfg0.val_images} test images, one code sample each (nats / image)")
    table = f"<!-- {header} -->\n" + markdown_table(summary, seeds, TABLE_COLUMNS, bits, stochastic)
    write_rows_csv(out_dir / "results.csv", rows)
    result = {"dataset": dataset, "preset": preset, "seeds": seeds, "methods": methods, "bits": bits,
              "steps": steps or cfg0.steps, "batch_size": batch_size or cfg0.batch_size, "runs": rows, "summary": summary}
    atomic_write_json(out_dir / "results.json", result, indent=2)
    atomic_write_text(out_dir / "table.md", table)
    plot_curves(curves, out_dir / "curves.png", header.split(";")[0], (("log_p", "validation log p(x|z) [nats / image]"),))
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
