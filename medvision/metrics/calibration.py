"""How far can the model's confidence be trusted: calibration errors, Brier score, NLL, temperature
scaling (fitted on validation only), selective prediction (risk-coverage) and class-wise calibration."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import multiclass_calibration_error

from medvision.core.errors import ConfigError

Binning = Literal["width", "mass"]


def _as_probs(probs: torch.Tensor | np.ndarray) -> np.ndarray:
    return np.asarray(probs.detach().cpu() if isinstance(probs, torch.Tensor) else probs, dtype=np.float64)


def reliability_bins(probs: torch.Tensor | np.ndarray, targets: torch.Tensor | np.ndarray, n_bins: int = 15,
                     binning: Binning = "width") -> pd.DataFrame:
    """Per-bin count, mean confidence and accuracy of the top-1 prediction.

    ``width`` uses equal-width confidence bins (as in Guo et al. 2017 and torchmetrics); ``mass`` uses
    bins holding equal numbers of samples (quantiles of the confidence).
    """
    p = _as_probs(probs)
    y = np.asarray(targets)
    conf, pred = p.max(axis=1), p.argmax(axis=1)
    correct = (pred == y).astype(float)
    if binning == "width":
        edges = np.linspace(0, 1, n_bins + 1)
    elif binning == "mass":
        edges = np.quantile(conf, np.linspace(0, 1, n_bins + 1))
        edges[0], edges[-1] = 0.0, 1.0
    else:
        raise ConfigError(f"binning must be 'width' or 'mass', not {binning!r}")
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        mask = idx == b
        n = int(mask.sum())
        rows.append({"bin": b, "lower": edges[b], "upper": edges[b + 1], "count": n,
                     "confidence": conf[mask].mean() if n else np.nan,
                     "accuracy": correct[mask].mean() if n else np.nan})
    return pd.DataFrame(rows)


def expected_calibration_error(probs, targets, n_bins: int = 15, binning: Binning = "width") -> float:
    """ECE: the count-weighted mean |accuracy - confidence| over bins."""
    bins = reliability_bins(probs, targets, n_bins, binning).dropna()
    return float((bins["count"] * (bins["accuracy"] - bins["confidence"]).abs()).sum() / bins["count"].sum())


def maximum_calibration_error(probs, targets, n_bins: int = 15, binning: Binning = "width") -> float:
    """MCE: the largest |accuracy - confidence| over non-empty bins."""
    bins = reliability_bins(probs, targets, n_bins, binning).dropna()
    return float((bins["accuracy"] - bins["confidence"]).abs().max())


def torchmetrics_ece(probs: torch.Tensor, targets: torch.Tensor, n_bins: int = 15) -> float:
    """ECE with equal-width bins as torchmetrics computes it (a cross-check of our binning)."""
    return multiclass_calibration_error(probs, targets, num_classes=probs.shape[1], n_bins=n_bins,
                                        norm="l1").item()


def brier_score(probs, targets) -> float:
    """Multi-class Brier score: mean over samples of the squared distance to the one-hot label."""
    p = _as_probs(probs)
    onehot = np.eye(p.shape[1])[np.asarray(targets)]
    return float(((p - onehot) ** 2).sum(axis=1).mean())


def negative_log_likelihood(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0) -> float:
    return F.cross_entropy(logits.float() / temperature, targets.long()).item()


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor, split: str, max_iter: int = 100) -> float:
    """Temperature scaling (Guo et al. 2017): the T > 0 minimising NLL of ``logits / T``, by LBFGS.

    Args:
        logits: Validation logits.
        targets: Validation labels.
        split: Name of the split the logits come from. ``"test"`` is refused: fitting on test data
            would leak it into the reported calibration.
    """
    if split == "test":
        raise ValueError("temperature must not be fitted on the test split; use the validation split")
    logits, targets = logits.detach().float(), targets.detach().long()
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.exp().item())


#: Temperatures outside this range are not trusted: modern networks are fitted with T of about 1-3
#: (Guo et al. 2017); a T far below 1 comes from a validation split with (almost) no mistakes.
TEMPERATURE_RANGE = (0.2, 5.0)
#: Fewest validation mistakes a temperature (or an abstention threshold) is fitted on.
MIN_VALIDATION_ERRORS = 5


@dataclass(frozen=True)
class TemperatureFit:
    """The temperature to use and how it was chosen.

    Attributes:
        temperature: The temperature applied to the logits: the fitted one, or 1.0 when the fit is refused.
        fitted: What the fit gave (``None`` when it was not attempted).
        reason: Why the fitted value is not used (empty when it is).
        val_cases: Validation cases.
        val_errors: Validation cases the model gets wrong (argmax).
    """

    temperature: float
    fitted: float | None
    reason: str
    val_cases: int
    val_errors: int

    @property
    def used(self) -> bool:
        return not self.reason

    def to_dict(self) -> dict:
        return asdict(self) | {"fitted_on": "val", "method": "LBFGS on validation NLL", "used": self.used,
                               "range": list(TEMPERATURE_RANGE), "min_errors": MIN_VALIDATION_ERRORS}

    def describe(self) -> str:
        """One sentence for pages, model cards and the CLI."""
        if self.used:
            return (f"temperature {self.temperature:.3f}, fitted on the validation split ({self.val_errors} of "
                    f"{self.val_cases} validation cases misclassified)")
        return f"temperature kept at 1: {self.reason}"


def calibrate_temperature(logits: torch.Tensor, targets: torch.Tensor, split: str,
                          min_errors: int = MIN_VALIDATION_ERRORS,
                          bounds: tuple[float, float] = TEMPERATURE_RANGE) -> TemperatureFit:
    """:func:`fit_temperature`, guarded: a validation split with fewer than ``min_errors`` mistakes (a
    separable one, say, when validation was carved from a train split full of near-identical images) keeps
    T = 1, since its NLL falls as T → 0 and the "calibrated" model would be certain of everything; so does a
    fitted T outside ``bounds``. The result says which happened."""
    errors = int((logits.argmax(1) != targets).sum())
    n = len(targets)
    if errors < min_errors:
        what = "no misclassified case" if errors == 0 else f"only {errors} misclassified case(s)"
        return TemperatureFit(1.0, None, f"the validation split has {what} of {n} (fewer than {min_errors}): too "
                              "few to fit a temperature on, and fitting would only sharpen every prediction",
                              n, errors)
    fitted = fit_temperature(logits, targets, split)
    if not bounds[0] <= fitted <= bounds[1]:
        return TemperatureFit(1.0, fitted, f"the fitted temperature {fitted:.3g} lies outside the trusted range "
                              f"{bounds[0]:g}-{bounds[1]:g}", n, errors)
    return TemperatureFit(fitted, fitted, "", n, errors)


def _bin_index(conf: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The bin of each confidence (``edges[b] < conf <= edges[b + 1]``; zero goes to the first bin)."""
    return np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, len(edges) - 2)


