"""Post-hoc logit adjustment for class imbalance (Menon et al., "Long-tail learning via logit adjustment",
ICLR 2021).

A network trained with plain cross-entropy on imbalanced data learns ``log p(y | x)``, which carries the training
prior ``p(y)``. Subtracting ``tau * log p(y)`` from the logits moves every decision towards the rare classes
without retraining; ``tau = 1`` is the Bayes correction for a balanced target, and ``tau`` is chosen here on
the validation split (never on test).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from medvision.core.errors import ConfigError
from medvision.metrics.classification import classification_metrics

#: The values of ``tau`` tried on validation.
TAU_GRID: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)


def class_prior(labels: np.ndarray | torch.Tensor, num_classes: int) -> np.ndarray:
    """The class frequencies of ``labels`` (the training split's), with one pseudo-count per class so a class
    absent from a small sample keeps a finite log-prior."""
    return prior_from_counts(np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes))


def prior_from_counts(counts: np.ndarray) -> np.ndarray:
    """:func:`class_prior` from per-class image counts."""
    counts = np.asarray(counts, dtype=np.float64) + 1.0
    return counts / counts.sum()


def adjust_logits(logits: torch.Tensor, prior: np.ndarray, tau: float) -> torch.Tensor:
    """``logits - tau * log(prior)``."""
    if len(prior) != logits.shape[1]:
        raise ConfigError(f"the prior has {len(prior)} classes but the logits have {logits.shape[1]}")
    return logits - tau * torch.log(torch.as_tensor(prior, dtype=logits.dtype))


@dataclass(frozen=True)
class LogitAdjustment:
    """The ``tau`` chosen on validation and the validation score of every value tried."""

    tau: float
    metric: str
    scores: dict[float, float]

    def apply(self, logits: torch.Tensor, prior: np.ndarray) -> torch.Tensor:
        return adjust_logits(logits, prior, self.tau)


def fit_logit_adjustment(val_logits: torch.Tensor, val_targets: torch.Tensor, prior: np.ndarray,
                         metric: str = "balanced_accuracy", grid: Sequence[float] = TAU_GRID) -> LogitAdjustment:
    """Choose ``tau`` from ``grid`` by the validation ``metric`` (ties go to the smaller correction)."""
    scores = {float(t): classification_metrics(adjust_logits(val_logits, prior, t), val_targets)[metric]
              for t in grid}
    best = max(scores, key=lambda t: (scores[t], -t))
    return LogitAdjustment(tau=best, metric=metric, scores=scores)
