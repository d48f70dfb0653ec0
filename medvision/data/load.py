"""Apply a :class:`~medvision.config.DataConfig`: load the samples, filter the classes, make the split."""

from __future__ import annotations

import re
import warnings
from dataclasses import replace
from pathlib import Path

from medvision.config.data import DataConfig
from medvision.core.errors import UserError
from medvision.data.classes import drop_rare_classes, remap_labels, select_classes
from medvision.data.dedupe import (
    SplitReport,
    cluster_summary,
    cross_split_clusters,
    drop_leaking,
    duplicate_clusters,
    moved_rows,
)
from medvision.data.errors import DataError
from medvision.data.medmnist_files import load_medmnist
from medvision.data.paths import resolve_data_root
from medvision.data.similarity import embedding_pairs
from medvision.data.sources import load_csv, load_image_folder
from medvision.data.splits import apply_manifest, carve_validation, split_table
from medvision.data.table import SampleTable


def _resolve(cfg: DataConfig) -> Path:
    path = Path(cfg.name).expanduser()
    return path if path.is_absolute() else resolve_data_root(cfg.data_root or None) / path


def load_data(cfg: DataConfig) -> SampleTable:
    """Load, filter and split the samples a :class:`DataConfig` describes.

    Official splits are kept. A set with train and test only gets a validation split carved from
    train; a set without splits is split by ``ratios`` (group-aware when it has groups). With ``dedupe``, no
    split cuts a duplicate cluster, an official split is treated as ``official_split`` says, and the table's
    ``split_report`` says what was done (:mod:`medvision.data.dedupe`).
    """
    table = load_samples(cfg)
    if cfg.manifest:
        return apply_manifest(table, cfg.manifest)
    table = _merge_tiny_validation(table, cfg.min_val)
    if cfg.dedupe == "none":
        if cfg.official_split != "keep":
            raise DataError(f"official_split={cfg.official_split!r} needs dedupe (exact, near or embedding): the duplicates it "
                            "acts on are found by it")
        splits = set(table.splits)
        if not splits:
            table = split_table(table, cfg.ratios, cfg.seed)
        elif "val" not in splits and "train" in splits:
            table = carve_validation(table, cfg.val_fraction, cfg.seed)
        return table
    return _split_by_clusters(table, cfg)


def data_problem(cfg: DataConfig) -> str:
    """Why ``cfg``'s data cannot be read here, as the error says it (empty when it can): a book page says so
    instead of failing."""
    try:
        load_samples(cfg)
    except UserError as exc:
        return str(exc)
    return ""


def load_samples(cfg: DataConfig) -> SampleTable:
    """The samples and classes a :class:`DataConfig` describes, with their official split if any, before any
    split is made (an external validation scores all of them)."""
    if cfg.source == "medmnist":
        table = load_medmnist(cfg.name, cfg.size, cfg.data_root or None)
    elif cfg.source == "folder":
        table = load_image_folder(_resolve(cfg))
    elif cfg.source == "csv":
        table = load_csv(_resolve(cfg), path_col=cfg.path_col, label_col=cfg.label_col,
                         group_col=cfg.group_col or None, split_col=cfg.split_col or None)
    else:
        raise DataError(f"unknown data source {cfg.source!r}; use medmnist, folder or csv")
    renames = {old: new for old, new in cfg.rename.items() if old in table.class_names}
    if renames:
        table = remap_labels(table, renames)
    if cfg.classes:
        table = select_classes(table, cfg.classes)
    if cfg.min_per_class:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            table, _ = drop_rare_classes(table, cfg.min_per_class)
    if cfg.group_pattern:
        table = groups_from_names(table, cfg.group_pattern)
    return table


def groups_from_names(table: SampleTable, pattern: str) -> SampleTable:
    """A ``group`` column from each file name's match of ``pattern`` (its first group, else the whole match);
    a name that does not match is a group of its own.

    Raises:
        DataError: the pattern is not a valid regular expression, or matches no file name.
    """
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise DataError(f"group_pattern {pattern!r} is not a valid regular expression ({exc})") from exc
    names = [Path(p).name for p in (table.frame["path"] if "path" in table.frame else table.frame["sample_id"])]
    found = [regex.search(n) for n in names]
    if not any(found):
        raise DataError(f"group_pattern {pattern!r} matches none of the {len(names)} file names of "
                        f"{table.name!r} (e.g. {names[0]!r})" if names else f"{table.name!r} is empty")
    groups = [(m.group(1) if m.groups() else m.group(0)) if m else f"file:{sid}"
              for m, sid in zip(found, table.frame["sample_id"], strict=True)]
    return table.with_frame(table.frame.assign(group=groups))


def _merge_tiny_validation(table: SampleTable, min_val: int) -> SampleTable:
    """Fold an official validation split smaller than ``min_val`` into train (say so in the provenance)."""
    if not min_val or "val" not in table.splits or "train" not in table.splits:
        return table
    n_val = int((table.frame["split"] == "val").sum())
    if n_val >= min_val:
        return table
    frame = table.frame.assign(split=table.frame["split"].replace({"val": "train"}))
    note = (f"the official validation split held {n_val} images (fewer than {min_val}): merged into train, and "
            "validation was carved from train instead")
    warnings.warn(f"{table.name}: {note}", stacklevel=3)
    merged = table.with_frame(frame)
    return replace(merged, provenance={**table.provenance, "validation": note})


def _split_by_clusters(table: SampleTable, cfg: DataConfig) -> SampleTable:
    """The split of ``cfg`` with no duplicate cluster cut by it, and its :class:`SplitReport`."""
    extra, embedding = [], None
    if cfg.dedupe == "embedding":  # frames pHash misses: mutual nearest neighbours in feature space
        ii, jj, embedding = embedding_pairs(table, cfg)
        extra.append((ii, jj))
    clusters = duplicate_clusters(table, cfg.dedupe, cfg.near_distance, cfg.on_error, extra_links=extra)
    table = table.with_frame(table.frame.assign(cluster=clusters))
    official = table.frame["split"].to_numpy(dtype=object).copy() if table.splits else None
    before = cross_split_clusters(clusters, official) if official is not None else None
    dropped, moved = [], []
    if official is None or cfg.official_split == "resplit":
        table = split_table(table, cfg.ratios, cfg.seed, groups=clusters)
        if official is not None:
            moved = moved_rows(official, table.frame["split"].to_numpy(), table.frame["sample_id"].to_numpy())
    else:
        if "val" not in table.splits and "train" in table.splits:
            table = carve_validation(table, cfg.val_fraction, cfg.seed, groups=clusters)
        if cfg.official_split == "drop_duplicates":
            keep, dropped = drop_leaking(table, clusters)
            table = table.with_frame(table.frame[keep])
    n_clusters, in_clusters = cluster_summary(clusters)
    report = SplitReport(cfg.dedupe, cfg.near_distance, "none" if official is None else cfg.official_split,
                         len(clusters), n_clusters, in_clusters, before,
                         cross_split_clusters(table.frame["cluster"].to_numpy(), table.frame["split"].to_numpy()),
                         dropped, moved, embedding)
    return replace(table, split_report=report.to_dict())
