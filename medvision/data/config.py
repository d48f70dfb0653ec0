"""One frozen configuration for "which images, which classes, which split" and the function that applies it."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

from medvision.data.classes import drop_rare_classes, select_classes
from medvision.data.decode import OnError
from medvision.data.dedupe import (
    DedupeMode,
    OfficialSplitPolicy,
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
from medvision.data.sources import load_csv, load_image_folder
from medvision.data.splits import apply_manifest, carve_validation, split_table
from medvision.data.table import SampleTable

SourceKind = Literal["medmnist", "folder", "csv"]


@dataclass(frozen=True)
class DataConfig:
    """Everything that decides the samples and the split. YAML, papermill and the CLI fill this.

    Attributes:
        source: ``medmnist``, ``folder`` or ``csv``.
        name: MedMNIST flag (``pneumoniamnist``), or a folder / CSV path (relative to the data root).
        size: MedMNIST file size (28, 64, 128, 224); for files, the working resolution of the cache.
        data_root: Data root; empty for ``$MEDVISION_DATA`` then the user cache dir.
        path_col: CSV column of image paths.
        label_col: CSV column of labels.
        group_col: CSV column of group ids (lesion, patient) for group-aware splits.
        split_col: CSV column of split names.
        classes: Keep only these classes, in this order (empty: all).
        min_per_class: Drop classes with fewer images (reported).
        ratios: Train/val/test fractions for sets without an official split.
        val_fraction: Fraction of train moved to validation for sets with only train/test.
        seed: Split seed.
        manifest: A saved split manifest to reload instead of splitting.
        resize: ``squash``, ``crop`` or ``pad`` for non-square files.
        on_error: ``raise`` or ``skip`` bad image files.
        dedupe: ``none``, ``exact`` (identical pixels) or ``near`` (perceptual hash within ``near_distance``):
            duplicates, together with the ``group`` column, form clusters that no split may cut
            (:mod:`medvision.data.dedupe`).
        near_distance: Largest pHash distance (bits of 64) of a near duplicate.
        official_split: With ``dedupe``, what to do with an official split: ``keep`` it (the leakage is
            reported), ``drop_duplicates`` (drop evaluation images whose cluster reaches an earlier split) or
            ``resplit`` (split the whole set anew, cluster by cluster).
    """

    source: SourceKind = "medmnist"
    name: str = "pneumoniamnist"
    size: int = 28
    data_root: str = ""
    path_col: str = "path"
    label_col: str = "label"
    group_col: str = ""
    split_col: str = ""
    classes: tuple[str, ...] = ()
    min_per_class: int = 0
    ratios: tuple[float, float, float] = (0.70, 0.15, 0.15)
    val_fraction: float = 0.15
    seed: int = 0
    manifest: str = ""
    resize: Literal["squash", "crop", "pad"] = "squash"
    on_error: OnError = "raise"
    dedupe: DedupeMode = "none"
    near_distance: int = 4
    official_split: OfficialSplitPolicy = "keep"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["classes"], d["ratios"] = list(self.classes), list(self.ratios)
        return d


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
    if cfg.dedupe == "none":
        if cfg.official_split != "keep":
            raise DataError(f"official_split={cfg.official_split!r} needs dedupe (exact or near): the duplicates it "
                            "acts on are found by it")
        splits = set(table.splits)
        if not splits:
            table = split_table(table, cfg.ratios, cfg.seed)
        elif "val" not in splits and "train" in splits:
            table = carve_validation(table, cfg.val_fraction, cfg.seed)
        return table
    return _split_by_clusters(table, cfg)


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
    if cfg.classes:
        table = select_classes(table, cfg.classes)
    if cfg.min_per_class:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            table, _ = drop_rare_classes(table, cfg.min_per_class)
    return table


def _split_by_clusters(table: SampleTable, cfg: DataConfig) -> SampleTable:
    """The split of ``cfg`` with no duplicate cluster cut by it, and its :class:`SplitReport`."""
    clusters = duplicate_clusters(table, cfg.dedupe, cfg.near_distance, cfg.on_error)
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
                         dropped, moved)
    return replace(table, split_report=report.to_dict())
