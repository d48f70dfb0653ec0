"""Decode every image once into a memory-mapped uint8 tensor cache at the working resolution.

Epochs then read ``(N, 3, S, S)`` uint8 rows from disk-backed memory instead of re-decoding files. The cache
is keyed by the table's content fingerprint, the size and the resize mode, and written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from medvision.config.choices import OnError, ResizeMode
from medvision.core.atomic import atomic_path, write_json_atomic
from medvision.core.errors import CacheError, ConfigError
from medvision.data.decode import map_images, read_image
from medvision.data.paths import tensor_cache_dir
from medvision.data.table import SampleTable

CACHE_VERSION = 1


def to_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) uint8 → (H, W, 3) uint8."""
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    return image[..., :3]


def load_pixels(table: SampleTable, i: int) -> np.ndarray:
    """Native-resolution RGB uint8 pixels of row ``i`` (position in ``table.frame``)."""
    row = table.frame.iloc[i]
    if table.is_array:
        assert table.images is not None
        return to_rgb(table.images[int(row["index"])])
    return read_image((table.root or Path(".")) / row["path"])


def resize_image(image: np.ndarray, size: int, mode: ResizeMode = "squash") -> np.ndarray:
    """Resize an (H, W, 3) uint8 image to ``size`` x ``size``.

    ``squash`` ignores the aspect ratio (as MedMNIST did), ``crop`` takes the central square, ``pad``
    zero-pads to a square (as MedMNIST+ did) before resizing.
    """
    h, w = image.shape[:2]
    if mode == "crop" and h != w:
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        image = image[top:top + s, left:left + s]
    elif mode == "pad" and h != w:
        s = max(h, w)
        canvas = np.zeros((s, s, 3), dtype=np.uint8)
        top, left = (s - h) // 2, (s - w) // 2
        canvas[top:top + h, left:left + w] = image
        image = canvas
    elif mode not in ("squash", "crop", "pad"):
        raise ConfigError(f"resize mode must be squash, crop or pad, not {mode!r}")
    if image.shape[:2] == (size, size):
        return np.ascontiguousarray(image)
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC))


def _resize_array_batch(images: np.ndarray, size: int) -> np.ndarray:
    """Resize a batch of (N, H, W[, C]) uint8 array images to (N, 3, size, size) with antialiasing."""
    x = torch.from_numpy(np.ascontiguousarray(images))
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    x = x[:, :3].expand(-1, 3, -1, -1) if x.shape[1] == 1 else x[:, :3]
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x.float(), size=(size, size), mode="bicubic", antialias=True,
                          align_corners=False).round_().clamp_(0, 255)
    return x.to(torch.uint8).contiguous().numpy()


@dataclass(frozen=True)
class TensorCache:
    """Decoded images of a table at one size.

    Attributes:
        table: The rows that decoded (skipped files removed), aligned with ``array``.
        array: ``(N, 3, size, size)`` uint8, memory-mapped from ``path``.
        size: Side length in pixels.
        path: The ``.npy`` file.
        skipped: ``(sample_id, reason)`` of every file that could not be decoded (``on_error="skip"``).
    """

    table: SampleTable
    array: np.ndarray = field(repr=False)
    size: int
    path: Path
    skipped: tuple[tuple[str, str], ...] = ()

    def __len__(self) -> int:
        return len(self.array)

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(images, labels)`` of one split; images stay memory-mapped where possible."""
        mask = (self.table.frame["split"] == name).to_numpy()
        pos = np.flatnonzero(mask)
        if len(pos) and pos[-1] - pos[0] + 1 == len(pos):  # contiguous: a view, no copy
            return self.array[pos[0]:pos[-1] + 1], self.table.labels[pos]
        return self.array[pos], self.table.labels[pos]

    def subset(self, rows: np.ndarray) -> TensorCache:
        """The cache of the table's rows at positions ``rows`` (a label budget, a subsample), in memory; the
        decoded images are not decoded again."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) == len(self) and np.array_equal(rows, np.arange(len(self))):
            return self
        return TensorCache(table=self.table.with_frame(self.table.frame.iloc[rows]),
                           array=np.ascontiguousarray(self.array[rows]), size=self.size, path=self.path,
                           skipped=self.skipped)


