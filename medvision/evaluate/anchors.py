"""Benchmark tables: our runs over data sets x strategies x seeds, beside published MedMNIST anchors.

Published numbers are read from ``medvision/resources/anchors/medmnist_v2_benchmark.csv`` and never mixed into our
columns. ACC and AUC are computed as the anchors define them (argmax = 0.5 threshold for binary; one-vs-rest
macro AUC), which is what :func:`medvision.metrics.classification.classification_metrics` returns as ``accuracy`` / ``auroc``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from medvision.config.choices import HEADLINE_METRICS
from medvision.config.run import RunConfig
from medvision.core.errors import ConfigError, DataNotFoundError, MixedRunsError
from medvision.evaluate.evaluation import binary_positive, evaluate_run
from medvision.metrics.classification import ResampleTerms
from medvision.metrics.intervals import VERDICTS, Interval, metric_intervals, seeds_and_cases
from medvision.metrics.operating_point import choose_threshold, positive_scores, rates
from medvision.resources import anchors_file

METRICS = HEADLINE_METRICS


def load_anchors(path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """The published anchor table (data set, method, resolution, test AUC / ACC, pretrained, source); by
    default the one medvision ships (``medvision/resources/anchors/medmnist_v2_benchmark.csv``)."""
    source = anchors_file() if path is None else Path(path)
    if not source.is_file():
        raise DataNotFoundError(f"published anchors not found at {source}")
    with source.open("r", encoding="utf-8") as fh:
        return pd.read_csv(fh)


def collect(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per trained run of a sweep (the rows of :func:`medvision.train.sweeps.run_sweep`): data set, run
    (its folder's name: ``last_k-2``, ``full-scratch``), seed, and its test and validation metrics. Rows without
    a run directory (the frozen-feature baseline) are left out."""
    columns = [f"{split}_{m}" for split in ("test", "val") for m in METRICS]
    if rows.empty or "run_dir" not in rows:  # no data set ran here
        return pd.DataFrame(columns=["dataset", "run", "seed", *columns])
    runs = rows[rows["run_dir"].fillna("").astype(str) != ""]
    return pd.DataFrame({"dataset": runs["dataset"].to_numpy(), "run": [Path(d).name for d in runs["run_dir"]],
                         "seed": runs["seed"].astype(int).to_numpy(), **{c: runs[c].to_numpy() for c in columns}})


def seed_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of every test metric, per data set and run."""
    cols = [f"test_{m}" for m in METRICS]
    grouped = runs.groupby(["dataset", "run"])[cols]
    mean, sd = grouped.mean(), grouped.std(ddof=1)
    out = pd.concat({"mean": mean, "sd": sd}, axis=1).swaplevel(axis=1).sort_index(axis=1)
    out[("seeds", "n")] = grouped.size()
    return out


def seed_interval(mean: float, sd: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """The two-sided ``level`` t-interval of a mean over ``n`` seeds (``(nan, nan)`` for one seed): the evidence
    chapters' interval, which leaves test-sampling error out (the benchmark uses the book's interval,
    :mod:`medvision.metrics.intervals`)."""
    from scipy import stats

    if n < 2 or not np.isfinite(sd):
        return float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / np.sqrt(n)
    return mean - half, mean + half


def versus_anchors(ours: Mapping[str, tuple[str, Mapping[str, Interval]]], anchors: pd.DataFrame,
                   resolution: int = 28) -> pd.DataFrame:
    """Our chosen run per data set (:func:`chosen_intervals`: its mean test ACC and AUC over seeds with the book's
    interval) against every published non-AutoML row at ``resolution``, with the verdict each interval earns
    (:func:`medvision.metrics.intervals.verdict`: ``ahead``, ``behind``, ``inconclusive``)."""
    rows = []
    automl = ("auto-sklearn", "AutoKeras", "Google AutoML Vision")
    for dataset, (run, intervals) in ours.items():
        pub = anchors[(anchors["dataset"] == dataset) & (anchors["resolution"] == resolution)
                      & ~anchors["method"].isin(automl)]
        acc, auc = intervals["accuracy"], intervals["auroc"]
        for _, a in pub.iterrows():
            rows.append({"dataset": dataset, "ours": run, "seeds": acc.seeds, "test images": acc.cases,
                         "our_acc": acc.estimate, "our_acc_low": acc.lower, "our_acc_high": acc.upper,
                         "our_auc": auc.estimate, "our_auc_low": auc.lower, "our_auc_high": auc.upper,
                         "published": a["method"], "pub_acc": a["test_acc"], "pub_auc": a["test_auc"],
                         "acc": acc.verdict(a["test_acc"]), "auc": auc.verdict(a["test_auc"])})
    return pd.DataFrame(rows)


def describe_versus(table: pd.DataFrame) -> str:
    """Plain sentences from :func:`versus_anchors`: per data set, the published rows our chosen run is ahead of,
    inconclusive against, or behind, in ACC and AUC."""
    if table.empty:
        return "No data set has published anchors at this resolution."
    parts = []
    for dataset, rows in table.groupby("dataset"):
        run, n, cases = rows["ours"].iloc[0], int(rows["seeds"].iloc[0]), int(rows["test images"].iloc[0])
        first = rows.iloc[0]
        text = (f"On **{dataset}**, {run} scores ACC {first.our_acc:.3f} (95% interval {first.our_acc_low:.3f} to "
                f"{first.our_acc_high:.3f} over {n} seed{'s' if n != 1 else ''} and {cases:,} test images) and AUC "
                f"{first.our_auc:.3f} ({first.our_auc_low:.3f} to {first.our_auc_high:.3f}).")
        for metric, label in (("acc", "ACC"), ("auc", "AUC")):
            groups = {v: [f"{r.published} ({getattr(r, f'pub_{metric}'):.3f})" for r in rows.itertuples()
                          if getattr(r, metric) == v] for v in VERDICTS}
            said = [f"{word} {', '.join(groups[v])}" for v, word in
                    (("ahead", "is **ahead** of"), ("inconclusive", "is **inconclusive** against"),
                     ("behind", "is **behind**")) if groups[v]]
            text += f" In {label} it {'; '.join(said)}."
        parts.append(text)
    return " ".join(parts)


def _seed_evaluations(run_dirs: Sequence[str | os.PathLike[str]], n_resamples: int) -> list:
    """Each seed's evaluation (test and validation logits), checked to be on the same test images."""
    evs = [evaluate_run(d, n_resamples=n_resamples) for d in run_dirs]  # the settings chapter 06 evaluates with
    if any(list(ev.test_ids) != list(evs[0].test_ids) or not torch.equal(ev.test_targets, evs[0].test_targets)
           for ev in evs[1:]):
        raise MixedRunsError(f"the runs {[Path(d).name for d in run_dirs]} of one comparison were not tested on "
                             "the same images")
    return evs


