"""Class handling: keep a subset, drop rare classes (with a report), merge or rename, weights, sampler."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.utils.class_weight import compute_class_weight
from torch.utils.data import WeightedRandomSampler

from medvision.data.errors import DataError
from medvision.data.table import SampleTable


def select_classes(table: SampleTable, classes: Sequence[str]) -> SampleTable:
    """Keep only the named classes, relabelled ``0..k-1`` in the order given."""
    unknown = [c for c in classes if c not in table.class_names]
    if unknown:
        raise DataError(f"{table.name!r} has no class(es) {unknown}; classes are {list(table.class_names)}")
    if len(set(classes)) < 2:
        raise DataError(f"keep at least two classes, got {list(classes)}")
    old_to_new = {table.class_names.index(c): i for i, c in enumerate(classes)}
    keep = table.frame["label"].isin(old_to_new)
    frame = table.frame[keep].assign(label=lambda f: f["label"].map(old_to_new).astype(np.int64))
    return table.with_frame(frame, class_names=classes)


def drop_rare_classes(table: SampleTable, min_per_class: int) -> tuple[SampleTable, pd.DataFrame]:
    """Drop classes with fewer than ``min_per_class`` samples (over all splits).

    Returns:
        The reduced table and a report of the dropped classes (``class``, ``count``). A warning names
        them too, so dropping is never silent.
    """
    counts = np.bincount(table.labels, minlength=table.num_classes)
    dropped = pd.DataFrame({"class": table.class_names, "count": counts})
    dropped = dropped[dropped["count"] < min_per_class].reset_index(drop=True)
    if dropped.empty:
        return table, dropped
    kept = [c for c, n in zip(table.class_names, counts, strict=True) if n >= min_per_class]
    if len(kept) < 2:
        raise DataError(f"min_per_class={min_per_class} leaves {len(kept)} class(es) in {table.name!r}: "
                        f"counts are {dict(zip(table.class_names, counts.tolist(), strict=True))}")
    warnings.warn(f"{table.name}: dropped {len(dropped)} class(es) with < {min_per_class} images: "
                  + ", ".join(f"{c} ({n})" for c, n in dropped.itertuples(index=False)), stacklevel=2)
    return select_classes(table, kept), dropped


def remap_labels(table: SampleTable, mapping: Mapping[str, str]) -> SampleTable:
    """Rename or merge classes, e.g. ``{"bacteria": "pneumonia", "virus": "pneumonia"}``.

    Classes not in ``mapping`` keep their name. New class names are sorted.
    """
    unknown = [c for c in mapping if c not in table.class_names]
    if unknown:
        raise DataError(f"{table.name!r} has no class(es) {unknown} to remap")
    new_names = [mapping.get(c, c) for c in table.class_names]
    classes = tuple(sorted(set(new_names)))
    old_to_new = np.array([classes.index(n) for n in new_names], dtype=np.int64)
    frame = table.frame.assign(label=old_to_new[table.labels])
    return table.with_frame(frame, class_names=classes)


def class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Balanced class weights ``n / (k * n_c)`` (scikit-learn's ``"balanced"``); absent classes get 0."""
    labels = np.asarray(labels)
    present = np.unique(labels)
    w = np.zeros(num_classes, dtype=np.float64)
    w[present] = compute_class_weight("balanced", classes=present, y=labels)
    return torch.as_tensor(w, dtype=torch.float32)


def sample_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Per-sample weights that make every class equally likely under weighted sampling."""
    return class_weights(labels, num_classes)[torch.as_tensor(np.asarray(labels))].double()


def weighted_sampler(labels: np.ndarray, num_classes: int, num_samples: int | None = None,
                     seed: int = 0) -> WeightedRandomSampler:
    """A class-balancing ``WeightedRandomSampler`` (with replacement), seeded."""
    weights = sample_weights(labels, num_classes)
    gen = torch.Generator().manual_seed(seed)
    return WeightedRandomSampler(weights, num_samples or len(weights), replacement=True, generator=gen)
