"""Duplicate clusters and splits that respect them: what ``DataConfig.dedupe`` and ``official_split`` do.

A *cluster* is a set of images linked by exact duplicates (identical pixels), near duplicates (perceptual
hashes within ``max_distance`` bits of 64; frames cut from one video, re-encoded copies) and, where the data
has one, the ``group`` column (a patient, a lesion): the union of all three links. A split that keeps every
cluster inside one split cannot score a model on copies of its training images.

* Sets without an official split are split cluster by cluster (group-aware, stratified).
* Validation carved from train is carved cluster by cluster.
* Official splits: ``keep`` them as they are (the leakage is reported), ``drop_duplicates`` (evaluation images
  — test, and an official validation split — whose cluster reaches an earlier split are dropped) or
  ``resplit`` (the official split is discarded and the whole set is split anew, cluster by cluster).

Every choice is written down in a :class:`SplitReport` (how many images moved or were dropped, and which),
saved beside the split manifest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from medvision.config.choices import DedupeMode
from medvision.data.errors import DataError
from medvision.data.leakage import image_hashes, near_duplicate_pairs
from medvision.data.similarity import components, group_codes
from medvision.data.table import SampleTable

#: Splits in the order they are fitted on: a duplicate "leaks" into the later one.
ORDER = {"train": 0, "val": 1, "test": 2}


def duplicate_clusters(table: SampleTable, mode: DedupeMode = "near", max_distance: int = 4,
                       on_error: str = "raise", progress: bool = False,
                       extra_links: Sequence[tuple[np.ndarray, np.ndarray]] = ()) -> np.ndarray:
    """A cluster id per row (the position of its first member): rows linked by exact duplicates, by near
    duplicates (``mode="near"`` or ``"embedding"``, pHash within ``max_distance``), by a shared ``group`` and by
    ``extra_links`` (``embedding``: the feature-space pairs of
    :func:`medvision.data.similarity.embedding_pairs`)."""
    if mode not in ("exact", "near", "embedding"):
        raise DataError(f"dedupe must be none, exact, near or embedding, not {mode!r}")
    n = len(table)
    links: list[tuple[np.ndarray, np.ndarray]] = list(extra_links)
    content, phash = image_hashes(table, progress=progress, on_error=on_error)  # type: ignore[arg-type]
    if mode in ("near", "embedding"):
        ii, jj, _ = near_duplicate_pairs(phash, max_distance)
        links.append((ii, jj))
    else:  # identical pixels: consecutive rows of each content hash
        order = np.argsort(np.asarray(content), kind="stable")
        sorted_content = np.asarray(content)[order]
        same = np.flatnonzero(sorted_content[1:] == sorted_content[:-1])
        links.append((order[same], order[same + 1]))
    codes = group_codes(table)
    if codes is not None:
        first = pd.Series(np.arange(n)).groupby(codes).transform("min").to_numpy()
        links.append((first, np.arange(n)))
    return components(n, links)


def cross_split_clusters(clusters: np.ndarray, split: np.ndarray) -> int:
    """How many clusters have members in more than one split."""
    frame = pd.DataFrame({"cluster": clusters, "split": split})
    return int((frame.groupby("cluster")["split"].nunique() > 1).sum())


@dataclass
class SplitReport:
    """What ``dedupe`` and ``official_split`` did to a data set's split (saved beside the split manifest).

    Attributes:
        dedupe: ``exact`` or ``near`` (how duplicates were found).
        max_distance: The pHash distance of a near duplicate (``near`` only).
        official_split: The policy applied to an official split (``keep``, ``drop_duplicates``,
            ``resplit``), or ``none`` when the set had no official split.
        images: Images before any was dropped.
        clusters: Clusters with more than one image.
        images_in_clusters: Images in those clusters.
        cross_split_before: Clusters spanning several splits in the official split (``None`` without one).
        cross_split_after: Clusters spanning several splits in the split used.
        dropped: ``{"sample_id", "split", "cluster"}`` of every image dropped.
        moved: ``{"sample_id", "from", "to"}`` of every image whose split changed from the official one.
        embedding: With ``dedupe: embedding``, the feature-space threshold and why, the pairs it found and the
            largest cluster (:func:`medvision.data.similarity.embedding_pairs`).
    """

    dedupe: str
    max_distance: int
    official_split: str
    images: int
    clusters: int
    images_in_clusters: int
    cross_split_before: int | None
    cross_split_after: int
    dropped: list[dict] = field(default_factory=list)
    moved: list[dict] = field(default_factory=list)
    embedding: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """Sentences for the CLI and the EDA chapter."""
        found = (f"{self.clusters} duplicate cluster(s) ({self.dedupe} duplicates"
                 + (f", pHash distance <= {self.max_distance}" if self.dedupe in ("near", "embedding") else "")
                 + (f", {self.embedding['pairs']} feature-space pair(s) at {self.embedding['why']}"
                    if self.embedding else "")
                 + f", groups included) hold {self.images_in_clusters} of {self.images} images")
        if self.official_split == "none":
            return f"{found}; the split keeps every cluster in one split."
        before = f"{self.cross_split_before} cluster(s) spanned the official splits"
        if self.official_split == "keep":
            return f"{found}; {before}, and the official split was kept as it is (official_split: keep)."
        if self.official_split == "drop_duplicates":
            by_split = pd.Series([d["split"] for d in self.dropped], dtype=object).value_counts().to_dict()
            which = ", ".join(f"{n} from {s}" for s, n in sorted(by_split.items())) or "none"
            return (f"{found}; {before}. Dropped {len(self.dropped)} evaluation image(s) whose cluster reaches an "
                    f"earlier split ({which}); {self.cross_split_after} cluster(s) span splits now.")
        return (f"{found}; {before}. The set was split anew cluster by cluster (official_split: resplit): "
                f"{len(self.moved)} image(s) changed split; {self.cross_split_after} cluster(s) span splits now.")


def drop_leaking(table: SampleTable, clusters: np.ndarray) -> tuple[np.ndarray, list[dict]]:
    """Rows to keep, and the dropped ones: an evaluation image (val, test) goes when its cluster has a member
    in an earlier split (train before val before test)."""
    split = table.frame["split"].to_numpy()
    rank = np.array([ORDER.get(s, 3) for s in split])
    earliest = pd.Series(rank).groupby(clusters).transform("min").to_numpy()
    drop = rank > earliest
    ids = table.frame["sample_id"].to_numpy()
    dropped = [{"sample_id": str(ids[i]), "split": str(split[i]), "cluster": int(clusters[i])}
               for i in np.flatnonzero(drop)]
    return ~drop, dropped


def moved_rows(before: np.ndarray, after: np.ndarray, ids: np.ndarray) -> list[dict]:
    """``{"sample_id", "from", "to"}`` of every row whose split changed."""
    return [{"sample_id": str(ids[i]), "from": str(before[i]), "to": str(after[i])}
            for i in np.flatnonzero(before != after)]


def cluster_summary(clusters: np.ndarray) -> tuple[int, int]:
    """Clusters with more than one image, and the images in them."""
    sizes = np.bincount(pd.factorize(clusters)[0])
    return int((sizes > 1).sum()), int(sizes[sizes > 1].sum())


def describe_split_report(report: dict | None) -> str:
    """:meth:`SplitReport.describe` of a saved report (``SampleTable.split_report``); a note when there is none."""
    if not report:
        return ("No de-duplication: the split may put copies of one image (or one patient's images) on both "
                "sides. Set `data.dedupe` to `exact` or `near` to split by duplicate clusters.")
    return SplitReport(**report).describe()
