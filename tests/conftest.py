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


def _follow_segments(follower, codes):
    """Feed codes (S, 64) to a SegmentFollower one segment at a time from a standing start, as
    `generate_batch` does, checking each segment's rows are (1, 32, 26) and finite; returns the rows
    of the segments followed ((32, 26) each), stopping early once the follower is done()."""
    from highlevel.command import standing_rows

    hist, rows = standing_rows()[None], []
    for j, c in enumerate(codes):
        r = follower.follow(c[None], hist, j)
        assert r.shape == (1, 32, 26) and np.isfinite(r).all()
        rows.append(r[0])
        hist = np.concatenate([hist, r], 1)
        if follower.done():
            break
    return rows


@pytest.fixture(scope="session")
def follow_segments():
    """The function that follows codes segment by segment: follow_segments(follower, codes) -> rows."""
    return _follow_segments


@pytest.fixture(scope="session")
def make_idx_dataset():
    """The function that writes a tiny IDX dataset: make_idx_dataset(root, n_train, n_val, gz, seed) -> root."""
    return _make_idx_dataset
