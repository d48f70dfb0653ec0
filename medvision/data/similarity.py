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

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
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


def reference_similarities(features: np.ndarray, labels: np.ndarray, groups: np.ndarray | None = None
                           ) -> np.ndarray:
    """Each image's highest similarity to an image known to be distinct (another class, or another group), of
    the images that have one: what :func:`derive_threshold` takes a quantile of."""
    labels = np.asarray(labels)
    rows = np.arange(len(labels))
    best = max_similarity(features, rows, rows, lambda r, c: _distinct(labels, groups, r, c))
    return best[np.isfinite(best)]


def _quantile_threshold(known: np.ndarray, n: int, grouped: bool, where: str, quantile: float) -> Threshold:
    if len(known) < MIN_REFERENCE:
        raise DataError(f"{where}: too few images ({len(known)} of {n}) have an image known to be distinct "
                        f"(another class{' or group' if grouped else ''}) to estimate a near-duplicate "
                        f"threshold from (at least {MIN_REFERENCE}); set data.embedding_threshold")
    return Threshold(float(np.quantile(known, quantile)), True, "other group" if grouped else "other class",
                     int(len(known)), quantile)


def derive_threshold(features: np.ndarray, labels: np.ndarray, groups: np.ndarray | None = None,
                     where: str = "the data set", quantile: float = NULL_QUANTILE) -> Threshold:
    """The near-duplicate threshold of a data set, from images known to be distinct (see the module docstring).

    Raises:
        DataError: too few images have a known-distinct image to estimate it from (one class and no groups, or
            a tiny set); set ``data.embedding_threshold`` instead.
    """
    known = reference_similarities(features, labels, groups)
    return _quantile_threshold(known, len(labels), groups is not None, where, quantile)


def threshold_for(table: SampleTable, features: np.ndarray, cfg: DataConfig) -> Threshold:
    """``cfg.embedding_threshold`` when set, else the threshold derived from ``table``'s own known-distinct
    images (:func:`derive_threshold`)."""
    if cfg.embedding_threshold > 0:
        return Threshold(cfg.embedding_threshold, False, "set by data.embedding_threshold", 0)
    return derive_threshold(features, table.labels, group_codes(table), where=table.name)


