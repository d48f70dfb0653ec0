"""Near duplicates in feature space, and how close evaluation images sit to the training images.

Perceptual hashes miss what a hand-held camera makes: frames of one ear, one lesion or one endoscopy taken
seconds apart differ by shifts, crops, small rotations and exposure, so their hashes differ by more than a few
bits. Pooled features of a pretrained backbone (computed in :mod:`medvision.models.embeddings`; this module
only compares vectors) put such frames next to each other.

* **Pairs** (:func:`similar_pairs`): two images are near duplicates when each is among the other's
  :data:`NEIGHBOURS` nearest neighbours (mutual nearest neighbours: a hub image close to many cannot chain a data
  set together) and their cosine similarity reaches the threshold.
* **The threshold is the data's own** (:func:`derive_threshold`): images of different classes — or of
  different groups, where a group column exists — are known to be distinct; the threshold is the
  :data:`NULL_QUANTILE` quantile of each image's highest similarity to a known-distinct image. A pair above it
  is closer than 99% of known-distinct images ever get.
* **Residual similarity** (:func:`residual_similarity`): each validation and test image's highest similarity
  to the images it must not have seen (train; train and val for test), beside the same for images known to be
  distinct, with a plain verdict.

Measured on "video frames" cut from HAM10000 images (four frames per source with shifts, crops, rotations and
exposure changes, 600 frames; see ``tests/data/test_similarity.py``): pHash within 4 bits left 47% of the sources
straddling test, these pairs 5.5% (pair precision 0.99, recall 0.78; largest cluster 1.7% of the images).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors

from medvision.config.data import DataConfig
from medvision.data.errors import DataError
from medvision.data.table import SampleTable

#: Mutual nearest neighbours: a pair is linked only if each is among the other's this many nearest neighbours.
NEIGHBOURS = 3
#: The threshold is this quantile of each image's highest similarity to an image known to be distinct.
NULL_QUANTILE = 0.99
#: Fewest images with a known-distinct neighbour from which a threshold is estimated.
MIN_REFERENCE = 30
#: A split is "optimistic" when this many more evaluation images (as a fraction) sit at near-copy similarity to
#: the images they must not have seen than images known to be distinct do.
MARGIN = 0.05
#: Histogram bins of the similarity distributions saved in the audit (cosine similarity).
BINS = np.linspace(-0.2, 1.0, 49)


@dataclass(frozen=True)
class Threshold:
    """The cosine similarity above which two images count as near duplicates, and why.

    Attributes:
        value: The threshold.
        derived: Whether it was derived from the data (else set by ``data.embedding_threshold``).
        reference: What the known-distinct images were (``other class``, ``other group``).
        n_reference: Images whose highest known-distinct similarity entered the estimate.
        quantile: The quantile used.
    """

    value: float
    derived: bool
    reference: str
    n_reference: int
    quantile: float = NULL_QUANTILE

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        if not self.derived:
            return f"cosine similarity >= {self.value:.3f} (data.embedding_threshold)"
        return (f"cosine similarity >= {self.value:.3f}, the {self.quantile:.1%} quantile of each image's highest "
                f"similarity to an image of another {self.reference.removeprefix('other ')} "
                f"({self.n_reference} images): closer than {self.quantile:.1%} of images known to be distinct get")


def _normalised(features: np.ndarray) -> np.ndarray:
    f = np.asarray(features, dtype=np.float32)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)


def _distinct(labels: np.ndarray, groups: np.ndarray | None, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Which pairs (rows x cols) are known to be distinct images: different classes, or different groups."""
    mask = labels[rows][:, None] != labels[cols][None, :]
    if groups is not None:
        mask |= groups[rows][:, None] != groups[cols][None, :]
    return mask


def max_similarity(features: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                   mask: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
                   chunk: int = 1024) -> np.ndarray:
    """For each of ``rows``, its highest cosine similarity to ``cols`` (itself excluded), optionally only over
    the pairs ``mask(row_block, cols)`` allows; ``nan`` where no pair is allowed."""
    f = _normalised(features)
    out = np.full(len(rows), np.nan, dtype=np.float32)
    target = f[cols]
    for start in range(0, len(rows), chunk):
        block = rows[start:start + chunk]
        sims = f[block] @ target.T
        allowed = block[:, None] != cols[None, :]
        if mask is not None:
            allowed &= mask(block, cols)
        sims = np.where(allowed, sims, -np.inf)
        best = sims.max(axis=1) if len(cols) else np.full(len(block), -np.inf)
        out[start:start + chunk] = np.where(np.isfinite(best), best, np.nan)
    return out


