"""Image datasets for the comparison, read from files the user has (never downloaded at run time).

MNIST and Fashion-MNIST come as IDX files (http://yann.lecun.com/exdb/mnist/ format), gzip or
raw: train-images-idx3-ubyte[.gz] (60,000 x 28 x 28) and t10k-images-idx3-ubyte[.gz] (10,000).
CIFAR-10 comes as the "python version" batches: data_batch_1 .. data_batch_5 and test_batch
(pickled dicts with b"data", N x 3072 uint8 in R, G, B planes), in DIR or DIR/cifar-10-batches-py;
they are unpickled with an allow-list (numpy arrays, plain containers), never arbitrary objects.
ImageNet comes as an ImageFolder tree: DIR/train/<class>/*.JPEG and DIR/val/<class>/*.JPEG (any
depth; .jpg/.jpeg/.png/.bmp/.webp), decoded per batch with Pillow.
Where to look, first match wins:
  --data DIR (the CLI), else $DAPS_FASHION_MNIST_DIR / $DAPS_MNIST_DIR / $DAPS_CIFAR10_DIR /
  $DAPS_IMAGENET_DIR, else
  the Debian package path (`apt-get install dataset-fashion-mnist` puts Fashion-MNIST in
  /usr/share/datasets/fashion-mnist).

The paper's protocols (facts Sec. 5): MNIST static binarisation x > 127, no scaling, no
augmentation; CIFAR-10 per-channel standardisation with the authors' mean/std on 0-255, no
augmentation; ImageNet-256 training images by a random resized crop (area 8-100 %, aspect 3/4-4/3,
bilinear) to 256 x 256 and a horizontal flip with probability 1/2, validation images resized to
256 x 256 (aspect not kept, as the authors), standardised per channel. The validation set is the
10,000 test images (ImageNet: the val tree).
"""
from __future__ import annotations

import gzip
import math
import os
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daps.distributed import shard_indices

DATASETS = {
    # name: (environment variable, default folders)
    "fashion-mnist": ("DAPS_FASHION_MNIST_DIR", ("/usr/share/datasets/fashion-mnist",)),
    "mnist": ("DAPS_MNIST_DIR", ()),
    "cifar10": ("DAPS_CIFAR10_DIR", ()),
    "imagenet": ("DAPS_IMAGENET_DIR", ()),
}
IMAGENET_MEAN = (123.095, 115.324, 102.224)  # per-channel, 0-255 (facts Sec. 5)
IMAGENET_STD = (68.819, 66.551, 69.687)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
CIFAR_MEAN = (125.307, 122.950, 113.865)  # per-channel, 0-255 (facts Sec. 5)
CIFAR_STD = (62.993, 62.089, 66.705)
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class ImageDataError(ValueError):
    """A missing, truncated or malformed image file, or a dataset that cannot be found."""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (gzip-compressed or raw) into an array of its stored shape and type.

    Header: two zero bytes, a type byte (0x08 uint8, ...), the number of dimensions, then one
    big-endian uint32 per dimension. Raises ImageDataError naming the file for anything else
    (damaged gzip data, a header whose shape does not match the file's size).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise ImageDataError(f"{path}: file not found") from None
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise ImageDataError(f"{path}: unreadable, damaged gzip data ({type(e).__name__}: {e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES or raw[3] == 0:
        raise ImageDataError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})")
    ndim, dtype = raw[3], np.dtype(IDX_DTYPES[raw[2]])
    if len(raw) < 4 + 4 * ndim:
        raise ImageDataError(f"{path}: IDX header truncated")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = 4 + 4 * ndim + math.prod(shape) * dtype.itemsize  # Python integers: exact for any header
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


def standardise(images: np.ndarray, mean: tuple[float, ...] | None, std: tuple[float, ...] | None) -> np.ndarray:
    """uint8 images (..., C) -> float32 (x - mean) / std per channel; as float32 unchanged if mean is None."""
    x = images.astype(np.float32)
    if mean is None:
        return x
    return (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)


@dataclass
class ImageSplit:
    """uint8 images (N, H, W) (binary, in {0, 1}) or (N, H, W, C) (0-255), drawn as float32
    model inputs: as they are if mean is None, else (x - mean) / std per channel."""

    images: np.ndarray
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __len__(self) -> int:
        return len(self.images)

    def _model_input(self, images: np.ndarray) -> np.ndarray:
        return standardise(images, self.mean, self.std)

    def sample(self, rng: np.random.Generator, batch: int, rank: int = 0, world: int = 1) -> np.ndarray:
        """A batch (batch, H, W[, C]) float32 drawn uniformly with replacement (the authors' sampling):
        shard `rank` of a global batch of batch x world (`daps.distributed.shard_indices`)."""
        return self._model_input(self.images[shard_indices(rng, len(self.images), batch, rank, world)])

    def fixed(self, n: int) -> np.ndarray:
        """The first n images (all if n <= 0 or n > N) as float32 model inputs: a fixed validation set."""
        n = len(self.images) if n <= 0 else min(n, len(self.images))
        return self._model_input(self.images[:n])


