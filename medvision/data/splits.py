"""Stratified, optionally group-aware train/val/test splits, saved as and reloaded from a CSV manifest."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from medvision.core.atomic import atomic_path
from medvision.data.errors import DataError
from medvision.data.table import SampleTable

MANIFEST_COLUMNS = ("sample_id", "split", "label", "class_name", "group", "cluster")


def _holdout(labels: np.ndarray, groups: np.ndarray | None, fraction: float, seed: int,
             stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    """Positions (keep, held out) with about ``fraction`` held out, stratified by label, whole groups."""
    idx = np.arange(len(labels))
    counts = np.bincount(labels)
    strat = labels if stratify and len(labels) and counts[counts > 0].min() >= 2 else None
    if groups is None:
        keep, held = train_test_split(idx, test_size=fraction, random_state=seed, stratify=strat)
        return np.sort(keep), np.sort(held)
    # StratifiedGroupKFold keeps groups whole and balances labels; one fold of k ~ the fraction.
    k = max(2, round(1.0 / fraction))
    y = labels if strat is not None else np.zeros_like(labels)
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    keep, held = next(splitter.split(idx, y, groups))
    return np.sort(keep), np.sort(held)


def split_table(
    table: SampleTable,
    ratios: Sequence[float] = (0.70, 0.15, 0.15),
    seed: int = 0,
    by_group: bool | None = None,
    stratify: bool = True,
    groups: np.ndarray | None = None,
) -> SampleTable:
    """Assign every row to train/val/test.

    Args:
        table: The samples; any existing ``split`` column is replaced.
        ratios: Train, val and test fractions (normalised to sum to 1). A zero drops that split.
        seed: Random seed; the same seed gives the same split.
        by_group: Keep each ``group`` inside one split (default: when the table has groups). Group
            splits use scikit-learn's ``StratifiedGroupKFold``, so fractions are met approximately
            (one fold of ``round(1 / fraction)``).
        stratify: Keep class proportions in every split.
        groups: Keep rows with equal values here inside one split instead (duplicate clusters,
            :mod:`medvision.data.dedupe`); overrides ``by_group``.

    Returns:
        A table with a ``split`` column.
    """
    r = np.asarray(ratios, dtype=float)
    if r.shape != (3,) or (r < 0).any() or r[0] <= 0:
        raise DataError(f"ratios must be three non-negative fractions with train > 0, got {tuple(ratios)}")
    r = r / r.sum()
    by_group = table.has_groups if by_group is None else by_group
    if by_group and not table.has_groups and groups is None:
        raise DataError(f"{table.name!r} has no group column to split by")
    labels = table.labels
    if groups is None and by_group:
        groups = table.frame["group"].fillna(table.frame["sample_id"]).to_numpy()
    split = np.full(len(table), "train", dtype=object)
    rest = np.arange(len(table))
    if r[2] > 0:
        keep, held = _holdout(labels, groups, r[2], seed, stratify)
        split[held] = "test"
        rest = keep
    if r[1] > 0:
        frac = r[1] / (r[0] + r[1])
        keep, held = _holdout(labels[rest], None if groups is None else groups[rest], frac, seed + 1,
                              stratify)
        split[rest[held]] = "val"
    return table.with_frame(table.frame.assign(split=split))


def carve_validation(table: SampleTable, fraction: float = 0.15, seed: int = 0,
                     by_group: bool | None = None, source: str = "train", groups: np.ndarray | None = None
                     ) -> SampleTable:
    """Move about ``fraction`` of the ``source`` split into ``val`` (for sets with only train/test); whole
    groups (or whole ``groups``: one value per row of the table, such as duplicate clusters) move together."""
    if source not in table.splits:
        raise DataError(f"{table.name!r} has no {source!r} split to carve validation from")
    by_group = table.has_groups if by_group is None else by_group
    mask = (table.frame["split"] == source).to_numpy()
    pos = np.flatnonzero(mask)
    if groups is not None:
        groups = np.asarray(groups)[pos]
    elif by_group:
        groups = table.frame["group"].to_numpy()[pos]
    _, held = _holdout(table.labels[pos], groups, fraction, seed, stratify=True)
    split = table.frame["split"].to_numpy(dtype=object).copy()
    split[pos[held]] = "val"
    return table.with_frame(table.frame.assign(split=split))


def save_manifest(table: SampleTable, path: str | os.PathLike[str]) -> Path:
    """Write the split as a CSV manifest (sample id, split, label, class name, group), atomically."""
    if "split" not in table.frame:
        raise DataError(f"{table.name!r} has no split to save")
    out = pd.DataFrame({
        "sample_id": table.frame["sample_id"],
        "split": table.frame["split"],
        "label": table.labels,
        "class_name": [table.class_names[i] for i in table.labels],
    })
    if table.has_groups:
        out["group"] = table.frame["group"].to_numpy()
    if "cluster" in table.frame:
        out["cluster"] = table.frame["cluster"].to_numpy()
    with atomic_path(path) as tmp:
        out.to_csv(tmp, index=False)
    return Path(path)


def apply_manifest(table: SampleTable, path: str | os.PathLike[str]) -> SampleTable:
    """Reload a saved split exactly: same samples, labels and splits, in the manifest's order.

    Raises:
        DataError: the manifest is unreadable, or its samples or labels differ from the table's.
    """
    path = Path(path)
    try:
        m = pd.read_csv(path, dtype={"sample_id": str, "split": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"split manifest {path} cannot be read: {exc}") from exc
    for col in ("sample_id", "split", "label"):
        if col not in m:
            raise DataError(f"split manifest {path} lacks column {col!r}")
    frame = table.frame.drop(columns=["split"], errors="ignore").set_index("sample_id")
    unknown = m.loc[~m["sample_id"].isin(frame.index), "sample_id"]
    if len(unknown):
        raise DataError(f"split manifest {path} names {len(unknown)} samples not in {table.name!r}, "
                        f"e.g. {unknown.iloc[0]!r}")
    frame = frame.loc[m["sample_id"]].reset_index()
    if not np.array_equal(frame["label"].to_numpy(), m["label"].to_numpy()):
        i = int(np.flatnonzero(frame["label"].to_numpy() != m["label"].to_numpy())[0])
        raise DataError(f"split manifest {path}: sample {m['sample_id'].iloc[i]!r} has label "
                        f"{m['label'].iloc[i]} in the manifest but {frame['label'].iloc[i]} in the data")
    frame["split"] = m["split"].to_numpy()
    if "cluster" in m:  # the duplicate clusters the split was made with (data.dedupe)
        frame["cluster"] = m["cluster"].to_numpy()
    return table.with_frame(frame)


def per_class_rows(table: SampleTable, n: int, split: str = "train", seed: int = 0) -> np.ndarray:
    """Row positions that keep at most ``n`` randomly drawn images of each class in ``split`` (a label budget:
    a class with fewer keeps all of its images) and every row of the other splits, in table order.
    ``n <= 0`` keeps everything. The draw for a larger budget is not a superset of a smaller one's: each
    budget is its own sample, as a user with that many labels would have."""
    if n <= 0:
        return np.arange(len(table))
    frame = table.frame
    mask = (frame["split"] == split).to_numpy()
    if not mask.any():
        raise DataError(f"{table.name!r} has no {split!r} split to draw a label budget from")
    rng = np.random.default_rng(seed)
    keep = [np.flatnonzero(~mask)]
    for label in np.unique(table.labels[mask]):
        pos = np.flatnonzero(mask & (table.labels == label))
        keep.append(pos if len(pos) <= n else rng.choice(pos, size=n, replace=False))
    return np.sort(np.concatenate(keep))


def stratified_subsample(table: SampleTable, n: int, split: str = "train", seed: int = 0) -> SampleTable:
    """Keep at most ``n`` rows of ``split`` (class proportions kept); other splits are untouched.

    Used by the smoke profile to train on a few hundred images.
    """
    rows = stratified_rows(table, n, split, seed)
    return table if len(rows) == len(table) else table.with_frame(table.frame.iloc[rows])


def stratified_rows(table: SampleTable, n: int, split: str = "train", seed: int = 0) -> np.ndarray:
    """The row positions :func:`stratified_subsample` keeps, in table order."""
    mask = (table.frame["split"] == split).to_numpy()
    pos = np.flatnonzero(mask)
    if n <= 0 or len(pos) <= n:
        return np.arange(len(table))
    keep, _ = train_test_split(pos, train_size=n, random_state=seed, stratify=table.labels[pos])
    return np.sort(np.concatenate([np.flatnonzero(~mask), keep]))
