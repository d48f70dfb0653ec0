"""One frozen configuration for "which images, which classes, which split" and the function that applies it."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from medvision.data.classes import drop_rare_classes, select_classes
from medvision.data.decode import OnError
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
    train; a set without splits is split by ``ratios`` (group-aware when it has groups).
    """
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
    if cfg.manifest:
        return apply_manifest(table, cfg.manifest)
    splits = set(table.splits)
    if not splits:
        table = split_table(table, cfg.ratios, cfg.seed)
    elif "val" not in splits and "train" in splits:
        table = carve_validation(table, cfg.val_fraction, cfg.seed)
    return table
