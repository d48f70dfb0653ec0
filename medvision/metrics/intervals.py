"""The book's interval for a mean over seeds, and the three words it decides.

A comparison of trained networks is a mean over seeds of a test metric, and its uncertainty has two sources: the
seeds (another seed trains another network) and the test cases (another draw of test images scores it
differently). :func:`seeds_and_cases` bootstraps both at once, as a two-level percentile bootstrap: each resample
draws the seeds with replacement and one draw of the test cases with replacement, and averages the metric of
the drawn seeds on the drawn cases. The test cases are drawn once per resample for every seed (and for both
sides of a paired difference), because every seed is scored on the same test images: their sampling error is
shared, and drawing them separately per seed would average it away.

Against a published single number the interval is ours alone; between two models of the same seeds and test
images it is the interval of the paired difference (:func:`paired_difference`). :func:`verdict` reads it:
*ahead* when the whole interval lies above the other side, *behind* when it lies wholly below, *inconclusive*
otherwise.

The benchmark chapter's verdicts (against published rows and a seed system's reference) use it; the evidence
chapters' t-intervals over seeds and the per-class page's test-only intervals predate it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from medvision.core.errors import ConfigError
from medvision.metrics.classification import ResampleTerms

#: The words a comparison may use, decided by :func:`verdict`.
VERDICTS = ("ahead", "behind", "inconclusive")

#: A score of the seeds' models on some test cases: ``(seed position, case indices) -> {metric: value}``.
Scorer = Callable[[int, np.ndarray], Mapping[str, float]]


def verdict(lower: float, upper: float, other: float = 0.0) -> str:
    """``ahead`` when the interval ``[lower, upper]`` lies wholly above ``other`` (a published number, or 0 for a
    difference), ``behind`` when it lies wholly below, ``inconclusive`` otherwise (also when it is undefined)."""
    if np.isfinite(lower) and lower > other:
        return "ahead"
    if np.isfinite(upper) and upper < other:
        return "behind"
    return "inconclusive"


@dataclass(frozen=True)
class Interval:
    """A mean over seeds of a test metric and its seeds-and-cases bootstrap interval.

    Attributes:
        estimate: The mean over seeds on all test cases.
        lower: The interval's lower end (``nan`` when undefined, e.g. one class absent from every resample).
        upper: Its upper end.
        seeds: How many seeds the mean is over.
        cases: How many test cases each seed was scored on.
        level: The interval's coverage.
    """

    estimate: float
    lower: float
    upper: float
    seeds: int
    cases: int
    level: float = 0.95

    def verdict(self, other: float = 0.0) -> str:
        """:func:`verdict` of this interval against ``other``."""
        return verdict(self.lower, self.upper, other)

    def __str__(self) -> str:
        return (f"{self.estimate:.3f} ({self.level:.0%} interval {self.lower:.3f} to {self.upper:.3f}; "
                f"{self.seeds} seed{'s' if self.seeds != 1 else ''} x {self.cases:,} test images)")


def seeds_and_cases(score: Scorer, n_seeds: int, n_cases: int, n_resamples: int = 1000, level: float = 0.95,
                    seed: int = 0) -> dict[str, Interval]:
    """Two-level percentile bootstrap of the mean over seeds of each metric ``score`` returns.

    Args:
        score: The metrics of seed ``s`` (its position, ``0 <= s < n_seeds``) on the test cases ``idx``.
        n_seeds: Seeds (models) scored.
        n_cases: Test cases each was scored on (the same cases for every seed).
        n_resamples: Bootstrap resamples.
        level: Coverage of the interval.
        seed: Seed of the resampling.

    Returns:
        Per metric, its :class:`Interval`.
    """
    if n_seeds < 1 or n_cases < 1:
        raise ConfigError(f"an interval needs at least one seed and one test case, not {n_seeds} and {n_cases}")
    every = np.arange(n_cases)
    point = [dict(score(s, every)) for s in range(n_seeds)]
    names = list(point[0])
    rng = np.random.default_rng(seed)
    draws = np.full((n_resamples, len(names)), np.nan)
    for b in range(n_resamples):
        seeds = rng.integers(0, n_seeds, n_seeds)
        cases = rng.integers(0, n_cases, n_cases)  # one draw of the test images, shared by every seed
        scored = {s: score(int(s), cases) for s in np.unique(seeds)}
        draws[b] = [np.mean([scored[s][m] for s in seeds]) for m in names]
    lo_q, hi_q = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    out = {}
    for j, m in enumerate(names):
        column = draws[:, j]
        finite = column[np.isfinite(column)]
        low, high = (np.percentile(finite, [lo_q, hi_q]) if len(finite) else (np.nan, np.nan))
        out[m] = Interval(float(np.mean([p[m] for p in point])), float(low), float(high), n_seeds, n_cases, level)
    return out


def _checked(logits_by_seed: Sequence[torch.Tensor], targets: torch.Tensor) -> list[ResampleTerms]:
    if not logits_by_seed:
        raise ConfigError("no seed's test logits to summarise")
    bad = [i for i, lg in enumerate(logits_by_seed) if lg.shape[0] != targets.shape[0]]
    if bad:
        raise ConfigError(f"the test logits of seed position(s) {bad} do not cover the {targets.shape[0]} test "
                          "images of the others: every seed must be scored on the same test images")
    return [ResampleTerms(lg, targets) for lg in logits_by_seed]


def metric_intervals(logits_by_seed: Sequence[torch.Tensor], targets: torch.Tensor, n_resamples: int = 1000,
                     level: float = 0.95, seed: int = 0) -> dict[str, Interval]:
    """The headline metrics (accuracy, balanced accuracy, macro-F1, AUROC: the definitions of
    :func:`medvision.metrics.classification.classification_metrics`) of several seeds' test logits on the same
    test images, each with its :func:`seeds_and_cases` interval."""
    terms = _checked(logits_by_seed, targets)
    return seeds_and_cases(lambda s, idx: terms[s].metrics(idx)[0], len(terms), int(targets.shape[0]),
                           n_resamples, level, seed)


def paired_difference(logits_a: Sequence[torch.Tensor], logits_b: Sequence[torch.Tensor], targets: torch.Tensor,
                      n_resamples: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, Interval]:
    """The headline metrics of model A minus model B, trained with the same seeds (position ``s`` of each list)
    and scored on the same test images, with the paired :func:`seeds_and_cases` interval of the difference:
    both sides are resampled with the same seeds and the same test cases."""
    if len(logits_a) != len(logits_b):
        raise ConfigError(f"a paired difference needs the same seeds on both sides, not {len(logits_a)} and "
                          f"{len(logits_b)}")
    a, b = _checked(logits_a, targets), _checked(logits_b, targets)

    def score(s: int, idx: np.ndarray) -> dict[str, float]:
        ma, mb = a[s].metrics(idx)[0], b[s].metrics(idx)[0]
        return {k: ma[k] - mb[k] for k in ma}

    return seeds_and_cases(score, len(a), int(targets.shape[0]), n_resamples, level, seed)
