"""The one way a chapter, a sweep, a seed system or a run's evaluation gets its images: load the split a
:class:`~medvision.config.DataConfig` describes, keep at most ``max_train_samples`` training images (stratified),
and decode (or reuse) the tensor cache, skipping unreadable files when ``on_error: skip`` says so."""

from __future__ import annotations

import logging
import os

from medvision.config.data import DataConfig
from medvision.core import distributed
from medvision.data.cache import TensorCache, build_tensor_cache
from medvision.data.load import load_data
from medvision.data.splits import stratified_subsample

_log = logging.getLogger(__name__)


def load_cached_split(cfg: DataConfig, max_train_samples: int = 0, seed: int | None = None,
                      progress: bool = False, cache_dir: str | os.PathLike[str] | None = None) -> TensorCache:
    """The decoded images of ``cfg``'s split.

    Args:
        cfg: Which images, classes and split (``cfg.manifest`` reloads a saved split; ``cfg.on_error`` decides
            whether an unreadable file stops everything or is skipped and listed in the cache's ``skipped``).
        max_train_samples: Keep at most this many training images, class proportions kept (0: all).
        seed: Seed of that draw (default ``cfg.seed``).
        progress: Show a progress bar while decoding.
        cache_dir: Where tensor caches live (default ``$MEDVISION_CACHE``, then the user cache dir).

    Returns:
        The cache; its ``table`` holds the rows that decoded.
    """
    table = load_data(cfg)
    if max_train_samples:
        table = stratified_subsample(table, max_train_samples, seed=cfg.seed if seed is None else seed)
    with distributed.main_first():  # under torchrun rank 0 builds the cache, the others then reuse it
        cache = build_tensor_cache(table, cfg.size, resize=cfg.resize, cache_dir=cache_dir, on_error=cfg.on_error,
                                   progress=progress and distributed.info().is_main)
    for sample_id, reason in cache.skipped:
        _log.warning("skipped %s: %s", sample_id, reason)
    return cache
