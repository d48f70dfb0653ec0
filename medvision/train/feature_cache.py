"""Head-only training on cached backbone features: the frozen backbone runs once, not once per epoch.

When only the classifier trains and augmentation is at most a horizontal flip, every epoch would push the same
images (or their mirror images) through the same frozen backbone. :func:`cached_feature_loaders` extracts the
pooled features once (both views with flips) and trains the model's own classifier on them
(``bench/head_only.py`` measures the speed-up).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from medvision.core.devices import as_model_input, tune_allocator
from medvision.data.loader import TensorLoader, epoch_order
from medvision.models.backbones import mean_probability_logits

_log = logging.getLogger(__name__)


@dataclass
class FeatureLoader:
    """Batches of cached backbone outputs (``views`` x N x ...): pooled features, or a frozen prefix's
    activation maps (a memory-mapped array, :mod:`medvision.train.stage_cache`). One random view (e.g. a
    flip) per sample and epoch, or with ``all_views`` every view, as ``(batch, views, ...)`` (for test-time
    augmentation). Arrays are read in sorted order (sequential on a memory map) and returned as float32."""

    features: torch.Tensor | np.ndarray
    labels: np.ndarray
    batch_size: int = 64
    shuffle: bool = False
    balanced: bool = False
    seed: int = 0
    epoch: int = 0
    all_views: bool = False

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.features.shape[1] // self.batch_size)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        order = epoch_order(self.labels, self.shuffle, self.balanced, g)
        views = torch.randint(0, self.features.shape[0], (len(order),), generator=g) if self.shuffle or \
            self.balanced else torch.zeros(len(order), dtype=torch.long)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            x = self._take(views[start:start + len(idx)].numpy(), idx)
            yield x, torch.from_numpy(self.labels[idx])

    def _take(self, views: np.ndarray, idx: np.ndarray) -> torch.Tensor:
        if isinstance(self.features, torch.Tensor):
            t = torch.from_numpy(idx)
            return self.features[:, t].transpose(0, 1) if self.all_views else self.features[torch.from_numpy(views), t]
        sort = np.argsort(idx, kind="stable")  # sequential reads, then the batch's order again
        if self.all_views:
            out = np.empty((len(idx), self.features.shape[0], *self.features.shape[2:]), dtype=self.features.dtype)
            out[sort] = np.swapaxes(self.features[:, idx[sort]], 0, 1)
        else:
            out = np.empty((len(idx), *self.features.shape[2:]), dtype=self.features.dtype)
            out[sort] = self.features[views[sort], idx[sort]]
        return torch.from_numpy(out).float()


@torch.no_grad()
def extract_features(model: nn.Module, loader: Iterable, flips: bool = False, device: torch.device | None = None
                     ) -> tuple[torch.Tensor, np.ndarray]:
    """Pooled pre-logit features of every batch (``forward_head(pre_logits=True)``), in eval mode.

    Returns ``(views, N, D)`` features — ``views`` is 2 with horizontal flips — and the labels.
    """
    tune_allocator()
    device = device or next(model.parameters()).device
    model.eval()
    feats: list[list[torch.Tensor]] = [[] for _ in range(2 if flips else 1)]
    labels = []
    for x, y in loader:
        x = as_model_input(x, device)
        for v, batch in enumerate([x, torch.flip(x, dims=[3])] if flips else [x]):
            feats[v].append(model.forward_head(model.forward_features(batch), pre_logits=True).float().cpu())
        labels.append(y.cpu())
    return torch.stack([torch.cat(f) for f in feats]), torch.cat(labels).numpy()


class CachedHead(nn.Module):
    """The model's own classifier (shared parameters) with its dropout, for training on cached features.

    Features of shape ``(batch, views, D)`` (test-time views such as flips) give the log of the views' mean
    class probabilities, as :class:`medvision.models.backbones.FlipTTA` does with images.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.drop = nn.Dropout(float(getattr(model, "drop_rate", 0.0)))
        self.classifier = model.get_classifier()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(self.drop(features))
        return mean_probability_logits(logits) if features.ndim == 3 else logits


def can_cache_features(train_loader: TensorLoader, head_only: bool, cached_head: bool, mixup: float,
                       distributed: bool) -> bool:
    """Whether head-only training may run on cached features: the backbone is frozen, augmentation is at
    most a flip, no mixup (it blends images), and a single process (under DDP every rank runs the backbone)."""
    augment = train_loader.augment
    ok = cached_head and head_only and not mixup and (augment is None or augment.is_flip_only)
    if ok and distributed:
        _log.warning("cached head-only features are single-process: under DDP the frozen backbone runs on every "
                     "rank instead")
        return False
    return ok


def cached_feature_loaders(model: nn.Module, train_loader: TensorLoader, val_loader: TensorLoader,
                           val_views: bool, device: torch.device) -> tuple[FeatureLoader, FeatureLoader, float]:
    """Features of the training images (and of their mirror images when training flips) and of the
    validation images (both views when ``val_views``, for flip test-time augmentation), as loaders, and the
    seconds the extraction took. The backbone must already be frozen."""
    start = time.perf_counter()
    flips = train_loader.augment is not None and train_loader.augment.hflip > 0
    feats, labels = extract_features(model, in_file_order(train_loader), flips=flips, device=device)
    vfeats, vlabels = extract_features(model, val_loader, flips=val_views, device=device)
    train = FeatureLoader(feats, labels, train_loader.batch_size, shuffle=True, balanced=train_loader.balanced,
                          seed=train_loader.seed)
    val = FeatureLoader(vfeats, vlabels, val_loader.batch_size, all_views=val_views)
    return train, val, time.perf_counter() - start


def in_file_order(loader: TensorLoader) -> TensorLoader:
    """The same images in file order, every one once, without augmentation (for feature extraction)."""
    return replace(loader, shuffle=False, balanced=False, augment=None, drop_last=False)
