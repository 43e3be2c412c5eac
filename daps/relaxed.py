"""Relaxed (differentiable) categorical samples for the reparameterisation baselines.

Gumbel-Softmax straight-through (Jang et al. 2016; paper Sec. 2): the forward pass uses the hard
Gumbel-max sample z ~ q, the backward pass the gradient of softmax((logits + g) / tau):

    y = onehot(z) + soft - sg(soft),   soft = softmax((logits + g) / tau)

Gumbel-Rao Monte Carlo (GR-MCK, Paulus et al. 2020): the same hard z, but `soft` is replaced by
its average over k Gumbel vectors drawn *conditionally on argmax = z*, a Rao-Blackwellisation of
the straight-through gradient: same expectation, lower variance.

`relaxed_codes` draws y for either recognition model; for the autoregressive one it feeds each
token's y (its soft embedding y @ Embed) to the next step, so gradients flow back through the
sampled prefix, as the paper describes for Gumbel on the AR encoder: every step's activations are
kept for the backward pass (memory O(T) per sequence and layer, plus the growing key/value lists).

Shapes: B batch, K samples per datapoint, T latent tokens, V codes; logits are unnormalised.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from daps.recognition import ARRecognition, NARecognition, check_codes, kl_to_uniform

Relaxation = Callable[[Tensor, "torch.Generator | None"], tuple[Tensor, Tensor]]


def _uniform(shape: torch.Size | tuple, like: Tensor, generator: torch.Generator | None) -> Tensor:
    u = torch.rand(shape, generator=generator, device=like.device, dtype=like.dtype)
    return u.clamp_(torch.finfo(u.dtype).tiny, 1.0)


def gumbel_softmax_st(logits: Tensor, tau: float, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Straight-through Gumbel-Softmax sample.

    Args:
        logits: (..., V) unnormalised log-probabilities. tau: temperature (> 0).
    Returns:
        y: (..., V) one-hot of z in the forward pass, gradient of softmax((logits + g)/tau).
        z: (...) int64, an exact sample of softmax(logits) (Gumbel-max).
    """
    g = -torch.log(-torch.log(_uniform(logits.shape, logits, generator)))
    perturbed = logits + g
    z = perturbed.argmax(-1)
    soft = torch.softmax(perturbed / tau, dim=-1)
    hard = F.one_hot(z, logits.shape[-1]).to(soft.dtype)
    return hard + soft - soft.detach(), z


@torch.no_grad()
def conditional_gumbels(logp: Tensor, z: Tensor, num: int, generator: torch.Generator | None = None) -> Tensor:
    """Gumbel noise G (num, ..., V) drawn given argmax_v (logp_v + G_v) = z; no gradient.

    With E ~ Exp(1) and normalised logp (Paulus et al. 2020, App.): the perturbed winner
    X_z = -log E_z (a Gumbel(0) at log Z = 0), every other X_v = -log(E_v / p_v + E_z), a
    Gumbel(logp_v) truncated below X_z; G = X - logp. logp: (..., V) log-softmax; z: (...) int64.
    """
    e = -torch.log(_uniform((num, *logp.shape), logp, generator))  # Exp(1)
    log_e = e.log()
    log_ez = log_e.gather(-1, z.expand(num, *z.shape).unsqueeze(-1))  # (num, ..., 1)
    others = -torch.logaddexp(log_e - logp, log_ez)
    return torch.where(F.one_hot(z, logp.shape[-1]).bool(), -log_ez, others) - logp


