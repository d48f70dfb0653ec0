"""Operating points of a binary classifier: a decision threshold chosen on validation, reported on test.

The argmax of two classes is the threshold 0.5 on the positive class's probability; it is rarely the point a
screening test wants. :func:`choose_threshold` is the package's one way to choose a threshold on *validation*
scores (Youden's J, a minimum sensitivity or a minimum specificity); :func:`operating_points` applies the
argmax and the chosen thresholds to test scores and reports sensitivity, specificity and accuracy at each, so
the threshold is never read off the test split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_curve

from medvision.core.errors import ConfigError

#: Threshold rules: ``youden`` maximises sensitivity + specificity - 1; ``sensitivity`` / ``specificity`` keep
#: that figure at or above a target and maximise the other.
THRESHOLD_RULES = ("youden", "sensitivity", "specificity")


@dataclass(frozen=True)
class Threshold:
    """A decision threshold on the positive class's probability and what it gave where it was chosen."""

    value: float
    rule: str
    target: float | None
    sensitivity: float
    specificity: float
    split: str = "val"

    @property
    def label(self) -> str:
        if self.rule == "youden":
            return f"threshold from {self.split} (Youden's J)"
        return f"threshold from {self.split} ({self.rule} >= {self.target:g})"


def positive_scores(logits: torch.Tensor | np.ndarray, positive: int = 1) -> np.ndarray:
    """The positive class's probability (softmax of two-class logits)."""
    logits = torch.as_tensor(logits).float()
    if logits.ndim != 2 or logits.shape[1] != 2:
        raise ConfigError(f"operating points need two-class logits, got shape {tuple(logits.shape)}")
    return logits.softmax(1)[:, positive].numpy()


def choose_threshold(scores: np.ndarray, targets: np.ndarray, rule: str = "youden", target: float | None = None,
                     split: str = "val") -> Threshold:
    """The threshold on ``scores`` (positive-class probabilities; ``targets`` 1 for positive) that ``rule`` picks.

    Args:
        scores: Positive-class probabilities of the *validation* cases.
        targets: 1 for a positive case, 0 otherwise.
        rule: ``youden``, ``sensitivity`` (keep sensitivity >= ``target``, maximise specificity) or
            ``specificity`` (keep specificity >= ``target``, maximise sensitivity).
        target: The kept figure's floor for the last two rules.
        split: Which split the scores come from (recorded; only ``val`` belongs in a report).

    Raises:
        ConfigError: an unknown rule, a missing or impossible target, or a split without both classes.
    """
    if rule not in THRESHOLD_RULES:
        raise ConfigError(f"unknown threshold rule {rule!r}; choose from {THRESHOLD_RULES}")
    if rule != "youden" and (target is None or not 0 < target <= 1):
        raise ConfigError(f"the {rule} rule needs a target in (0, 1], got {target}")
    y = np.asarray(targets).astype(int)
    if y.min() == y.max():
        raise ConfigError(f"the {split} split has one class only: no threshold can be chosen on it")
    fpr, tpr, thresholds = roc_curve(y, np.asarray(scores, dtype=float), drop_intermediate=False)
    sens, spec = tpr, 1 - fpr
    if rule == "youden":
        i = int(np.argmax(sens + spec - 1))
    else:
        kept, other = (sens, spec) if rule == "sensitivity" else (spec, sens)
        ok = np.flatnonzero(kept >= target)
        if not len(ok):
            raise ConfigError(f"no threshold reaches {rule} {target:g} on {split}")
        i = int(ok[np.argmax(other[ok])])
    value = float(thresholds[i])  # roc_curve's first threshold is +inf: nothing is called positive
    return Threshold(value, rule, target, float(sens[i]), float(spec[i]), split)


def rates(scores: np.ndarray, targets: np.ndarray, threshold: float) -> dict[str, float]:
    """Sensitivity, specificity and accuracy of calling ``scores >= threshold`` positive."""
    y = np.asarray(targets).astype(int)
    called = np.asarray(scores) >= threshold
    pos, neg = y == 1, y == 0
    return {"sensitivity": float(called[pos].mean()) if pos.any() else float("nan"),
            "specificity": float((~called[neg]).mean()) if neg.any() else float("nan"),
            "accuracy": float((called == pos).mean())}


def operating_points(val_logits, val_targets, test_logits, test_targets, positive: int = 1,
                     rules: Sequence[tuple[str, float | None]] = (("youden", None),)) -> pd.DataFrame:
    """Test sensitivity, specificity and accuracy at the argmax and at each threshold that ``rules`` choose on
    validation (``(rule, target)`` pairs for :func:`choose_threshold`), one row each."""
    val_y = (np.asarray(val_targets) == positive).astype(int)
    test_y = (np.asarray(test_targets) == positive).astype(int)
    val_s, test_s = positive_scores(val_logits, positive), positive_scores(test_logits, positive)
    argmax = torch.as_tensor(test_logits).argmax(1).numpy() == positive
    rows = [{"operating point": "argmax", "threshold": 0.5, **rates(argmax.astype(float), test_y, 0.5)}]
    for rule, target in rules:
        chosen = choose_threshold(val_s, val_y, rule, target)
        rows.append({"operating point": chosen.label, "threshold": chosen.value,
                     **rates(test_s, test_y, chosen.value), "val_sensitivity": chosen.sensitivity,
                     "val_specificity": chosen.specificity})
    return pd.DataFrame(rows).set_index("operating point")