def _binned_errors(bins: np.ndarray, conf: np.ndarray, correct: np.ndarray, n_bins: int) -> tuple[float, float]:
    """ECE and MCE from each case's bin, confidence and correctness: with per-bin sums, ECE is
    ``sum |correct - confidence| / n`` and MCE the largest per-bin gap of the means."""
    count = np.bincount(bins, minlength=n_bins)
    gap = np.abs(np.bincount(bins, correct, n_bins) - np.bincount(bins, conf, n_bins))
    seen = count > 0
    return float(gap.sum() / count.sum()), float((gap[seen] / count[seen]).max())


class _CalibrationTerms:
    """Per-case terms of every calibration metric at each temperature, computed once, so that the table of a
    bootstrap resample costs a few ``bincount`` calls instead of a softmax and a data frame per metric."""

    def __init__(self, logits: torch.Tensor, targets: torch.Tensor, temperatures: dict[str, float], n_bins: int):
        self.n_bins = n_bins
        self.width_edges = np.linspace(0, 1, n_bins + 1)
        y = np.asarray(targets.detach().cpu().long())
        self.terms = {}
        for name, t in temperatures.items():
            scaled = logits.detach().float().cpu() / t
            p = _as_probs(scaled.softmax(1))
            conf = p.max(axis=1)
            self.terms[name] = {
                "conf": conf, "correct": (p.argmax(axis=1) == y).astype(float),
                "width_bin": _bin_index(conf, self.width_edges),
                "brier": ((p - np.eye(p.shape[1])[y]) ** 2).sum(axis=1),
                "nll": F.cross_entropy(scaled, torch.from_numpy(y), reduction="none").double().numpy(),
            }

    def table(self, idx: np.ndarray | None = None) -> pd.DataFrame:
        """The calibration table of the cases ``idx`` (all cases when ``None``)."""
        rows = {}
        for name, t in self.terms.items():
            conf, correct, width_bin, brier, nll = (t[k] if idx is None else t[k][idx]
                                                    for k in ("conf", "correct", "width_bin", "brier", "nll"))
            ece, mce = _binned_errors(width_bin, conf, correct, self.n_bins)
            edges = np.quantile(conf, np.linspace(0, 1, self.n_bins + 1))
            edges[0], edges[-1] = 0.0, 1.0
            ece_mass, _ = _binned_errors(_bin_index(conf, edges), conf, correct, self.n_bins)
            rows[name] = {"ece": ece, "ece_equal_mass": ece_mass, "mce": mce, "brier": float(brier.mean()),
                          "nll": float(nll.mean())}
        return pd.DataFrame(rows).T


