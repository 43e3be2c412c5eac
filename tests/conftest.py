"""Fixtures shared by several test modules."""
import numpy as np
import pytest


@pytest.fixture(scope="module")
def text_cache(request, tmp_path_factory):
    """One text encoder per module, behind a file cache (the CLI tests read its file), holding the
    embeddings of the module's ``PROMPTS``."""
    from highlevel.text import EmbeddingCache, TextEncoder

    cache = EmbeddingCache(tmp_path_factory.mktemp("text") / "emb.npz")
    cache._encoder = TextEncoder()
    cache.encode(list(request.module.PROMPTS))
    return cache


def _make_idx_dataset(root, n_train=40, n_val=12, gz=True, seed=0):
    """A tiny MNIST-shaped dataset: blobs of random brightness in IDX files (uint8, 28 x 28)."""
    from image_bench.data import write_idx

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for stem, n in (("train-images-idx3-ubyte", n_train), ("t10k-images-idx3-ubyte", n_val)):
        img = np.zeros((n, 28, 28), np.uint8)
        for i in range(n):
            r, c = rng.integers(4, 20, 2)
            img[i, r : r + 8, c : c + 6] = rng.integers(100, 256)
        write_idx(root / f"{stem}{suffix}", img)
    return root


@pytest.fixture(scope="session")
def make_idx_dataset():
    """The function that writes a tiny IDX dataset: make_idx_dataset(root, n_train, n_val, gz, seed) -> root."""
    return _make_idx_dataset
