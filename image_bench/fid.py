"""Frechet Inception Distance of reconstructions, from Inception weights the user supplies.

Nothing is downloaded and no Inception is written here: the network is a TorchScript file the
user names (``--fid-weights``), NVIDIA's ``inception-2015-12-05.pt`` (the TensorFlow FID
Inception-v3 of Heusel et al. 2017 exported by StyleGAN2-ADA, also used by clean-fid), called as
``net(images_uint8_nchw, return_features=True)`` -> (N, 2048) pool features; it resizes to 299 x 299
itself. The Frechet distance of the two feature Gaussians is torchmetrics'
``FrechetInceptionDistance`` with that network as its feature extractor. TorchScript files hold
code and tensors, not pickled Python objects, so loading one runs no arbitrary Python.

The paper reports FID for CIFAR-10 and ImageNet-256 reconstructions (Table 1, Sec. 5); grey
images (Fashion-MNIST, MNIST) are repeated over three channels.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import Tensor, nn

from daps.trainer import CheckpointError

__all__ = ["InceptionFeatures", "load_inception", "to_uint8_rgb", "frechet_distance"]


class InceptionFeatures(nn.Module):
    """Wraps a TorchScript FID network: uint8 images (N, 3, H, W) -> features (N, num_features)."""

    def __init__(self, net: torch.jit.ScriptModule, num_features: int):
        super().__init__()
        self.net = net
        self.num_features = int(num_features)  # read by torchmetrics instead of a probe pass

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images, return_features=True)


def load_inception(path: str | Path, device: str | torch.device = "cpu") -> InceptionFeatures:
    """The user's TorchScript FID network, checked by one pass of two 299 x 299 images.

    Raises CheckpointError (one line, naming the file) for a missing file, a file that is not
    TorchScript, or a network that does not map uint8 (N, 3, H, W) to finite (N, D) features.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file (--fid-weights: a TorchScript Inception such as inception-2015-12-05.pt)")
    try:
        with warnings.catch_warnings():  # torch 2.9+ deprecates TorchScript; the FID network is one
            warnings.simplefilter("ignore", DeprecationWarning)
            net = torch.jit.load(str(path), map_location=device).eval()
    except Exception as e:  # noqa: BLE001 - any failure means the file is not usable TorchScript
        raise CheckpointError(f"{path}: not a TorchScript file ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
    probe = torch.zeros(2, 3, 299, 299, dtype=torch.uint8, device=device)
    try:
        with torch.no_grad():
            out = net(probe, return_features=True)
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"{path}: not an FID network: net(images, return_features=True) failed "
                              f"({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
    if not (isinstance(out, Tensor) and out.dim() == 2 and out.shape[0] == 2 and torch.isfinite(out).all()):
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise CheckpointError(f"{path}: not an FID network: features of 2 images have shape {shape}, expected (2, D) finite")
    return InceptionFeatures(net, out.shape[1])


def to_uint8_rgb(images: Tensor) -> Tensor:
    """Images in [0, 1], (N, H, W) grey or (N, H, W, 3) colour -> uint8 (N, 3, H, W) (grey repeated)."""
    x = images.clamp(0, 1).mul(255).round().to(torch.uint8)
    if x.dim() == 3:
        return x.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    if x.dim() == 4 and x.shape[-1] == 3:
        return x.permute(0, 3, 1, 2).contiguous()
    raise ValueError(f"images must be (N, H, W) or (N, H, W, 3), got {tuple(images.shape)}")


def frechet_distance(net: InceptionFeatures, pairs: Iterable[tuple[Tensor, Tensor]],
                     to_unit: Callable[[Tensor], Tensor] = lambda t: t, device: str | torch.device = "cpu") -> float:
    """FID between two image sets streamed as (real batch, generated batch) pairs.

    Each batch is (B, H, W[, 3]) in model units; ``to_unit`` maps them to [0, 1]. Needs at least
    2 images per set. Returns the Frechet distance of the two Gaussians fitted to the network's
    features (Heusel et al. 2017, Eq. 6), computed by torchmetrics.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    fid = FrechetInceptionDistance(feature=net).to(device)
    with torch.no_grad():
        for real, fake in pairs:
            fid.update(to_uint8_rgb(to_unit(real)).to(device), real=True)
            fid.update(to_uint8_rgb(to_unit(fake)).to(device), real=False)
        return float(fid.compute())
