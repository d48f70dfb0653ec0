"""File-based sources: image-folder trees and CSV manifests, both producing a :class:`SampleTable`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from medvision.data.decode import IMAGE_EXTENSIONS
from medvision.data.errors import DataError
from medvision.data.table import SampleTable

#: Folder names recognised as splits in a pre-split tree, mapped to medvision's split names.
SPLIT_ALIASES: dict[str, str] = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val",
    "test": "test", "testing": "test",
}


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                  and not p.name.startswith("."))


#: Folders that archives add beside the data (macOS resource forks in zip files) and that are never classes.
IGNORED_DIRS = frozenset({"__MACOSX"})


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and p.name not in IGNORED_DIRS)


def _is_presplit(folders: Sequence[Path]) -> bool:
    return bool(folders) and all(d.name.lower() in SPLIT_ALIASES for d in folders)


def _nested_copies(root: Path, top: list[Path]) -> list[Path]:
    """Top-level folders that repeat the tree below ``root`` (Kaggle's chest X-ray archive holds
    ``chest_xray/chest_xray/{train,test,val}`` beside ``chest_xray/{train,test,val}``): a folder named like the
    root, or holding only split folders, beside split folders."""
    splits = [d for d in top if d.name.lower() in SPLIT_ALIASES]
    if not splits:
        return []
    return [d for d in top if d not in splits and (d.name == root.name or _is_presplit(_class_dirs(d)))]


def load_image_folder(path: str | os.PathLike[str], name: str | None = None) -> SampleTable:
    """Read an image-folder tree: either ``root/<split>/<class>/*`` (pre-split) or ``root/<class>/*``.

    Class names are the folder names, sorted. A tree whose top-level folders are all split names
    (``train``, ``val``/``valid``, ``test``) is pre-split and keeps its splits. What archives add is left out
    and recorded in the provenance: ``__MACOSX`` folders, hidden files (``.DS_Store``) and a nested copy of the
    tree beside its split folders.

    Raises:
        DataError: the folder is missing or empty, a class folder holds no images, or only one class exists.
    """
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist")
    top = _class_dirs(root)
    if not top:
        raise DataError(f"image folder {root} has no class folders")
    copies = _nested_copies(root, top)
    top = [d for d in top if d not in copies]
    presplit = _is_presplit(top)
    rows: list[tuple[str, str, str | None]] = []  # (relative path, class, split)
    parts = [(d, SPLIT_ALIASES[d.name.lower()]) for d in top] if presplit else [(root, None)]
    for base, split in parts:
        classes = _class_dirs(base)
        if not classes:
            raise DataError(f"split folder {base} has no class folders")
        for cdir in classes:
            files = _images_in(cdir)
            if not files:
                raise DataError(f"class folder {cdir} contains no images "
                                f"(looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
            rows += [(f.relative_to(root).as_posix(), cdir.name, split) for f in files]
    class_names = tuple(sorted({r[1] for r in rows}))
    if len(class_names) < 2:
        raise DataError(f"image folder {root} has a single class {class_names[0]!r}; "
                        "classification needs at least two class folders")
    lookup = {c: i for i, c in enumerate(class_names)}
    frame = pd.DataFrame({
        "sample_id": [r[0] for r in rows],
        "path": [r[0] for r in rows],
        "label": np.array([lookup[r[1]] for r in rows], dtype=np.int64),
    })
    if presplit:
        frame["split"] = [r[2] for r in rows]
    provenance = {"source": f"image folder {root}"}
    ignored = sorted(d.name for d in root.iterdir() if d.is_dir() and d.name in IGNORED_DIRS) + \
        [f"{d.name} (a nested copy of the tree)" for d in copies]
    if ignored:
        provenance["ignored"] = ", ".join(ignored)
    return SampleTable(frame=frame, class_names=class_names, name=name or root.name, root=root,
                       provenance=provenance)


def load_csv(
    csv_path: str | os.PathLike[str],
    path_col: str = "path",
    label_col: str = "label",
    group_col: str | None = None,
    split_col: str | None = None,
    root: str | os.PathLike[str] | None = None,
    class_names: Sequence[str] | None = None,
    check_files: bool = True,
    name: str | None = None,
) -> SampleTable:
    """Read a CSV manifest of image paths and labels.

    Args:
        csv_path: The CSV file.
        path_col: Column of image paths, relative to ``root``.
        label_col: Column of labels: class names (strings) or integer ids.
        group_col: Optional column of group ids (``lesion_id``, ``patient_id``) for group-aware splits.
        split_col: Optional column of split names (``train``/``val``/``test``).
        root: Directory the paths are relative to (default: the CSV's folder).
        class_names: The classes, in label order. Default: sorted unique labels. With integer labels,
            names default to the integers as strings.
        check_files: Check every file exists (one ``stat`` per row).
        name: Identifier of the data set (default: the CSV's stem; for a file called ``manifest.csv``, the
            name of its folder, so ``ham10000/manifest.csv`` is ``ham10000``).

    Raises:
        DataError: a column is missing, a label is unknown or empty, a path is missing or escapes the
            root, a split name is unknown, or only one class is present. Messages give the CSV row.
    """
    csv_path = Path(csv_path).expanduser().resolve()
    if not csv_path.is_file():
        raise DataError(f"CSV manifest {csv_path} does not exist")
    try:
        df = pd.read_csv(csv_path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{csv_path} is not a readable CSV: {exc}") from exc
    wanted = [c for c in (path_col, label_col, group_col, split_col) if c]
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise DataError(f"{csv_path} lacks column(s) {missing}; it has {list(df.columns)}")
    base = Path(root).expanduser().resolve() if root else csv_path.parent

    def row_no(i: int) -> int:  # 1-based line number in the file, header is line 1
        return i + 2

    empty = df[label_col].isna()
    if empty.any():
        raise DataError(f"{csv_path} line {row_no(int(np.flatnonzero(empty)[0]))}: empty label")
    raw = df[label_col]
    if class_names is None:
        if pd.api.types.is_integer_dtype(raw):
            class_names = [str(i) for i in range(int(raw.max()) + 1)]
        else:
            class_names = sorted(raw.astype(str).unique())
    class_names = tuple(str(c) for c in class_names)
    if pd.api.types.is_integer_dtype(raw):
        labels = raw.to_numpy(dtype=np.int64)
        bad = np.flatnonzero((labels < 0) | (labels >= len(class_names)))
    else:
        lookup = {c: i for i, c in enumerate(class_names)}
        labels = np.array([lookup.get(str(v), -1) for v in raw], dtype=np.int64)
        bad = np.flatnonzero(labels < 0)
    if len(bad):
        i = int(bad[0])
        raise DataError(f"{csv_path} line {row_no(i)}: unknown label {raw.iloc[i]!r}; "
                        f"known classes are {list(class_names)}")
    if len(np.unique(labels)) < 2:
        raise DataError(f"{csv_path} has a single class {class_names[labels[0]]!r}; "
                        "classification needs at least two")

    rel_paths: list[str] = []
    for i, value in enumerate(df[path_col]):
        if not isinstance(value, str) or not value.strip():
            raise DataError(f"{csv_path} line {row_no(i)}: empty path")
        full = (base / value).resolve()
        if not full.is_relative_to(base):
            raise DataError(f"{csv_path} line {row_no(i)}: path {value!r} escapes the data root {base}")
        if check_files and not full.is_file():
            raise DataError(f"{csv_path} line {row_no(i)}: file {full} does not exist")
        rel_paths.append(full.relative_to(base).as_posix())

    frame = pd.DataFrame({"sample_id": rel_paths, "path": rel_paths, "label": labels})
    if group_col:
        frame["group"] = df[group_col].astype("string").to_numpy()
    if split_col:
        splits = df[split_col].astype(str).str.lower().map(SPLIT_ALIASES)
        if splits.isna().any():
            i = int(np.flatnonzero(splits.isna())[0])
            raise DataError(f"{csv_path} line {row_no(i)}: unknown split {df[split_col].iloc[i]!r}; "
                            "use train, val or test")
        frame["split"] = splits.to_numpy()
    default_name = csv_path.parent.name if csv_path.stem == "manifest" and csv_path.parent.name else csv_path.stem
    return SampleTable(frame=frame, class_names=class_names, name=name or default_name, root=base,
                       provenance={"source": f"CSV manifest {csv_path}"})
