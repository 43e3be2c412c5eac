"""Categorical recognition models q_theta(z|x) over T latent tokens with V codes each.

ARRecognition: encoder-decoder transformer; the decoder is causal over latent-token embeddings
and cross-attends to the encoded input tokens (paper Sec. 3, App. F/G). Sampling uses a KV
cache; `log_prob` recomputes log q_theta(z|x) by teacher forcing for given sequences.

NARecognition: independent categoricals per position (the DAPS-NA ablation).

Both take an `input_embed` module mapping the raw datapoint x to N input tokens (B, N, H):
a 1D-conv resampler for trajectories, a patcher for images. They return log-probabilities in
nats. A separate start token (id V) begins every sequence, so code 0 is an ordinary code and the
sampler's log q equals the teacher-forced one (facts Sec. 8.1).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from daps.nn import DecoderBlock, Encoder, KVCache, TransformerConfig, in_fp32, init_weights, probs, sinusoidal_positions


class StraightThrough(NamedTuple):
    """Output of the lattice's straight-through quantiser (`LatticeHead.straight_through`).

    codes: (..., d) grid points carrying straight-through gradients; idx: (...,) int64 code
    indices; box: (...,) penalty for leaving the grid, squared grid spacings; log_q, kl: (...,)
    nats, log q_theta of idx and KL(q || Uniform(V)) per token, without gradient.
    """

    codes: Tensor
    idx: Tensor
    box: Tensor
    log_q: Tensor
    kl: Tensor


def gumbel_max(logp: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Sample indices from log-probabilities (..., V) by the Gumbel-max trick; returns (...) int64.

    argmax(logp - log E) with E ~ Exp(1) is the same as argmax(logp + Gumbel noise).
    """
    u = torch.rand(logp.shape, generator=generator, device=logp.device, dtype=logp.dtype)
    g = u.clamp_min_(torch.finfo(u.dtype).tiny).log_().neg_().log_()  # log E, in place (no temporaries)
    return torch.sub(logp, g, out=g).argmax(-1)


