"""Devices and precision: which device ``auto`` means, which autocast dtype a device gets, and batches in the
layout the device runs fastest."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

import torch

from medvision.core.errors import ConfigError

#: glibc's ``mallopt`` parameters and the values medvision sets (bytes).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD, TRIM_THRESHOLD = 128 << 20, 256 << 20
_allocator_tuned: bool | None = None


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → CUDA if available, else CPU; any other name is passed to :class:`torch.device`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device``, or ``None`` for full precision.

    On CUDA, ``auto`` means bf16 where the GPU supports it, else fp16 (with a gradient scaler). On the CPU,
    ``auto`` means full precision: even with native bf16 instructions (AVX-512 BF16, measured 2026-12-01)
    bf16 autocast trained EfficientNet-Lite0 at 260 images/s against 400 in fp32 with channels-last, so it is
    not the default; ``bf16`` asks for it explicitly.

    Raises:
        ValueError: ``fp16`` on a device other than CUDA, or an unknown ``amp``.
    """
    # The choices are declared in medvision.config.choices.AMP_MODES (tested against these branches).
    if amp == "off":
        return None
    if amp not in ("auto", "bf16", "fp16"):
        raise ConfigError(f"unknown amp {amp!r}: it is one of medvision.config.choices.AMP_MODES")
    if device.type == "cuda":
        if amp == "fp16" or (amp == "auto" and not torch.cuda.is_bf16_supported()):
            return torch.float16
        return torch.bfloat16
    if amp == "fp16":
        raise ConfigError(f"amp='fp16' needs a CUDA device, not {device}; use 'bf16' or 'off'")
    return torch.bfloat16 if amp == "bf16" else None


def tune_allocator() -> bool:
    """Keep glibc from handing every large tensor buffer back to the OS (Linux; once per process).

    By default glibc serves allocations above 128 KiB with a fresh ``mmap`` and unmaps them on free, so each
    activation of a CPU forward pass is a new mapping whose pages fault in again — the cost PyTorch's CPU
    tuning guides avoid with jemalloc or tcmalloc. Raising ``M_MMAP_THRESHOLD`` to 128 MiB (and the trim
    threshold to 256 MiB) keeps those buffers in the heap for reuse: evaluation ran about 2x and training about
    1.1x faster in fresh processes here (``bench/train_throughput.py``), at the same peak memory. Called by
    ``fit``, ``evaluate`` and the ``Predictor``; ``MEDVISION_MALLOC_TUNING=0``, or the user's own
    ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``, leave glibc as it is.

    Returns:
        Whether the thresholds are medvision's (False off Linux/glibc, or where the user opted out).
    """
    global _allocator_tuned
    if _allocator_tuned is None:
        _allocator_tuned = False
        opted_out = os.environ.get("MEDVISION_MALLOC_TUNING", "1") == "0" or any(
            v in os.environ for v in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"))
        if sys.platform.startswith("linux") and not opted_out:
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                mallopt = libc.mallopt
            except (OSError, AttributeError):  # musl and other C libraries have no mallopt
                return False
            _allocator_tuned = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                                    and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _allocator_tuned


def as_model_input(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch on ``device``; image batches in channels-last layout, which oneDNN (CPU) and cuDNN run faster
    whatever the layout of the weights."""
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x
