"""The sentences and small tables the chapters show, computed from their runs' results.

Each function takes results (a table, summaries, evaluations) and returns a ``DataFrame`` or a Markdown
sentence; every number in a sentence is read from what is passed in. Chapters call these and display them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from medvision.config.choices import HEADLINE_METRICS
from medvision.evaluate.evaluation import Evaluation


def describe_weights(summaries: list[dict]) -> str:
    """Which weights each run started from, and why where a fallback architecture was trained."""
    text = "Weights each run started from: " + "; ".join(f"**{s['run']}**: {s['weights']}" for s in summaries) + "."
    notes = list(dict.fromkeys(s.get("weights_note", "") for s in summaries if s.get("weights_note")))
    return text + "".join(f" Note: {n[0].upper()}{n[1:]}." for n in notes)


def describe_comparison(table: pd.DataFrame, metric: str = "macro_f1") -> str:
    """Sentences computed from the comparison table. Runs are ranked on *validation* ``metric``; their test
    value is reported, never used to choose."""
    if table.empty:
        return "No finished runs to compare."
    label = metric.replace("_", " ")
    val, test = f"val_{metric}", f"test_{metric}"
    best = table[val].idxmax()
    parts = [f"The run with the best validation {label} is **{best}** (validation {table.loc[best, val]:.3f}, "
             f"test {table.loc[best, test]:.3f})."]
    scratch = table[table["weights"] == "none"]
    pretrained = table[table["weights"] != "none"]
    if not scratch.empty and not pretrained.empty:
        p_best, s_best = pretrained[val].idxmax(), scratch[val].idxmax()
        gain = pretrained.loc[p_best, test] - scratch.loc[s_best, test]
        parts.append(f"On test, the best ImageNet-pretrained run ({p_best}) scores {gain:+.3f} {label} against "
                     f"the same backbone trained from random initialisation ({s_best}) with the same budget.")
    fastest = table["s_per_epoch"].idxmin()
    parts.append(f"The cheapest run per epoch is {fastest} ({table.loc[fastest, 's_per_epoch']:.2f} s/epoch).")
    return " ".join(parts)


# ------------------------------------------------------------------------------------ calibration (04)
def calibration_across(evals: Mapping[str, Evaluation]) -> pd.DataFrame:
    """One row per run: its temperature (and whether it was fitted), test accuracy, and test ECE, NLL and Brier
    score before and after temperature scaling."""
    rows = []
    for name, e in evals.items():
        t = e.calibration
        rows.append({"run": name, "temperature": e.temperature, "fitted": e.temperature_fit.used,
                     "accuracy": e.metrics["accuracy"],
                     "ece_before": t.loc["before", "ece"], "ece_after": t.loc["after", "ece"],
                     "nll_before": t.loc["before", "nll"], "nll_after": t.loc["after", "nll"],
                     "brier_after": t.loc["after", "brier"]})
    return pd.DataFrame(rows).set_index("run")


def describe_calibration_across(across: pd.DataFrame) -> str:
    """How many runs temperature scaling helped, and the range of the temperatures."""
    if across.empty:
        return "No evaluated runs."
    lower = int((across["ece_after"] < across["ece_before"]).sum())
    return (f"Temperature scaling lowered the test ECE of {lower} of {len(across)} runs; fitted temperatures range "
            f"from {across['temperature'].min():.2f} to {across['temperature'].max():.2f} (above 1: the network "
            "was over-confident). Accuracy is unchanged by construction: dividing logits by T keeps their ranking.")


def describe_abstention(run: str, target_accuracy: float, coverage: float, threshold: float) -> str:
    """What abstaining costs to reach ``target_accuracy`` on the answered cases (from
    :func:`medvision.metrics.calibration.coverage_for_accuracy`)."""
    if coverage <= 0:
        return f"{run} does not reach {target_accuracy:.0%} accuracy at any coverage."
    return (f"To reach {target_accuracy:.0%} accuracy on the cases it answers, {run} must abstain below a "
            f"calibrated confidence of {threshold:.4f}, answering {coverage:.1%} of the test cases.")


# ------------------------------------------------------------------------------ feature baselines (05)
def versus_finetuned(baselines: pd.DataFrame, finetuned: pd.DataFrame | None,
                     metrics: Sequence[str] = HEADLINE_METRICS) -> pd.DataFrame:
    """The test metrics of the classifiers on frozen features beside those of the fine-tuned runs (the table of
    :func:`medvision.train.runner.compare_runs`; ``None`` or empty when there are none), one row each."""
    cols = [f"test_{m}" for m in metrics]
    rows = [baselines[cols].assign(kind="frozen features + " + baselines.index.to_series())]
    if finetuned is not None and not finetuned.empty:
        rows.append(finetuned[cols].assign(kind="network: " + finetuned.index.to_series()))
    return pd.concat(rows).set_index("kind")


def describe_feature_baselines(baselines: pd.DataFrame, finetuned: pd.DataFrame | None,
                               metric: str = "macro_f1") -> str:
    """The best classifier on frozen features and the best network, each chosen on validation, and the test gap
    between them."""
    label = metric.replace("_", " ")
    best_classic = baselines[f"val_{metric}"].idxmax()
    text = (f"Chosen on validation, the best classical model is **{best_classic}** "
            f"(test {label} {baselines.loc[best_classic, f'test_{metric}']:.3f}).")
    if finetuned is not None and not finetuned.empty:
        best_net = finetuned[f"val_{metric}"].idxmax()
        gap = finetuned.loc[best_net, f"test_{metric}"] - baselines.loc[best_classic, f"test_{metric}"]
        text += f" The best network by validation ({best_net}) is {gap:+.3f} test {label} away from it."
    else:
        text += " No fine-tuned run was found to compare with: run the training-strategies chapter first."
    return text
