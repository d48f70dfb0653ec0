"""The evidence chapters' numbers and sentences: label-budget curves, imbalance remedies, input resolution.

Every function here reads the rows :func:`medvision.train.sweeps.run_sweep` returns (one per run) and turns them into
means over seeds with 95% t-intervals (:func:`medvision.evaluate.anchors.seed_interval`) and into sentences computed
from those numbers: the prose of a chapter can only say what its runs show. Each run's checkpoint is chosen on
validation; the strategy called best at a label budget (and the fine-tuning strategy set against head-only) is
chosen by mean validation score, and its test score is reported; the imbalance remedies are designed arms,
reported side by side on test, none selected for later use; post-hoc corrections are fitted on validation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from medvision.core.errors import ConfigError
from medvision.evaluate.anchors import seed_interval
from medvision.evaluate.evaluation import evaluate_run
from medvision.metrics.calibration import expected_calibration_error
from medvision.metrics.classification import classification_metrics, per_class_report
from medvision.metrics.imbalance import fit_logit_adjustment, prior_from_counts
from medvision.train.run_dir import RunDirectory
from medvision.train.sweeps import FEATURES_BASELINE

#: Strategies that train backbone weights (the challengers of head-only in the label-budget crossover).
FINE_TUNING = ("last_k", "full", "two_phase", "discriminative")


def seed_means(rows: pd.DataFrame, by: Sequence[str], metrics: Sequence[str],
               bounds_of_scores: tuple[float, float] = (0.0, 1.0)) -> pd.DataFrame:
    """Per group of ``by``: the mean of each metric over seeds with its 95% t-interval (``<metric>_low``,
    ``<metric>_high``, clipped to ``bounds_of_scores``; NaN with one seed), the number of seeds, and the mean training images and seconds per
    epoch where the rows have them."""
    if rows.empty or not set(by) <= set(rows):  # no data set ran
        return pd.DataFrame(columns=[*by, "seeds", *(f"{m}{e}" for m in metrics for e in ("", "_low", "_high"))])
    groups = rows.groupby(list(by), sort=False)
    extras = [c for c in ("train_images", "seconds_per_epoch", "epochs") if c in rows]
    out = groups[extras].mean() if extras else pd.DataFrame(index=groups.size().index)
    out["seeds"] = groups.size()
    for m in metrics:
        mean, sd, n = groups[m].mean(), groups[m].std(ddof=1), groups[m].count()  # count: seeds with a value
        bounds = [seed_interval(mu, s, int(k)) for mu, s, k in zip(mean, sd, n, strict=True)]
        out[m] = mean
        out[f"{m}_low"] = np.clip([b[0] for b in bounds], *bounds_of_scores)  # scores lie in [0, 1]
        out[f"{m}_high"] = np.clip([b[1] for b in bounds], *bounds_of_scores)
    return out.reset_index()


def _interval(row: pd.Series, metric: str) -> str:
    low, high = row[f"{metric}_low"], row[f"{metric}_high"]
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{row[metric]:.3f} (one seed)"
    return f"{row[metric]:.3f} ({low:.3f}-{high:.3f})"


def _separation(a: pd.Series, b: pd.Series, metric: str) -> str:
    """Whether ``a``'s 95% seed interval lies wholly above ``b``'s mean, in words."""
    low = a[f"{metric}_low"]
    if not np.isfinite(low):
        return "one seed: no interval to tell it from noise"
    n = int(a["seeds"])
    return (f"its 95% interval over {n} seeds lies above" if low > b[metric]
            else f"within its 95% interval over {n} seeds: not told apart from noise")


# ------------------------------------------------------------------------------------------- label budgets
def budget_key(per_class: int) -> float:
    """Sort order of label budgets: ``0`` (the whole train split) after every number."""
    return math.inf if per_class == 0 else float(per_class)


def budget_label(per_class: int) -> str:
    return "all training images" if per_class == 0 else f"{per_class} images per class"


def is_fine_tuning(strategy: str) -> bool:
    return strategy.partition(":")[0] in FINE_TUNING


def _val(metric: str) -> str:
    return "val_" + metric.removeprefix("test_")


def chosen_fine_tuning(group: pd.DataFrame, metric: str) -> pd.Series | None:
    """At one budget, the strategy that trains backbone weights with the best mean *validation* score (the
    test split chooses nothing); ``None`` when none ran."""
    tuned = group[group["strategy"].map(is_fine_tuning)]
    if tuned.empty:
        return None
    return tuned.loc[tuned[_val(metric) if _val(metric) in tuned else metric].idxmax()]


def crossover(means: pd.DataFrame, metric: str, baseline: str = "head_only") -> tuple[str, int | None]:
    """Where fine-tuning overtakes ``baseline`` on one data set's label-budget means: at each budget the
    fine-tuning strategy with the best mean validation score (:func:`chosen_fine_tuning`) is compared with
    ``baseline`` on mean test ``metric``. ``("crossover", b)`` — behind below budget ``b``, ahead at ``b`` and at
    every larger budget —, ``("always", smallest)`` or ``("never", None)`` (not ahead at the largest budget)."""
    ahead = {}
    for budget, group in means.groupby("per_class"):
        tuned = chosen_fine_tuning(group, metric)
        base = group[group["strategy"] == baseline]
        if tuned is None or base.empty:
            continue
        ahead[int(budget)] = bool(tuned[metric] > base[metric].iloc[0])
    budgets = sorted(ahead, key=budget_key)
    if not budgets or not ahead[budgets[-1]]:
        return "never", None
    first = len(budgets) - 1
    while first > 0 and ahead[budgets[first - 1]]:
        first -= 1
    return ("always" if first == 0 else "crossover"), budgets[first]


def winners(means: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One data set's best strategy at each budget by mean validation score (the ``val_`` twin of ``metric``
    where the means have it), ordered by budget; its test ``metric`` is what the chapter reports."""
    chooser = _val(metric) if _val(metric) in means else metric
    best = means.loc[means.groupby("per_class")[chooser].idxmax()]
    return best.iloc[np.argsort([budget_key(b) for b in best["per_class"]])]