def chosen_intervals(rows: pd.DataFrame, n_resamples: int = 1000, seed: int = 0
                     ) -> dict[str, tuple[str, dict[str, Interval]]]:
    """Per data set of a sweep, the run chosen on validation (:func:`chosen_on_validation`) and its headline test
    metrics' means over seeds with the book's interval (:func:`medvision.metrics.intervals.metric_intervals`)."""
    runs = collect(rows)
    out = {}
    for dataset, run in (chosen_on_validation(runs) if not runs.empty else {}).items():
        evs = _seed_evaluations(seed_runs(rows, dataset, run), n_resamples)
        out[dataset] = (run, metric_intervals([ev.test_logits for ev in evs], evs[0].test_targets, n_resamples,
                                              seed=seed))
    return out


def chosen_on_validation(runs: pd.DataFrame, metric: str = "macro_f1") -> dict[str, str]:
    """Per data set, the run (strategy) with the best mean *validation* ``metric`` over seeds."""
    means = runs.groupby(["dataset", "run"])[f"val_{metric}"].mean()
    return {dataset: means.loc[dataset].idxmax() for dataset in means.index.get_level_values(0).unique()}


#: What the benchmark page says before a seed system's comparison with its reference.
REFERENCE_METHOD = (
    "## A seed system against its published reference\n\n"
    "A seed system's configuration names what was published for it (or what its seed project expected). The "
    "strategy chosen on validation is set beside it with the book's interval: a bootstrap over the seeds and the "
    "test images together, so both another seed and another draw of test images are in it. The verdict is "
    "**ahead** when the whole interval lies above the published number, **behind** when it lies wholly below, "
    "and **inconclusive** otherwise. Sensitivity and specificity are read at a threshold chosen on each seed's "
    "validation split, never on test.")


def seed_runs(rows: pd.DataFrame, dataset: str, run: str) -> list[Path]:
    """The run directories of one data set's ``run`` (a strategy's folder name), one per seed, in seed order."""
    picked = rows[(rows["dataset"] == dataset) & (rows["run_dir"].fillna("").astype(str) != "")]
    picked = picked[[Path(d).name == run for d in picked["run_dir"]]].sort_values("seed")
    return [Path(d) for d in picked["run_dir"]]


