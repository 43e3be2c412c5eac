"""Device choice shared by every command: CUDA when present, else the CPU."""
from __future__ import annotations

import torch

DEVICE_HELP = "auto (CUDA when present), cpu, cuda or cuda:N"


def resolve_device(device: str) -> torch.device:
    """'auto' -> CUDA when present, else CPU; 'cpu', 'cuda' and 'cuda:N' as given.

    Raises ValueError (one line naming --device) for another name, or a CUDA device that is absent.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"--device {device!r}: not a device; use {DEVICE_HELP}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda requested but no CUDA device is available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise ValueError(f"--device {device!r}: not supported; use {DEVICE_HELP}")
    return dev
