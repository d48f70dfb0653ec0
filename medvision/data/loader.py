"""Iterate batches of augmented, normalised tensors straight from a uint8 tensor cache."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from medvision.data.augment import AugmentConfig, augment_batch, normalize, resize_batch
from medvision.data.classes import sample_weights


def normalization_from_model(model: torch.nn.Module) -> dict:
    """The model's preprocessing (input size, mean, std, interpolation) from timm's data config."""
    import timm.data

    return timm.data.resolve_model_data_config(model)


def epoch_order(labels: np.ndarray, shuffle: bool, balanced: bool, g: torch.Generator) -> np.ndarray:
    """Sample positions for one epoch: class-balanced draws with replacement, a permutation, or in order."""
    n = len(labels)
    if balanced:
        w = sample_weights(labels, int(labels.max()) + 1)
        return torch.multinomial(w, n, replacement=True, generator=g).numpy()
    if shuffle:
        return torch.randperm(n, generator=g).numpy()
    return np.arange(n)


@dataclass
class TensorLoader:
    """A DataLoader-like iterable over ``(N, 3, H, W)`` uint8 images.

    Each batch is gathered from the (memory-mapped) array, converted to float on ``device``, augmented
    as a batch, resized to ``out_size`` and normalised. No worker processes are needed: there is
    nothing left to decode.

    Attributes:
        images: ``(N, 3, H, W)`` uint8 array (a :class:`~medvision.data.cache.TensorCache` split).
        labels: ``(N,)`` integer labels.
        mean: Normalisation mean (from the model's timm data config).
        std: Normalisation std (from the model's timm data config).
        batch_size: Samples per batch.
        shuffle: Reshuffle each epoch.
        augment: Augmentation, or ``None`` for none (evaluation).
        out_size: Model input size; default the cached size.
        balanced: Draw samples with class-balancing weights (with replacement) instead of a permutation.
        drop_last: Drop the last incomplete batch.
        seed: Base seed; epoch ``e`` uses ``seed + e`` so runs are reproducible and resumable.
        device: Where batches are built (augmentation runs there too).
    """

    images: np.ndarray
    labels: np.ndarray
    mean: Sequence[float]
    std: Sequence[float]
    batch_size: int = 64
    shuffle: bool = False
    augment: AugmentConfig | None = None
    out_size: int | None = None
    balanced: bool = False
    drop_last: bool = False
    seed: int = 0
    device: torch.device | str = "cpu"
    epoch: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.shape[1] != 3 or self.images.dtype != np.uint8:
            raise ValueError(f"images must be (N, 3, H, W) uint8, got {self.images.shape} {self.images.dtype}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        self.labels = np.asarray(self.labels, dtype=np.int64)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose shuffle/augmentation to replay (as ``DistributedSampler.set_epoch``)."""
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        order = epoch_order(self.labels, self.shuffle, self.balanced, g)
        dev = torch.device(self.device)
        aug_gen = torch.Generator(device=dev).manual_seed(self.seed * 7919 + self.epoch)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            if self.drop_last and len(idx) < self.batch_size:
                break
            # Sorted reads are sequential on a memory map; the permutation is re-applied after.
            sort = np.argsort(idx, kind="stable")
            batch = np.empty((len(idx), *self.images.shape[1:]), dtype=np.uint8)
            batch[sort] = self.images[idx[sort]]
            x = torch.from_numpy(batch).to(dev, non_blocking=True).float().div_(255)
            if self.augment is not None and not self.augment.is_identity:
                x = augment_batch(x, self.augment, aug_gen, self.out_size)
            elif self.out_size:
                x = resize_batch(x, self.out_size)
            yield normalize(x, self.mean, self.std), torch.from_numpy(self.labels[idx]).to(dev)
