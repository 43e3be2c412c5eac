"""Image datasets for the comparison, read from files the user has (never downloaded at run time).

MNIST and Fashion-MNIST come as IDX files (http://yann.lecun.com/exdb/mnist/ format), gzip or
raw: train-images-idx3-ubyte[.gz] (60,000 x 28 x 28) and t10k-images-idx3-ubyte[.gz] (10,000).
Where to look, first match wins:
  --data DIR (the CLI), else $DAPS_FASHION_MNIST_DIR / $DAPS_MNIST_DIR, else the Debian package
  path (`apt-get install dataset-fashion-mnist` puts Fashion-MNIST in /usr/share/datasets/fashion-mnist).

The paper's MNIST protocol (facts Sec. 5): static binarisation x > 127, no scaling, no
augmentation; the validation set is the 10,000 test images.
"""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATASETS = {
    # name: (environment variable, default folders)
    "fashion-mnist": ("DAPS_FASHION_MNIST_DIR", ("/usr/share/datasets/fashion-mnist",)),
    "mnist": ("DAPS_MNIST_DIR", ()),
}
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class ImageDataError(ValueError):
    """A missing, truncated or malformed image file, or a dataset that cannot be found."""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (gzip-compressed or raw) into an array of its stored shape and type.

    Header: two zero bytes, a type byte (0x08 uint8, ...), the number of dimensions, then one
    big-endian uint32 per dimension. Raises ImageDataError naming the file for anything else.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise ImageDataError(f"{path}: file not found") from None
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise ImageDataError(f"{path}: unreadable ({type(e).__name__}: {e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES or raw[3] == 0:
        raise ImageDataError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})")
    ndim, dtype = raw[3], np.dtype(IDX_DTYPES[raw[2]])
    if len(raw) < 4 + 4 * ndim:
        raise ImageDataError(f"{path}: IDX header truncated")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = 4 + 4 * ndim + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise ImageDataError(f"{path}: {len(raw)} bytes, expected {expected} for shape {shape}")
    return np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim).reshape(shape)


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write a uint8 array as an IDX file (gzip if compress, default: when the name ends in .gz).
    For test fixtures and for users converting their own images. Atomic."""
    from daps.io import atomic_write

    path = Path(path)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    data = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes() + array.tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, compresslevel=6)
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def dataset_root(name: str, root: str | os.PathLike | None = None) -> Path:
    """The folder holding `name`'s IDX files: root, else the environment variable, else the default.
    Raises ImageDataError (unknown name, or no folder found) with how to point at a copy."""
    if name not in DATASETS:
        raise ImageDataError(f"unknown dataset {name!r}; choose {', '.join(DATASETS)}")
    env, defaults = DATASETS[name]
    if root is not None:
        return Path(root)
    if os.environ.get(env):
        return Path(os.environ[env])
    for d in defaults:
        if Path(d).is_dir():
            return Path(d)
    hint = " or `apt-get install dataset-fashion-mnist`" if name == "fashion-mnist" else ""
    raise ImageDataError(f"{name}: no data folder; pass --data DIR or set ${env}{hint}")


def find_idx(root: Path, stem: str) -> Path:
    """root/stem or root/stem.gz. Raises ImageDataError naming both when neither exists."""
    for p in (root / stem, root / f"{stem}.gz"):
        if p.is_file():
            return p
    raise ImageDataError(f"{root / stem}[.gz]: file not found")


def binarize(images: np.ndarray, threshold: int = 127) -> np.ndarray:
    """Static binarisation x > threshold of uint8 images (N, 28, 28) -> uint8 {0, 1} (facts Sec. 5)."""
    return (images > threshold).astype(np.uint8)


@dataclass
class ImageSplit:
    """Binary images (N, H, W) uint8 in {0, 1}; drawn as float32 batches."""

    images: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, rng: np.random.Generator, batch: int) -> np.ndarray:
        """A batch (batch, H, W) float32 drawn uniformly with replacement (the authors' sampling)."""
        return self.images[rng.integers(0, len(self.images), batch)].astype(np.float32)

    def fixed(self, n: int) -> np.ndarray:
        """The first n images (all if n <= 0 or n > N) as float32: a fixed validation set."""
        n = len(self.images) if n <= 0 else min(n, len(self.images))
        return self.images[:n].astype(np.float32)


@dataclass
class ImageDataset:
    name: str
    train: ImageSplit
    val: ImageSplit
    root: Path


def load_image_dataset(name: str, root: str | os.PathLike | None = None) -> ImageDataset:
    """Load MNIST or Fashion-MNIST (binarised 28 x 28): train = the 60k training images, val = the
    10k test images. Raises ImageDataError for missing or malformed files (naming the file)."""
    folder = dataset_root(name, root)
    splits = {}
    for split, stem in (("train", "train-images-idx3-ubyte"), ("val", "t10k-images-idx3-ubyte")):
        path = find_idx(folder, stem)
        images = read_idx(path)
        if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8 or len(images) == 0:
            raise ImageDataError(f"{path}: expected uint8 images (N, 28, 28), got {images.dtype} {images.shape}")
        splits[split] = ImageSplit(binarize(images))
    return ImageDataset(name, splits["train"], splits["val"], folder)