def cache_key(table: SampleTable, size: int, resize: ResizeMode, fingerprint: str | None = None) -> str:
    """Key of a cache entry: data fingerprint + size + preprocessing + cache format version."""
    raw = f"{fingerprint or table.fingerprint()}|{size}|{resize}|v{CACHE_VERSION}"
    return f"{table.name}-{size}px-{resize}-{hashlib.sha256(raw.encode()).hexdigest()[:12]}"


def build_tensor_cache(
    table: SampleTable,
    size: int,
    resize: ResizeMode = "squash",
    cache_dir: str | os.PathLike[str] | None = None,
    on_error: OnError = "raise",
    progress: bool = True,
) -> TensorCache:
    """Decode (or reuse) the uint8 tensor cache of ``table`` at ``size`` px.

    Args:
        table: The samples.
        size: Working resolution (square).
        resize: How non-square images become square: ``squash``, ``crop`` or ``pad``.
        cache_dir: Where caches live (default ``$MEDVISION_CACHE`` or ``~/.cache/medvision/tensors``).
        on_error: ``"raise"`` on the first bad file, or ``"skip"`` it and list it in ``skipped``.
        progress: Show a tqdm bar while decoding.

    Returns:
        The cache, memory-mapped read-only.
    """
    folder = tensor_cache_dir(cache_dir)
    fingerprint = table.fingerprint()  # one stat per file (or a hash of the arrays): compute it once
    key = cache_key(table, size, resize, fingerprint)
    npy, meta_path = folder / f"{key}.npy", folder / f"{key}.json"
    if npy.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("on_error") == on_error or not meta["skipped"]:
            return _open(table, npy, size, meta)
    if table.is_array:
        assert table.images is not None
        rows = table.frame["index"].to_numpy()
        out = np.concatenate([_resize_array_batch(table.images[rows[i:i + 1024]], size)
                              for i in range(0, len(rows), 1024)]) if len(rows) else \
            np.zeros((0, 3, size, size), np.uint8)
        skipped: list[tuple[str, str]] = []
    else:
        paths = table.absolute_paths()
        bar = partial(tqdm, total=len(paths), desc=f"decoding {table.name} @ {size}px",
                      disable=not progress, leave=False)
        decoded, bad = map_images(lambda p: resize_image(read_image(p), size, resize), paths,
                                  on_error=on_error, progress=bar)
        by_path = {str(p): reason for p, reason in bad}
        ids = table.frame["sample_id"].tolist()
        skipped = [(sid, by_path[str(p)]) for sid, p in zip(ids, paths, strict=True) if str(p) in by_path]
        good = [d for d in decoded if d is not None]
        out = (np.stack(good).transpose(0, 3, 1, 2).copy() if good
               else np.zeros((0, 3, size, size), np.uint8))
    with atomic_path(npy) as tmp, open(tmp, "wb") as fh:
        np.save(fh, out)
    meta = {"table": table.name, "fingerprint": fingerprint, "size": size, "resize": resize,
            "on_error": on_error, "skipped": skipped, "n": int(len(out))}
    write_json_atomic(meta_path, meta)
    return _open(table, npy, size, meta)


def _open(table: SampleTable, npy: Path, size: int, meta: dict) -> TensorCache:
    skipped = tuple((str(s), str(r)) for s, r in meta["skipped"])
    kept = table
    if skipped:
        bad = {s for s, _ in skipped}
        kept = table.with_frame(table.frame[~table.frame["sample_id"].isin(bad)])
    array = np.load(npy, mmap_mode="r")
    if len(array) != len(kept):
        raise CacheError(f"tensor cache {npy} holds {len(array)} images but the table has {len(kept)}; "
                           "delete the file to rebuild it")
    return TensorCache(table=kept, array=array, size=size, path=npy, skipped=skipped)