def describe_label_budget(means: pd.DataFrame, metric: str = "test_macro_f1", baseline: str = "head_only") -> str:
    """Sentences from label-budget means (:func:`seed_means` by data set, ``per_class``, strategy): the winner
    at each budget, where the winner changes, and the crossover where fine-tuning overtakes ``baseline``."""
    label = metric.removeprefix("test_").replace("_", " ")
    parts = []
    for dataset, group in means.groupby("dataset", sort=False):
        best = winners(group, metric)
        listed = "; ".join(f"{budget_label(int(r.per_class))} (about {r.train_images:.0f} labelled images): "
                           f"**{r.strategy}** {_interval(r, metric)}" for _, r in best.iterrows())
        text = (f"On **{dataset}**, the strategy with the best mean validation {label} at each budget, with its "
                f"mean test {label} (95% interval over seeds): {listed}.")
        changes = [(prev, cur) for prev, cur in zip(best.itertuples(), best.iloc[1:].itertuples(), strict=False)
                   if prev.strategy != cur.strategy]
        if changes:
            text += " The winner changes " + ", then ".join(
                f"from {a.strategy} to {b.strategy} at {budget_label(int(b.per_class))}" for a, b in changes) + "."
        else:
            text += " The same strategy wins at every budget."
        kind, at = crossover(group, metric, baseline)
        said = ("Fine-tuning (at each budget, the fine-tuning strategy best on validation) ")
        if kind == "never":
            text += f" {said}does not overtake {baseline} for good: at the largest budget it is not ahead on mean test {label}."
        elif kind == "always":
            text += f" {said}is ahead of {baseline} on mean test {label} at every budget: no crossover."
        else:
            text += (f" {said}overtakes {baseline} on mean test {label} at **{budget_label(at)}** and stays ahead at "
                     "every larger budget (the crossover).")
        for budget in dict.fromkeys(b for b in (at, max(group["per_class"], key=budget_key)) if b is not None):
            here = group[group["per_class"] == budget]
            top, base = chosen_fine_tuning(here, metric), here[here["strategy"] == baseline]
            if top is not None and not base.empty:
                base = base.iloc[0]
                text += (f" At {budget_label(int(budget))}, {top.strategy} scores {_interval(top, metric)} against "
                         f"{baseline}'s {_interval(base, metric)}"
                         f"{' (' + _separation(top, base, metric) + ')' if top[metric] > base[metric] else ''}.")
        feats = group[group["strategy"] == FEATURES_BASELINE]
        heads = group[group["strategy"] == baseline]
        if not feats.empty and not heads.empty:
            merged = feats.merge(heads, on="per_class", suffixes=("_lr", "_head"))
            better = int((merged[f"{metric}_lr"] > merged[f"{metric}_head"]).sum())
            text += (f" The logistic regression on frozen features beats the trained head-only network at "
                     f"{better} of {len(merged)} budgets.")
        parts.append(text)
    return "\n\n".join(parts) if parts else "No finished runs."


