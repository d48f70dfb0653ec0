"""Classification metrics from logits and targets, computed with torchmetrics (not re-implemented).

Names say what they are: ``accuracy`` is micro accuracy (the fraction correct), ``balanced_accuracy`` is
the macro-averaged recall (torchmetrics' default ``multiclass_accuracy``), ``auroc`` is the one-vs-rest
macro AUROC. For two classes, ``accuracy`` uses argmax, which equals a 0.5 threshold on the positive class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_auroc,
    multiclass_average_precision,
    multiclass_cohen_kappa,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
    multiclass_specificity,
)


def classification_metrics(logits: torch.Tensor, targets: torch.Tensor, top_k: Sequence[int] = ()
                           ) -> dict[str, float]:
    """Accuracy, balanced accuracy, macro-F1 and one-vs-rest macro AUROC (and ``top{k}_accuracy`` for each
    ``k`` of ``top_k`` below the number of classes).

    Args:
        logits: ``(N, C)`` raw scores.
        targets: ``(N,)`` integer labels.
        top_k: Top-k accuracies to add (Kvasir's seed reports top-3 and top-5).

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
    for k in top_k:
        if k < c:
            out[f"top{k}_accuracy"] = multiclass_accuracy(probs, targets, num_classes=c, top_k=k,
                                                          average="micro").item()
    return out


def detailed_metrics(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Headline metrics plus macro/weighted precision, recall and F1, top-k accuracy (k = 3, 5 when there are
    more classes than k), macro average precision and Cohen's kappa."""

    logits, targets = logits.detach().float().cpu(), targets.detach().long().cpu()
    c = logits.shape[1]
    probs = logits.softmax(1)
    out = classification_metrics(logits, targets)
    for avg in ("macro", "weighted"):
        out[f"{avg}_precision"] = multiclass_precision(probs, targets, num_classes=c, average=avg).item()
        out[f"{avg}_recall"] = multiclass_recall(probs, targets, num_classes=c, average=avg).item()
    out["weighted_f1"] = multiclass_f1_score(probs, targets, num_classes=c, average="weighted").item()
    for k in (3, 5):
        if c > k:
            out[f"top{k}_accuracy"] = multiclass_accuracy(probs, targets, num_classes=c, top_k=k,
                                                          average="micro").item()
    out["average_precision"] = multiclass_average_precision(probs, targets, num_classes=c, average="macro").item()
    out["cohen_kappa"] = multiclass_cohen_kappa(probs, targets, num_classes=c).item()
    return out


def per_class_report(logits: torch.Tensor, targets: torch.Tensor, class_names) -> pd.DataFrame:
    """Per class: support, precision, recall (= sensitivity), specificity, F1, one-vs-rest AUROC and AP."""

    logits, targets = logits.detach().float().cpu(), targets.detach().long().cpu()
    c = logits.shape[1]
    probs = logits.softmax(1)
    kw = {"num_classes": c, "average": None}
    report = pd.DataFrame({
        "support": torch.bincount(targets, minlength=c).numpy(),
        "precision": multiclass_precision(probs, targets, **kw).numpy(),
        "recall": multiclass_recall(probs, targets, **kw).numpy(),
        "specificity": multiclass_specificity(probs, targets, **kw).numpy(),
        "f1": multiclass_f1_score(probs, targets, **kw).numpy(),
        "auroc": multiclass_auroc(probs, targets, **kw).numpy(),
        "average_precision": multiclass_average_precision(probs, targets, **kw).numpy(),
    }, index=pd.Index(list(class_names), name="class"))
    return report


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with 0 where ``den`` is 0 (torchmetrics' ``zero_division=0``)."""
    return np.divide(num, den, out=np.zeros(np.shape(num), dtype=float), where=den > 0)


class ResampleTerms:
    """The headline metrics of bootstrap resamples from per-case terms computed once: a confusion matrix by
    ``bincount`` gives accuracy, balanced accuracy and F1 with torchmetrics' conventions (zero division is 0;
    macro averages skip classes with no true and no predicted case), and one-vs-rest AUROC is the
    Mann-Whitney statistic with ties counted one half, evaluated with each case weighted by how often the
    resample drew it. A resample then costs microseconds instead of a torchmetrics call per metric."""

    def __init__(self, logits: torch.Tensor, targets: torch.Tensor):
        probs = logits.detach().float().cpu().softmax(1)
        self.c = probs.shape[1]
        self.y = targets.detach().long().cpu().numpy()
        self.pred = probs.argmax(1).numpy()
        scores = probs.numpy()
        self.order, self.starts, self.positive = [], [], []
        for k in range(self.c):
            order = np.argsort(scores[:, k], kind="stable")
            sorted_scores = scores[order, k]
            self.order.append(order)
            self.starts.append(np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]]))
            self.positive.append((self.y == k)[order])

    def metrics(self, idx: np.ndarray) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
        """Headline metrics of the cases ``idx``, and per-class F1 and recall."""
        c, y, pred = self.c, self.y[idx], self.pred[idx]
        confusion = np.bincount(y * c + pred, minlength=c * c).reshape(c, c)
        tp = np.diag(confusion).astype(float)
        fn, fp = confusion.sum(1) - tp, confusion.sum(0) - tp
        recall, f1 = _safe_ratio(tp, tp + fn), _safe_ratio(2 * tp, 2 * tp + fp + fn)
        seen = (tp + fp + fn) > 0
        out = {"accuracy": float(tp.sum() / len(idx)), "balanced_accuracy": float(recall[seen].mean()),
               "macro_f1": float(f1[seen].mean()), "auroc": self._auroc(np.bincount(idx, minlength=len(self.y)))}
        return out, f1, recall

    def _auroc(self, weights: np.ndarray) -> float:
        aucs = []
        for order, starts, positive in zip(self.order, self.starts, self.positive, strict=True):
            w = weights[order].astype(float)
            pos = np.add.reduceat(np.where(positive, w, 0.0), starts)
            neg = np.add.reduceat(np.where(positive, 0.0, w), starts)
            if pos.sum() == 0 or neg.sum() == 0:
                return float("nan")  # a class absent from the resample: AUROC is undefined
            below = np.cumsum(neg) - neg
            aucs.append(float((pos * (below + 0.5 * neg)).sum() / (pos.sum() * neg.sum())))
        return float(np.mean(aucs))


