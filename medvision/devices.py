"""Devices and precision: which device ``auto`` means, which autocast dtype a device gets, and batches in the
layout the device runs fastest."""

from __future__ import annotations

import torch

from medvision.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → CUDA if available, else CPU; any other name is passed to :class:`torch.device`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device``, or ``None`` for full precision.

    On CUDA, ``auto`` means bf16 where the GPU supports it, else fp16 (with a gradient scaler). On the CPU,
    ``auto`` means full precision: bf16 autocast only pays on CPUs with native bf16 instructions, and the
    machines this project is measured on have none, so it is not claimed; ``bf16`` asks for it explicitly.

    Raises:
        ValueError: ``fp16`` on a device other than CUDA, or an unknown ``amp``.
    """
    if amp not in ("auto", "bf16", "fp16", "off"):
        raise ConfigError(f"amp must be auto, bf16, fp16 or off, not {amp!r}")
    if amp == "off":
        return None
    if device.type == "cuda":
        if amp == "fp16" or (amp == "auto" and not torch.cuda.is_bf16_supported()):
            return torch.float16
        return torch.bfloat16
    if amp == "fp16":
        raise ConfigError(f"amp='fp16' needs a CUDA device, not {device}; use 'bf16' or 'off'")
    return torch.bfloat16 if amp == "bf16" else None


def as_model_input(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch on ``device``; image batches in channels-last layout, which oneDNN (CPU) and cuDNN run faster
    whatever the layout of the weights."""
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x
