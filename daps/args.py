"""Command-line values shared by the sub-command groups: comma-separated lists, help texts,
``--set KEY=VALUE`` settings, overrides of a preset's top-level fields."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from typing import Any, TypeVar

C = TypeVar("C")


def number_list(text: str, option: str, kind: type = int) -> list:
    """"0,8,16" -> [0, 8, 16] (empty items skipped, so "" -> []). `kind` is int or float.

    Raises ValueError naming `option` (e.g. "--offsets") when an item is not a number of that kind."""
    try:
        return [kind(t) for t in text.split(",") if t.strip()]
    except ValueError:
        noun = "integers" if kind is int else "numbers"
        raise ValueError(f"{option} must be {noun} separated by commas, got {text!r}") from None


PRECISION_HELP = ("fp32 | bf16: bf16 computes the losses under bfloat16 autocast (weights, optimiser, rewards and "
                  "log q stay float32; `daps.trainer.OptimConfig.precision`), faster on CPUs with AVX512-BF16/AMX and on GPUs; "
                  "a resume may switch it.")


def precision_list(text: str, option: str = "--precision") -> list[str]:
    """"fp32,bf16" -> ["fp32", "bf16"] (`daps.trainer.PRECISIONS`). Raises ValueError naming
    `option` for an empty list or an unknown name."""
    from daps.trainer import PRECISIONS

    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names or any(n not in PRECISIONS for n in names):
        raise ValueError(f"{option}: choose from {', '.join(PRECISIONS)} (comma-separated), got {text!r}")
    return names


@contextmanager
def bad_parameter(option: str) -> Iterator[None]:
    """Turn a ValueError raised inside the block into typer's usage error for `option` (e.g.
    "--arch"): one line naming the option and what is wrong, exit status 2. The config classes
    validate their own fields, so a CLI sets a value inside `with bad_parameter("--opt"):`."""
    import typer

    try:
        yield
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint=option) from None


def parse_settings(items: list[str]) -> dict[str, Any]:
    """The values of repeated ``--set KEY=VALUE`` options: ``["gamma=0.995", "target_kl=None"]`` ->
    ``{"gamma": 0.995, "target_kl": None}``, each value read as a Python literal (number, None, True,
    list). Raises ValueError naming a malformed item."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            raise ValueError(f"{item!r}: the value is not a Python literal (number, None, True/False, list)") from None
    return out


def apply_overrides(cfg: C, **overrides) -> C:
    """Set the top-level fields of the dataclass `cfg` (steps, batch_size, seed, ...) whose
    value is not None, in place; returns cfg. Raises ValueError for an unknown field or an
    integer field set to a value <= 0 (seed excepted)."""
    names = {f.name for f in fields(cfg)}
    for k, v in overrides.items():
        if v is None:
            continue
        if k not in names:
            raise ValueError(f"unknown config field {k!r}")
        if k != "seed" and isinstance(v, int) and not isinstance(v, bool) and v <= 0:
            raise ValueError(f"{k} must be positive, got {v}")
        setattr(cfg, k, v)
    return cfg


def finite_number(value: float | None, option: str, low: float | None = None, high: float | None = None,
                  positive: bool = False) -> float | None:
    """`value` unchanged when it is None or a finite number in [low, high] (> 0 with `positive`).

    Raises ValueError naming `option` (e.g. "--speed") otherwise: NaN and infinities never pass,
    so they cannot reach a computation or a JSON file."""
    import math

    if value is None:
        return None
    ok = isinstance(value, (int, float)) and math.isfinite(value)
    ok = ok and (low is None or value >= low) and (high is None or value <= high) and (not positive or value > 0)
    if not ok:
        if positive:
            want = "a positive number"
        elif low is not None and high is not None:
            want = f"in [{low:g}, {high:g}]"
        elif low is not None:
            want = f">= {low:g}"
        elif high is not None:
            want = f"<= {high:g}"
        else:
            want = "a finite number"
        raise ValueError(f"{option} must be {want}, got {value}")
    return value


def check_resume(run_dir, resume: bool, name: str = "checkpoint.pt") -> None:
    """With --resume, run_dir/name must exist: ValueError (one line naming the file) otherwise,
    rather than a silent start from step 0."""
    from pathlib import Path

    path = Path(run_dir) / name
    if resume and not path.is_file():
        raise ValueError(f"--resume: {path} not found, nothing to continue (leave out --resume to start a new run)")
