"""The one table-of-samples abstraction every data source produces.

A :class:`SampleTable` is a DataFrame with one row per image plus the class names. An image is either a
file (column ``path``, relative to ``root``) or a row of an in-memory array (column ``index`` into
``images``, as for MedMNIST). Optional columns: ``group`` (patient or lesion id) and ``split``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from medvision.data.errors import DataError

SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class SampleTable:
    """Samples, labels and class names of one data set.

    Attributes:
        frame: One row per sample with ``sample_id`` (unique, stable), ``label`` (int) and ``path`` or
            ``index``; optionally ``group`` and ``split``.
        class_names: Name of class ``i`` at position ``i``.
        name: Short identifier of the source, used in cache keys and reports.
        root: Directory that ``path`` values are relative to (file sources).
        images: ``(N, H, W)`` or ``(N, H, W, C)`` uint8 array that ``index`` points into (array sources).
        provenance: Free-form facts about where the data came from (file, md5, licence).
        split_report: What de-duplication did to the split (:class:`medvision.data.dedupe.SplitReport` as a
            dict), when ``DataConfig.dedupe`` was on.
    """

    frame: pd.DataFrame
    class_names: tuple[str, ...]
    name: str = "data"
    root: Path | None = None
    images: np.ndarray | None = field(default=None, repr=False)
    provenance: dict[str, str] = field(default_factory=dict)
    split_report: dict | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        required = {"sample_id", "label"}
        missing = required - set(self.frame.columns)
        if missing:
            raise DataError(f"SampleTable {self.name!r} lacks columns {sorted(missing)}")
        if ("path" in self.frame) == ("index" in self.frame):
            raise DataError(f"SampleTable {self.name!r} needs exactly one of the columns 'path' or 'index'")
        if self.frame["sample_id"].duplicated().any():
            dup = self.frame.loc[self.frame["sample_id"].duplicated(), "sample_id"].iloc[0]
            raise DataError(f"SampleTable {self.name!r} has duplicate sample_id {dup!r}")
        labels = self.frame["label"].to_numpy()
        if len(labels) and (labels.min() < 0 or labels.max() >= len(self.class_names)):
            raise DataError(
                f"SampleTable {self.name!r} has labels outside 0..{len(self.class_names) - 1}"
            )

    # ----------------------------------------------------------------------------------------- basics
    def __len__(self) -> int:
        return len(self.frame)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def is_array(self) -> bool:
        """True when images live in :attr:`images` rather than in files."""
        return "index" in self.frame

    @property
    def labels(self) -> np.ndarray:
        return self.frame["label"].to_numpy(dtype=np.int64)

    @property
    def has_groups(self) -> bool:
        return "group" in self.frame and self.frame["group"].notna().any()

    @property
    def splits(self) -> tuple[str, ...]:
        """Split names present, in train/val/test order."""
        if "split" not in self.frame:
            return ()
        present = set(self.frame["split"].dropna())
        return tuple(s for s in SPLITS if s in present) + tuple(sorted(present - set(SPLITS)))

    def with_frame(self, frame: pd.DataFrame, class_names: Sequence[str] | None = None) -> SampleTable:
        """Return a copy with a new frame (and optionally new class names)."""
        names = tuple(class_names) if class_names is not None else self.class_names
        return replace(self, frame=frame.reset_index(drop=True), class_names=names)

    def subset(self, split: str) -> SampleTable:
        """Rows of one split."""
        if split not in self.splits:
            raise DataError(f"{self.name!r} has no split {split!r}; splits present: {list(self.splits)}")
        return self.with_frame(self.frame[self.frame["split"] == split])

    def absolute_paths(self) -> list[Path]:
        """Absolute file paths of a file-backed table."""
        if self.is_array:
            raise DataError(f"{self.name!r} is array-backed; it has no file paths")
        root = self.root or Path(".")
        return [root / p for p in self.frame["path"]]

    def split_sizes(self) -> dict[str, int]:
        """Images per split, in the table's split order (empty for a table without splits)."""
        if "split" not in self.frame:
            return {}
        sizes = self.frame["split"].value_counts()
        return {s: int(sizes.get(s, 0)) for s in self.splits}

    def counts(self) -> pd.DataFrame:
        """Samples per class (rows) and split (columns), with a total column."""
        frame = self.frame.assign(class_name=[self.class_names[i] for i in self.labels])
        if "split" in frame:
            table = pd.crosstab(frame["class_name"], frame["split"])
            table = table[[s for s in self.splits if s in table.columns]]
        else:
            table = frame["class_name"].value_counts().to_frame("all")
        table = table.reindex(list(self.class_names), fill_value=0)
        table.index.name = "class"
        table.columns.name = None
        if "split" in frame:
            table["total"] = table.sum(axis=1)
        return table

    def fingerprint(self) -> str:
        """A content key: changes when samples, labels, files (size, mtime) or array bytes change."""
        h = hashlib.sha256()
        h.update(self.name.encode())
        cols = [c for c in ("sample_id", "path", "index") if c in self.frame]
        h.update(pd.util.hash_pandas_object(self.frame[cols], index=False).to_numpy().tobytes())
        if self.is_array:
            assert self.images is not None
            rows = self.frame["index"].to_numpy()
            h.update(str(self.images.shape).encode())
            h.update(np.ascontiguousarray(self.images[np.sort(rows)]).tobytes())
        else:
            for path in self.absolute_paths():
                try:
                    st = path.stat()
                    h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
                except OSError:
                    h.update(b"missing")
        return h.hexdigest()[:16]

    def summary(self) -> str:
        """One line: name, samples, classes, splits."""
        splits = ", ".join(f"{s}={int((self.frame['split'] == s).sum())}" for s in self.splits)
        return (
            f"{self.name}: {len(self)} images, {self.num_classes} classes "
            f"({', '.join(self.class_names)})" + (f"; {splits}" if splits else "")
        )
