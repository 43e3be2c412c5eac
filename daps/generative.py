"""Generative models p_phi(x|z): a latent-token transformer plus an observation likelihood.

TransformerGenerator: Embed(V, H) -> positions -> unmasked blocks -> LN -> Dense(H) -> an
`output_head` that maps the (B*K, T, H) token features to distribution parameters (for
trajectories: a 1D-conv resampler to the segment length and Dense(C); paper App. G).
ConvGenerator: the same interface with a convolutional stack in place of the transformer (the
motion VAE's `arch conv`). Both are `CodeDecoder`s: forward(z), from_embeddings(e), from_onehot(y).

Likelihoods turn those parameters into log p_phi(x|z), summed over every data dimension, in
nats. DAPS uses it as the reward R = log p_phi(x|z) (paper Alg. 1 line 6).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from daps.nn import Encoder, TransformerConfig, init_weights, sinusoidal_positions


class CodeDecoder(nn.Module):
    """Base of the generators: map latent codes z (B, K, T) int64 to distribution parameters
    (B, K, *event) through `self.embed` (codes (N, T) -> (N, T, H)) and `decode_tokens`
    ((N, T, H) -> (N, *event)), which a subclass defines. The last event axis holds P*C channels:
    C means, then C log-variances where the likelihood learns them (P = likelihood.num_params).
    """

    embed: nn.Module

    def decode_tokens(self, e: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, z: Tensor) -> Tensor:
        b, k, t = z.shape
        return self.from_embeddings(self.embed(z.reshape(b * k, t)).view(b, k, t, -1))

    def from_embeddings(self, e: Tensor) -> Tensor:
        """Parameters (B, K, *event) from code embeddings e (B, K, T, H) (FSQ's straight-through path)."""
        b, k, t, h = e.shape
        out = self.decode_tokens(e.reshape(b * k, t, h))
        return out.view(b, k, *out.shape[1:])

    def from_onehot(self, y: Tensor) -> Tensor:
        """Parameters (B, K, *event) from (soft or straight-through) one-hots y (B, K, T, V): the
        Gumbel baselines' differentiable path (`soft_embed`)."""
        return self.from_embeddings(soft_embed(self.embed, y))


class TransformerGenerator(CodeDecoder):
    """Codes -> Embed(V, H) -> positions -> unmasked blocks -> LN -> Dense(H) -> output_head
    (a `CodeDecoder`).

    Args:
        cfg: transformer sizes.
        output_head: module (B*K, T, H) -> (B*K, *event).
        embed: module mapping codes (N, T) int64 to (N, T, H); default a learned Embed(V, H).
            FSQ passes `FSQCodeEmbedding`, whose codes are points of a fixed grid.
    """

    def __init__(self, cfg: TransformerConfig, output_head: nn.Module, embed: nn.Module | None = None):
        super().__init__()
        self.cfg = cfg
        self.embed = embed if embed is not None else nn.Embedding(cfg.vocab_size, cfg.embed_dim)
        self.encoder = Encoder(cfg)
        self.proj = nn.Linear(cfg.embed_dim, cfg.embed_dim)
        self.output_head = output_head
        self.register_buffer("pos", sinusoidal_positions(cfg.block_size, cfg.embed_dim), persistent=False)
        init_weights(self)

    def decode_tokens(self, e: Tensor) -> Tensor:
        return self.output_head(self.proj(self.encoder(e + self.pos)))


class ConvGenerator(CodeDecoder):
    """Codes -> embed (N, T, H) -> a convolutional `stack` -> (N, *event) (a `CodeDecoder`), in
    place of the transformer.

    Args:
        vocab_size: V. embed_dim: H, the code embedding width. stack: module (N, T, H) ->
            (N, *event), e.g. `daps.nn.ConvStack1D`. embed: as `TransformerGenerator`'s.
    """

    def __init__(self, vocab_size: int, embed_dim: int, stack: nn.Module, embed: nn.Module | None = None):
        super().__init__()
        self.embed = embed if embed is not None else nn.Embedding(vocab_size, embed_dim)
        self.stack = stack
        init_weights(self)

    def decode_tokens(self, e: Tensor) -> Tensor:
        return self.stack(e)


def soft_embed(embed: nn.Module, y: Tensor) -> Tensor:
    """Code embeddings (..., T, H) of code probabilities / one-hots y (..., T, V): y @ table.

    For a lookup table (nn.Embedding) this is exact at one-hot y and linear in between, so a
    decoder can take the straight-through Gumbel sample. Embeddings with a `soft` method (VQ)
    use it; FSQ's grid embedding maps the expected grid point. Raises TypeError otherwise.
    """
    if isinstance(embed, nn.Embedding):
        return y @ embed.weight
    if hasattr(embed, "soft"):
        return embed.soft(y)
    if hasattr(embed, "fsq") and hasattr(embed, "from_codes"):
        return embed.from_codes(y @ embed.fsq.implicit_codebook.to(y.dtype))
    raise TypeError(f"cannot embed soft codes with {type(embed).__name__}")


class GaussianLikelihood(nn.Module):
    """Diagonal Gaussian N(x; mu, sigma^2) with a fixed or a learned, clipped variance.

    Fixed (default, as the authors' LAFAN setting): sigma^2 = `variance`, parameters P = 1 (mu).
    channel_variance (C,), fixed case only: one sigma^2 per channel of the last event dim instead
    (e.g. a smaller one for a feature that should be fit more closely; the likelihood stays
    normalised, so log p is still in nats). Learned: P = 2 (mu, log sigma^2), log sigma^2 clipped
    to [log min_var, log max_var] (paper Sec. 4: [0.01, 1]).
    Raises ValueError for non-positive variances or channel_variance with learned=True.
    """

    def __init__(self, variance: float = 0.25, learned: bool = False, min_var: float = 0.01, max_var: float = 1.0,
                 channel_variance: "Tensor | None" = None):
        super().__init__()
        if variance <= 0 or not 0 < min_var <= max_var:
            raise ValueError(f"variances must be positive with min_var <= max_var, got {variance}, {min_var}, {max_var}")
        self.variance, self.learned = variance, learned
        self.log_min, self.log_max = math.log(min_var), math.log(max_var)
        self.channel_variance: Tensor | None
        if channel_variance is not None:
            channel_variance = torch.as_tensor(channel_variance, dtype=torch.float32)
            if learned or channel_variance.ndim != 1 or not bool((channel_variance > 0).all()):
                raise ValueError("channel_variance must be a 1-D tensor of positive variances, with a fixed variance")
        # not persistent: it comes from the model's config, and checkpoints without it still load
        self.register_buffer("channel_variance", channel_variance, persistent=False)

    @property
    def num_params(self) -> int:
        return 2 if self.learned else 1

    def mean(self, params: Tensor) -> Tensor:
        """Predicted mean (B, K, *event) from params (B, K, ..., P*C): the first C channels."""
        return params.chunk(2, dim=-1)[0] if self.learned else params

    def log_var(self, params: Tensor) -> Tensor:
        """log sigma^2, same shape as the mean."""
        if self.learned:
            return params.chunk(2, dim=-1)[1].clamp(self.log_min, self.log_max)
        if self.channel_variance is not None:
            return self.channel_variance.log().to(params.dtype).expand_as(params)
        return torch.full_like(params, math.log(self.variance))

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        """log p(x|z) (B, K) in nats, summed over the event dims, for x (B, *event); float32
        under bfloat16 autocast too (a sum over thousands of terms)."""
        params = params.float()
        mu = self.mean(params)
        d2 = (x.unsqueeze(1) - mu).square()
        if self.channel_variance is not None:
            var = self.channel_variance.to(d2.dtype)
            lp = d2.mul_(-0.5 / var).sub_(0.5 * (var.log() + math.log(2 * math.pi)))
            return lp.flatten(2).sum(-1)
        if not self.learned:  # scalar variance: no full-size log-variance tensors
            lp = d2.mul_(-0.5 / self.variance).sub_(0.5 * (math.log(self.variance) + math.log(2 * math.pi)))
            return lp.flatten(2).sum(-1)
        log_var = self.log_var(params)
        lp = -0.5 * (d2 * torch.exp(-log_var) + log_var + math.log(2 * math.pi))
        return lp.flatten(2).sum(-1)


class BernoulliLikelihood(nn.Module):
    """Bernoulli over binary data; the parameters are the logits (P = 1)."""

    num_params = 1
    data_range = 1.0  # the mean lies in [0, 1], so PSNR against the binary data is defined

    def mean(self, params: Tensor) -> Tensor:
        return torch.sigmoid(params)

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        """log p(x|z) (B, K) in nats for x (B, *event) in {0, 1}; float32 under autocast too."""
        params = params.float()
        lp = -F.binary_cross_entropy_with_logits(params, x.unsqueeze(1).expand_as(params), reduction="none")
        return lp.flatten(2).sum(-1)


class DiscreteVAE(nn.Module):
    """q_theta(z|x) and p_phi(x|z) together; the objectives in `daps.objectives` train it.

    recognition: ARRecognition or NARecognition (sample, log_prob).
    generator: maps z (B, K, T) to parameters (B, K, *event) (P*C channels last).
    likelihood: GaussianLikelihood or BernoulliLikelihood.
    """

    def __init__(self, recognition: nn.Module, generator: nn.Module, likelihood: nn.Module):
        super().__init__()
        self.recognition, self.generator, self.likelihood = recognition, generator, likelihood

    @property
    def vocab_size(self) -> int:
        return self.recognition.cfg.vocab_size

    @property
    def block_size(self) -> int:
        return self.recognition.cfg.block_size

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """R = log p_phi(x|z) (B, K) nats, for x (B, *event) and z (B, K, T)."""
        return self.likelihood.log_prob(x, self.generator(z))

    def reconstruct(self, z: Tensor) -> Tensor:
        """Decoder mean (B, K, *event) for codes z (B, K, T)."""
        return self.likelihood.mean(self.generator(z))