def random_resized_crop(width: int, height: int, rng: np.random.Generator, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """A crop box (left, top, right, bottom) covering a uniform fraction `scale` of the area with
    a log-uniform aspect ratio; up to 10 tries, then the largest centred box of a clamped ratio."""
    area = width * height
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            return left, top, left + w, top + h
    aspect = min(max(width / height, ratio[0]), ratio[1])
    w, h = (width, round(width / aspect)) if width / height < aspect else (round(height * aspect), height)
    w, h = min(w, width), min(h, height)
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


@dataclass
class ImageFolderSplit:
    """Image files decoded per batch to (size, size, 3) uint8, then standardised like ImageSplit.
    train: random resized crop + flip; else a plain resize to size x size."""

    files: list[Path]
    size: int
    train: bool
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __len__(self) -> int:
        return len(self.files)

    def load(self, path: Path, rng: np.random.Generator | None) -> np.ndarray:
        """One image (size, size, 3) uint8. Raises ImageDataError naming an unreadable file."""
        from PIL import Image

        try:
            with Image.open(path) as im:
                im = im.convert("RGB")
                if self.train:
                    im = im.resize((self.size, self.size), Image.BILINEAR, box=random_resized_crop(*im.size, rng))
                    if rng.random() < 0.5:
                        im = im.transpose(Image.FLIP_LEFT_RIGHT)
                else:
                    im = im.resize((self.size, self.size), Image.BILINEAR)
                return np.asarray(im, dtype=np.uint8)
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise ImageDataError(f"{path}: unreadable image ({type(e).__name__})") from None

    def _model_input(self, images: np.ndarray) -> np.ndarray:
        return standardise(images, self.mean, self.std)

    def sample(self, rng: np.random.Generator, batch: int, rank: int = 0, world: int = 1) -> np.ndarray:
        """A batch (batch, size, size, 3) float32 drawn uniformly with replacement, augmented if train:
        shard `rank` of a global batch of batch x world (`daps.distributed.shard_indices`)."""
        idx = shard_indices(rng, len(self.files), batch, rank, world)
        if world > 1:  # augment from a child stream: `rng` must advance alike on every rank
            rng = np.random.default_rng([int(rng.integers(2**63)), rank])
        return self._model_input(np.stack([self.load(self.files[i], rng) for i in idx]))

    def fixed(self, n: int) -> np.ndarray:
        """The first n files (sorted paths; all if n <= 0) without augmentation, as float32."""
        n = len(self.files) if n <= 0 else min(n, len(self.files))
        rng = np.random.default_rng(0)
        return self._model_input(np.stack([self.load(f, rng) for f in self.files[:n]]))


def image_files(folder: Path) -> list[Path]:
    """Sorted image files under folder (any depth). Raises ImageDataError if there are none."""
    if not folder.is_dir():
        raise ImageDataError(f"{folder}: folder not found")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ImageDataError(f"{folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


@dataclass
class ImageDataset:
    """One image dataset's training and validation splits in model space (binarised {0, 1} or
    standardised pixels), its name and the folder it was read from."""

    name: str
    train: ImageSplit
    val: ImageSplit
    root: Path

    def to_unit(self, x):
        """Model-space images (torch or numpy, (..., H, W[, C])) -> [0, 1] for PSNR and pictures."""
        if self.train.mean is None:
            return x.clip(0, 1)
        mean, std = np.asarray(self.train.mean, np.float32), np.asarray(self.train.std, np.float32)
        if not isinstance(x, np.ndarray):
            import torch

            mean, std = torch.as_tensor(mean, device=x.device), torch.as_tensor(std, device=x.device)
        return ((x * std + mean) / 255.0).clip(0, 1)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only (the CIFAR-10 python batches)."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"),
               ("_codecs", "encode")}  # how Python 3 writes bytes in protocol-2 pickles

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def read_cifar_batch(path: str | os.PathLike) -> np.ndarray:
    """Images (N, 32, 32, 3) uint8 of one CIFAR-10 python batch. Raises ImageDataError naming the file."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise ImageDataError(f"{path}: file not found") from None
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise ImageDataError(f"{path}: not a CIFAR-10 python batch ({type(e).__name__}: {str(e)[:120]})") from None
    data = batch.get(b"data", batch.get("data")) if isinstance(batch, dict) else None
    data = np.asarray(data) if data is not None else None
    if data is None or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(data) == 0:
        raise ImageDataError(f"{path}: expected a dict with b'data' of uint8 (N, 3072)")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()


def load_cifar10(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(train (50000, 32, 32, 3), test (10000, 32, 32, 3)) uint8 from DIR or DIR/cifar-10-batches-py."""
    if (folder / "cifar-10-batches-py").is_dir():
        folder = folder / "cifar-10-batches-py"
    train = np.concatenate([read_cifar_batch(folder / f"data_batch_{i}") for i in range(1, 6)])
    return train, read_cifar_batch(folder / "test_batch")


def load_image_dataset(name: str, root: str | os.PathLike | None = None) -> ImageDataset:
    """Load MNIST or Fashion-MNIST (binarised 28 x 28) or CIFAR-10 (32 x 32 x 3, standardised):
    train = the training images, val = the 10k test images. Raises ImageDataError for missing or
    malformed files (naming the file)."""
    folder = dataset_root(name, root)
    if name == "imagenet":
        train = ImageFolderSplit(image_files(folder / "train"), 256, True, IMAGENET_MEAN, IMAGENET_STD)
        val = ImageFolderSplit(image_files(folder / "val"), 256, False, IMAGENET_MEAN, IMAGENET_STD)
        return ImageDataset(name, train, val, folder)  # type: ignore[arg-type]
    if name == "cifar10":
        train, test = load_cifar10(folder)
        return ImageDataset(name, ImageSplit(train, CIFAR_MEAN, CIFAR_STD), ImageSplit(test, CIFAR_MEAN, CIFAR_STD), folder)
    splits = {}
    for split, stem in (("train", "train-images-idx3-ubyte"), ("val", "t10k-images-idx3-ubyte")):
        path = find_idx(folder, stem)
        images = read_idx(path)
        if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8 or len(images) == 0:
            raise ImageDataError(f"{path}: expected uint8 images (N, 28, 28), got {images.dtype} {images.shape}")
        splits[split] = ImageSplit(binarize(images))
    return ImageDataset(name, splits["train"], splits["val"], folder)
