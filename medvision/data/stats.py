"""Image statistics for exploratory analysis: sizes, channels and intensities per image."""

from __future__ import annotations

import numpy as np
import pandas as pd

from medvision.config.choices import OnError
from medvision.core.errors import ImageLoadError
from medvision.data.cache import load_pixels
from medvision.data.decode import image_size
from medvision.data.table import SampleTable


def image_statistics(table: SampleTable, max_images: int | None = 2000, seed: int = 0,
                     on_error: OnError = "raise") -> pd.DataFrame:
    """Per-image width, height, file mode, mean/std intensity and colourfulness (on a seeded sample).

    Args:
        table: The samples.
        max_images: Analyse at most this many (a stratified-by-chance random sample); ``None`` for all.
        seed: Seed of the sample.
        on_error: ``"skip"`` leaves unreadable images out of the statistics instead of raising.

    Returns:
        One row per analysed image with ``sample_id``, ``class_name``, ``split`` (if any), ``width``,
        ``height``, ``mode``, ``mean``, ``std`` (of 0..255 gray levels) and ``is_gray``.
    """
    n = len(table)
    pos = np.arange(n)
    if max_images is not None and n > max_images:
        pos = np.sort(np.random.default_rng(seed).choice(n, max_images, replace=False))
    rows = []
    for i in pos:
        try:
            px = load_pixels(table, int(i))
        except ImageLoadError:
            if on_error == "skip":
                continue
            raise
        if table.is_array:
            assert table.images is not None
            raw = table.images[int(table.frame["index"].iloc[i])]
            w, h, mode = raw.shape[1], raw.shape[0], "L" if raw.ndim == 2 else "RGB"
        else:
            w, h, mode = image_size(table.root / table.frame["path"].iloc[i])  # type: ignore[operator]
        gray = px.astype(np.float32).mean(axis=2)
        rows.append({
            "sample_id": table.frame["sample_id"].iloc[i],
            "class_name": table.class_names[table.labels[i]],
            "split": table.frame["split"].iloc[i] if "split" in table.frame else None,
            "width": w, "height": h, "mode": mode,
            "mean": float(gray.mean()), "std": float(gray.std()),
            "is_gray": bool(np.array_equal(px[..., 0], px[..., 1]) and np.array_equal(px[..., 1], px[..., 2])),
        })
    return pd.DataFrame(rows)


def group_statistics(table: SampleTable) -> pd.DataFrame:
    """Images per group: how many groups have 1, 2, 3, ... images, with per-class group counts."""
    if not table.has_groups:
        return pd.DataFrame()
    per_group = table.frame.groupby("group").size()
    out = per_group.value_counts().sort_index().rename_axis("images_per_group").to_frame("groups")
    out["images"] = out.index * out["groups"]
    return out
