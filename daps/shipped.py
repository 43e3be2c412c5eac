"""The shipped models: where their files are, reading them as data, slim exports, and model cards.

Three trained models ship with the project, each a file with a model card beside it:

    motion_vae.pt  the motion autoencoder (`motion_vae.models.load_motion_vae`)
    lowlevel.pt    the low-level policy (`lowlevel.checkpoint` / `lowlevel.tracker`)
    highlevel.pt   the high-level prior (`highlevel.ship.load_highlevel`)

The folder holding them is, in order: ``$DAPS_MODELS_DIR`` when set; the ``models/`` folder of the
repository checkout this code runs from; the copy a non-editable ``pip install .`` puts in the
environment (``share/daps-humanoid/models``, pyproject's data-files). A card (``NAME.md``) is
Markdown for people ending in one fenced JSON block for programs; the tests re-measure a short
slice of each model and compare it with the figures in that block.
"""
from __future__ import annotations

import json
import os
import re
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

import torch

from daps.io import atomic_write_text, json_text
from daps.trainer import atomic_torch_save

MODELS_DIR_ENV = "DAPS_MODELS_DIR"
MOTION_VAE = "motion_vae.pt"
LOWLEVEL = "lowlevel.pt"
HIGHLEVEL = "highlevel.pt"
SHIPPED = (MOTION_VAE, LOWLEVEL, HIGHLEVEL)
DISTRIBUTION = "daps-humanoid"
INSTALLED_MODELS = ("share", DISTRIBUTION, "models")  # under the environment's prefix (pyproject data-files)


def _checkout_models_dir() -> Path:
    """models/ beside the packages: the repository checkout (or an editable install of it)."""
    return Path(__file__).resolve().parents[1] / "models"


def _installed_models_dir() -> Path | None:
    """The models folder a non-editable install wrote (found through the installed files' record,
    so a --prefix or --target install is found too), or None."""
    try:
        files = metadata.distribution(DISTRIBUTION).files or []
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        if tuple(f.parts[-4:]) == (*INSTALLED_MODELS, MOTION_VAE):
            return Path(f.locate()).resolve().parent
    return None


def models_dir() -> Path:
    """The folder the shipped models are read from (module docstring; it may not exist).

    $DAPS_MODELS_DIR wins even when it lacks a file, so a test or a user can point every default
    at another set of models; otherwise the checkout's models/ when it exists, then the installed
    copy, and finally the checkout's path (whose absence the loaders report, naming it)."""
    env = os.environ.get(MODELS_DIR_ENV)
    if env:
        return Path(env)
    checkout = _checkout_models_dir()
    if checkout.is_dir():
        return checkout
    return _installed_models_dir() or checkout


def shipped_path(name: str) -> Path:
    """Path of one shipped model file (MOTION_VAE, LOWLEVEL or HIGHLEVEL) in `models_dir()`; it
    may not exist. Raises ValueError for another name."""
    if name not in SHIPPED:
        raise ValueError(f"{name!r} is not a shipped model (one of {', '.join(SHIPPED)})")
    return models_dir() / name


def card_path(model_path: str | Path) -> Path:
    """The model card beside a model file: NAME.md for NAME.pt."""
    return Path(model_path).with_suffix(".md")


def read_tensors(path: str | Path) -> Any | None:
    """The object stored in a torch file read as data only (``weights_only=True``: tensors and
    plain Python values, never code), or None when the file is missing, damaged or holds
    anything else."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - torch raises many types for a damaged or foreign file
        return None


def save_export(entries: dict[str, Any], out: str | Path) -> Path:
    """Write a slim model file for shipping: ``entries`` (tensors and plain data only, so the file
    loads with ``weights_only=True``) marked ``"exported": True``, written atomically (a full disk
    raises OSError naming ``out`` and leaves no partial file). Returns ``out``."""
    out = Path(out)
    atomic_torch_save({**entries, "exported": True}, out)
    return out


def slim_checkpoint(ckpt: dict[str, Any], weights: dict[str, torch.Tensor], keep: Iterable[str],
                    **entries: Any) -> dict[str, Any]:
    """The entries of an export of a core-trainer checkpoint: the ``keep`` keys it has (format,
    kind, config, step, ...), ``"model"`` = ``weights`` (e.g. cast to float16), then ``entries``;
    no optimiser or RNG state."""
    return {**{k: ckpt[k] for k in keep if k in ckpt}, "model": weights, **entries}


def read_card(path: str | Path) -> dict:
    """The JSON block of a model card. Raises ValueError naming the file if it has none or it is
    malformed."""
    text = Path(path).read_text()
    found = re.search(r"```json\n(.*?)\n```", text, re.S)
    if not found:
        raise ValueError(f"{path}: model card has no ```json block")
    try:
        return json.loads(found.group(1))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: model card JSON is malformed ({e.msg}, line {e.lineno})") from None


def write_card(out: str | Path, text: str, card: dict[str, Any]) -> dict[str, Any]:
    """Write a model card atomically: the Markdown ``text`` (ending in a newline), a blank line, then
    ``card`` as the fenced JSON block `read_card` reads (non-finite numbers as null). Returns card."""
    atomic_write_text(out, f"{text}\n```json\n{json_text(card, indent=2)}\n```\n")
    return card
