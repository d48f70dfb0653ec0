"""Iterate batches of augmented, normalised tensors straight from a uint8 tensor cache."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from medvision.config import AugmentConfig
from medvision.core.distributed import DistInfo, shard
from medvision.core.distributed import info as dist_info
from medvision.data.augment import augment_batch, normalize, resize_batch
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
        rank: This process's rank under DDP (default: from the process group, as ``DistributedSampler``).
        world_size: Number of processes (default: from the process group; 1 without one).

    Under DDP every rank draws the same global order and keeps every ``world_size``-th sample (training
    orders are padded so ranks run the same number of steps); ``batch_size`` stays the *global* batch, so
    each rank takes ``batch_size // world_size`` samples per step.
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
    rank: int | None = None
    world_size: int | None = None
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

    def _dist(self) -> DistInfo:
        d = dist_info()
        return DistInfo(d.rank if self.rank is None else self.rank,
                        d.world_size if self.world_size is None else self.world_size)

    @property
    def _pad(self) -> bool:
        return self.shuffle or self.balanced

    def local_batch_size(self) -> int:
        """Samples per step on this rank (the global ``batch_size`` split across ranks)."""
        return max(1, self.batch_size // self._dist().world_size)

    def positions(self) -> np.ndarray:
        """Sample positions this rank yields, in order, for an unshuffled loader (to gather predictions)."""
        if self._pad:
            raise ValueError("positions() is defined for unshuffled (evaluation) loaders only")
        return shard(np.arange(len(self.images)), self._dist(), pad=False)

    def __len__(self) -> int:
        d = self._dist()
        n = len(shard(np.arange(len(self.images)), d, pad=self._pad))
        b = self.local_batch_size()
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        d = self._dist()
        order = shard(epoch_order(self.labels, self.shuffle, self.balanced, g), d, pad=self._pad)
        dev = torch.device(self.device)
        aug_gen = torch.Generator(device=dev).manual_seed(self.seed * 7919 + self.epoch + d.rank * 1_000_003)
        step = self.local_batch_size()
        for start in range(0, len(order), step):
            idx = order[start:start + step]
            if self.drop_last and len(idx) < step:
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