def bootstrap_ci(logits: torch.Tensor, targets: torch.Tensor, n_resamples: int = 1000, level: float = 0.95,
                 seed: int = 0, per_class_names=None) -> pd.DataFrame:
    """Percentile bootstrap confidence intervals of the headline metrics (and per-class F1 / recall).

    Resamples test cases with replacement (seeded), recomputes the metrics, and reports the point estimate
    (torchmetrics, :func:`classification_metrics`) with the ``(1 - level) / 2`` and ``(1 + level) / 2``
    percentiles of the resamples' values.
    """
    logits, targets = logits.detach().float().cpu(), targets.detach().long().cpu()
    rng = np.random.default_rng(seed)
    n = logits.shape[0]
    point = classification_metrics(logits, targets)
    samples: dict[str, list[float]] = {k: [] for k in point}
    per_class = per_class_names is not None
    if per_class:
        for name in per_class_names:
            samples[f"f1[{name}]"], samples[f"recall[{name}]"] = [], []
        rep = per_class_report(logits, targets, per_class_names)
        for name in per_class_names:
            point[f"f1[{name}]"], point[f"recall[{name}]"] = rep.loc[name, "f1"], rep.loc[name, "recall"]
    terms = ResampleTerms(logits, targets)
    for _ in range(n_resamples):
        m, f1, rec = terms.metrics(rng.integers(0, n, n))
        for k, v in m.items():
            samples[k].append(v)
        if per_class:
            for j, name in enumerate(per_class_names):
                samples[f"f1[{name}]"].append(f1[j])
                samples[f"recall[{name}]"].append(rec[j])
    lo_q, hi_q = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    rows = {k: {"estimate": point[k], "lower": np.nanpercentile(v, lo_q), "upper": np.nanpercentile(v, hi_q)}
            for k, v in samples.items()}
    return pd.DataFrame(rows).T.rename_axis("metric")


def predictions_table(logits: torch.Tensor, targets: torch.Tensor, sample_ids, class_names,
                      temperature: float = 1.0) -> pd.DataFrame:
    """One row per case: id, true and predicted class, confidence and every class probability."""
    probs = (logits.detach().float().cpu() / temperature).softmax(1).numpy()
    pred = probs.argmax(1)
    table = pd.DataFrame({"sample_id": list(sample_ids), "true": [class_names[i] for i in targets.tolist()],
                          "predicted": [class_names[i] for i in pred], "confidence": probs.max(1),
                          "correct": pred == targets.numpy()})
    for j, name in enumerate(class_names):
        table[f"p[{name}]"] = probs[:, j]
    return table


def most_confused(targets, predictions, class_names, top: int = 5) -> pd.DataFrame:
    """The most frequent (true, predicted) error pairs, with their share of the true class."""
    y, p = np.asarray(targets), np.asarray(predictions)
    rows = []
    support = np.bincount(y, minlength=len(class_names))
    for t in range(len(class_names)):
        for q in range(len(class_names)):
            if t != q and (n := int(((y == t) & (p == q)).sum())):
                rows.append({"true": class_names[t], "predicted": class_names[q], "cases": n,
                             "share_of_true_class": n / support[t]})
    table = pd.DataFrame(rows, columns=["true", "predicted", "cases", "share_of_true_class"])
    return table.sort_values("cases", ascending=False).head(top).reset_index(drop=True)


def describe_weakest(report: pd.DataFrame, ci: pd.DataFrame, confused: pd.DataFrame, n: int = 2) -> str:
    """Sentences about the weakest classes by F1, computed from the per-class report and its CIs."""
    weakest = report.sort_values("f1").head(n)
    parts = []
    for name, row in weakest.iterrows():
        key = f"f1[{name}]"
        ci_text = (f" (95% CI {ci.loc[key, 'lower']:.3f}-{ci.loc[key, 'upper']:.3f})" if key in ci.index else "")
        text = (f"**{name}** has F1 {row['f1']:.3f}{ci_text} on {int(row['support'])} test cases: sensitivity "
                f"{row['recall']:.3f}, specificity {row['specificity']:.3f}, precision {row['precision']:.3f}.")
        errs = confused[confused["true"] == name]
        if not errs.empty:
            e = errs.iloc[0]
            text += (f" Its most common error is being called {e['predicted']} ({int(e['cases'])} cases, "
                     f"{e['share_of_true_class']:.0%} of the class).")
        parts.append(text)
    return " ".join(parts)