def derive_threshold(features: np.ndarray, labels: np.ndarray, groups: np.ndarray | None = None,
                     where: str = "the data set", quantile: float = NULL_QUANTILE) -> Threshold:
    """The near-duplicate threshold of a data set, from images known to be distinct (see the module docstring).

    Raises:
        DataError: too few images have a known-distinct image to estimate it from (one class and no groups, or
            a tiny set); set ``data.embedding_threshold`` instead.
    """
    labels = np.asarray(labels)
    rows = np.arange(len(labels))
    best = max_similarity(features, rows, rows, lambda r, c: _distinct(labels, groups, r, c))
    known = best[np.isfinite(best)]
    reference = "other group" if groups is not None else "other class"
    if len(known) < MIN_REFERENCE:
        raise DataError(f"{where}: too few images ({len(known)} of {len(labels)}) have an image known to be distinct "
                        f"(another class{' or group' if groups is not None else ''}) to estimate a near-duplicate "
                        f"threshold from (at least {MIN_REFERENCE}); set data.embedding_threshold")
    return Threshold(float(np.quantile(known, quantile)), True, reference, int(len(known)), quantile)


def similar_pairs(features: np.ndarray, threshold: float, neighbours: int = NEIGHBOURS
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs ``i < j`` that are mutual nearest neighbours (each among the other's ``neighbours`` nearest) with a
    cosine similarity of at least ``threshold``, and their similarities."""
    f = _normalised(features)
    n = len(f)
    if n < 2:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.float32)
    k = min(neighbours + 1, n)
    dist, idx = NearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute").fit(f).kneighbors(f)
    sims = 1.0 - dist
    edges = {}
    for i in range(n):
        for j, s in zip(idx[i].tolist(), sims[i].tolist(), strict=True):
            if j != i and s >= threshold:
                edges[(i, j)] = s
    pairs = sorted((i, j) for (i, j) in edges if i < j and (j, i) in edges)
    if not pairs:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.float32)
    ii, jj = (np.array(x, dtype=np.int64) for x in zip(*pairs, strict=True))
    return ii, jj, np.array([edges[(i, j)] for i, j in pairs], dtype=np.float32)


def _histogram(values: np.ndarray) -> list[int]:
    return np.histogram(np.clip(values[np.isfinite(values)], BINS[0], BINS[-1]), bins=BINS)[0].tolist()


def _summary(values: np.ndarray, threshold: float) -> dict:
    v = values[np.isfinite(values)]
    if not len(v):
        return {"n": 0, "median": None, "p90": None, "close": 0.0, "histogram": _histogram(v)}
    return {"n": int(len(v)), "median": float(np.median(v)), "p90": float(np.quantile(v, 0.9)),
            "close": float((v >= threshold).mean()), "histogram": _histogram(v)}


def residual_similarity(features: np.ndarray, table: SampleTable, threshold: Threshold) -> dict:
    """How close each validation and test image sits to the images it must not have seen (train; train and val
    for test), beside the same for pairs known to be distinct (other classes, or other groups).

    Returns:
        ``{"threshold": {...}, "splits": {split: {"nearest": summary, "distinct": summary, "verdict": ...}},
        "verdict": "clean" | "optimistic", "sentence": str}``; each summary holds ``n``, the ``median`` and
        90th percentile of the highest similarities, the fraction ``close`` at or above the threshold, and a
        histogram over :data:`BINS`.
    """
    split = table.frame["split"].to_numpy() if "split" in table.frame else np.full(len(table), "train")
    labels = np.asarray(table.labels)
    groups = pd_codes(table)
    out: dict = {"threshold": threshold.to_dict(), "bins": BINS.tolist(), "splits": {}}
    seen_by = {"val": ("train",), "test": ("train", "val")}
    worst = None
    for name, seen in seen_by.items():
        rows = np.flatnonzero(split == name)
        cols = np.flatnonzero(np.isin(split, seen))
        if not len(rows) or not len(cols):
            continue
        nearest = _summary(max_similarity(features, rows, cols), threshold.value)
        distinct = _summary(max_similarity(features, rows, cols, lambda r, c: _distinct(labels, groups, r, c)),
                            threshold.value)
        excess = nearest["close"] - distinct["close"]
        verdict = "optimistic" if excess > MARGIN else "clean"
        out["splits"][name] = {"nearest": nearest, "distinct": distinct, "excess": float(excess),
                               "verdict": verdict, "seen": list(seen)}
        if worst is None or excess > worst[1]:
            worst = (name, excess)
    verdicts = [s["verdict"] for s in out["splits"].values()]
    out["verdict"] = "optimistic" if "optimistic" in verdicts else "clean" if verdicts else "not checked"
    out["sentence"] = describe_residual(out)
    return out


def versus_seen(seen: np.ndarray, seen_labels: np.ndarray, new: np.ndarray, new_labels: np.ndarray,
                threshold: Threshold, name: str = "external set") -> tuple[dict, np.ndarray]:
    """:func:`residual_similarity` for images from elsewhere (an external test set) against the images a run
    trained and validated on: the summary of one split, and which new images sit at near-copy similarity."""
    features = np.vstack([seen, new])
    labels = np.concatenate([np.asarray(seen_labels), np.asarray(new_labels)])
    rows, cols = np.arange(len(seen), len(features)), np.arange(len(seen))
    best = max_similarity(features, rows, cols)
    nearest = _summary(best, threshold.value)
    distinct = _summary(max_similarity(features, rows, cols, lambda r, c: _distinct(labels, None, r, c)),
                        threshold.value)
    excess = nearest["close"] - distinct["close"]
    audit = {"threshold": threshold.to_dict(), "bins": BINS.tolist(),
             "splits": {name: {"nearest": nearest, "distinct": distinct, "excess": float(excess),
                               "verdict": "optimistic" if excess > MARGIN else "clean", "seen": ["train", "val"]}}}
    audit["verdict"] = audit["splits"][name]["verdict"]
    audit["sentence"] = describe_residual(audit)
    return audit, best >= threshold.value


def pd_codes(table: SampleTable) -> np.ndarray | None:
    """Integer group codes of ``table`` (``None`` without a group column)."""
    if not table.has_groups:
        return None
    return pd.factorize(table.frame["group"].fillna(table.frame["sample_id"].astype(str)))[0]


def describe_residual(audit: dict) -> str:
    """The residual-similarity verdict in words (:func:`residual_similarity`)."""
    splits = audit.get("splits") or {}
    if not splits:
        return "The feature-space check found no validation or test images to compare with train."
    parts = []
    for name, s in splits.items():
        near, ref = s["nearest"], s["distinct"]
        parts.append(f"{near['close']:.0%} of the {near['n']} {name} images sit at near-copy similarity to "
                     f"{' or '.join(s['seen'])} (images known to be distinct: {ref['close']:.0%})")
    if audit["verdict"] == "optimistic":
        return ("Feature-space check: " + "; ".join(parts) + ". Evaluation images sit as close to the training "
                "images as near-copies do: treat their scores as optimistic (set data.dedupe: embedding, or a "
                "group column or data.group_pattern, and split again).")
    return ("Feature-space check: " + "; ".join(parts) + ". Evaluation images sit no closer to the training "
            "images than images known to be distinct do: the split passes.")


#: A feature-space cluster may hold at most this fraction of a data set (of at least 100 images): a larger one
#: means the links chain unrelated images together, and the threshold is raised (:data:`STRICTER`).
LARGEST_CLUSTER = 0.05
#: The quantiles tried, in turn, while the largest cluster is too large.
STRICTER = (NULL_QUANTILE, 0.995, 0.999)


def cluster_sizes(n: int, ii: np.ndarray, jj: np.ndarray) -> np.ndarray:
    """Sizes of the connected components of ``n`` nodes linked by the pairs ``(ii, jj)``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(ii)), (ii, jj)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return np.bincount(labels)


def embedding_pairs(table: SampleTable, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray, dict]:
    """The feature-space near-duplicate pairs of ``table`` (``dedupe: embedding``) and what decided them: the
    threshold (``cfg.embedding_threshold``, or derived from the data and raised while one cluster would hold
    more than :data:`LARGEST_CLUSTER` of the images), the pairs found and the largest cluster they make.

    Raises:
        DataError: the features cannot be computed, or the set is too small to derive a threshold.
        WeightsError: the backbone's ImageNet weights cannot be had here.
    """
    features = table_features(table, cfg)
    n = len(table)
    groups = pd_codes(table)
    for quantile in STRICTER if cfg.embedding_threshold <= 0 else (None,):
        threshold = (Threshold(cfg.embedding_threshold, False, "set by data.embedding_threshold", 0)
                     if quantile is None else derive_threshold(features, table.labels, groups, table.name, quantile))
        ii, jj, _ = similar_pairs(features, threshold.value)
        largest = int(cluster_sizes(n, ii, jj).max()) if n else 0
        if n < 100 or largest <= LARGEST_CLUSTER * n:
            break
    facts = {"threshold": threshold.to_dict(), "why": threshold.describe(), "pairs": int(len(ii)),
             "largest_cluster": largest, "neighbours": NEIGHBOURS, "model": cfg.embedding_model,
             "size": cfg.embedding_size}
    return ii, jj, facts


# ----------------------------------------------------------------------------------- the feature provider
#: Computes the features of a table for a data configuration; registered by :mod:`medvision.models.embeddings`
#: (the data layer compares vectors but builds no model).
FeatureFn = Callable[[SampleTable, DataConfig], np.ndarray]
_PROVIDER: list[FeatureFn] = []


def register_features(fn: FeatureFn) -> FeatureFn:
    """Make ``fn`` the feature provider of ``dedupe: embedding`` (what :mod:`medvision.models` does on import)."""
    _PROVIDER[:] = [fn]
    return fn


def table_features(table: SampleTable, cfg: DataConfig) -> np.ndarray:
    """The features of every row of ``table`` from the registered provider.

    Raises:
        DataError: no provider is registered: import :mod:`medvision.models` (the CLI, the chapters and
            training do).
    """
    if not _PROVIDER:
        raise DataError("data.dedupe: embedding compares image features of a pretrained backbone, which the data "
                        "layer does not build: import medvision.models first (the CLI, the chapters and training do)")
    return _PROVIDER[0](table, cfg)