def versus_reference(run_dirs: Sequence[str | os.PathLike[str]], reference: dict, n_resamples: int = 1000,
                     seed: int = 0) -> pd.DataFrame:
    """A system's seeds against its published or expected reference (``RunConfig.reference``).

    Each reference metric gets our mean over the seeds of ``run_dirs`` (the same strategy and test images) with
    the book's interval (:func:`medvision.metrics.intervals.seeds_and_cases`) and a verdict: against a single
    number, *ahead* / *behind* / *inconclusive*; against a ``[low, high]`` range (a seed project's expected
    band), the same words against the range's floor. The headline metrics are read at the argmax (as the
    published tables define them); a binary reference's sensitivity and specificity at a threshold chosen on
    each seed's *validation* split: the reference's sensitivity kept (the specificity it then gives is the
    comparison), else Youden's J.
    """
    metrics = dict(reference.get("metrics", {}))
    if not run_dirs or not metrics:
        return pd.DataFrame()
    evs = _seed_evaluations(run_dirs, n_resamples)
    targets = evs[0].test_targets
    terms = [ResampleTerms(ev.test_logits, targets) for ev in evs]
    thresholded = {"sensitivity", "specificity"} & set(metrics)
    point, skipped = "", ""
    if thresholded:
        if len(evs[0].class_names) != 2:
            raise ConfigError(f"the reference's {sorted(thresholded)} need a two-class task")
        positive = evs[0].class_names.index(binary_positive(evs[0], reference))
        target = metrics.get("sensitivity")
        rule = ("sensitivity", float(target)) if isinstance(target, int | float) else ("youden", None)
        try:
            chosen = [choose_threshold(positive_scores(ev.val_logits, positive),
                                       (ev.val_targets.numpy() == positive).astype(int), *rule) for ev in evs]
            point = chosen[0].label.replace("threshold from val", "threshold chosen on validation")
        except ConfigError as exc:  # a validation split without both classes, or a floor it never reaches
            skipped, thresholded = f"no validation threshold: {exc}", set()
        scores = [positive_scores(ev.test_logits, positive) for ev in evs]
        is_pos = targets.numpy() == positive

    def score(s: int, idx: np.ndarray) -> dict[str, float]:
        out = terms[s].metrics(idx)[0]
        if thresholded:
            at = rates(scores[s][idx], is_pos[idx].astype(int), chosen[s].value)
            out["sensitivity"], out["specificity"] = at["sensitivity"], at["specificity"]
        return out

    intervals = seeds_and_cases(score, len(evs), int(targets.shape[0]), n_resamples, seed=seed)
    rows = []
    for metric, ref in metrics.items():
        band = isinstance(ref, list | tuple)
        floor = float(ref[0]) if band else float(ref)
        shown = f"{float(ref[0]):.2f}-{float(ref[1]):.2f}" if band else f"{floor:.3f}"
        if skipped and metric in ("sensitivity", "specificity"):
            rows.append({"metric": metric, "operating point": skipped, "ours": np.nan, "low": np.nan,
                         "high": np.nan, "seeds": len(evs), "test images": int(targets.shape[0]),
                         "reference": shown, "verdict": "not computed"})
            continue
        if metric not in intervals:
            raise ConfigError(f"the reference names {metric!r}; a reference may give {sorted(intervals)}")
        iv = intervals[metric]
        if metric in thresholded and rule[0] == metric:  # the threshold keeps it on validation: not a finding
            where = f"{point}; kept there by construction"
        else:
            where = point if metric in thresholded else "argmax"
        rows.append({"metric": metric, "operating point": where,
                     "ours": iv.estimate, "low": iv.lower, "high": iv.upper, "seeds": iv.seeds,
                     "test images": iv.cases, "reference": shown,
                     "verdict": iv.verdict(floor) + (" (of the range's floor)" if band else "")})
    return pd.DataFrame(rows).set_index("metric")


def describe_reference(table: pd.DataFrame, reference: dict, dataset: str, run: str) -> str:
    """One sentence per metric of :func:`versus_reference`."""
    if table.empty:
        return ""
    n, cases = int(table["seeds"].iloc[0]), int(table["test images"].iloc[0])
    parts = [f"{m.replace('_', ' ')} {r.ours:.3f} (95% interval {r.low:.3f} to {r.high:.3f}"
             + (f", {r['operating point']}" if r["operating point"] != "argmax" else "") + f") is **{r.verdict}** "
             f"against {r.reference}" for m, r in table.iterrows()]
    return (f"On **{dataset}**, {run} (chosen on validation; mean of {n} seed{'s' if n != 1 else ''}, interval "
            f"over seeds and the {cases:,} test images) against {reference.get('source', 'the reference')}: "
            + "; ".join(parts) + ".")


def reference_comparisons(rows: pd.DataFrame, configs: Mapping[str, RunConfig], n_resamples: int = 1000
                          ) -> list[tuple[str, pd.DataFrame, str]]:
    """Per data set of a sweep whose configuration has a ``reference`` (a seed system): the strategy chosen on
    validation, its seeds against the reference (:func:`versus_reference`) and the sentence saying so."""
    runs = collect(rows)
    if runs.empty:
        return []
    chosen = chosen_on_validation(runs)
    out = []
    for name, config in configs.items():
        if not config.reference or name not in chosen:
            continue
        table = versus_reference(seed_runs(rows, name, chosen[name]), config.reference, n_resamples)
        out.append((name, table, describe_reference(table, config.reference, name, chosen[name])))
    return out
