"""Atomic, safe checkpoints: written to a temporary file and renamed; loaded with ``weights_only=True``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from medvision.core.atomic import atomic_path
from medvision.core.errors import CheckpointError  # noqa: F401  (raised here; importable from here)


def save_atomic(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` to ``path`` so that a crash mid-save leaves the previous file intact."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())
    return Path(path)


def load_checkpoint(path: str | os.PathLike[str], require_model: bool = True) -> dict:
    """Load a checkpoint with ``torch.load(weights_only=True)``: tensors and plain containers only, so a
    crafted file cannot run code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, EOFError, RuntimeError(zip) ...
        raise CheckpointError(f"checkpoint {path} cannot be loaded safely ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200]})") from exc
    if not isinstance(obj, dict) or (require_model and "model" not in obj):
        raise CheckpointError(f"{path} is not a medvision checkpoint (no 'model' entry)")
    return obj
