"""The two sides of a speed comparison, each in its own worker process, and the data both work on.

A user's script that trains, evaluates or predicts is a process of its own; medvision's code runs in a process
that medvision tunes (``medvision.core.devices.tune_allocator``). Measured in one process, or after other jobs in
the same process, a side would inherit state that a user's script does not have (allocator thresholds, warmed
buffers). So every row of a benchmark gets a fresh pair of spawned workers (:func:`pair`), one per side, the
parent alternates their rounds (the other worker idles meanwhile, so machine noise falls on both) and reports
the median of the rounds. Worker functions are module-level functions of the bench scripts; the data set and the
ImageNet model load once per worker (:func:`data`).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import multiprocessing
import statistics
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


class Side:
    """One worker process; ``side(fn, *args)`` runs ``fn(*args)`` there and returns its result."""

    def __init__(self, name: str):
        self.name = name
        self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))

    def __call__(self, fn: Callable, *args):
        return self._pool.submit(fn, *args).result()

    def start(self):
        """Start the worker and load its data without waiting (a future)."""
        return self._pool.submit(_warm)

    def __enter__(self) -> Side:
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown(cancel_futures=True)


@contextlib.contextmanager
def pair() -> Iterator[tuple[Side, Side]]:
    """A fresh plain worker and a fresh medvision worker, for one row of a benchmark."""
    with Side("plain") as plain, Side("medvision") as ours:
        for started in [plain.start(), ours.start()]:  # both start at once, not one after the other
            started.result()
        yield plain, ours


def alternate(rounds: int, plain: Callable[[], float], ours: Callable[[], float]) -> tuple[float, float]:
    """Medians of ``rounds`` alternating calls of both sides (plain first in every round)."""
    p, m = [], []
    for _ in range(rounds):
        p.append(plain())
        m.append(ours())
    return statistics.median(p), statistics.median(m)


@dataclass(frozen=True)
class Data:
    """The bundled PneumoniaMNIST (28 px uint8 cache, train / val / test), the ImageNet model, its normalisation."""

    cache: object
    base: torch.nn.Module
    norm: dict

    def split(self, name: str, limit: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """uint8 images ``(N, 3, 28, 28)`` and labels; ``limit`` > 0 keeps a fixed random subset (train only)."""
        u8, y = self.cache.split(name)
        if name == "train" and 0 < limit < len(y):
            keep = np.sort(np.random.default_rng(0).permutation(len(y))[:limit])
            return np.ascontiguousarray(u8[keep]), np.asarray(y)[keep]
        return np.array(u8), np.asarray(y)  # a writable copy of the memory-mapped cache

    def floats(self, name: str, limit: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """The same split as the float ``[0, 1]`` tensors in memory that a plain loop works on."""
        u8, y = self.split(name, limit)
        return torch.from_numpy(u8).float().div_(255), torch.from_numpy(y).long()

    def mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.tensor(self.norm["mean"]).view(1, 3, 1, 1), torch.tensor(self.norm["std"]).view(1, 3, 1, 1))

    def model(self) -> torch.nn.Module:
        """A fresh copy of the ImageNet-pretrained EfficientNet-Lite0 with a 2-class head."""
        return copy.deepcopy(self.base)


@functools.cache
def data() -> Data:
    """Loaded once per worker process (seeded, so both workers start from the same head weights)."""
    from medvision.data import build_tensor_cache, load_medmnist, normalization_from_model
    from medvision.models.backbones import create_model

    torch.manual_seed(0)
    cache = build_tensor_cache(load_medmnist("pneumoniamnist"), 28, progress=False)
    base = create_model("tf_efficientnet_lite0", 2, pretrained="package")
    return Data(cache, base, normalization_from_model(base))


def plain_logits(model, images, size, mean, std, batch: int = 256) -> torch.Tensor:
    """A user's evaluation loop: ``eval()``, ``no_grad``, ``F.interpolate`` per batch of in-memory tensors."""
    model.eval()
    with torch.no_grad():
        return torch.cat([model((F.interpolate(images[i:i + batch], size=(size, size), mode="bilinear",
                                               align_corners=False) - mean) / std)
                          for i in range(0, len(images), batch)])


def _warm() -> None:
    data()