def nearest_neighbours(features: np.ndarray, neighbours: int = NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
    """Each image's ``neighbours`` nearest images by cosine similarity (itself among them, first) and the
    similarities: one search serves every threshold."""
    f = _normalised(features)
    k = min(neighbours + 1, len(f))
    dist, idx = NearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute").fit(f).kneighbors(f)
    return idx, 1.0 - dist


def _no_pairs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    empty = np.zeros(0, np.int64)
    return empty, empty, np.zeros(0, np.float32)


def mutual_pairs(idx: np.ndarray, sims: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs ``i < j`` of :func:`nearest_neighbours` that are each other's neighbours with a similarity of at
    least ``threshold``, and their similarities."""
    edges = {}
    for i in range(len(idx)):
        for j, s in zip(idx[i].tolist(), sims[i].tolist(), strict=True):
            if j != i and s >= threshold:
                edges[(i, j)] = s
    pairs = sorted((i, j) for (i, j) in edges if i < j and (j, i) in edges)
    if not pairs:
        return _no_pairs()
    ii, jj = (np.array(x, dtype=np.int64) for x in zip(*pairs, strict=True))
    return ii, jj, np.array([edges[(i, j)] for i, j in pairs], dtype=np.float32)


def similar_pairs(features: np.ndarray, threshold: float, neighbours: int = NEIGHBOURS
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs ``i < j`` that are mutual nearest neighbours (each among the other's ``neighbours`` nearest) with a
    cosine similarity of at least ``threshold``, and their similarities."""
    if len(features) < 2:
        return _no_pairs()
    return mutual_pairs(*nearest_neighbours(features, neighbours), threshold)


def _histogram(values: np.ndarray) -> list[int]:
    return np.histogram(np.clip(values[np.isfinite(values)], BINS[0], BINS[-1]), bins=BINS)[0].tolist()


def _summary(values: np.ndarray, threshold: float) -> dict:
    v = values[np.isfinite(values)]
    if not len(v):
        return {"n": 0, "median": None, "p90": None, "close": 0.0, "histogram": _histogram(v)}
    return {"n": int(len(v)), "median": float(np.median(v)), "p90": float(np.quantile(v, 0.9)),
            "close": float((v >= threshold).mean()), "histogram": _histogram(v)}


def _split_check(features: np.ndarray, rows: np.ndarray, cols: np.ndarray, labels: np.ndarray,
                 groups: np.ndarray | None, threshold: Threshold, seen: list[str]) -> tuple[dict, np.ndarray]:
    """One evaluation split (``rows``) against what it must not have seen (``cols``): the summaries of its
    highest similarities to them and to known-distinct ones among them, the verdict, and each row's highest
    similarity."""
    best = max_similarity(features, rows, cols)
    nearest = _summary(best, threshold.value)
    distinct = _summary(max_similarity(features, rows, cols, lambda r, c: _distinct(labels, groups, r, c)),
                        threshold.value)
    excess = nearest["close"] - distinct["close"]
    return {"nearest": nearest, "distinct": distinct, "excess": float(excess),
            "verdict": "optimistic" if excess > MARGIN else "clean", "seen": seen}, best


def _audit(splits: dict[str, dict], threshold: Threshold) -> dict:
    verdicts = [s["verdict"] for s in splits.values()]
    audit = {"threshold": threshold.to_dict(), "bins": BINS.tolist(), "splits": splits,
             "verdict": "optimistic" if "optimistic" in verdicts else "clean" if verdicts else "not checked"}
    audit["sentence"] = describe_residual(audit)
    return audit


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
    labels, groups = np.asarray(table.labels), group_codes(table)
    splits = {}
    for name, seen in {"val": ["train"], "test": ["train", "val"]}.items():
        rows, cols = np.flatnonzero(split == name), np.flatnonzero(np.isin(split, seen))
        if len(rows) and len(cols):
            splits[name] = _split_check(features, rows, cols, labels, groups, threshold, seen)[0]
    return _audit(splits, threshold)


def versus_seen(seen: np.ndarray, seen_labels: np.ndarray, new: np.ndarray, new_labels: np.ndarray,
                threshold: Threshold, name: str = "external set") -> tuple[dict, np.ndarray]:
    """:func:`residual_similarity` for images from elsewhere (an external test set) against the images a run
    trained and validated on: the summary of one split, and which new images sit at near-copy similarity."""
    features = np.vstack([seen, new])
    labels = np.concatenate([np.asarray(seen_labels), np.asarray(new_labels)])
    check, best = _split_check(features, np.arange(len(seen), len(features)), np.arange(len(seen)), labels, None,
                               threshold, ["train", "val"])
    return _audit({name: check}, threshold), best >= threshold.value


def group_codes(table: SampleTable) -> np.ndarray | None:
    """Integer group codes of ``table``, a row without a group its own (``None`` without a group column)."""
    if not table.has_groups:
        return None
    return pd.factorize(table.frame["group"].fillna(pd.Series(table.frame["sample_id"].astype(str))))[0]


def components(n: int, links: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The connected components of ``n`` rows linked by the pairs in ``links``: each row's component as the
    position of its first member."""
    ii = np.concatenate([np.asarray(a, dtype=np.int64) for a, _ in links]) if links else np.zeros(0, np.int64)
    jj = np.concatenate([np.asarray(b, dtype=np.int64) for _, b in links]) if links else np.zeros(0, np.int64)
    _, labels = connected_components(coo_matrix((np.ones(len(ii)), (ii, jj)), shape=(n, n)), directed=False)
    first = np.full(labels.max() + 1 if n else 0, n, dtype=np.int64)
    np.minimum.at(first, labels, np.arange(n))
    return first[labels]


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


def embedding_pairs(table: SampleTable, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray, dict]:
    """The feature-space near-duplicate pairs of ``table`` (``dedupe: embedding``) and what decided them: the
    threshold (``cfg.embedding_threshold``, or derived from the data and raised while one cluster would hold
    more than :data:`LARGEST_CLUSTER` of the images), the pairs found and the largest cluster they make. The
    neighbour search and the known-distinct similarities are computed once for every threshold tried.

    Raises:
        DataError: the features cannot be computed, or the set is too small to derive a threshold.
        WeightsError: the backbone's ImageNet weights cannot be had here.
    """
    features = table_features(table, cfg)
    n = len(table)
    groups = group_codes(table)
    neighbours = nearest_neighbours(features) if n >= 2 else None
    known = reference_similarities(features, table.labels, groups) if cfg.embedding_threshold <= 0 else None
    for quantile in STRICTER if known is not None else (None,):
        threshold = (threshold_for(table, features, cfg) if known is None else
                     _quantile_threshold(known, n, groups is not None, table.name, quantile))
        ii, jj, _ = mutual_pairs(*neighbours, threshold.value) if neighbours else _no_pairs()
        largest = int(np.bincount(components(n, [(ii, jj)])).max()) if n else 0
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