def inverse_cdf_sample(logp: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Sample one index per row from log-probabilities (N, V) by inverting the CDF; returns (N,) int64.

    Exact like Gumbel-max but draws one uniform number per row instead of V: on the CPU the
    random numbers of Gumbel-max were a third of the autoregressive sampler's time (V = 1024).
    """
    cdf = torch.cumsum(probs(logp), dim=-1)
    u = torch.rand(logp.shape[0], 1, generator=generator, device=logp.device, dtype=logp.dtype)
    # right=True: the first code whose CDF exceeds u, so u = 0 never picks a zero-probability code
    return torch.searchsorted(cdf, u.mul_(cdf[:, -1:]), right=True).squeeze(1).clamp_max_(logp.shape[-1] - 1)


def kl_to_uniform(logits: Tensor) -> Tensor:
    """KL(q || Uniform(V)) in nats per position for logits (..., V): log V - H(q); returns (...)."""
    logp = F.log_softmax(logits, dim=-1)
    return math.log(logits.shape[-1]) + (probs(logp) * logp).sum(-1)


class _HeadLogProb(torch.autograd.Function):
    """Fused output head + log-softmax + gather: log q(z_i) for rows h (N, H) and codes z (N,).

    Same value as `log_softmax(h W^T + b).gather(z)`, but the (N, V) logits are made and used in
    row chunks that stay in cache, the log-probabilities are kept in one buffer for the backward
    (no second softmax pass), and the KL to the uniform prior is read off the same chunk
    (returned without gradient). The backward turns the stored log-probabilities into the logit
    gradient (onehot - softmax) one chunk at a time and accumulates the head's weight/bias
    gradients chunk by chunk. Saves several (N, V) temporaries (at the LAFAN config N V = 134M floats each).
    """

    CHUNK = 2048

    @staticmethod
    def forward(ctx, h: Tensor, weight: Tensor, bias: Tensor, z: Tensor):  # noqa: D401
        n, v = h.shape[0], weight.shape[0]
        logp = h.new_empty(n, v)
        log_q = h.new_empty(n)
        kl = h.new_empty(n)
        log_v = math.log(v)
        wt = weight.t()
        for s in range(0, n, _HeadLogProb.CHUNK):
            e = min(s + _HeadLogProb.CHUNK, n)
            lp = logp[s:e]
            torch.addmm(bias, h[s:e], wt, out=lp)
            torch.log_softmax(lp, dim=-1, out=lp)
            log_q[s:e] = lp.gather(1, z[s:e, None]).squeeze(1)
            kl[s:e] = torch.add(probs(lp).mul_(lp).sum(-1), log_v)
        ctx.save_for_backward(h, weight, z, logp)
        ctx.mark_non_differentiable(kl)
        return log_q, kl

    @staticmethod
    def backward(ctx, grad_log_q: Tensor, _grad_kl: Tensor | None):
        h, weight, z, logp = ctx.saved_tensors
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        n = h.shape[0]
        grad_h = torch.empty_like(h) if need_h else None
        grad_w = torch.zeros_like(weight) if need_w else None
        grad_b = torch.zeros(weight.shape[0], dtype=h.dtype, device=h.device) if need_b else None
        for s in range(0, n, _HeadLogProb.CHUNK):
            e = min(s + _HeadLogProb.CHUNK, n)
            go = grad_log_q[s:e, None]
            g = probs(logp[s:e]).mul_(-go)  # d log q / d logits = onehot - softmax, times go
            g.scatter_add_(1, z[s:e, None], go)
            if need_h:
                torch.mm(g, weight, out=grad_h[s:e])
            if need_w:
                grad_w.addmm_(g.t(), h[s:e])
            if need_b:
                grad_b += g.sum(0)
        return grad_h, grad_w, grad_b, None


class LatticeHead(nn.Module):
    """Output layer whose V codes are the points g_c of a fixed grid (the FSQ lattice of `levels`).

    logits_c = -sum_i kappa_i (u_i - g_ci)^2 / delta_i^2 (+ a constant in c), with u = A h + a the
    token's position in the grid's d = len(levels) dimensions, delta_i the grid spacing and
    kappa_i > 0 learned sharpness: q(z_t | z_<t, x) is a categorical over V codes that prefers
    grid points near u. Expanded, it is an ordinary linear layer with a rank-d weight
    W = (2 kappa/delta^2 * G) A (V, H) and bias b (V,), exposed as `.weight` and `.bias` so the
    fused log-prob kernel and the KV-cached sampler use it unchanged.

    Why: with a free (V, H) output layer each code is learned on its own, and neighbouring codes
    mean nothing alike; on the lattice, codes of similar inputs are neighbours from the first
    step, so a decoder that embeds codes by their grid point (`daps.fsq.FSQCodeEmbedding`) can
    read an untrained encoder's codes at once (docs/motion_vae_cpu_study.md).

    Args:
        embed_dim: H. levels: values per grid dimension (their product is V).
        init_sharpness: kappa at initialisation (about the log-odds of the nearest grid point
            against the next one along a dimension).
        bound: "box" (u = A h + a, a penalty outside the grid in the warm start; linear in h, so
            `.weight`/`.bias` serve the AR encoder's fused kernel) or "tanh" (u squashed into the
            grid by FSQ's bound, :func:`fsq_bound`: the warm start is then FSQ exactly; NA only).
    Raises:
        ValueError: an unknown bound.
    """

    def __init__(self, embed_dim: int, levels: tuple[int, ...], init_sharpness: float = 2.0, bound: str = "box"):
        super().__init__()
        from vector_quantize_pytorch import FSQ

        if bound not in LATTICE_BOUNDS:
            raise ValueError(f"lattice bound must be one of {', '.join(LATTICE_BOUNDS)}, got {bound!r}")
        self.bound = bound

        grid = FSQ(list(levels)).implicit_codebook.float()  # (V, d), same index order as FSQ
        self.register_buffer("grid", grid, persistent=False)
        spacing = torch.tensor([2.0 / (lv - 1) if lv % 2 else 2.0 / lv for lv in levels])
        self.register_buffer("inv_spacing2", spacing.pow(-2), persistent=False)
        self.levels = tuple(levels)
        self.register_buffer("basis", torch.tensor([math.prod(levels[:i]) for i in range(len(levels))]), persistent=False)
        self.proj = nn.Linear(embed_dim, len(levels))
        self.log_sharpness = nn.Parameter(torch.full((len(levels),), math.log(init_sharpness)))

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.proj.weight, gain=0.5)  # u starts inside the grid, not at its edges
        nn.init.zeros_(self.proj.bias)

    def _precision_grid(self) -> Tensor:
        return self.grid * (2 * self.log_sharpness.exp() * self.inv_spacing2)  # (V, d)

    def _grid_norm(self) -> Tensor:
        """sum_i kappa_i g_ci^2 / delta_i^2 per code (V,): the u-independent part of the logits."""
        return self.grid.square() @ (self.log_sharpness.exp() * self.inv_spacing2)

    def position(self, h: Tensor) -> Tensor:
        """u (..., d), the token's position in grid coordinates: A h + a, squashed into the grid
        by FSQ's tanh bound when ``bound="tanh"`` (:func:`fsq_bound`)."""
        u = self.proj(h)
        return fsq_bound(u, self.levels) if self.bound == "tanh" else u

    def _linear(self) -> None:
        if self.bound != "box":
            raise TypeError("a tanh-bounded lattice head is not linear in h: no .weight / .bias (the AR encoder's fused kernel needs them)")

    # weight and bias are float32 like a Dense head's parameters, also under bfloat16 autocast
    # (the fused log-prob kernel and the sampler's head run in float32: `daps.nn.in_fp32`)
    @property
    def weight(self) -> Tensor:
        self._linear()
        with torch.autocast(self.grid.device.type, enabled=False):
            return self._precision_grid() @ self.proj.weight  # (V, H)

    @property
    def bias(self) -> Tensor:
        self._linear()
        with torch.autocast(self.grid.device.type, enabled=False):
            return self._precision_grid() @ self.proj.bias - self._grid_norm()  # (V,)

    def forward(self, h: Tensor) -> Tensor:
        if self.bound == "box":
            return torch.addmm(self.bias, h.flatten(0, -2), self.weight.t()).view(*h.shape[:-1], -1)
        return self.position(h) @ self._precision_grid().t() - self._grid_norm()  # (..., V)

    def straight_through(self, h: Tensor) -> StraightThrough:
        """The nearest grid point to u = A h + a, with straight-through gradients to u.

        h: (..., H). Returns a `StraightThrough`: grid points (..., d) whose gradient flows to u
        unchanged, their indices (...,) int64 (the mode of the lattice categorical: separable per
        dimension, so the same for any kappa), the box penalty sum_i (max(0, |u_i - c_i| - r_i) /
        delta_i)^2 (...,) in squared grid spacings, with c_i +- r_i the grid's range widened by
        delta_i / 2 (zero inside the grid, so moves between cells are free as in FSQ, whose tanh
        bound plays this part; without it u drifts past the edges and every token sits on one of
        the 2^d corners), and log q(index) and KL(q || uniform) per token (`factor_log_prob`, no
        gradient). Used to warm-start the encoder as an FSQ autoencoder.
        """
        u = self.position(h)
        levels = torch.tensor(self.levels, device=u.device)
        # FSQ grid coordinate along each dimension: (j - half) / half, j in [0, L), half = L // 2
        # (odd and even L alike, as in vector_quantize_pytorch.FSQ's implicit codebook)
        half = (levels // 2).to(u.dtype)
        j = torch.minimum(torch.maximum((u * half + half).round(), torch.zeros_like(u)), (levels - 1).to(u.dtype))
        g = (j - half) / half
        idx = (j.long() * self.basis).sum(-1)
        delta = self.inv_spacing2.rsqrt()
        lo, hi = -1.0, (levels - 1 - half) / half  # the grid's first and last coordinate
        centre, radius = (hi + lo) / 2, (hi - lo) / 2 + delta / 2
        outside = ((u - centre).abs() - radius).clamp(min=0)
        log_q, kl = self.factor_log_prob(u.detach(), j.long())
        return StraightThrough(g + (u - u.detach()), idx, (outside.square() * self.inv_spacing2).sum(-1), log_q, kl)

    @torch.no_grad()
    def factor_log_prob(self, u: Tensor, j: Tensor) -> tuple[Tensor, Tensor]:
        """log q of the grid point with per-dimension level indices j (..., d) int64, and KL(q ||
        Uniform(V)), both (...,) nats without gradient, from u (..., d) = A h + a.

        The lattice logits -sum_i kappa_i (u_i - g_ci)^2 / delta_i^2 are a sum over dimensions, so
        q is a product of one categorical per dimension (L_i levels each): log q and the KL are
        sums of d small terms instead of a softmax over all V codes (the warm start logs them
        every step; on the `cpu-long` model the V-way pass cost a quarter of the step).
        """
        log_q = u.new_zeros(u.shape[:-1])
        kl = u.new_zeros(u.shape[:-1])
        kappa = self.log_sharpness.exp() * self.inv_spacing2
        for i, lv in enumerate(self.levels):
            half = lv // 2
            coord = (torch.arange(lv, device=u.device, dtype=u.dtype) - half) / half  # (L_i,)
            logp = torch.log_softmax(-kappa[i] * (u[..., i : i + 1] - coord).square(), dim=-1)  # (..., L_i)
            log_q += logp.gather(-1, j[..., i : i + 1]).squeeze(-1)
            kl += (probs(logp) * logp).sum(-1) + math.log(lv)
        return log_q, kl


#: How a lattice head keeps u in the grid: "box" (a penalty outside it) or "tanh" (FSQ's bound).
LATTICE_BOUNDS = ("box", "tanh")


def fsq_bound(u: Tensor, levels: tuple[int, ...]) -> Tensor:
    """FSQ's bound (Mentzer et al. 2023, as `vector_quantize_pytorch.FSQ.bound`) in grid coordinates:
    u (..., d) -> (tanh(u + s) (L - 1)(1 + 1e-3) / 2 - o) / (L // 2), o = 1/2 for even L (0 for odd),
    s = atanh(o / half_l); rounding it to the grid gives FSQ's code of u."""
    lv = torch.tensor(levels, device=u.device, dtype=u.dtype)
    half_l = (lv - 1) * (1 + 1e-3) / 2
    offset = torch.where(lv % 2 == 0, 0.5, 0.0).to(u.dtype)
    shift = (offset / half_l).atanh()
    return ((u + shift).tanh() * half_l - offset) / (lv // 2)


def check_levels(levels: tuple[int, ...] | list[int], vocab_size: int) -> None:
    """Raise ValueError unless the FSQ grid levels multiply to the vocabulary size and are all > 2."""
    if math.prod(levels) != vocab_size or min(levels) < 3:
        raise ValueError(f"FSQ levels {list(levels)} must each be >= 3 and multiply to the vocab size {vocab_size}")


def make_head(cfg: TransformerConfig, lattice_levels: tuple[int, ...] | None, lattice_bound: str = "box") -> nn.Module:
    """The output layer H -> V: a free Dense(V), or a `LatticeHead` (bounded by `lattice_bound`)
    when lattice_levels are given. Raises ValueError for lattice levels that do not fit the
    vocabulary (`check_levels`) or an unknown bound."""
    if lattice_levels is None:
        return nn.Linear(cfg.embed_dim, cfg.vocab_size)
    check_levels(lattice_levels, cfg.vocab_size)
    return LatticeHead(cfg.embed_dim, tuple(lattice_levels), bound=lattice_bound)


def init_head(head: nn.Module, init_logit_std: float) -> None:
    """Initialise the output layer after `init_weights`: the lattice's own init, or, for a Dense
    head with init_logit_std > 0, every row rescaled to norm init_logit_std (see ARRecognition)."""
    if isinstance(head, LatticeHead):
        head.reset_parameters()
    elif init_logit_std > 0:
        with torch.no_grad():
            head.weight.mul_(init_logit_std / head.weight.norm(dim=1, keepdim=True))


def check_codes(z: Tensor, cfg: TransformerConfig) -> None:
    """Raise ValueError unless z is (B, K, block_size) with codes in [0, vocab_size)."""
    if z.ndim != 3 or z.shape[-1] != cfg.block_size:
        raise ValueError(f"z must be (B, K, {cfg.block_size}), got {tuple(z.shape)}")
    if z.numel() and (int(z.min()) < 0 or int(z.max()) >= cfg.vocab_size):
        raise ValueError(f"codes must lie in [0, {cfg.vocab_size}), got [{int(z.min())}, {int(z.max())}]")


class ARRecognition(nn.Module):
    """Autoregressive q_theta(z|x) = prod_t q(z_t | z_<t, x) (paper Sec. 3).

    Args:
        cfg: transformer sizes (V, T, H, heads, layers, MLP ratio).
        input_embed: module mapping x to input tokens (B, N, H).
        num_input_tokens: N, for the encoder's positional table.
        init_logit_std: if > 0, every row of the output layer starts with norm init_logit_std, so
            the untrained encoder's logits (after LayerNorm) have about that standard deviation
            and all V codes are equally likely a priori. At 4 the initial q(z|x) is peaked: the
            first codes are a random hash of x that the decoder can already read, instead of
            near-uniform noise it learns to ignore (docs/motion_vae_cpu_study.md). 0 keeps the
            Xavier-uniform layer (logit std about 0.5 at H = 128, V = 1024: near uniform).
        lattice_levels: codes on a fixed grid (`LatticeHead`) instead of a free output layer.
        aligned_input: add the encoded input token t to the causal decoder's input at position t
            (needs N = T, as for trajectories: 32 frames -> 64 tokens). Cross-attention alone
            starts out averaging the whole input, so each latent token first learns nothing of
            its own part of x; the aligned skip gives it that part from the first step, as the
            DAPS-NA encoder has it (docs/motion_vae_cpu_study.md).
    """

    def __init__(
        self,
        cfg: TransformerConfig,
        input_embed: nn.Module,
        num_input_tokens: int,
        init_logit_std: float = 0.0,
        lattice_levels: tuple[int, ...] | None = None,
        aligned_input: bool = False,
    ):
        super().__init__()
        if aligned_input and num_input_tokens != cfg.block_size:
            raise ValueError(f"aligned_input needs one input token per latent token, got {num_input_tokens} for {cfg.block_size}")
        self.cfg = cfg
        self.aligned_input = aligned_input
        self.input_embed = input_embed
        self.encoder = Encoder(cfg)
        self.tok_embed = nn.Embedding(cfg.vocab_size + 1, cfg.embed_dim)  # id V = start token
        self.blocks = nn.ModuleList(DecoderBlock(cfg) for _ in range(cfg.num_layers))
        self.ln = nn.LayerNorm(cfg.embed_dim)
        self.head = make_head(cfg, lattice_levels)
        self.register_buffer("in_pos", sinusoidal_positions(num_input_tokens, cfg.embed_dim), persistent=False)
        self.register_buffer("pos", sinusoidal_positions(cfg.block_size, cfg.embed_dim), persistent=False)
        init_weights(self)
        init_head(self.head, init_logit_std)

    @property
    def start_token(self) -> int:
        return self.cfg.vocab_size

    def memory(self, x: Tensor, num_samples: int) -> tuple[list[tuple[Tensor, Tensor]], Tensor]:
        """Encode x: each decoder layer's cross-attention keys/values (B, h, N, d), and the
        decoder's input offsets (B*K, T, H): the positions, plus the aligned input tokens."""
        h = self.encoder(self.input_embed(x) + self.in_pos)
        offset = self.pos
        if self.aligned_input:
            offset = (h + self.pos).repeat_interleave(num_samples, dim=0)
        return [blk.cross_attn.keys_values(h) for blk in self.blocks], offset.expand(h.shape[0] * num_samples, -1, -1)

    def features(self, x: Tensor, z: Tensor) -> Tensor:
        """Teacher-forced final features (B*K, T, H) (after the last LN, before the head)."""
        b, k, t = z.shape
        mem, offset = self.memory(x, k)
        start = z.new_full((b * k, 1), self.start_token)
        tokens = torch.cat([start, z.reshape(b * k, t)[:, :-1]], dim=1)
        h = self.tok_embed(tokens) + offset[:, :t]
        for blk, (mk, mv) in zip(self.blocks, mem):
            h = blk(h, mk, mv)
        return self.ln(h)

    def logits(self, x: Tensor, z: Tensor) -> Tensor:
        """Teacher-forced logits (B, K, T, V) of q(z_t | z_<t, x) for x and z (B, K, T) int64."""
        b, k, t = z.shape
        return in_fp32(self.head, self.features(x, z)).view(b, k, t, -1)

    def log_prob(self, x: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """log q_theta(z|x) and KL to the uniform prior, both (B, K) in nats.

        Args:
            x: a batch of datapoints, whatever `input_embed` takes, batch size B.
            z: (B, K, T) int64 codes in [0, V).
        Returns:
            log_q: sum_t log q(z_t | z_<t, x), differentiable in theta.
            kl: sum_t KL(q(.|z_<t, x) || Uniform(V)) along the given prefix (no gradient).
        Raises:
            ValueError: if z has the wrong shape or codes outside [0, V).
        """
        check_codes(z, self.cfg)
        h = self.features(x, z)
        log_q, kl = _HeadLogProb.apply(h.flatten(0, 1).float(), self.head.weight, self.head.bias, z.flatten())
        return log_q.view(z.shape).sum(-1), kl.view(z.shape).sum(-1)

    @torch.no_grad()
    def sample(
        self,
        x: Tensor,
        num_samples: int,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        greedy: bool = False,
    ) -> tuple[Tensor, Tensor]:
        """Draw K sequences per datapoint, token by token (no gradient).

        Args:
            x: batch of B datapoints.
            num_samples: K.
            generator: torch RNG for the Gumbel noise; the same seed gives the same samples with
                and without the cache.
            use_cache: reuse self-attention keys/values (O(T) per token) instead of recomputing
                the whole prefix (O(T^2)); results are identical up to float rounding.
            greedy: take the most likely code at every step instead of sampling (an
                approximate mode of q_theta(z|x); deterministic encoding).
        Returns:
            z: (B, K, T) int64 codes; log_q: (B, K) log q_theta(z|x) in nats.
        """
        cfg = self.cfg
        mem, offset = self.memory(x, num_samples)
        b = mem[0][0].shape[0]
        bk, t_max = b * num_samples, cfg.block_size
        log_q = torch.zeros(bk, device=self.pos.device)
        # tokens[:, t] is the input at position t: the start token, then the codes drawn so far
        tokens = torch.empty(bk, t_max + 1, dtype=torch.long, device=self.pos.device)
        tokens[:, 0] = self.start_token
        cache = KVCache(cfg.num_layers, bk, cfg.num_heads, t_max, cfg.embed_dim // cfg.num_heads, log_q) if use_cache else None
        head_wt, head_b = self.head.weight.t(), self.head.bias

        def head_log_softmax(h: Tensor) -> Tensor:  # (B*K, H) -> (B*K, V) float32 log-probabilities
            logp = torch.addmm(head_b, self.ln(h), head_wt)
            return torch.log_softmax(logp, dim=-1, out=logp)

        for t in range(t_max):
            if use_cache:
                h = self.tok_embed(tokens[:, t : t + 1]) + offset[:, t : t + 1]
                for i, (blk, (mk, mv)) in enumerate(zip(self.blocks, mem)):
                    h = blk.step(h, t, cache.k[i], cache.v[i], mk, mv)
            else:
                h = self.tok_embed(tokens[:, : t + 1]) + offset[:, : t + 1]
                for blk, (mk, mv) in zip(self.blocks, mem):
                    h = blk(h, mk, mv)
                h = h[:, -1:]
            logp = in_fp32(head_log_softmax, h[:, 0])
            zt = logp.argmax(-1) if greedy else inverse_cdf_sample(logp, generator)
            tokens[:, t + 1] = zt
            log_q += logp.gather(1, zt[:, None]).squeeze(1)
        z = tokens[:, 1:]
        return z.reshape(b, num_samples, t_max), log_q.view(b, num_samples)


class NARecognition(nn.Module):
    """Non-autoregressive q_theta(z|x) = prod_t q(z_t | x): independent categoricals (DAPS-NA).

    input tokens + positions -> unmasked blocks -> LN -> Dense(H) -> Dense(V) per position (or
    the `LatticeHead` over the grid of lattice_levels). `input_embed` must give exactly
    T = block_size tokens. lattice_bound: the lattice head's bound ("box" or "tanh", `LatticeHead`).
    """

    def __init__(
        self,
        cfg: TransformerConfig,
        input_embed: nn.Module,
        num_layers: int | None = None,
        init_logit_std: float = 0.0,
        lattice_levels: tuple[int, ...] | None = None,
        lattice_bound: str = "box",
    ):
        super().__init__()
        self.cfg = cfg
        self.input_embed = input_embed
        self.encoder = Encoder(cfg, num_layers)
        self.proj = nn.Linear(cfg.embed_dim, cfg.embed_dim)
        self.head = make_head(cfg, lattice_levels, lattice_bound)
        self.register_buffer("pos", sinusoidal_positions(cfg.block_size, cfg.embed_dim), persistent=False)
        init_weights(self)
        init_head(self.head, init_logit_std)

    def token_logits(self, x: Tensor) -> Tensor:
        """Logits (B, T, V) of the independent per-token categoricals."""
        return in_fp32(self.head, self.proj(self.encoder(self.input_embed(x) + self.pos)))

    def straight_through(self, x: Tensor) -> StraightThrough:
        """Each token's nearest lattice point (B, T, d), straight-through gradients to the encoder,
        its code (B, T) int64, the box penalty (B, T) and log q / KL per token (B, T) nats
        (`LatticeHead.straight_through`): the encoder as an FSQ autoencoder (the DAPS warm start).
        Raises TypeError without a `LatticeHead`."""
        if not isinstance(self.head, LatticeHead):
            raise TypeError("straight-through codes need the lattice head (lattice_levels)")
        return self.head.straight_through(self.proj(self.encoder(self.input_embed(x) + self.pos)))

    def log_prob(self, x: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """log q_theta(z|x) (B, K) and KL to the uniform prior (B, K), nats; z (B, K, T) int64."""
        check_codes(z, self.cfg)
        logp = F.log_softmax(self.token_logits(x), dim=-1)  # (B, T, V)
        idx = z.permute(0, 2, 1)  # (B, T, K)
        log_q = logp.gather(2, idx).sum(1)
        with torch.no_grad():
            kl = kl_to_uniform(logp.detach()).sum(-1, keepdim=True).expand_as(log_q)
        return log_q, kl

    @torch.no_grad()
    def sample(
        self,
        x: Tensor,
        num_samples: int,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        greedy: bool = False,
    ) -> tuple[Tensor, Tensor]:
        """K independent Gumbel-max samples per datapoint (the per-token argmax if greedy):
        z (B, K, T) int64, log_q (B, K) nats."""
        logp = F.log_softmax(self.token_logits(x), dim=-1)
        b, t, v = logp.shape
        expanded = logp.unsqueeze(1).expand(b, num_samples, t, v)
        z = expanded.argmax(-1) if greedy else gumbel_max(expanded, generator)
        log_q = expanded.gather(3, z.unsqueeze(-1)).squeeze(-1).sum(-1)
        return z, log_q