def gumbel_rao_st(logits: Tensor, tau: float, num: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """GR-MCK straight-through sample (Paulus et al. 2020, Eq. 8): y (..., V), z (...) int64.

    Forward value onehot(z) with z ~ softmax(logits); gradient of the mean over `num`
    conditional Gumbel vectors G (held fixed) of softmax((logp + G) / tau).
    """
    logp = F.log_softmax(logits, dim=-1)
    g = -torch.log(-torch.log(_uniform(logits.shape, logits, generator)))
    z = (logp.detach() + g).argmax(-1)
    soft = torch.softmax((logp + conditional_gumbels(logp, z, num, generator)) / tau, dim=-1).mean(0)
    hard = F.one_hot(z, logits.shape[-1]).to(soft.dtype)
    return hard + soft - soft.detach(), z


def relaxed_codes(
    rec: nn.Module, x: Tensor, num_samples: int, relax: Relaxation, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Draw K relaxed code sequences per datapoint with gradients to theta.

    Args:
        rec: ARRecognition or NARecognition. x: batch of B datapoints (whatever rec takes).
        relax: maps logits (N, V) to (y (N, V), z (N,)), e.g. `gumbel_softmax_st` with tau bound.
    Returns:
        y: (B, K, T, V) straight-through one-hots. z: (B, K, T) int64 hard codes.
        kl: (B, K) sum_t KL(q(.|z_<t, x) || Uniform(V)) in nats along the sampled prefix, with
            gradient (the analytic KL the Gumbel baselines regularise with).
    Raises:
        TypeError: for a recognition model without categorical logits (FSQ, VQ).
    """
    if isinstance(rec, NARecognition):
        logits = rec.token_logits(x)  # (B, T, V)
        b, t, v = logits.shape
        flat = logits.unsqueeze(1).expand(b, num_samples, t, v).reshape(-1, v)
        y, z = relax(flat, generator)
        kl = kl_to_uniform(logits).sum(-1, keepdim=True).expand(b, num_samples)
        return y.view(b, num_samples, t, v), z.view(b, num_samples, t), kl
    if not isinstance(rec, ARRecognition):
        raise TypeError(f"relaxed sampling needs a categorical recognition model, got {type(rec).__name__}")
    cfg = rec.cfg
    mem, offset = rec.memory(x, num_samples)
    b = mem[0][0].shape[0]
    bk, v = b * num_samples, cfg.vocab_size
    code_embed = rec.tok_embed.weight[:v]  # (V, H); row V is the start token
    h = rec.tok_embed.weight[rec.start_token].expand(bk, 1, -1) + offset[:, :1]  # (B*K, 1, H)
    ys, zs, kls = [], [], []
    cache = [([], []) for _ in rec.blocks]  # per layer: keys, values of every position so far
    for t in range(cfg.block_size):
        for blk, (mk, mv), (ks, vs) in zip(rec.blocks, mem, cache):
            h = _block_step(blk, h, ks, vs, mk, mv)
        logits = rec.head(rec.ln(h[:, 0]))  # (B*K, V)
        y, z = relax(logits, generator)
        ys.append(y)
        zs.append(z)
        kls.append(kl_to_uniform(logits))
        if t + 1 < cfg.block_size:
            h = (y @ code_embed).unsqueeze(1) + offset[:, t + 1 : t + 2]
    y = torch.stack(ys, 1).view(b, num_samples, cfg.block_size, v)
    z = torch.stack(zs, 1).view(b, num_samples, cfg.block_size)
    return y, z, torch.stack(kls, 1).sum(1).view(b, num_samples)


def _block_step(blk: nn.Module, x: Tensor, ks: list[Tensor], vs: list[Tensor], mem_k: Tensor, mem_v: Tensor) -> Tensor:
    """`DecoderBlock.step` with a cache that carries gradients: the keys/values of the new
    position x (B*K, 1, H) are appended to the lists ks, vs (each entry (B*K, h, 1, d)) instead of
    written in place into a preallocated buffer (which autograd cannot differentiate through)."""
    h = blk.ln1(x)
    k, v = blk.self_attn.keys_values(h)
    ks.append(k)
    vs.append(v)
    x = x + blk.self_attn.attend_one(h, torch.cat(ks, dim=2), torch.cat(vs, dim=2))
    x = x + blk.cross(x, mem_k, mem_v)
    return x + blk.mlp(blk.ln3(x))


def log_prob_with_kl(rec: nn.Module, x: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
    """log q_theta(z|x) and sum_t KL(q(.|z_<t, x) || Uniform) (B, K) in nats, both with gradient.

    `ARRecognition.log_prob` returns the KL without gradient (DAPS does not need it); PPO's
    beta-weighted KL term does. z: (B, K, T) int64.
    """
    check_codes(z, rec.cfg)
    if isinstance(rec, NARecognition):
        logits = rec.token_logits(x).unsqueeze(1)  # (B, 1, T, V)
    elif isinstance(rec, ARRecognition):
        logits = rec.logits(x, z)  # (B, K, T, V)
    else:
        raise TypeError(f"log_prob_with_kl needs a categorical recognition model, got {type(rec).__name__}")
    logp = F.log_softmax(logits, dim=-1).expand(*z.shape, -1)
    log_q = logp.gather(-1, z.unsqueeze(-1)).squeeze(-1).sum(-1)
    return log_q, kl_to_uniform(logits).sum(-1).expand(z.shape[:2])
