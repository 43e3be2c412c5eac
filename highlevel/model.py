"""The high-level policy: an autoregressive transformer prior over the motion VAE's codes.

p(z | c) = prod_t p(z_t | z_<t, c), z the 64 codes (vocabulary V = 1024) of the next 32-frame
segment, c the context:

* text: a 384-d sentence embedding (highlevel.text) -> one token (Linear 384 -> H);
* com:  the root trajectory window (64, 5) in the base frame (highlevel.dataset.com_window) ->
        8 tokens, each a Linear of 8 frames x `com_channels` (the first 3, the path in m, for
        priors trained before the heading channels; 5 adds cos/sin of the heading change);
* prev: the previous segment's 64 codes -> 64 tokens (code embedding + position).

Each of text, com and prev can be masked per example (a learned "absent" token replaces it);
training drops each at random (rates in the config), so the same network is also the
history-only policy (text and COM masked) and the unconditional prior (all masked).
The context tokens go through a daps.nn.Encoder; the codes are decoded by daps.nn.DecoderBlock's
(causal self-attention + cross-attention), as in the core's ARRecognition, with a start token
(id V). Sampling uses the blocks' KV cache, temperature and top-k, and the core's
inverse-CDF sampler (daps.recognition.inverse_cdf_sample).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from daps.nn import DecoderBlock, Encoder, KVCache, TransformerConfig, init_weights, sinusoidal_positions
from daps.recognition import inverse_cdf_sample

TEXT_DIM = 384
COM_FRAMES, COM_CHUNK = 64, 8


@dataclass
class PriorConfig:
    """Sizes: vocab_size V, block_size T (codes per segment), embed_dim H, heads, layers (decoder;
    the context encoder has enc_layers), mlp_ratio. drop_*: per-example masking rates in training."""

    vocab_size: int = 1024
    block_size: int = 64
    embed_dim: int = 128
    num_heads: int = 4
    num_layers: int = 2
    enc_layers: int = 1
    mlp_ratio: int = 4
    drop_text: float = 0.2
    drop_com: float = 0.2
    drop_prev: float = 0.1
    com_channels: int = 3  # 3: path only (older priors), 5: path and heading (highlevel.dataset.com_window)

    def transformer(self) -> TransformerConfig:
        return TransformerConfig(self.vocab_size, self.block_size, self.embed_dim, self.num_heads, self.num_layers, self.mlp_ratio)

    def to_dict(self) -> dict:
        return asdict(self)


class HighLevelPrior(nn.Module):
    """p(z | text, com, prev): see the module docstring. All inputs batch-first, B examples."""

    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.cfg = cfg
        tc = cfg.transformer()
        h, v, t = cfg.embed_dim, cfg.vocab_size, cfg.block_size
        self.text_in = nn.Linear(TEXT_DIM, h)
        self.com_in = nn.Linear(COM_CHUNK * cfg.com_channels, h)
        self.code_embed = nn.Embedding(v + 1, h)  # id V = start token (decoder) / unused in history
        self.absent = nn.Parameter(torch.zeros(3, h))  # text, com, prev "absent" tokens
        self.kind = nn.Parameter(torch.zeros(3, h))  # which source a context token comes from
        self.encoder = Encoder(tc, cfg.enc_layers)
        self.blocks = nn.ModuleList(DecoderBlock(tc) for _ in range(cfg.num_layers))
        self.ln = nn.LayerNorm(h)
        self.head = nn.Linear(h, v)
        n_ctx = 1 + COM_FRAMES // COM_CHUNK + t
        self.register_buffer("ctx_pos", sinusoidal_positions(n_ctx, h), persistent=False)
        self.register_buffer("pos", sinusoidal_positions(t, h), persistent=False)
        init_weights(self)
        nn.init.normal_(self.absent, std=0.02)
        nn.init.normal_(self.kind, std=0.02)

    def context(self, text: Tensor, com: Tensor, prev: Tensor, mask: Tensor | None = None) -> Tensor:
        """Encoded context tokens (B, 1 + 8 + T, H).

        text (B, 384) float; com (B, 64, C >= com_channels) float (`highlevel.dataset.com_window`;
        the first com_channels are read); prev (B, T) int64 codes; mask (B, 3) bool, True where
        text / com / prev is present (None: all present). Raises ValueError for other shapes.
        """
        b, cc = text.shape[0], self.cfg.com_channels
        if (com.ndim != 3 or com.shape[1] != COM_FRAMES or com.shape[2] < cc or text.shape[1:] != (TEXT_DIM,)
                or prev.shape[1:] != (self.cfg.block_size,)):
            raise ValueError(f"context shapes: text {tuple(text.shape)}, com {tuple(com.shape)}, prev {tuple(prev.shape)}")
        mask = torch.ones(b, 3, dtype=torch.bool, device=text.device) if mask is None else mask
        com = com[..., :cc].reshape(b, COM_FRAMES // COM_CHUNK, COM_CHUNK * cc)
        toks = [self.text_in(text)[:, None], self.com_in(com), self.code_embed(prev)]
        out = []
        for i, x in enumerate(toks):
            m = mask[:, i].view(b, 1, 1)
            out.append(torch.where(m, x, self.absent[i].expand_as(x)) + self.kind[i])
        return self.encoder(torch.cat(out, 1) + self.ctx_pos)

    def logits(self, ctx: Tensor, z: Tensor) -> Tensor:
        """Teacher-forced logits (B, T, V) of p(z_t | z_<t, c) for encoded ctx and codes z (B, T)."""
        start = z.new_full((z.shape[0], 1), self.cfg.vocab_size)
        h = self.code_embed(torch.cat([start, z[:, :-1]], 1)) + self.pos[: z.shape[1]]
        for blk in self.blocks:
            mk, mv = blk.cross_attn.keys_values(ctx)
            h = blk(h, mk, mv)
        return self.head(self.ln(h))

    def nll(self, text: Tensor, com: Tensor, prev: Tensor, z: Tensor, mask: Tensor | None = None) -> Tensor:
        """Negative log-likelihood per example (B,), nats per token (mean over the T codes)."""
        lg = self.logits(self.context(text, com, prev, mask), z)
        return F.cross_entropy(lg.transpose(1, 2), z, reduction="none").mean(1)

    def train_mask(self, b: int, generator: torch.Generator | None = None, device=None) -> Tensor:
        """Random presence mask (B, 3) with the configured drop rates."""
        p = torch.tensor([self.cfg.drop_text, self.cfg.drop_com, self.cfg.drop_prev], device=device)
        return torch.rand(b, 3, generator=generator, device=device) >= p

    @torch.inference_mode()
    def sample(self, text: Tensor, com: Tensor, prev: Tensor, mask: Tensor | None = None, temperature: float = 1.0,
               top_k: int = 0, generator: torch.Generator | None = None, guidance: float = 1.0,
               samples: int = 1) -> Tensor:
        """Draw codes (B * samples, T) int64 token by token with a KV cache: `samples` independent
        draws per context row, rows b * samples ... b * samples + samples - 1 for context b (each
        context is encoded once and its draws share its cross-attention memory, as
        `daps.nn.DecoderBlock.cross` folds them). temperature 0 = greedy; top_k > 0 keeps the k
        most likely codes at each step.

        guidance w (classifier-free guidance, Ho & Salimans 2022, as in autoregressive token
        models): each step's log-probabilities become log p(z_t | h) + w (log p(z_t | text, com,
        h) - log p(z_t | h)), h the history and the previous codes, renormalised, before
        temperature and top-k. The reference is the same network with text and COM masked,
        which training's context dropout makes a model of its own. w = 1: plain sampling;
        w > 1: follow text and COM more strongly. Rows with neither text nor COM are unchanged.
        Raises ValueError for negative temperature, top_k or guidance, or samples < 1.
        """
        if temperature < 0 or top_k < 0 or guidance < 0 or samples < 1:
            raise ValueError(f"temperature, top_k and guidance must be >= 0 and samples >= 1, got {temperature}, "
                             f"{top_k}, {guidance}, {samples}")
        cfg = self.cfg
        mask = torch.ones(text.shape[0], 3, dtype=torch.bool, device=text.device) if mask is None else mask
        guided = guidance != 1.0 and bool(mask[:, :2].any())
        if guided:  # second half of the batch: the same rows with text and COM masked
            ref = mask.clone()
            ref[:, :2] = False
            text, com, prev, mask = torch.cat([text, text]), torch.cat([com, com]), torch.cat([prev, prev]), torch.cat([mask, ref])
        ctx = self.context(text, com, prev, mask)
        b = text.shape[0] * samples // (2 if guided else 1)  # rows drawn
        rows, t_max = ctx.shape[0] * samples, cfg.block_size
        mem = [blk.cross_attn.keys_values(ctx) for blk in self.blocks]
        cache = KVCache(cfg.num_layers, rows, cfg.num_heads, t_max, cfg.embed_dim // cfg.num_heads, ctx)
        tok = torch.full((rows, 1), cfg.vocab_size, dtype=torch.long, device=ctx.device)
        out = torch.empty(b, t_max, dtype=torch.long, device=ctx.device)
        for t in range(t_max):
            h = self.code_embed(tok) + self.pos[t : t + 1]
            for i, (blk, (mk, mv)) in enumerate(zip(self.blocks, mem)):
                h = blk.step(h, t, cache.k[i], cache.v[i], mk, mv)
            lg = torch.log_softmax(self.head(self.ln(h[:, 0])), -1)
            if guided:
                cond, uncond = lg[:b], lg[b:]
                lg = uncond + guidance * (cond - uncond)
            if temperature == 0:
                zt = lg.argmax(-1)
            else:
                lg = lg / temperature
                if top_k:
                    kth = lg.topk(min(top_k, lg.shape[-1]), dim=-1).values[:, -1:]
                    lg = lg.masked_fill(lg < kth, float("-inf"))
                zt = inverse_cdf_sample(torch.log_softmax(lg, -1), generator)
            out[:, t] = zt
            tok = (torch.cat([zt, zt]) if guided else zt)[:, None]
        return out