def calibration_table(logits: torch.Tensor, targets: torch.Tensor, temperature: float, n_bins: int = 15
                      ) -> pd.DataFrame:
    """ECE (width and mass bins), MCE, Brier and NLL before and after temperature scaling."""
    return _CalibrationTerms(logits, targets, {"before": 1.0, "after": temperature}, n_bins).table()


def risk_coverage(probs, targets) -> pd.DataFrame:
    """Selective prediction: keep the most confident fraction (coverage) and measure the error (risk).

    Returns one row per possible coverage ``k / n`` with the confidence threshold, risk and accuracy.
    """
    p = _as_probs(probs)
    y = np.asarray(targets)
    conf = p.max(axis=1)
    order = np.argsort(-conf, kind="stable")
    correct = (p.argmax(axis=1) == y)[order].astype(float)
    k = np.arange(1, len(y) + 1)
    acc = np.cumsum(correct) / k
    return pd.DataFrame({"coverage": k / len(y), "threshold": conf[order], "accuracy": acc, "risk": 1 - acc})


def accuracy_at_coverage(curve: pd.DataFrame, coverages=(1.0, 0.9, 0.8, 0.5)) -> pd.DataFrame:
    """Accuracy when keeping the most confident ``coverage`` fraction of cases."""
    rows = []
    for c in coverages:
        row = curve[curve["coverage"] >= c - 1e-12].iloc[0]
        rows.append({"coverage": c, "accuracy": row["accuracy"], "threshold": row["threshold"]})
    return pd.DataFrame(rows)


def coverage_for_accuracy(curve: pd.DataFrame, target: float) -> tuple[float, float]:
    """Largest coverage whose accuracy reaches ``target``, and its confidence threshold (0, 1 if none)."""
    ok = curve[curve["accuracy"] >= target]
    if ok.empty:
        return 0.0, 1.0
    row = ok.iloc[-1]
    return float(row["coverage"]), float(row["threshold"])


def classwise_calibration(probs, targets, class_names, n_bins: int = 15) -> pd.DataFrame:
    """Class-wise ECE (Kull et al. 2019): bin ``P(class c)`` and compare it with how often the class is true."""
    p = _as_probs(probs)
    y = np.asarray(targets)
    edges = np.linspace(0, 1, n_bins + 1)
    rows = []
    for c, name in enumerate(class_names):
        pc, hit = p[:, c], (y == c).astype(float)
        idx = np.clip(np.searchsorted(edges, pc, side="left") - 1, 0, n_bins - 1)
        ece = sum(abs(pc[idx == b].mean() - hit[idx == b].mean()) * (idx == b).sum()
                  for b in range(n_bins) if (idx == b).any()) / len(y)
        rows.append({"class": name, "ece": float(ece), "mean_prob": float(pc.mean()), "frequency": float(hit.mean())})
    return pd.DataFrame(rows).set_index("class")


def bootstrap_calibration(logits: torch.Tensor, targets: torch.Tensor, temperature: float,
                          n_resamples: int = 1000, level: float = 0.95, seed: int = 0, n_bins: int = 15
                          ) -> pd.DataFrame:
    """Percentile bootstrap CIs of ECE, MCE, Brier and NLL before and after temperature scaling."""
    rng = np.random.default_rng(seed)
    n = len(targets)
    terms = _CalibrationTerms(logits, targets, {"before": 1.0, "after": temperature}, n_bins)
    point = terms.table()
    stack = np.stack([terms.table(rng.integers(0, n, n)).to_numpy() for _ in range(n_resamples)])
    lo = np.nanpercentile(stack, (1 - level) / 2 * 100, axis=0)
    hi = np.nanpercentile(stack, (1 + level) / 2 * 100, axis=0)
    rows = []
    for i, when in enumerate(point.index):
        for j, metric in enumerate(point.columns):
            rows.append({"metric": metric, "when": when, "estimate": point.iloc[i, j], "lower": lo[i, j],
                         "upper": hi[i, j]})
    return pd.DataFrame(rows).set_index(["metric", "when"])
