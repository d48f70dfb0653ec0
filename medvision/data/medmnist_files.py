"""Official MedMNIST ``.npz`` files: find, download (md5-checked) and load into a :class:`SampleTable`.

URLs and checksums come from the ``medmnist`` package's own metadata (``medmnist.INFO``), never retyped here.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

from medvision.data.errors import DataError, DataNotFoundError
from medvision.data.paths import resolve_data_root, search_roots
from medvision.data.table import SPLITS, SampleTable

SIZES: tuple[int, ...] = (28, 64, 128, 224)
SUBDIR = "medmnist"


def medmnist_info(name: str) -> dict:
    """The ``medmnist.INFO`` entry of a 2D data set (``pneumoniamnist``, ``dermamnist``, ...)."""
    from medmnist import INFO

    key = name.lower()
    if key not in INFO:
        twod = sorted(k for k in INFO if not k.endswith("3d"))
        raise DataError(f"unknown MedMNIST data set {name!r}; 2D sets are: {', '.join(twod)}")
    if key.endswith("3d"):
        raise DataError(f"{name!r} is a 3D MedMNIST set; medvision handles 2D images only")
    return INFO[key]


def file_name(name: str, size: int = 28) -> str:
    """Official file name: ``pneumoniamnist.npz`` at 28 px, ``pneumoniamnist_64.npz`` otherwise."""
    if size not in SIZES:
        raise DataError(f"MedMNIST size must be one of {SIZES}, not {size}")
    return f"{name.lower()}.npz" if size == 28 else f"{name.lower()}_{size}.npz"


def url_and_md5(name: str, size: int = 28) -> tuple[str, str]:
    """Official download URL and md5 for a data set at a size."""
    info = medmnist_info(name)
    suffix = "" if size == 28 else f"_{size}"
    try:
        return info[f"url{suffix}"], info[f"MD5{suffix}"]
    except KeyError as exc:
        raise DataError(f"medmnist metadata has no {size} px file for {name!r}") from exc


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    """Hex md5 of a file, read in chunks."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def find_file(name: str, size: int = 28, root: str | os.PathLike[str] | None = None) -> Path | None:
    """Look for the official file under ``<root>/medmnist/`` and ``<root>/`` of each search root."""
    fname = file_name(name, size)
    for base in search_roots(root):
        for candidate in (base / SUBDIR / fname, base / fname):
            if candidate.is_file():
                return candidate
    return None


def download(name: str, size: int = 28, root: str | os.PathLike[str] | None = None,
             timeout: float = 60.0) -> Path:
    """Download the official file into ``<root>/medmnist/``, verify its md5, and return its path.

    The file is written to a temporary name and renamed only after the checksum matches, so an
    interrupted download never leaves a half file behind.

    Raises:
        DataNotFoundError: the download failed (offline, HTTP error); the message says where to put the file.
        DataError: the downloaded bytes do not match the official md5.
    """
    url, md5 = url_and_md5(name, size)
    dest_dir = resolve_data_root(root) / SUBDIR
    dest = dest_dir / file_name(name, size)
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=f".{dest.name}.", suffix=".part")
    except OSError as exc:
        raise DataNotFoundError(f"cannot write to the data root {dest_dir}: {exc}") from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            while block := resp.read(1 << 20):
                out.write(block)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        tmp.unlink(missing_ok=True)
        raise DataNotFoundError(
            f"{dest.name} is not in any data root ({', '.join(str(r) for r in search_roots(root))}) "
            f"and downloading it from {url} failed ({exc}). Download it on a machine with network "
            f"(md5 {md5}) and put it at {dest}, or set MEDVISION_DATA to a folder holding "
            f"medmnist/{dest.name}."
        ) from exc
    got = md5sum(tmp)
    if got != md5:
        tmp.unlink(missing_ok=True)
        raise DataError(f"download of {url} has md5 {got}, expected {md5}; nothing was saved")
    os.replace(tmp, dest)
    return dest


def load_medmnist(name: str, size: int = 28, root: str | os.PathLike[str] | None = None,
                  download_missing: bool = True, verify: bool = True) -> SampleTable:
    """Load an official MedMNIST 2D set with its official train/val/test splits.

    Args:
        name: Data set flag as in ``medmnist.INFO`` (e.g. ``"pneumoniamnist"``).
        size: Image size: 28, 64, 128 or 224.
        root: Data root (default: ``$MEDVISION_DATA``, then the user cache dir; the bundled files of a
            source checkout are searched last).
        download_missing: Download from the official URL when the file is not found.
        verify: Check the file's md5 against the official one.

    Returns:
        An array-backed table; ``sample_id`` is ``"<split>/<row>"`` in the official file.
    """
    info = medmnist_info(name)
    path = find_file(name, size, root)
    if path is None:
        if not download_missing:
            url, md5 = url_and_md5(name, size)
            raise DataNotFoundError(
                f"{file_name(name, size)} not found under {[str(r) for r in search_roots(root)]}; "
                f"download it from {url} (md5 {md5}) into {resolve_data_root(root) / SUBDIR}"
            )
        path = download(name, size, root)
    _, md5 = url_and_md5(name, size)
    if verify:
        got = md5sum(path)
        if got != md5:
            raise DataError(f"{path} has md5 {got} but the official {file_name(name, size)} has {md5}; "
                            "the file is corrupt or not the official release — delete it and download again")
    try:
        with np.load(path) as npz:
            parts = {s: (npz[f"{s}_images"], npz[f"{s}_labels"]) for s in SPLITS}
    except (KeyError, ValueError, OSError) as exc:
        raise DataError(f"{path} is not a MedMNIST npz with train/val/test images and labels: {exc}") from exc
    if info["task"] not in ("binary-class", "multi-class", "ordinal-regression"):
        raise DataError(f"{name!r} is a {info['task']} task; medvision handles single-label classification")
    images = np.concatenate([parts[s][0] for s in SPLITS])
    frames = []
    for split in SPLITS:
        n = len(parts[split][0])
        frames.append(pd.DataFrame({
            "sample_id": [f"{split}/{i}" for i in range(n)],
            "split": split,
            "label": parts[split][1].reshape(-1).astype(np.int64),
        }))
    frame = pd.concat(frames, ignore_index=True)
    frame.insert(1, "index", np.arange(len(frame)))
    class_names = tuple(info["label"][str(i)] for i in range(len(info["label"])))
    return SampleTable(
        frame=frame, class_names=class_names, name=f"{name.lower()}_{size}", images=images,
        provenance={"source": "MedMNIST v2 (Yang et al., Sci Data 2023)", "file": str(path), "md5": md5,
                    "licence": info.get("license", "CC BY 4.0"), "task": info["task"]},
    )
