"""Classification metrics from logits and targets, computed with torchmetrics (not re-implemented).

Names say what they are: ``accuracy`` is micro accuracy (the fraction correct), ``balanced_accuracy`` is
the macro-averaged recall (torchmetrics' default ``multiclass_accuracy``), ``auroc`` is the one-vs-rest
macro AUROC. For two classes, ``accuracy`` uses argmax, which equals a 0.5 threshold on the positive class.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_auroc,
    multiclass_f1_score,
)

HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "auroc")


def classification_metrics(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Accuracy, balanced accuracy, macro-F1 and one-vs-rest macro AUROC.

    Args:
        logits: ``(N, C)`` raw scores.
        targets: ``(N,)`` integer labels.

    Returns:
        A dict of floats. AUROC is ``nan`` when a class is absent from ``targets`` (undefined).
    """
    logits = logits.detach().float().cpu()
    targets = targets.detach().long().cpu()
    c = logits.shape[1]
    probs = logits.softmax(dim=1)
    out = {
        "accuracy": multiclass_accuracy(probs, targets, num_classes=c, average="micro").item(),
        "balanced_accuracy": multiclass_accuracy(probs, targets, num_classes=c, average="macro").item(),
        "macro_f1": multiclass_f1_score(probs, targets, num_classes=c, average="macro").item(),
    }
    present = torch.bincount(targets, minlength=c) > 0
    out["auroc"] = (multiclass_auroc(probs, targets, num_classes=c, average="macro").item()
                    if bool(present.all()) else float("nan"))
    return out