# ------------------------------------------------------------------------------------------- imbalance
def _train_counts(run_dir: Path, num_classes: int) -> np.ndarray:
    rd = RunDirectory(run_dir)
    split = pd.read_csv(rd / rd.SPLIT)
    return np.bincount(split.loc[split["split"] == "train", "label"].to_numpy(dtype=np.int64), minlength=num_classes)


def _scores(logits: torch.Tensor, targets: torch.Tensor, class_names: Sequence[str], rare: Sequence[str]
            ) -> dict[str, float]:
    metrics = classification_metrics(logits, targets)
    report = per_class_report(logits, targets, class_names)
    out = {"test_balanced_accuracy": metrics["balanced_accuracy"], "test_macro_f1": metrics["macro_f1"],
           "test_accuracy": metrics["accuracy"],
           "test_ece": expected_calibration_error(logits.softmax(1), targets)}
    for name in rare:
        out[f"recall_{name}"] = float(report.loc[name, "recall"])
    return out


def rare_classes(run_dir: Path, class_names: Sequence[str], n: int = 2) -> list[str]:
    """The ``n`` classes with the fewest training images of a run."""
    counts = _train_counts(run_dir, len(class_names))
    return [class_names[i] for i in np.argsort(counts, kind="stable")[:n]]


def remedy_scores(rows: pd.DataFrame, rare: Sequence[str] = (), n_resamples: int = 200,
                  baseline: str = "cross_entropy") -> pd.DataFrame:
    """Per run of a remedies sweep (``remedy`` column): test balanced accuracy, macro-F1, accuracy, ECE (of the
    probabilities as trained, before any temperature) and the recall of each ``rare`` class (default: the two
    with the fewest training images). Each ``baseline`` run adds a ``logit_adjustment`` row: its logits minus
    ``tau * log(train prior)``, ``tau`` chosen on validation balanced accuracy
    (:func:`medvision.metrics.imbalance.fit_logit_adjustment`)."""
    out = []
    for _, row in rows.iterrows():
        ev = evaluate_run(row["run_dir"], n_resamples=n_resamples)
        names = list(ev.class_names)
        chosen = list(rare) or rare_classes(Path(row["run_dir"]), names)
        unknown = sorted(set(chosen) - set(names))
        if unknown:
            raise ConfigError(f"rare classes {unknown} are not classes of {row['dataset']} ({names})")
        facts = {"dataset": row["dataset"], "seed": row["seed"], "strategy": row["strategy"]}
        out.append({**facts, "remedy": row["remedy"], "tau": float("nan"),
                    **_scores(ev.test_logits, ev.test_targets, names, chosen)})
        if row["remedy"] == baseline:
            prior = prior_from_counts(_train_counts(Path(row["run_dir"]), len(names)))
            fit = fit_logit_adjustment(ev.val_logits, ev.val_targets, prior)
            out.append({**facts, "remedy": "logit_adjustment", "tau": fit.tau,
                        **_scores(fit.apply(ev.test_logits, prior), ev.test_targets, names, chosen)})
    if not out:  # no data set ran here
        return pd.DataFrame(columns=["dataset", "seed", "strategy", "remedy", "tau", "test_balanced_accuracy",
                                     "test_macro_f1", "test_ece"])
    return pd.DataFrame(out)


