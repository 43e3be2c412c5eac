"""Transformer building blocks shared by the recognition and generative models.

Pre-LayerNorm blocks, attention without bias, fixed sinusoidal positions, Xavier-uniform
weights: the architecture of the DAPS reference implementation (paper App. F/G, facts Sec. 4).

Shapes use B = batch, K = latent samples per datapoint, T = block size (latent tokens),
N = input tokens, H = embed dim, h = heads, d = H / h.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class TransformerConfig:
    """Size of a transformer stack.

    vocab_size: V, number of codebook entries per latent token.
    block_size: T, number of latent tokens per datapoint.
    embed_dim: H, width of every token embedding (also the qkv width).
    num_heads: h; embed_dim must be divisible by it.
    num_layers: blocks per stack (encoder and decoder each).
    mlp_ratio: hidden width of the MLP = mlp_ratio * H.
    """

    vocab_size: int = 1024
    block_size: int = 64
    embed_dim: int = 128
    num_heads: int = 4
    num_layers: int = 2
    mlp_ratio: int = 4

    def __post_init__(self) -> None:
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} not divisible by num_heads {self.num_heads}")
        if min(self.vocab_size, self.block_size, self.embed_dim, self.num_layers) < 1:
            raise ValueError(f"all transformer sizes must be positive: {self}")


def sinusoidal_positions(length: int, dim: int) -> Tensor:
    """Fixed positional table (length, dim): sin in the first half of the channels, cos in the second."""
    half = dim // 2
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / max(half - 1, 1))
    table = torch.zeros(length, dim)
    table[:, :half] = torch.sin(pos * freq)
    table[:, half : 2 * half] = torch.cos(pos * freq)
    return table


def init_weights(module: nn.Module) -> None:
    """Xavier-uniform for every Linear/Conv weight, zero biases, N(0, 1) embeddings (facts Sec. 4).

    Modules with `keeps_own_init = True` (the residual conv stacks, which train with PyTorch's
    default init) and everything inside them are left as they are."""
    own = {id(c) for m in module.modules() if getattr(m, "keeps_own_init", False) for c in m.modules()}
    for m in module.modules():
        if id(m) in own:
            continue
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.ConvTranspose1d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=1.0)


def in_fp32(fn, x: Tensor) -> Tensor:
    """fn(x) computed in float32 even inside a bfloat16 autocast region (`daps.trainer.precision_context`).

    For the output heads: log q(z|x) of 64 tokens out of 1024 codes and the sampler's CDF need
    float32 logits (bfloat16 keeps 8 bits of mantissa)."""
    with torch.autocast(x.device.type, enabled=False):
        return fn(x.float())


def short_softmax(s: Tensor) -> Tensor:
    """Softmax over the last dim of s; same shape and dtype.

    Over fewer than 16 entries (the MNIST config's 8 keys) PyTorch's CPU kernel, which vectorises
    along the last dim, took ~3x the time of max, exp and sum over the whole tensor with its
    backward (63.9 against 22.3 ms for 2M entries in rows of 8); from 16 entries on it is the
    faster one (5.4 against 18.9 ms), and it is used there. -inf entries (the causal
    mask) get weight 0; a row must hold one finite entry."""
    if s.shape[-1] >= 16:
        return torch.softmax(s, dim=-1)
    e = (s - s.amax(-1, keepdim=True).detach()).exp()  # the shift carries no gradient: softmax ignores it
    return e / e.sum(-1, keepdim=True)


def probs(logp: Tensor) -> Tensor:
    """exp(logp) for log-probabilities logp (..., V) normalised over the last dim; same shape.

    Computed by the softmax kernel (equal to exp for normalised rows, to float rounding): on the
    CPU `torch.exp` takes a 10-40x slower path wherever its result leaves float32's normal range
    (inputs below -87.3, -inf too), and sharp categoricals put most of their V codes there (the
    lattice head's far codes: 64 % of a (256, 1024) batch took 6.5 ms against 0.7);
    the softmax kernel does not slow down."""
    return torch.softmax(logp, dim=-1)


class MLP(nn.Module):
    """Dense(r*H) -> ReLU -> Dense(H)."""

    def __init__(self, dim: int, ratio: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, ratio * dim)
        self.fc2 = nn.Linear(ratio * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.relu(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head attention without bias. Queries and keys/values may come from different inputs."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(dim, 2 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)

    def split(self, x: Tensor) -> Tensor:
        """(B, L, H) -> (B, h, L, d)."""
        b, n, _ = x.shape
        return x.view(b, n, self.heads, -1).transpose(1, 2)

    def keys_values(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Project (B, L, H) to keys and values, each (B, h, L, d)."""
        k, v = self.kv(x).chunk(2, dim=-1)
        return self.split(k), self.split(v)

    def attend(self, x: Tensor, k: Tensor, v: Tensor, causal: bool = False) -> Tensor:
        """Queries from x (B, L, H) against k, v (B, h, S, d); returns (B, L, H)."""
        q = self.split(self.q(x))
        if q.dtype == torch.bfloat16 and q.device.type == "cpu":
            # the CPU flash kernel in bfloat16 took 2x its float32 time on these short sequences
            # (L, S <= 64; MNIST config); two batched products are faster there
            y = short_softmax(self._scores(q, k, causal).float()).to(v.dtype) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return self.out(y.transpose(1, 2).reshape(x.shape))

    @staticmethod
    def _scores(q: Tensor, k: Tensor, causal: bool) -> Tensor:
        """Scaled dot products (B, h, L, S), -inf above the diagonal if causal (L = S)."""
        s = (q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2)
        if causal:
            length = s.shape[-1]
            s = s.masked_fill(torch.ones(length, length, dtype=torch.bool, device=s.device).triu(1), float("-inf"))
        return s

    def attend_one(self, x: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """`attend` for a single query per sequence, x (B, 1, H), by two batched matmuls.

        Same result up to float rounding; for one query the flash kernel's tiling is overhead.
        """
        b, _, dim = x.shape
        w = short_softmax(self._scores(self.split(self.q(x)), k, causal=False).float()).to(v.dtype)  # (B, h, 1, S)
        return self.out((w @ v).view(b, 1, dim))

    def forward(self, x: Tensor, context: Tensor | None = None, causal: bool = False) -> Tensor:
        k, v = self.keys_values(x if context is None else context)
        return self.attend(x, k, v, causal)


class EncoderBlock(nn.Module):
    """Unmasked pre-LN self-attention block: x + Attn(LN x), then x + MLP(LN x)."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.embed_dim)
        self.attn = Attention(cfg.embed_dim, cfg.num_heads)
        self.ln2 = nn.LayerNorm(cfg.embed_dim)
        self.mlp = MLP(cfg.embed_dim, cfg.mlp_ratio)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class Encoder(nn.Module):
    """Stack of unmasked blocks and a final LayerNorm: (B, N, H) -> (B, N, H)."""

    def __init__(self, cfg: TransformerConfig, num_layers: int | None = None):
        super().__init__()
        # None: cfg.num_layers; 0: LayerNorm only (the conv motion model puts its layers in front)
        self.blocks = nn.ModuleList(EncoderBlock(cfg) for _ in range(cfg.num_layers if num_layers is None else num_layers))
        self.ln = nn.LayerNorm(cfg.embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        for blk in self.blocks:
            x = blk(x)
        return self.ln(x)


class KVCache:
    """Preallocated self-attention keys/values for incremental decoding.

    One (k, v) pair per decoder layer, each (B*K, h, T, d); position t is written once.
    """

    def __init__(self, layers: int, batch: int, heads: int, length: int, head_dim: int, like: Tensor):
        shape = (batch, heads, length, head_dim)
        self.k = [like.new_zeros(shape) for _ in range(layers)]
        self.v = [like.new_zeros(shape) for _ in range(layers)]


class DecoderBlock(nn.Module):
    """Pre-LN block: causal self-attention, cross-attention to the input tokens, MLP."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.embed_dim)
        self.self_attn = Attention(cfg.embed_dim, cfg.num_heads)
        self.ln2 = nn.LayerNorm(cfg.embed_dim)
        self.cross_attn = Attention(cfg.embed_dim, cfg.num_heads)
        self.ln3 = nn.LayerNorm(cfg.embed_dim)
        self.mlp = MLP(cfg.embed_dim, cfg.mlp_ratio)

    def cross(self, x: Tensor, mem_k: Tensor, mem_v: Tensor) -> Tensor:
        """Cross-attention of x (B*K, L, H) to memory keys/values (B, h, N, d).

        The K samples of one datapoint share its memory, so their queries are folded into one
        sequence of K*L queries instead of copying the memory K times (no mask is involved).
        """
        bk, length, dim = x.shape
        b = mem_k.shape[0]
        y = self.cross_attn.attend(self.ln2(x).reshape(b, -1, dim), mem_k, mem_v)
        return y.reshape(bk, length, dim)

    def forward(self, x: Tensor, mem_k: Tensor, mem_v: Tensor) -> Tensor:
        """Teacher-forced pass over the whole sequence x (B*K, T, H)."""
        x = x + self.self_attn(self.ln1(x), causal=True)
        x = x + self.cross(x, mem_k, mem_v)
        return x + self.mlp(self.ln3(x))

    def step(self, x: Tensor, t: int, cache_k: Tensor, cache_v: Tensor, mem_k: Tensor, mem_v: Tensor) -> Tensor:
        """One decoding step for the token at position t, x (B*K, 1, H); updates the cache in place."""
        h = self.ln1(x)
        k, v = self.self_attn.keys_values(h)
        cache_k[:, :, t : t + 1] = k
        cache_v[:, :, t : t + 1] = v
        x = x + self.self_attn.attend_one(h, cache_k[:, :, : t + 1], cache_v[:, :, : t + 1])
        x = x + self.cross(x, mem_k, mem_v)
        return x + self.mlp(self.ln3(x))


class ConvResampler(nn.Module):
    """Resample a sequence (B, L_in, C_in) to (B, L_out, C_out) with one strided 1D convolution.

    L_out = 2 L_in uses a transposed convolution (kernel 4, stride 2), L_out = L_in / 2 a
    convolution (kernel 4, stride 2), L_out = L_in a kernel-3 convolution; padding keeps the
    lengths exact ("SAME"). App. G: trajectories of 32 frames <-> 64 latent tokens.

    Raises:
        ValueError: if the length ratio is not 2, 1/2 or 1.
    """

    def __init__(self, in_len: int, in_channels: int, out_len: int, out_channels: int):
        super().__init__()
        self.in_len, self.out_len = in_len, out_len
        if out_len == 2 * in_len:
            self.conv = nn.ConvTranspose1d(in_channels, out_channels, kernel_size=4, stride=2, padding=1)
        elif 2 * out_len == in_len:
            self.conv = nn.Conv1d(in_channels, out_channels, kernel_size=4, stride=2, padding=1)
        elif out_len == in_len:
            self.conv = nn.Conv1d(in_channels, out_channels, kernel_size=3, padding=1)
        else:
            raise ValueError(f"ConvResampler supports length ratios 2, 1/2 and 1, got {in_len} -> {out_len}")

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] != self.in_len:
            raise ValueError(f"expected sequence length {self.in_len}, got {x.shape[1]}")
        return self.conv(x.transpose(1, 2)).transpose(1, 2)


class ResBlock1D(nn.Module):
    """Residual temporal block on (B, W, L): x + Conv1x1(ReLU(Conv3_dilated(ReLU(x)))); length kept."""

    def __init__(self, width: int, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv1d(width, width, kernel_size=3, padding=dilation, dilation=dilation)
        self.mix = nn.Conv1d(width, width, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.mix(F.relu(self.conv(F.relu(x))))


class ConvStack1D(nn.Module):
    """Convolutional sequence map (B, L_in, C_in) -> (B, L_out, C_out), L_out / L_in in {2, 1, 1/2}.

    Conv3(C_in -> W) -> blocks_before `ResBlock1D` (dilations 1, 3, 9, 1, ...) -> ReLU -> a strided
    resampler (`ConvResampler`, W -> W) -> blocks_after more -> ReLU -> Conv(W -> C_out,
    out_kernel). The 1D-convolutional ResNet of motion VQ-VAEs (e.g. T2M-GPT) in place of the
    transformer stacks; with the blocks on the shorter side (before an upsampling, after a
    downsampling) it costs half as much and learned as fast per step on the motion data
    (docs/motion_vae_cpu_study.md).

    Raises:
        ValueError: a length ratio other than 2, 1 or 1/2, or a negative block count.
    """

    keeps_own_init = True  # `init_weights` leaves PyTorch's default init, which the study trained with

    def __init__(
        self, in_len: int, in_channels: int, out_len: int, out_channels: int, width: int,
        blocks_before: int = 4, blocks_after: int = 0, out_kernel: int = 1,
    ):
        super().__init__()
        if min(blocks_before, blocks_after) < 0:
            raise ValueError(f"block counts must be >= 0, got {blocks_before}, {blocks_after}")
        self.inp = nn.Conv1d(in_channels, width, kernel_size=3, padding=1)
        self.pre = nn.Sequential(*(ResBlock1D(width, 3 ** (i % 3)) for i in range(blocks_before)))
        self.resample = ConvResampler(in_len, width, out_len, width)
        self.post = nn.Sequential(*(ResBlock1D(width, 3 ** (i % 3)) for i in range(blocks_after)))
        self.out = nn.Conv1d(width, out_channels, kernel_size=out_kernel, padding=out_kernel // 2)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] != self.resample.in_len:
            raise ValueError(f"expected sequence length {self.resample.in_len}, got {x.shape[1]}")
        h = self.resample.conv(F.relu(self.pre(self.inp(x.transpose(1, 2)))))  # channels-first throughout
        return self.out(F.relu(self.post(h))).transpose(1, 2)
