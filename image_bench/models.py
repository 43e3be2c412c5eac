"""Discrete VAEs for 28 x 28 binary images: the paper's MNIST protocol (Sec. 4, App. F; facts Sec. 4).

Bottleneck: T = 8 tokens x V = 256 codes = 64 bits (FSQ: levels [8, 6, 5] = 240 codes, 63.2 bits).

q_theta(z|x): image (B, 28, 28) -> zero-pad the width to 32 -> 2 x 4 patches of 14 x 8 -> one
Dense(H) each (the authors' ViT patcher, `ImagePatcher`) -> 8 input tokens (B, 8, H), then
  ar  (DAPS, Gumbel, GR-MCK, PPO): encoder-decoder transformer, 1 layer per stack, MLP ratio 4
  na  (DAPS-NA): unmasked transformer, 2 layers, MLP ratio 6, Dense(H) -> Dense(V) per token
  vq  (VQ-VAE): the NA stack -> Dense(H -> 64) -> VectorQuantize(256 x 64)
  fsq (FSQ): the NA stack -> Dense(H -> 3) -> FSQ([8, 6, 5])
p_phi(x|z): the 512-unit MLP (`MLPDecoder`): Embed(V, 64) per token, flattened to 8 x 64 = 512
-> Dense(64) -> ReLU -> Dense(256) -> ReLU -> Dense(784) Bernoulli logits (B, K, 28, 28).

CIFAR-10 (`cifar10_model`, paper App. F.2, facts Sec. 4): 64 tokens x 512 codes = 576 bits;
8 x 8 patches of 4 x 4 x 3, H 128, 2 layers per stack; the ResNet decoder (`ResNetDecoder`):
Embed(V, 128) on the 8 x 8 token grid -> Conv3x3(64) -> 2 residual blocks -> ReLU -> two
ConvTranspose 4x4/2 (64 -> 32 -> 6 channels) -> means and log-variances of a Gaussian whose
variance is learned and clipped to [0.01, 1] (paper Sec. 4), on standardised pixels.

Images are channels-last: (B, H, W) or (B, H, W, C); decoder parameters (B, K, H, W[, P*C]).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from daps.fsq import FSQCodeEmbedding, FSQRecognition
from daps.generative import BernoulliLikelihood, DiscreteVAE, GaussianLikelihood, soft_embed
from daps.nn import TransformerConfig, init_weights
from daps.recognition import ARRecognition, NARecognition
from daps.vq import VQCodeEmbedding, VQRecognition


@dataclass
class ImageVAEConfig:
    """recognition: "ar", "na", "vq" or "fsq" (set by the method). image_size / patch_size: (H, W)
    pixels; the image is zero-padded (centred) to a multiple of the patch, one input token per patch.
    vocab_size V, block_size T (= number of patches for na/vq/fsq). embed_dim H, num_heads,
    num_layers (AR stacks), mlp_ratio; na_num_layers / na_mlp_ratio for the non-AR encoders.
    decoder_embed_dim: code embedding width of the MLP decoder (also the VQ code dimension).
    decoder_hidden: the MLP's hidden widths. fsq_levels: FSQ grid (its product replaces V).
    vq_commitment: c of the VQ loss (App. H: 0.25)."""

    recognition: str = "ar"
    image_size: tuple[int, int] = (28, 28)
    patch_size: tuple[int, int] = (14, 8)
    vocab_size: int = 256
    block_size: int = 8
    embed_dim: int = 64
    num_heads: int = 4
    num_layers: int = 1
    mlp_ratio: int = 4
    na_num_layers: int = 2
    na_mlp_ratio: int = 6
    decoder_embed_dim: int = 64
    decoder_hidden: tuple[int, ...] = (64, 256)
    fsq_levels: tuple[int, ...] = (8, 6, 5)
    vq_commitment: float = 0.25
    channels: int = 1  # C; 1 means grey images (B, H, W)
    decoder: str = "mlp"  # "mlp" (MNIST) or "resnet" (CIFAR-10; decoder_hidden[0] is its width)
    likelihood: str = "bernoulli"  # or "gaussian": learned variance clipped to [0.01, 1]

    def __post_init__(self) -> None:
        for name in ("image_size", "patch_size", "decoder_hidden", "fsq_levels"):
            setattr(self, name, tuple(getattr(self, name)))  # lists after a JSON round trip
        if self.recognition not in ("ar", "na", "vq", "fsq"):
            raise ValueError(f"recognition must be ar, na, vq or fsq, got {self.recognition!r}")
        if self.recognition != "ar" and self.num_patches != self.block_size:
            raise ValueError(f"{self.recognition} encoders need one patch per latent token: {self.num_patches} patches, block {self.block_size}")
        if self.decoder not in ("mlp", "resnet") or self.likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"decoder must be mlp or resnet and likelihood bernoulli or gaussian, got {self.decoder!r}, {self.likelihood!r}")
        if self.decoder == "resnet":
            side = math.isqrt(self.block_size)
            ups = self.image_size[0] // max(side, 1)
            if side * side != self.block_size or self.image_size[0] != self.image_size[1] or ups < 2 or ups & (ups - 1) or side * ups != self.image_size[0]:
                raise ValueError(f"the ResNet decoder needs a square token grid that doubles up to the image: block {self.block_size}, image {self.image_size}")

    @property
    def event_shape(self) -> tuple[int, ...]:
        """One image as the model sees it: (H, W) grey, (H, W, C) colour."""
        return self.image_size if self.channels == 1 else (*self.image_size, self.channels)

    @property
    def num_patches(self) -> int:
        return math.prod(-(-s // p) for s, p in zip(self.image_size, self.patch_size))

    @property
    def codes(self) -> int:
        """Codes per token: V, or prod(fsq_levels) for FSQ."""
        return math.prod(self.fsq_levels) if self.recognition == "fsq" else self.vocab_size

    @property
    def bits(self) -> float:
        """Bottleneck in bits: T log2(codes)."""
        return self.block_size * math.log2(self.codes)

    def transformer(self, non_ar: bool = False) -> TransformerConfig:
        layers, ratio = (self.na_num_layers, self.na_mlp_ratio) if non_ar else (self.num_layers, self.mlp_ratio)
        return TransformerConfig(self.codes, self.block_size, self.embed_dim, self.num_heads, layers, ratio)


class ImagePatcher(nn.Module):
    """Images (B, H, W) or (B, H, W, C) -> zero-pad (centred) to multiples of the patch -> patches
    in row-major order -> one Dense(H_embed) each: tokens (B, N, H_embed) (the authors' image patcher).

    Raises ValueError for images of another size.
    """

    def __init__(self, image_size: tuple[int, int], patch_size: tuple[int, int], dim: int, channels: int = 1):
        super().__init__()
        self.image_size, self.patch_size, self.channels = tuple(image_size), tuple(patch_size), channels
        self.grid = tuple(-(-s // p) for s, p in zip(image_size, patch_size))
        pad_h, pad_w = (g * p - s for g, p, s in zip(self.grid, patch_size, image_size))
        self.pad = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
        self.proj = nn.Linear(channels * patch_size[0] * patch_size[1], dim)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 3:
            x = x.unsqueeze(-1)
        if x.shape[1:] != (*self.image_size, self.channels):
            raise ValueError(f"expected images ({self.image_size[0]}, {self.image_size[1]}, {self.channels}), got {tuple(x.shape[1:])}")
        x = x.permute(0, 3, 1, 2)  # (B, C, H, W)
        b, c = x.shape[:2]
        (gh, gw), (ph, pw) = self.grid, self.patch_size
        x = F.pad(x, self.pad).view(b, c, gh, ph, gw, pw).permute(0, 2, 4, 1, 3, 5)
        return self.proj(x.reshape(b, gh * gw, c * ph * pw))


class MLPDecoder(nn.Module):
    """Codes z (B, K, T) -> per-token embedding (E) -> flatten (T E) -> MLP -> logits (B, K, *out_shape).

    Args:
        block_size: T. embed: the code embedding (nn.Embedding(V, E), FSQCodeEmbedding or
            VQCodeEmbedding). embed_dim: E. hidden: hidden widths (ReLU between). out_shape: event shape.
    """

    def __init__(self, block_size: int, embed: nn.Module, embed_dim: int, hidden: tuple[int, ...], out_shape: tuple[int, ...]):
        super().__init__()
        self.embed, self.out_shape = embed, tuple(out_shape)
        widths = [block_size * embed_dim, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], math.prod(out_shape)))
        self.mlp = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, z: Tensor) -> Tensor:
        b, k, t = z.shape
        return self.from_embeddings(self.embed(z.reshape(b * k, t)).view(b, k, t, -1))

    def from_embeddings(self, e: Tensor) -> Tensor:
        """Parameters (B, K, *out_shape) from code embeddings e (B, K, T, E) (the quantisers' straight-through path)."""
        b, k = e.shape[:2]
        return self.mlp(e.reshape(b, k, -1)).view(b, k, *self.out_shape)

    def from_onehot(self, y: Tensor) -> Tensor:
        """Parameters from (straight-through) one-hots y (B, K, T, V) (the Gumbel baselines)."""
        return self.from_embeddings(soft_embed(self.embed, y))


class ResidualBlock(nn.Module):
    """x + BN(Conv1x1(ReLU(BN(Conv3x3(ReLU(x)))))) on (N, ch, S, S) (VQ-VAE's block, facts Sec. 4)."""

    def __init__(self, ch: int):
        super().__init__()
        self.net = nn.Sequential(nn.ReLU(), nn.Conv2d(ch, ch, 3, padding=1), nn.BatchNorm2d(ch), nn.ReLU(),
                                 nn.Conv2d(ch, ch, 1), nn.BatchNorm2d(ch))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


class ResNetDecoder(nn.Module):
    """Codes z (B, K, T) -> embeddings on the sqrt(T) x sqrt(T) grid (N, E, S, S) -> Conv3x3(hidden)
    -> num_blocks residual blocks -> ReLU -> ConvTranspose 4x4/2 (halving the channels, BN + ReLU
    between) until the image size -> out_channels: parameters (B, K, H, W, out_channels).

    Same interface as `MLPDecoder` (forward, from_embeddings, from_onehot).
    """

    def __init__(self, block_size: int, embed: nn.Module, embed_dim: int, hidden: int, image_size: int,
                 out_channels: int, num_blocks: int = 2):
        super().__init__()
        self.embed, self.side = embed, math.isqrt(block_size)
        layers: list[nn.Module] = [nn.Conv2d(embed_dim, hidden, 3, padding=1)]
        layers += [ResidualBlock(hidden) for _ in range(num_blocks)]
        layers.append(nn.ReLU())
        ch, size = hidden, self.side
        while size * 2 < image_size:
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1), nn.BatchNorm2d(ch // 2), nn.ReLU()]
            ch, size = ch // 2, size * 2
        layers.append(nn.ConvTranspose2d(ch, out_channels, 4, 2, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        b, k, t = z.shape
        return self.from_embeddings(self.embed(z.reshape(b * k, t)).view(b, k, t, -1))

    def from_embeddings(self, e: Tensor) -> Tensor:
        """Parameters (B, K, H, W, out_channels) from code embeddings e (B, K, T, E)."""
        b, k, t, d = e.shape
        grid = e.reshape(b * k, self.side, self.side, d).permute(0, 3, 1, 2)
        out = self.net(grid).permute(0, 2, 3, 1)
        return out.reshape(b, k, *out.shape[1:])

    def from_onehot(self, y: Tensor) -> Tensor:
        return self.from_embeddings(soft_embed(self.embed, y))


def build_image_vae(cfg: ImageVAEConfig) -> DiscreteVAE:
    """The image VAE of `cfg` (Bernoulli or learned-variance Gaussian likelihood). Raises ValueError for bad sizes."""
    h, e = cfg.embed_dim, cfg.decoder_embed_dim
    patcher = ImagePatcher(cfg.image_size, cfg.patch_size, h, cfg.channels)
    if cfg.recognition == "ar":
        recognition = ARRecognition(cfg.transformer(), patcher, cfg.num_patches)
        embed = nn.Embedding(cfg.codes, e)
    elif cfg.recognition == "na":
        recognition = NARecognition(cfg.transformer(non_ar=True), patcher)
        embed = nn.Embedding(cfg.codes, e)
    elif cfg.recognition == "vq":
        recognition = VQRecognition(cfg.transformer(non_ar=True), patcher, e, cfg.vq_commitment)
        embed = VQCodeEmbedding(recognition.vq)
    else:
        recognition = FSQRecognition(cfg.transformer(non_ar=True), patcher, cfg.fsq_levels)
        embed = FSQCodeEmbedding(cfg.fsq_levels, e)
    likelihood = BernoulliLikelihood() if cfg.likelihood == "bernoulli" else GaussianLikelihood(learned=True, min_var=0.01, max_var=1.0)
    if cfg.decoder == "mlp":
        out_shape = cfg.event_shape if likelihood.num_params == 1 else (*cfg.image_size, 2 * cfg.channels)
        decoder = MLPDecoder(cfg.block_size, embed, e, cfg.decoder_hidden, out_shape)
    else:
        decoder = ResNetDecoder(cfg.block_size, embed, e, cfg.decoder_hidden[0], cfg.image_size[0], likelihood.num_params * cfg.channels)
    return DiscreteVAE(recognition, decoder, likelihood)


def imagenet_model(recognition: str = "ar") -> ImageVAEConfig:
    """The paper's ImageNet-256 configuration (App. F.1): 1024 tokens x 1024 codes = 10,240 bits,
    8 x 8 x 3 patches of 256 x 256 images, H 128, 2 layers per stack, the ResNet decoder (32 -> 256
    pixels, learned clipped variance); FSQ [8, 5, 5, 5] (1000 codes)."""
    return ImageVAEConfig(recognition=recognition, image_size=(256, 256), patch_size=(8, 8), vocab_size=1024, block_size=1024,
                          embed_dim=128, num_heads=4, num_layers=2, mlp_ratio=4, na_num_layers=2, na_mlp_ratio=4,
                          decoder_embed_dim=128, decoder_hidden=(64,), fsq_levels=(8, 5, 5, 5), vq_commitment=0.25,
                          channels=3, decoder="resnet", likelihood="gaussian")


def cifar10_model(recognition: str = "ar") -> ImageVAEConfig:
    """The paper's CIFAR-10 configuration (App. F.2): 64 tokens x 512 codes, 4 x 4 x 3 patches,
    H 128, 2 layers per stack, ResNet decoder (64 wide), learned clipped variance; FSQ [8, 8, 8]."""
    return ImageVAEConfig(recognition=recognition, image_size=(32, 32), patch_size=(4, 4), vocab_size=512, block_size=64,
                          embed_dim=128, num_heads=4, num_layers=2, mlp_ratio=4, na_num_layers=2, na_mlp_ratio=4,
                          decoder_embed_dim=128, decoder_hidden=(64,), fsq_levels=(8, 8, 8), vq_commitment=0.25,
                          channels=3, decoder="resnet", likelihood="gaussian")


@torch.no_grad()
def prior_samples(model: DiscreteVAE, n: int, generator: torch.Generator | None = None) -> Tensor:
    """Decoder means (n, *event) of codes drawn from the uniform prior (paper Fig. 14)."""
    device = next(model.parameters()).device
    z = torch.randint(0, model.vocab_size, (n, 1, model.block_size), generator=generator, device=device)
    return model.reconstruct(z)[:, 0]
