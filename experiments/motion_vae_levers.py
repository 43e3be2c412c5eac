"""The DAPS levers at CPU budgets: one short motion-VAE run per call, scored against wall time.

Used for docs/motion_vae_cpu_study.md. A plain loop over the project's own parts (data, model,
DAPS objective, AdamW + AGC as in daps.trainer) with knobs the presets do not expose, so a lever
can be tried in one command. Every `--eval-every` seconds of training (validation time excluded)
it prints one JSON line on the 256 fixed validation segments:

  jr / jrg   joint RMSE (rad) with one sampled code / the greedy code per segment
  own, shuf  log p (nats) of each segment under its own sampled code / another segment's code
  gap        own - shuf: what the codes carry (0 = the decoder ignores them)
  kl, ppl    KL to the uniform prior (nats), code perplexity over the set

Example (the study's N3 row, DAPS-NA on the FSQ lattice):

    python experiments/motion_vae_levers.py --name N3 --rec na --lattice 1 --H 64 --layers 1 \
        --beta0 1 --beta1 1 --seconds 300 --out runs/levers
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from daps.metrics import codebook_usage
from daps.objectives.daps import DAPS, DAPSConfig
from daps.schedules import BetaSchedule
from daps.trainer import adaptive_grad_clip_, keep_freed_memory
from motion_vae.dataset import load_motion_dataset
from motion_vae.evaluate import raw_unit_errors
from motion_vae.config import MotionVAEConfig
from motion_vae.models import build_motion_vae


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True)
    p.add_argument("--out", default="runs/levers", help="folder for NAME.jsonl")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seconds", type=float, default=300, help="training wall time")
    p.add_argument("--eval-every", type=float, default=60, help="seconds of training between evaluations")
    p.add_argument("--rec", default="ar", choices=["ar", "na"], help="AR (DAPS) or NA (DAPS-NA) encoder")
    p.add_argument("--H", type=int, default=128, help="embed dim")
    p.add_argument("--layers", type=int, default=2, help="layers per transformer stack")
    p.add_argument("--B", type=int, default=16, help="batch size")
    p.add_argument("--K", type=int, default=8, help="samples per datapoint")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--enc-lr", type=float, default=None, help="encoder learning rate (default: --lr)")
    p.add_argument("--eta-lr", type=float, default=3e-2)
    p.add_argument("--init-eta", type=float, default=10.0)
    p.add_argument("--ess", type=float, default=0.5, help="ESS target rho (fraction of K)")
    p.add_argument("--beta0", type=float, default=2.0)
    p.add_argument("--beta1", type=float, default=0.01)
    p.add_argument("--beta-steps", type=float, default=600, help="steps of the exponential beta decay")
    p.add_argument("--init-logit-std", type=float, default=0.0, help="encoder output rows rescaled to this norm")
    p.add_argument("--emb-scale", type=float, default=1.0, help="decoder code-embedding scale at init")
    p.add_argument("--lattice", type=int, default=0, help="1: codes on the FSQ grid [8, 8, 4, 4]")
    p.add_argument("--sharp", type=float, default=2.0, help="initial lattice sharpness kappa")
    p.add_argument("--aligned", type=int, default=0, help="1: AR decoder also sees the aligned input token")
    p.add_argument("--st-warmup", type=int, default=0, help="steps of straight-through (FSQ) warm start (lattice only)")
    p.add_argument("--agc", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def main() -> None:
    a = parse()
    torch.set_num_threads(a.threads)
    keep_freed_memory()
    data = load_motion_dataset()
    torch.manual_seed(a.seed)
    mcfg = MotionVAEConfig(
        num_features=data.stats.num_features, embed_dim=a.H, num_layers=a.layers, recognition=a.rec,
        lattice=bool(a.lattice), aligned_input=bool(a.aligned), init_logit_std=a.init_logit_std,
    )
    m = build_motion_vae(mcfg)
    with torch.no_grad():
        if a.lattice:
            m.recognition.head.log_sharpness.fill_(math.log(a.sharp))
        else:
            m.generator.embed.weight.mul_(a.emb_scale)
    obj = DAPS(DAPSConfig(a.K, a.ess, a.init_eta, BetaSchedule("exp", a.beta0, a.beta1), a.st_warmup))
    groups = [{"params": m.recognition.parameters(), "lr": a.enc_lr or a.lr}, {"params": m.generator.parameters()}]
    opt = torch.optim.AdamW(groups, lr=a.lr, weight_decay=1e-4)
    eta_opt = torch.optim.AdamW(obj.parameters(), lr=a.eta_lr, weight_decay=0.0)
    vx = torch.from_numpy(data.val.fixed(256, seed=0))
    perm = torch.from_numpy(np.random.default_rng(1).permutation(len(vx)))

    @torch.no_grad()
    def evaluate() -> dict:
        m.eval()
        g = torch.Generator().manual_seed(0)
        z, _ = m.recognition.sample(vx, 1, g)
        _, kl = m.recognition.log_prob(vx, z)
        params = m.generator(z)
        own = m.likelihood.log_prob(vx, params)[:, 0].mean().item()
        shuf = m.likelihood.log_prob(vx, params[perm])[:, 0].mean().item()
        _, ppl = codebook_usage(z, m.vocab_size)
        jr = raw_unit_errors(m.likelihood.mean(params)[:, 0].numpy(), vx.numpy(), data.stats)["joint_rmse_rad"]
        zg, _ = m.recognition.sample(vx, 1, g, greedy=True)
        jrg = raw_unit_errors(m.reconstruct(zg)[:, 0].numpy(), vx.numpy(), data.stats)["joint_rmse_rad"]
        m.train()
        return {"own": own, "shuf": shuf, "gap": own - shuf, "kl": kl.mean().item(), "ppl": ppl, "jr": jr, "jrg": jrg}

    out = Path(a.out) / f"{a.name}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    rng, gen = np.random.default_rng(a.seed), torch.Generator().manual_seed(a.seed)
    step, last_eval, metrics = 0, 0.0, {}
    with out.open("w") as f:
        def log(row: dict) -> None:
            print(json.dumps(row), flush=True)
            f.write(json.dumps(row) + "\n")
            f.flush()

        log({"t": 0, "step": 0, "args": vars(a), **evaluate()})
        t0 = time.perf_counter()
        while True:
            elapsed = time.perf_counter() - t0
            if elapsed - last_eval >= a.eval_every or elapsed >= a.seconds:
                last_eval, te = elapsed, time.perf_counter()
                row = evaluate()
                t0 += time.perf_counter() - te  # validation time is not training time
                log({"t": round(elapsed), "step": step, "eta": metrics.get("eta"), "beta": metrics.get("beta"),
                     "ess": metrics.get("ess_frac"), **row})
                if elapsed >= a.seconds:
                    break
            x = torch.from_numpy(data.train.sample(rng, a.B))
            loss_vae, loss_eta, metrics = obj.loss(m, x, step, int(a.beta_steps), gen)
            opt.zero_grad(set_to_none=True)
            eta_opt.zero_grad(set_to_none=True)
            (loss_vae + loss_eta).backward()
            if a.agc > 0:
                adaptive_grad_clip_(list(m.parameters()), a.agc)
            opt.step()
            eta_opt.step()
            step += 1


if __name__ == "__main__":
    main()
