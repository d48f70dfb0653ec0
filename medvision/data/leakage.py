"""Leakage report: exact duplicates, near duplicates (perceptual hash) and groups spanning splits."""

from __future__ import annotations

import hashlib
from functools import partial

import imagehash
import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from medvision.data.cache import load_pixels
from medvision.data.decode import map_images
from medvision.data.table import SampleTable

REPORT_COLUMNS = ["kind", "sample_a", "sample_b", "split_a", "split_b", "cross_split", "distance", "group"]


def image_hashes(table: SampleTable, hash_size: int = 8, progress: bool = False
                 ) -> tuple[list[str], np.ndarray]:
    """Content hash (sha1 of decoded pixels) and perceptual hash (pHash, packed to uint64) per row."""

    def one(i: int) -> tuple[str, int]:
        px = load_pixels(table, i)
        content = hashlib.sha1(px.tobytes() + str(px.shape).encode()).hexdigest()
        ph = imagehash.phash(Image.fromarray(px), hash_size=hash_size).hash.flatten()
        return content, int(np.packbits(ph[:64]).view(">u8")[0])

    bar = partial(tqdm, total=len(table), desc="hashing", disable=not progress, leave=False)
    results, _ = map_images(one, list(range(len(table))), on_error="raise", progress=bar)
    content = [r[0] for r in results]  # type: ignore[index]
    phash = np.array([r[1] for r in results], dtype=np.uint64)  # type: ignore[index]
    return content, phash


def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    return np.unpackbits(x.view(np.uint8).reshape(*x.shape, 8), axis=-1).sum(axis=-1)


def near_duplicate_pairs(phash: np.ndarray, max_distance: int, chunk: int = 2048
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs ``i < j`` whose 64-bit hashes differ in at most ``max_distance`` bits."""
    ii, jj, dd = [], [], []
    n = len(phash)
    for start in range(0, n, chunk):
        block = phash[start:start + chunk]
        dist = _popcount(block[:, None] ^ phash[None, :])
        rows, cols = np.nonzero(dist <= max_distance)
        rows = rows + start
        keep = cols > rows
        ii.append(rows[keep])
        jj.append(cols[keep])
        dd.append(dist[rows[keep] - start, cols[keep]])
    if not ii:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    return np.concatenate(ii), np.concatenate(jj), np.concatenate(dd)


def leakage_report(table: SampleTable, max_distance: int = 4, progress: bool = False) -> pd.DataFrame:
    """Find duplicates and group leakage within and across splits.

    Args:
        table: The samples, usually with a ``split`` column.
        max_distance: Largest pHash Hamming distance (of 64 bits) counted as a near duplicate.
        progress: Show a progress bar while hashing.

    Returns:
        One row per finding: ``kind`` is ``exact`` (identical pixels), ``near`` (perceptual hash within
        ``max_distance``, not exact) or ``group`` (a group id present in several splits, one row per
        group). ``cross_split`` marks findings that leak between splits.
    """
    content, phash = image_hashes(table, progress=progress)
    ids = table.frame["sample_id"].to_numpy()
    split = table.frame["split"].to_numpy() if "split" in table.frame else np.full(len(table), None)
    rows: list[dict] = []
    ii, jj, dd = near_duplicate_pairs(phash, max_distance)
    content_arr = np.asarray(content)
    exact_pair = content_arr[ii] == content_arr[jj]
    # Exact duplicates have identical pHashes, so they are all among the near pairs found above.
    for i, j, d, ex in zip(ii, jj, dd, exact_pair, strict=True):
        rows.append({"kind": "exact" if ex else "near", "sample_a": ids[i], "sample_b": ids[j],
                     "split_a": split[i], "split_b": split[j], "cross_split": split[i] != split[j],
                     "distance": int(d), "group": None})
    if table.has_groups and "split" in table.frame:
        spans = table.frame.groupby("group")["split"].agg(lambda s: sorted(set(s)))
        for group, splits in spans[spans.map(len) > 1].items():
            members = table.frame.loc[table.frame["group"] == group, "sample_id"].tolist()
            rows.append({"kind": "group", "sample_a": members[0], "sample_b": members[-1],
                         "split_a": splits[0], "split_b": splits[-1], "cross_split": True,
                         "distance": None, "group": group})
    return pd.DataFrame(rows, columns=REPORT_COLUMNS)


def summarize_leakage(report: pd.DataFrame) -> pd.DataFrame:
    """Counts of findings by kind, within and across splits."""
    if report.empty:
        return pd.DataFrame({"within_split": [0, 0, 0], "cross_split": [0, 0, 0]},
                            index=pd.Index(["exact", "near", "group"], name="kind"))
    table = pd.crosstab(report["kind"], report["cross_split"]).reindex(["exact", "near", "group"],
                                                                         fill_value=0)
    table = table.reindex(columns=[False, True], fill_value=0)
    table.columns = ["within_split", "cross_split"]
    return table