def describe_remedies(means: pd.DataFrame, metric: str = "test_balanced_accuracy",
                      baseline: str = "cross_entropy") -> str:
    """Sentences from remedy means (:func:`seed_means` by data set and remedy): the best remedy by ``metric``
    with its interval against plain cross-entropy, what it does to calibration (ECE) and to the rare classes'
    recall, and the best-calibrated remedy."""
    label = metric.removeprefix("test_").replace("_", " ")
    parts = []
    for dataset, group in means.groupby("dataset", sort=False):
        group = group.set_index("remedy")
        best = group[metric].idxmax()
        b, base = group.loc[best], group.loc[baseline] if baseline in group.index else None
        text = f"On **{dataset}**, the best remedy by mean test {label} is **{best}**: {_interval(b, metric)}"
        if base is not None and best != baseline:
            text += (f", against plain {baseline}'s {_interval(base, metric)} ({_separation(b, base, metric)}). "
                     f"Its ECE is {b['test_ece']:.3f} against {base['test_ece']:.3f}")
            recalls = [c for c in group.columns if c.startswith("recall_") and not c.endswith(("_low", "_high"))
                       and group[c].notna().all()]  # each data set's own rare classes
            if recalls:
                text += "; rare-class recall " + ", ".join(
                    f"{c.removeprefix('recall_')} {b[c]:.2f} against {base[c]:.2f}" for c in recalls)
        elif best == baseline:
            text += ": no remedy beats plain cross-entropy on average"
        calibrated = group["test_ece"].idxmin()
        text += (f". The best-calibrated is {calibrated} (ECE {group.loc[calibrated, 'test_ece']:.3f}); the worst, "
                 f"{group['test_ece'].idxmax()} ({group['test_ece'].max():.3f}).")
        parts.append(text)
    return "\n\n".join(parts) if parts else "No finished runs."


# ------------------------------------------------------------------------------------------- resolution
def knee(means: pd.DataFrame, metric: str) -> int:
    """One data set's smallest input size whose mean ``metric`` reaches the lower end of the best size's seed
    interval (the best size itself with one seed): beyond it, larger inputs buy nothing beyond seed noise."""
    best = means.loc[means[metric].idxmax()]
    floor = best[f"{metric}_low"] if np.isfinite(best[f"{metric}_low"]) else best[metric]
    reached = means[means[metric] >= floor]
    return int(reached["input_px"].min())


def describe_resolution(means: pd.DataFrame, metric: str = "test_macro_f1") -> str:
    """Sentences from resolution means (:func:`seed_means` by data set, ``input_px``, strategy): the score at
    the smallest and the best size, the knee and what an epoch costs beyond it."""
    label = metric.removeprefix("test_").replace("_", " ")
    parts = []
    for dataset, group in means.groupby("dataset", sort=False):
        group = group.sort_values("input_px")
        smallest, largest = group.iloc[0], group.iloc[-1]
        best = group.loc[group[metric].idxmax()]
        at = knee(group, metric)
        k = group[group["input_px"] == at].iloc[0]
        reach = ("within the best size's 95% seed interval" if np.isfinite(best[f"{metric}_low"])
                 else "the best size's score (one seed: no interval)")
        text = (f"On **{dataset}**, mean test {label} is {_interval(smallest, metric)} at {smallest.input_px:.0f} px "
                f"and {_interval(best, metric)} at its best size, {best.input_px:.0f} px. The knee is at "
                f"**{at} px**: it scores {k[metric]:.3f}, {reach}")
        if at < largest.input_px:
            text += (f", while an epoch at {largest.input_px:.0f} px takes {largest.seconds_per_epoch:.1f} s against "
                     f"{k.seconds_per_epoch:.1f} s at {at} px "
                     f"({largest.seconds_per_epoch / max(k.seconds_per_epoch, 1e-9):.1f}x).")
        else:
            text += "; the largest size tried is still the best, so a larger input may pay more."
        parts.append(text)
    return "\n\n".join(parts) if parts else "No finished runs."


def describe_resolution_by_strategy(means: pd.DataFrame, metrics: Sequence[str] = ("test_macro_f1", "test_auroc")
                                    ) -> str:
    """:func:`describe_resolution` for every strategy and metric, one paragraph each."""
    return "\n\n".join(f"**{strategy}, {metric.removeprefix('test_')}.** " + describe_resolution(group, metric)
                         for strategy, group in means.groupby("strategy", sort=False) for metric in metrics)


def remedy_means(scores: pd.DataFrame) -> pd.DataFrame:
    """:func:`seed_means` of a remedies sweep's :func:`remedy_scores` by data set and remedy: balanced accuracy,
    macro-F1, ECE and the recall of each rare class scored."""
    recalls = [c for c in scores if c.startswith("recall_")]
    return seed_means(scores, ["dataset", "remedy"], ["test_balanced_accuracy", "test_macro_f1", "test_ece", *recalls])
