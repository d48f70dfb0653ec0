"""Decode any image file into an RGB uint8 array, consistently, or fail with a message naming the file.

Grayscale, palette, RGBA, CMYK and 16-bit/float images all become ``(H, W, 3)`` uint8 RGB. EXIF orientation
is honoured. Pillow's decompression-bomb guard stays on.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from medvision.config.choices import OnError
from medvision.core.errors import ConfigError
from medvision.data.errors import ImageLoadError

T = TypeVar("T")

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".ppm", ".pgm"}
)


def pil_to_rgb(img: Image.Image) -> np.ndarray:
    """Convert a decoded Pillow image of any mode to an (H, W, 3) uint8 array."""
    if img.mode in {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}:
        # High bit-depth medical images rarely use their full range (12-bit CR in 16-bit containers),
        # so stretch each image's own min..max onto 0..255 instead of dividing by 2**16.
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        gray = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode != "RGB":
        # Alpha is dropped (torchvision's ImageFolder loader does the same).
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8)


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one image file as an (H, W, 3) uint8 RGB array.

    Raises:
        ImageLoadError: the file is missing, empty, not an image, truncated, corrupt, or larger than
            Pillow's decompression-bomb limit. The message names the file.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageLoadError(f"{path}: cannot read file ({exc.strerror or exc})") from exc
    return decode_image(path, str(path), size)


def decode_image(source: str | os.PathLike[str] | BinaryIO, name: str, size: int | None = None) -> np.ndarray:
    """Decode a file or a binary file object (an upload) as an (H, W, 3) uint8 RGB array.

    ``name`` is used in error messages; ``size`` (bytes) too when known.
    """
    shown = f"{size:,} bytes" if size is not None else "uploaded data"
    if size == 0:
        raise ImageLoadError(f"{name} is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                img.load()
                img = ImageOps.exif_transpose(img) or img
                return pil_to_rgb(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(f"{name} is too large to decode safely ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError(f"{name} is not an image Pillow can read ({shown})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        msg = str(exc)
        kind = "truncated" if "truncat" in msg.lower() else "corrupt"
        raise ImageLoadError(f"{name} is {kind} ({shown}): {msg}") from exc


def image_size(path: str | os.PathLike[str]) -> tuple[int, int, str]:
    """Width, height and Pillow mode from the file header, without decoding pixels."""
    try:
        with Image.open(path) as img:
            return img.width, img.height, img.mode
    except (OSError, UnidentifiedImageError) as exc:
        raise ImageLoadError(f"{path} is not a readable image: {exc}") from exc


def map_images(
    fn: Callable[[Path], T],
    paths: Sequence[Path],
    on_error: OnError = "raise",
    threads: int | None = None,
    progress: Iterable | None = None,
) -> tuple[list[T | None], list[tuple[Path, str]]]:
    """Apply ``fn`` to every path in a thread pool (Pillow decodes without the GIL).

    Args:
        fn: Function of one path, raising :class:`ImageLoadError` on bad files.
        paths: Files to process.
        on_error: ``"raise"`` stops at the first bad file; ``"skip"`` returns ``None`` in its place and
            lists it.
        threads: Worker threads (default: CPU count, at most 8).
        progress: Optional wrapper such as ``functools.partial(tqdm, total=len(paths))``.

    Returns:
        Results in input order (``None`` for skipped files) and the list of ``(path, reason)`` skipped.
    """
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    results: list[T | None] = [None] * len(paths)
    skipped: list[tuple[Path, str]] = []

    def work(i: int) -> tuple[int, T | None, str | None]:
        try:
            return i, fn(paths[i]), None
        except ImageLoadError as exc:
            if on_error == "raise":
                raise
            return i, None, str(exc)

    workers = threads or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        it = pool.map(work, range(len(paths)))
        if progress is not None:
            it = progress(it)
        for i, value, err in it:
            results[i] = value
            if err is not None:
                skipped.append((paths[i], err))
    return results, skipped
