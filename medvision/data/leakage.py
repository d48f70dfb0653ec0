"""Leakage report: exact duplicates, near duplicates (perceptual hash) and groups spanning splits."""

from __future__ import annotations

import hashlib
import os
import warnings
from functools import partial

import imagehash
import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from medvision.config.choices import OnError
from medvision.core.atomic import atomic_path
from medvision.core.errors import LeakageWarning
from medvision.data.cache import load_pixels
from medvision.data.decode import map_images
from medvision.data.paths import tensor_cache_dir
from medvision.data.table import SampleTable

REPORT_COLUMNS = ["kind", "sample_a", "sample_b", "split_a", "split_b", "cross_split", "distance", "group"]


HASH_VERSION = 1  # part of the hash cache's file name


def image_hashes(table: SampleTable, hash_size: int = 8, progress: bool = False, on_error: OnError = "raise",
                 cache_dir: str | os.PathLike[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Content hash (sha1 of decoded pixels) and perceptual hash (pHash, packed to uint64) per row.

    The hashes of a table are kept beside the tensor caches (keyed by the table's fingerprint: its samples,
    files and array bytes), so a data split, its run's audit and the EDA chapter hash the images once. With
    ``on_error="skip"`` an unreadable image gets a hash of its own (it duplicates nothing).
    """
    ids = table.frame["sample_id"].astype(str).tolist()
    files = _file_keys(table, hash_size)
    if files and all(f in _KNOWN_HASHES for f in files):  # files hashed before in this process (a label budget)
        return [_KNOWN_HASHES[f][0] for f in files], np.array([_KNOWN_HASHES[f][1] for f in files], dtype=np.uint64)
    path = tensor_cache_dir(cache_dir) / f"hashes-{table.name}-{table.fingerprint()}-{hash_size}-v{HASH_VERSION}.npz"
    if path.is_file():
        saved = np.load(path, allow_pickle=False)
        if len(saved["phash"]) == len(table):
            content = [c.decode() for c in saved["content"]]
            _remember(files, content, saved["phash"])
            return content, saved["phash"]

    def one(i: int) -> tuple[str, int]:
        px = load_pixels(table, i)
        content = hashlib.sha1(px.tobytes() + str(px.shape).encode()).hexdigest()
        ph = imagehash.phash(Image.fromarray(px), hash_size=hash_size).hash.flatten()
        return content, int(np.packbits(ph[:64]).view(">u8")[0])

    bar = partial(tqdm, total=len(table), desc="hashing", disable=not progress, leave=False)
    results, _ = map_images(one, list(range(len(table))), on_error=on_error, progress=bar)
    content = [r[0] if r is not None else f"unreadable:{sid}" for r, sid in zip(results, ids, strict=True)]
    rng = np.random.default_rng(0)  # unreadable images: random hashes, near nothing else
    phash = np.array([r[1] if r is not None else int(rng.integers(0, 2**63)) for r in results], dtype=np.uint64)
    if content:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, content=np.array([c.encode() for c in content]), phash=phash)
    _remember(files, content, phash)
    return content, phash


#: Hashes of images seen in this process, by :func:`_file_keys`.
_KNOWN_HASHES: dict[tuple, tuple[str, int]] = {}


def _file_keys(table: SampleTable, hash_size: int) -> list[tuple]:
    """One key per row naming its pixels: a file's path, size and mtime, or a MedMNIST array's md5 and index
    (empty for arrays of unknown origin, or when a file is missing)."""
    if table.is_array:
        md5 = table.provenance.get("md5", "")
        if not md5 or table.images is None:
            return []
        shape = tuple(table.images.shape)
        return [(md5, shape, int(i), hash_size) for i in table.frame["index"]]
    keys = []
    for path in table.absolute_paths():
        try:
            st = path.stat()
        except OSError:
            return []
        keys.append((str(path), st.st_size, st.st_mtime_ns, hash_size))
    return keys


def _remember(files: list[tuple], content: list[str], phash: np.ndarray) -> None:
    """Keep the hashes of the rows that were read (an unreadable file is read again next time)."""
    if files and len(files) == len(content):
        _KNOWN_HASHES.update((f, (c, p)) for f, c, p in zip(files, content, phash.tolist(), strict=True)
                             if not c.startswith("unreadable:"))


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


def leakage_report(table: SampleTable, max_distance: int = 4, progress: bool = False,
                   on_error: OnError = "raise") -> pd.DataFrame:
    """Find duplicates and group leakage within and across splits.

    Args:
        table: The samples, usually with a ``split`` column.
        max_distance: Largest pHash Hamming distance (of 64 bits) counted as a near duplicate.
        progress: Show a progress bar while hashing.
        on_error: ``"skip"`` gives an unreadable image a hash of its own (it duplicates nothing) instead of
            raising (a configuration's ``data.on_error``).

    Returns:
        One row per finding: ``kind`` is ``exact`` (identical pixels), ``near`` (perceptual hash within
        ``max_distance``, not exact) or ``group`` (a group id present in several splits, one row per
        group). ``cross_split`` marks findings that leak between splits.
    """
    content, phash = image_hashes(table, progress=progress, on_error=on_error)
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


def leakage_audit(table: SampleTable, max_distance: int = 4, report: pd.DataFrame | None = None,
                  on_error: OnError = "raise") -> dict:
    """What a run's own split leaks: duplicate pairs and shared groups counted by split pair, and the test
    images that have a duplicate (or a group) in train or val — the ones a clean test score leaves out.

    Returns:
        ``{"max_distance", "pairs": {"exact": {"train-test": n, ...}, "near": {...}}, "groups": {...},
        "test": n_test, "test_leaking": [sample ids], "test_clean": n}`` (``near`` counts pairs that are not
        exact; every split pair is listed, zeros included).
    """
    report = leakage_report(table, max_distance=max_distance, on_error=on_error) if report is None else report
    splits = [s for s in table.splits]
    pairs = [f"{a}-{b}" for i, a in enumerate(splits) for b in splits[i + 1:]]
    counts: dict[str, dict[str, int]] = {k: dict.fromkeys(pairs, 0) for k in ("exact", "near", "group")}
    rank = {s: i for i, s in enumerate(splits)}
    leaking: set[str] = set()
    frame = table.frame
    for row in report[report["cross_split"]].itertuples():
        a, b = sorted((row.split_a, row.split_b), key=lambda s: rank.get(s, len(rank)))
        if row.kind == "group":
            members = frame[frame["group"] == row.group]
            in_splits = sorted(set(members["split"]), key=lambda s: rank.get(s, len(rank)))
            for i, x in enumerate(in_splits):
                for y in in_splits[i + 1:]:
                    counts["group"][f"{x}-{y}"] = counts["group"].get(f"{x}-{y}", 0) + 1
            if "test" in in_splits and len(in_splits) > 1:
                leaking.update(members.loc[members["split"] == "test", "sample_id"].astype(str))
            continue
        counts[row.kind][f"{a}-{b}"] = counts[row.kind].get(f"{a}-{b}", 0) + 1
        if b == "test" and a != "test":
            leaking.add(str(row.sample_a if row.split_a == "test" else row.sample_b))
    test_ids = frame.loc[frame["split"] == "test", "sample_id"].astype(str) if "split" in frame else pd.Series()
    return {"max_distance": max_distance, "pairs": {k: counts[k] for k in ("exact", "near")},
            "groups": counts["group"], "test": int(len(test_ids)),
            "test_leaking": sorted(leaking & set(test_ids)), "test_clean": int(len(set(test_ids) - leaking))}


def describe_audit(audit: dict) -> str | None:
    """One line when train shares duplicates (or groups) with val or test; ``None`` when it does not."""
    parts = []
    for pair in ("train-val", "train-test"):
        exact = audit["pairs"]["exact"].get(pair, 0)
        near = audit["pairs"]["near"].get(pair, 0)
        groups = audit["groups"].get(pair, 0)
        if exact or near or groups:
            what = [f"{exact} exact" if exact else "", f"{near} near-duplicate" if near else ""]
            text = " and ".join(w for w in what if w)
            text = f"{text} pair(s)" if text else ""
            if groups:
                text = f"{text}{' and ' if text else ''}{groups} shared group(s)"
            parts.append(f"{text} between {pair.replace('-', ' and ')}")
    similarity = audit.get("similarity") or {}
    if not parts:
        if similarity.get("verdict") == "optimistic":
            return f"no duplicate pair crosses the split, but: {similarity['sentence']}"
        return None
    return (f"the split leaks: {'; '.join(parts)} ({audit['test'] - audit['test_clean']} of {audit['test']} test "
            "images have a copy in train/val); set data.dedupe: near (and data.official_split: drop_duplicates "
            "or resplit for an official split)")


_AUDITS: dict[tuple, dict] = {}


def split_key(table: SampleTable) -> tuple[str, str, bytes]:
    """What identifies a table's split in this process: its name, its images' fingerprint and its split column
    (audits of one split are computed once, however many strategies train on it)."""
    split = pd.util.hash_pandas_object(table.frame["split"], index=False).to_numpy().tobytes() \
        if "split" in table.frame else b""
    return table.name, table.fingerprint(), split


def audit_of(table: SampleTable, max_distance: int = 4, on_error: OnError = "raise") -> dict:
    """:func:`leakage_audit` of ``table``, computed once per table and split in a process (every strategy of a
    chapter trains on the same split); ``on_error="skip"`` hashes past unreadable images."""
    key = (*split_key(table), max_distance)
    if key not in _AUDITS:
        _AUDITS[key] = leakage_audit(table, max_distance, on_error=on_error)
    return _AUDITS[key]


def cross_duplicates(content_a: list[str], phash_a: np.ndarray, content_b: list[str], phash_b: np.ndarray,
                     max_distance: int, chunk: int = 2048) -> pd.DataFrame:
    """For every image of a set A, whether it has an exact duplicate (identical pixels) or a near duplicate
    (pHash within ``max_distance``) in a set B, and its smallest pHash distance to B (public data sets are often
    re-packagings of one another: an "external" test set may hold the training images)."""
    exact = np.isin(np.asarray(content_a), np.asarray(content_b)) if len(content_b) else np.zeros(len(content_a), bool)
    nearest = np.full(len(phash_a), 64, dtype=np.int64)
    for start in range(0, len(phash_b), chunk):
        block = phash_b[start:start + chunk]
        for i in range(0, len(phash_a), chunk):
            dist = _popcount(phash_a[i:i + chunk, None] ^ block[None, :])
            nearest[i:i + chunk] = np.minimum(nearest[i:i + chunk], dist.min(axis=1))
    return pd.DataFrame({"exact": exact, "near": ~exact & (nearest <= max_distance), "distance": nearest})


class collect_leakage:
    """Collect the :class:`~medvision.core.errors.LeakageWarning` of the runs trained inside the ``with`` block,
    once per message, to show them as sentences (a chapter's page) instead of as warnings."""

    def __enter__(self) -> collect_leakage:
        self._catch = warnings.catch_warnings(record=True)
        self._caught = self._catch.__enter__()
        warnings.simplefilter("always", LeakageWarning)
        return self

    def __exit__(self, *exc) -> None:
        self._catch.__exit__(*exc)
        others = [w for w in self._caught if not issubclass(w.category, LeakageWarning)]
        self.messages = list(dict.fromkeys(str(w.message) for w in self._caught
                                           if issubclass(w.category, LeakageWarning)))
        for w in others:  # every other warning as Python would have shown it
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)

    def markdown(self) -> str:
        if not self.messages:
            return ("**Leakage audit.** No exact or near-duplicate image (pHash) or shared group crosses this split's "
                    "train, val and test; with `data.dedupe: embedding` the feature-space check runs too, and a split "
                    "is called clean only when it passes.")
        return "**Leakage audit.** " + " ".join(f"{m}." for m in self.messages)
