"""Training and evaluation of the high-level prior (a plain CleanRL-style loop).

The core trainer (daps.trainer.train) is built around a DiscreteVAE (it splits the optimiser by
`model.recognition`), so the prior gets its own short loop with the core's pieces: checkpoint
format and loader, atomic saves, CSV + TensorBoard log (daps.trainer.MetricsLog), tqdm.
Loss: cross-entropy of the next segment's codes (nats/token), teacher forced; the context parts
are masked at random (PriorConfig.drop_*). Run folder: checkpoint.pt, metrics.csv, eval.csv, tb/.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from daps.args import apply_overrides
from daps.trainer import CHECKPOINT_FORMAT, CheckpointError, MetricsLog, atomic_torch_save, load_checkpoint
from highlevel.dataset import COM_CHANNELS, SEG, PairSet, cached_pairs
from highlevel.model import HighLevelPrior, PriorConfig

KIND = "highlevel"
MASKS = {"text+com+history": (1, 1, 1), "history only": (0, 0, 1), "unconditional": (0, 0, 0)}


@dataclass
class HLConfig:
    """A run. steps/batch_size/lr (AdamW, linear warm-up then cosine to 10 %), grad_clip (norm);
    p_clip_text: chance a training example's text is one of its clip's phrasings (else the target
    segment's measured phrase); offsets/max_frames/train_clips/val_clips select the pairs
    (None = the motion VAE's split, whole clips); mirror adds the training clips' left-right mirror
    images (`highlevel.dataset`); eval_pairs / rmse_pairs: validation pairs scored
    for NLL / decoded joint RMSE."""

    prior: PriorConfig = field(default_factory=PriorConfig)
    steps: int = 6000
    batch_size: int = 64
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup: int = 200
    grad_clip: float = 1.0
    seed: int = 0
    p_clip_text: float = 0.5
    offsets: tuple = (0, 16)
    mirror: bool = False
    max_frames: int | None = None
    train_clips: list | None = None
    val_clips: list | None = None
    log_every: int = 20
    eval_every: int = 1000
    ckpt_every: int = 250
    eval_pairs: int = 1024
    rmse_pairs: int = 128

    def to_dict(self) -> dict:
        d = asdict(self)
        d["offsets"] = list(self.offsets)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "HLConfig":
        d = dict(d)
        d["prior"] = PriorConfig(**d["prior"])
        d["offsets"] = tuple(d["offsets"])
        return cls(**d)


def preset_config(name: str) -> HLConfig:
    """'cpu' (about an hour on 2 shared cores) or 'tiny' (seconds; tests)."""
    if name == "cpu":
        return HLConfig(prior=PriorConfig(com_channels=COM_CHANNELS))
    if name == "tiny":
        return HLConfig(
            prior=PriorConfig(embed_dim=32, num_heads=2, num_layers=1, enc_layers=1, mlp_ratio=2, com_channels=COM_CHANNELS),
            steps=60, batch_size=16, lr=3e-3, warmup=5, offsets=(0,), max_frames=320,
            train_clips=["walk1_subject1", "run1_subject2"], val_clips=["walk2_subject4"],
            log_every=5, eval_every=0, ckpt_every=30, eval_pairs=16, rmse_pairs=4,
        )
    raise ValueError(f"--preset must be 'cpu' or 'tiny', got {name!r}")


def sample_batch(p: PairSet, idx: np.ndarray, rng: np.random.Generator, p_clip_text: float) -> tuple:
    """Tensors (text (B, 384), com (B, 64, 5), prev (B, 64), target (B, 64)) for pairs idx (B,);
    each example's text is a random phrasing of its clip with chance p_clip_text, else its segment
    phrase."""
    t = p.seg_text[idx].copy()
    use_clip = rng.random(len(idx)) < p_clip_text
    for k in np.flatnonzero(use_clip):
        opts = p.clip_text[p.clip[idx[k]]]
        opts = opts[opts >= 0]
        t[k] = opts[rng.integers(len(opts))]
    return (torch.from_numpy(p.text_emb[t]), torch.from_numpy(p.com[idx]), torch.from_numpy(p.prev[idx]),
            torch.from_numpy(p.target[idx]))


def lr_at(step: int, cfg: HLConfig) -> float:
    """Learning rate at a step: linear warm-up, then cosine decay to 10 % of cfg.lr."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


@torch.no_grad()
def evaluate_prior(model: HighLevelPrior, val: PairSet, n_nll: int, n_rmse: int, vae=None, stats=None,
                   root=None, seed: int = 0) -> dict[str, float]:
    """Held-out scores per context mask (MASKS): code NLL (nats/token) on up to n_nll fixed pairs
    (text = the segment's measured phrase); with vae/stats, the joint RMSE (rad) of the decoded
    sampled codes (temperature 1) against the true segment on up to n_rmse pairs, and the motion
    VAE's own floor (decoded true codes)."""
    from envs.lafan1 import load_clip_csv, resolve_clip_dir
    from motion_vae.codec import decode_codes

    model.eval()
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.permutation(len(val))[:n_nll])
    text, com, prev, z = (torch.from_numpy(a) for a in (val.text_emb[val.seg_text[idx]], val.com[idx], val.prev[idx], val.target[idx]))
    out = {}
    for name, m in MASKS.items():
        mask = torch.tensor(m, dtype=torch.bool).expand(len(idx), 3)
        out[f"nll/{name}"] = float(model.nll(text, com, prev, z, mask).mean())
    if vae is not None and n_rmse > 0:
        r = idx[:n_rmse]
        clip_dir = resolve_clip_dir(root)
        rows = {c: load_clip_csv(clip_dir / f"{val.clip_names[c]}.csv") for c in set(val.clip[r].tolist())}
        truth = np.stack([rows[c][s : s + SEG, 7:] for c, s in zip(val.clip[r], val.start[r])])
        k = len(r)

        def rmse(codes: np.ndarray) -> float:
            dec = decode_codes(vae, stats, codes).reshape(k, SEG, -1)[..., 7:]
            return float(np.sqrt(((dec - truth) ** 2).mean()))

        out["rmse_rad/vae floor (true codes)"] = rmse(val.target[r])
        g = torch.Generator().manual_seed(seed)
        for name, m in MASKS.items():
            mask = torch.tensor(m, dtype=torch.bool).expand(k, 3)
            zs = model.sample(text[:k], com[:k], prev[:k], mask, 1.0, 0, g).numpy()
            out[f"rmse_rad/{name}"] = rmse(zs)
    model.train()
    return out


def _save(path: Path, model, opt, cfg: HLConfig, step: int, secs: float, rng, gen, extra: dict) -> None:
    """extra: {"motion_vae": path, "motion_vae_sha256", "commit", "machine"} (see train_prior)."""
    atomic_torch_save({"format": CHECKPOINT_FORMAT, "kind": KIND, "config": cfg.to_dict(), "step": step,
                       "train_seconds": secs, "model": model.state_dict(), "optimizer": opt.state_dict(),
                       "rng": {"torch": gen.get_state(), "numpy": rng.bit_generator.state},
                       "extra": extra}, path)


def load_prior(path: str | Path) -> tuple[HighLevelPrior, HLConfig, dict]:
    """(model in eval mode, config, checkpoint dict) from a high-level checkpoint; CheckpointError
    (one line naming the file) if missing, damaged or of another kind."""
    ck = load_checkpoint(Path(path), KIND)
    try:
        cfg = HLConfig.from_dict(ck["config"])
        model = HighLevelPrior(cfg.prior)
        model.load_state_dict(ck["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: checkpoint does not match its config ({type(e).__name__})") from None
    return model.eval(), cfg, ck


def train_prior(cfg: HLConfig, run_dir: str | Path, vae_path: str | Path | None = None, root=None,
                resume: bool = False, time_limit_s: float | None = None, progress: bool = True,
                cache_dir: str | Path | None = None, text_cache=None) -> dict:
    """Train the prior; returns {"losses": [per-log-step train loss], "val": final eval, "step",
    "train_pairs", "val_pairs"}. Pairs are cached in cache_dir (default RUN/../highlevel_cache),
    text embeddings in text_cache (an EmbeddingCache; default cache_dir/text_embeddings.npz)."""
    from tqdm import tqdm

    from highlevel.text import EmbeddingCache
    from daps.shipped import MOTION_VAE, shipped_path
    from motion_vae.models import load_motion_vae

    torch.manual_seed(cfg.seed)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    vae_path = Path(vae_path) if vae_path else shipped_path(MOTION_VAE)
    cache_dir = Path(cache_dir) if cache_dir else run_dir.parent / "highlevel_cache"
    tc = text_cache if text_cache is not None else EmbeddingCache(cache_dir / "text_embeddings.npz")
    kw = dict(root=root, max_frames=cfg.max_frames, offsets=cfg.offsets, text_cache=tc)
    train = cached_pairs("train", vae_path, cache_dir, clips=cfg.train_clips, mirror=cfg.mirror, **kw)
    val = cached_pairs("val", vae_path, cache_dir, clips=cfg.val_clips, **kw)
    vae, _, stats, _ = load_motion_vae(vae_path, "cpu")
    from daps.io import file_sha256
    from daps.provenance import describe_machine, git_commit

    # what the run was made with, for the model card; the sha256 pins the codebook the prior predicts
    extra = {"motion_vae": str(vae_path), "motion_vae_sha256": file_sha256(vae_path), "commit": git_commit(),
             "machine": describe_machine()}
    model = HighLevelPrior(cfg.prior)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng, gen = np.random.default_rng(cfg.seed), torch.Generator().manual_seed(cfg.seed)
    ckpt_path, start, secs0 = run_dir / "checkpoint.pt", 0, 0.0
    if resume and ckpt_path.exists():
        ck = load_checkpoint(ckpt_path, KIND)
        have = HLConfig.from_dict(ck["config"]).to_dict()  # fields added since take their defaults
        if {k: v for k, v in have.items() if k != "steps"} != {k: v for k, v in cfg.to_dict().items() if k != "steps"}:
            raise CheckpointError(f"{ckpt_path}: checkpoint was written with another config; use a new --run-dir")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        gen.set_state(ck["rng"]["torch"])
        rng.bit_generator.state = ck["rng"]["numpy"]
        start, secs0 = ck["step"], ck.get("train_seconds", 0.0)
        old = ck.get("extra", {})
        if old.get("motion_vae_sha256") and old["motion_vae_sha256"] != extra["motion_vae_sha256"]:
            raise CheckpointError(f"{ckpt_path}: trained against another motion VAE (sha256 {old['motion_vae_sha256'][:12]}, "
                                  f"{vae_path} has {extra['motion_vae_sha256'][:12]}); pass the run's --motion-vae {old.get('motion_vae', '?')} "
                                  "to resume it, or use a new --run-dir")
        extra["commit"] = old.get("commit") or extra["commit"]  # the first sitting's commit made most of it
    log, elog = MetricsLog(run_dir, "metrics", start), MetricsLog(run_dir, "eval", start)
    losses, t0, step = [], time.perf_counter(), start
    secs = lambda: secs0 + time.perf_counter() - t0  # noqa: E731
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not progress, desc="highlevel")
    model.train()
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        idx = rng.integers(0, len(train), size=cfg.batch_size)
        text, com, prev, z = sample_batch(train, idx, rng, cfg.p_clip_text)
        loss = model.nll(text, com, prev, z, model.train_mask(len(idx), gen)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        if (step + 1) % cfg.log_every == 0 or step == start:
            losses.append(loss.item())
            log.write(step + 1, {"loss_nats_per_token": loss.item(), "lr": lr_at(step, cfg), "train_seconds": secs()})
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if cfg.eval_every and (step + 1) % cfg.eval_every == 0 and step + 1 < cfg.steps:
            elog.write(step + 1, evaluate_prior(model, val, cfg.eval_pairs, 0))
        if (step + 1) % cfg.ckpt_every == 0:
            _save(ckpt_path, model, opt, cfg, step + 1, secs(), rng, gen, extra)
        if time_limit_s is not None and secs() >= time_limit_s:
            step += 1
            break
    else:
        step = cfg.steps
    _save(ckpt_path, model, opt, cfg, step, secs(), rng, gen, extra)
    metrics = evaluate_prior(model, val, cfg.eval_pairs, cfg.rmse_pairs, vae, stats, root, cfg.seed)
    elog.write(step, metrics)
    log.close()
    elog.close()
    return {"losses": losses, "val": metrics, "step": step, "train_pairs": len(train), "val_pairs": len(val)}


def with_overrides(cfg: HLConfig, steps=None, batch_size=None, seed=None, mirror=None, offsets=None) -> HLConfig:
    """A copy of cfg with the given fields replaced (None keeps the preset's; `daps.args.apply_overrides`);
    ValueError for bad values (steps or batch size below 1; offsets not distinct frames in 0 .. 31)."""
    if offsets is not None:
        offsets = tuple(int(o) for o in offsets)
        if not offsets or len(set(offsets)) != len(offsets) or not all(0 <= o < SEG for o in offsets):
            raise ValueError(f"--offsets must be distinct frames in 0 .. {SEG - 1}, got {list(offsets)}")
    return apply_overrides(replace(cfg), steps=steps, batch_size=batch_size, seed=seed, mirror=mirror, offsets=offsets)
