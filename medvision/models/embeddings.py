"""Image embeddings of a pretrained backbone, for near duplicates in feature space (``data.dedupe: embedding``)
and the residual-similarity audit of a split.

Each image's pooled features (timm's ``forward_head(pre_logits=True)``) are averaged over three views — the
image, its mirror image and a centre crop — so that frames of one source that differ by a flip, a shift or a
crop land close together, then L2-normalised. They are computed once per data set and model and kept beside
the tensor caches (:func:`feature_key`, the one key scheme of medvision's feature caches). Importing this module
registers it as the feature provider of :mod:`medvision.data.similarity`.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from timm.data import resolve_model_data_config
from tqdm import tqdm

from medvision.config.data import DataConfig
from medvision.core.atomic import atomic_path
from medvision.core.devices import tune_allocator
from medvision.core.errors import ImageLoadError
from medvision.data.cache import load_pixels, resize_image
from medvision.data.leakage import split_key
from medvision.data.paths import tensor_cache_dir
from medvision.data.similarity import register_features, residual_similarity, threshold_for
from medvision.data.table import SampleTable
from medvision.models.backbones import create_model

#: Part of every embedding file's key: bump when the views or the pooling change.
EMBEDDING_VERSION = 1
#: The views whose features are averaged.
VIEWS = ("image", "hflip", "centre_crop")
#: Side of the centre crop, as a fraction of the image.
CROP = 0.875


def feature_key(**facts: object) -> str:
    """The one cache key of backbone features: a digest of what decides them (the images, the backbone and its
    weights, the input size, the views). The frozen-feature baselines use it too."""
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _views(x: torch.Tensor) -> list[torch.Tensor]:
    size = x.shape[-1]
    c = int(round(size * CROP))
    o = (size - c) // 2
    crop = F.interpolate(x[..., o:o + c, o:o + c], size=(size, size), mode="bilinear", align_corners=False)
    return [x, x.flip(-1), crop]


def image_embeddings(table: SampleTable, model_name: str = "tf_efficientnet_lite0", size: int = 128,
                     on_error: str = "raise", progress: bool = False, batch_size: int = 64,
                     cache_dir: str | os.PathLike[str] | None = None) -> np.ndarray:
    """L2-normalised pooled features of every row of ``table`` (averaged over :data:`VIEWS`), at ``size`` px.

    Args:
        table: The samples.
        model_name: A timm architecture whose ImageNet weights can be had here (``pretrained="auto"``: a weight
            package, a local file, else the hub).
        size: Input size of the backbone.
        on_error: ``"skip"`` gives an unreadable image a random direction (it is close to nothing).
        progress: Show a progress bar.
        batch_size: Images per forward pass.
        cache_dir: Where the features are kept (default: beside the tensor caches).

    Raises:
        WeightsError: the backbone's ImageNet weights cannot be had here (a random network's features would
            certify nothing, so there is no fallback).
    """
    model = create_model(model_name, 1, pretrained="auto").eval()
    key = feature_key(kind="embedding", table=table.name, fingerprint=table.fingerprint(), backbone=model_name,
                      weights=str(model.weights_source), size=size, views=VIEWS, version=EMBEDDING_VERSION)
    path = tensor_cache_dir(cache_dir) / f"features-{key}.npy"
    if path.is_file():
        saved = np.load(path)
        if len(saved) == len(table):
            return saved
    tune_allocator()
    cfg = resolve_model_data_config(model)
    mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    model = model.to(memory_format=torch.channels_last)
    rng = np.random.default_rng(0)
    out = np.zeros((len(table), model.num_features), dtype=np.float32)
    bar = partial(tqdm, desc=f"embedding {table.name} @ {size}px", disable=not progress, leave=False)
    with torch.inference_mode():
        for start in bar(range(0, len(table), batch_size)):
            rows = range(start, min(start + batch_size, len(table)))
            images, ok = [], []
            for i in rows:
                try:
                    images.append(resize_image(load_pixels(table, i), size, "squash"))
                    ok.append(i)
                except ImageLoadError:
                    if on_error != "skip":
                        raise
                    out[i] = rng.normal(size=model.num_features)
            if not images:
                continue
            x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255)
            x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
            pooled = sum(F.normalize(model.forward_head(model.forward_features(v), pre_logits=True), dim=1)
                         for v in _views(x))
            out[ok] = pooled.numpy()
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, out)
    return out


def embeddings_for(table: SampleTable, cfg: DataConfig, progress: bool = False) -> np.ndarray:
    """:func:`image_embeddings` with a data configuration's settings (``embedding_model``, ``embedding_size``,
    ``on_error``): the provider :mod:`medvision.data.similarity` calls for ``dedupe: embedding``."""
    return image_embeddings(table, cfg.embedding_model, cfg.embedding_size, on_error=cfg.on_error, progress=progress)


register_features(embeddings_for)


_AUDITS: dict[tuple, dict] = {}


def similarity_audit(table: SampleTable, cfg: DataConfig, progress: bool = False) -> dict:
    """The residual-similarity audit of ``table``'s split (:func:`medvision.data.similarity.residual_similarity`)
    with ``cfg``'s embedding settings; the threshold is the configured or derived one. Computed once per split
    and settings in a process (every strategy of a chapter trains on the same split)."""
    key = (*split_key(table), cfg.embedding_model, cfg.embedding_size, cfg.embedding_threshold, cfg.on_error)
    if key not in _AUDITS:
        features = embeddings_for(table, cfg, progress)
        _AUDITS[key] = residual_similarity(features, table, threshold_for(table, features, cfg))
    return _AUDITS[key]

