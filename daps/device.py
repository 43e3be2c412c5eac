"""Device choice shared by every command: CUDA when present, else the CPU."""
from __future__ import annotations

import torch


def resolve_device(device: str) -> torch.device:
    """'auto' -> CUDA when present, else CPU. Raises ValueError if CUDA is asked for and absent."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but no CUDA device is available")
    return torch.device(device)
