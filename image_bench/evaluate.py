"""Validation metrics of an image VAE, and the eval report (JSON + reconstruction and prior-sample grids).

Metrics (per validation image, averaged; one stochastic z ~ q_theta(z|x) per image, as the
authors, facts Sec. 6):
  log_p            log p_phi(x|z), nats per image (Bernoulli over 784 binary pixels)
  kl               sum_t KL(q(.|z_<t, x) || Uniform(V)) along the sampled code, nats (T log V
                   for the deterministic quantisers)
  elbo, beta_elbo  log_p - kl, log_p - beta_final kl (nats; beta_elbo absent without a beta)
  l2               sqrt(sum of squared error) per image, decoder mean vs the image in model
                   units (MNIST: probabilities vs binary pixels, the paper's "L2" row; CIFAR-10:
                   standardised pixels)
  psnr_db          PSNR of the decoder mean against the image, both mapped to [0, 1] (`to_unit`)
  codebook_used, code_perplexity   over all tokens of the validation codes
  fid_recon        (with --fid-weights) FID of the reconstructions against the validation
                   images, image_bench.fid (paper Table 1 reports it for CIFAR-10 and ImageNet)
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

from daps.device import resolve_device
from daps.io import atomic_write, atomic_write_json
from daps.metrics import codebook_usage, elbo, psnr, segment_l2
from image_bench.checkpoint import load_image_vae
from image_bench.data import load_image_dataset
from image_bench.fid import frechet_distance, load_inception
from image_bench.models import prior_samples


@torch.no_grad()
def evaluate_images(model: nn.Module, x: Tensor, beta_final: float | None, batch: int = 500, seed: int = 0,
                    to_unit: Callable[[Tensor], Tensor] | None = None) -> dict[str, float]:
    """Score images x (N, H, W[, C]) in model units with one sampled code each; returns plain floats.
    to_unit maps model units to [0, 1] for PSNR (None: x is already in [0, 1], e.g. binary)."""
    unit = to_unit or (lambda t: t)
    was_training = model.training
    model.eval()
    gen = torch.Generator(device=x.device).manual_seed(seed)
    log_p, kl, l2, ps, codes = [], [], [], [], []
    for i in range(0, len(x), batch):
        xb = x[i : i + batch]
        z, _ = model.recognition.sample(xb, 1, gen)
        _, klb = model.recognition.log_prob(xb, z)
        params = model.generator(z)
        mean = model.likelihood.mean(params)[:, 0]
        log_p.append(model.likelihood.log_prob(xb, params)[:, 0])
        kl.append(klb[:, 0])
        l2.append(segment_l2(mean, xb))
        ps.append(psnr(unit(mean), unit(xb), 1.0))
        codes.append(z)
    log_p, kl = torch.cat(log_p), torch.cat(kl)
    used, perplexity = codebook_usage(torch.cat(codes), model.vocab_size)
    out = {
        "log_p": log_p.mean().item(),
        "kl": kl.mean().item(),
        "elbo": elbo(log_p, kl).item(),
        "l2": torch.cat(l2).mean().item(),
        "psnr_db": torch.cat(ps).mean().item(),
        "codebook_used": used,
        "code_perplexity": perplexity,
    }
    if beta_final is not None:
        out["beta_elbo"] = elbo(log_p, kl, beta_final).item()
    model.train(was_training)
    return out


def save_grid(rows: list[np.ndarray], labels: list[str], path: Path, title: str = "") -> Path:
    """PNG of image rows: rows[i] (n, H, W) grey or (n, H, W, 3) RGB in [0, 1], one labelled row each. Atomic write."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), n, figsize=(0.9 * n + 1.2, 0.95 * len(rows) + 0.4), squeeze=False)
    for i, (row, label) in enumerate(zip(rows, labels)):
        for j in range(n):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(row):
                ax.imshow(row[j], cmap="gray", vmin=0, vmax=1) if row[j].ndim == 2 else ax.imshow(row[j].clip(0, 1))
            else:
                ax.axis("off")
        axes[i, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100))
    plt.close(fig)
    return Path(path)


@torch.no_grad()
def reconstruction_fid(model: nn.Module, x: Tensor, inception, to_unit: Callable[[Tensor], Tensor],
                       device: torch.device, batch: int = 100, seed: int = 0) -> float:
    """FID of the reconstructions of images x (N, H, W[, C], model units) against x itself: one
    sampled code per image, decoder mean; ``inception`` from :func:`image_bench.fid.load_inception`."""
    model.eval()
    gen = torch.Generator(device=x.device).manual_seed(seed)

    def pairs():
        for i in range(0, len(x), batch):
            xb = x[i : i + batch]
            z, _ = model.recognition.sample(xb, 1, gen)
            yield xb, model.reconstruct(z)[:, 0]

    return frechet_distance(inception, pairs(), to_unit, device)


def evaluate_checkpoint(ckpt: str | Path, out: str | Path, data_root: str | Path | None = None, num_images: int = 0,
                        device: str = "auto", fid_weights: str | Path | None = None) -> dict:
    """Score a checkpoint on the validation images (all if num_images <= 0); write eval.json,
    reconstructions.png (images over their reconstructions) and prior_samples.png (uniform codes,
    paper Fig. 14) to `out`. With ``fid_weights`` (a TorchScript FID Inception, image_bench.fid)
    also ``fid_recon``: FID of the reconstructions (decoder means of one sampled code each)
    against the same validation images. Raises CheckpointError / ImageDataError for bad files,
    before anything is written."""
    dev = resolve_device(device)
    inception = load_inception(fid_weights, dev) if fid_weights is not None else None  # bad file: fail first
    model, cfg, ckpt_dict = load_image_vae(ckpt, dev)
    data = load_image_dataset(cfg.dataset, data_root)
    x = torch.from_numpy(data.val.fixed(num_images)).to(dev)
    metrics = {"method": cfg.method, "dataset": cfg.dataset, "step": ckpt_dict["step"], "images": len(x),
               "bits": cfg.model.bits, **evaluate_images(model, x, cfg.beta_final, to_unit=data.to_unit)}
    if inception is not None:
        metrics["fid_recon"] = reconstruction_fid(model, x, inception, data.to_unit, dev)
    out = Path(out)
    atomic_write_json(out / "eval.json", metrics, indent=2)
    with torch.no_grad():
        z, _ = model.recognition.sample(x[:10], 1, torch.Generator(device=dev).manual_seed(0))
        rec = data.to_unit(model.reconstruct(z)[:, 0]).cpu().numpy()
        prior = data.to_unit(prior_samples(model, 10, torch.Generator(device=dev).manual_seed(0))).cpu().numpy()
    save_grid([data.to_unit(x[:10]).cpu().numpy(), rec], ["data", cfg.method], out / "reconstructions.png")
    save_grid([prior], [cfg.method], out / "prior_samples.png", "decoder means of uniform-prior codes")
    return metrics
