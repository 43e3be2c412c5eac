"""Atomic file writes: results and checkpoints are either complete or absent, never partial.

A write goes to a temporary file beside its target (``.NAME.XXXXXXXX.SUFFIX``) and is renamed
over it; a writer killed mid-write leaves that temporary behind, and the next write of the same
target removes it. Errors of the file system (no space left, read-only, a path under a file)
come back as one ``OSError`` naming the target. JSON is written strictly (RFC 8259): numbers
that are not finite become ``null``.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable

TEMP_RANDOM = "[a-z0-9_]{8}"  # the random part of tempfile.mkstemp's names


def stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Temporary files that :func:`atomic_write` left beside `path` when its writer was killed
    (``.NAME.XXXXXXXX.SUFFIX``); one writer per target is assumed."""
    path = Path(path)
    suffix = path.suffix or ".tmp"
    pattern = re.compile(rf"\.{re.escape(path.name)}\.{TEMP_RANDOM}{re.escape(suffix)}")
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    return [path.parent / n for n in names if pattern.fullmatch(n)]


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call write(tmp) on a temporary file beside `path`, then rename it over `path`.

    The rename is atomic on POSIX file systems; on any error the temporary file is removed and
    `path` is left as it was. The temporary name keeps the suffix so writers that infer the format
    from it (matplotlib, imageio) still work. Temporaries of `path` left by a killed writer are
    removed first. Returns `path` as a Path.

    Raises:
        OSError: the folder cannot be made or written (no space left, read-only, a file in the
            way), with the target as its filename and the system's reason as its strerror.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for old in stale_temporaries(path):
            old.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix or ".tmp")
        os.close(fd)
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as e:
        raise OSError(e.errno, e.strerror or str(e), str(path)) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a text file atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _finite(obj: Any) -> Any:
    """obj with every float that is not finite (NaN, inf) replaced by None, numpy scalars and
    arrays as Python numbers and lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "tolist") and type(obj).__module__ == "numpy":  # numpy scalar or array
        return _finite(obj.tolist())
    return obj


def json_text(obj: Any, indent: int | None = 1) -> str:
    """Strict JSON of obj (no NaN / Infinity tokens: those values become null), as json.dumps."""
    return json.dumps(_finite(obj), indent=indent, allow_nan=False)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 1) -> Path:
    """Write obj as strict JSON (:func:`json_text`) plus a newline, atomically."""
    return atomic_write_text(path, json_text(obj, indent) + "\n")


def append_csv_row(path: str | os.PathLike, row: dict[str, Any]) -> None:
    """Append one row to a CSV log (a progress file read while a run goes on), writing the header
    from the row's keys when the file is new. Not atomic: a killed writer can leave half a line,
    which CSV readers skip or flag; checkpoints and results use the atomic writers above."""
    import csv

    path = Path(path)
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


def check_writable(path: str | os.PathLike, option: str) -> None:
    """Raise ValueError (one line naming `option` and the path) unless a file could be written at
    `path`: its nearest existing folder must be a folder in which a file can be created (not a
    file, not read-only). Nothing is left behind. Call it before long work whose result goes there."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} {path}: is a folder, not a file name")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"{option} {path}: {folder} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise ValueError(f"{option} {path}: cannot write in {folder} ({e.strerror or e})") from None


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes (pins the model a checkpoint was made against).
    Raises FileNotFoundError naming the file when it does not exist."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
