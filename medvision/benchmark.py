"""Benchmark tables: our runs over data sets x strategies x seeds, beside published MedMNIST anchors.

Published numbers are read from ``medvision/resources/anchors/medmnist_v2_benchmark.csv`` and never mixed into our
columns. ACC and AUC are computed as the anchors define them (argmax = 0.5 threshold for binary; one-vs-rest
macro AUC), which is what :func:`medvision.metrics.classification_metrics` returns as ``accuracy`` / ``auroc``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from medvision.errors import DataNotFoundError
from medvision.resources import anchors_file
from medvision.run_config import RunConfig, merge
from medvision.run_dir import RunDirectory

METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "auroc")


def dataset_config(dataset: str, overrides: Mapping[str, Any] | None = None,
                   per_dataset: Mapping[str, Mapping[str, Any]] | None = None) -> RunConfig:
    """The configuration of one benchmarked data set: ``RunConfig.load(dataset)`` (a MedMNIST flag or a
    ``configs/`` system) with the chapter's ``overrides``, then ``per_dataset[dataset]``'s (the same schema, e.g.
    ``{"breastmnist": {"train": {"epochs": 30}}}``).

    Raises:
        ConfigError: an entry of ``per_dataset`` — any, not only ``dataset``'s — sets an unknown section or field.
    """
    per_dataset = dict(per_dataset or {})
    for name, extra in per_dataset.items():
        where = f"per_dataset[{name!r}]"
        RunConfig.from_dict(merge({}, extra, where=where), where)
    return RunConfig.load(dataset, [overrides or {}, per_dataset.get(dataset, {})])


def strategy_config(spec: str, config: RunConfig) -> RunConfig:
    """The configuration of one strategy: head-only runs train the classifier on cached features with flips only
    (as linear probes are trained, and without a backbone pass per epoch); the strategies that train the
    backbone use the data set's augmentation."""
    if spec == "head_only" and config.experiment.augment not in ("none", "flip"):
        return config.override({"experiment": {"augment": "flip"}})
    return config


def load_anchors(path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """The published anchor table (data set, method, resolution, test AUC / ACC, pretrained, source); by
    default the one medvision ships (``medvision/resources/anchors/medmnist_v2_benchmark.csv``)."""
    source = anchors_file() if path is None else Path(path)
    if not source.is_file():
        raise DataNotFoundError(f"published anchors not found at {source}")
    with source.open("r", encoding="utf-8") as fh:
        return pd.read_csv(fh)


def collect(run_dirs: list[Path]) -> pd.DataFrame:
    """One row per finished run: data set, strategy, seed and its test (and validation) metrics.

    Expects run directories laid out as ``<dataset>/seed<k>/<run>`` below a common root.
    """
    rows = []
    for d in run_dirs:
        s = RunDirectory(d).summary()
        seed_dir, dataset_dir = d.parent, d.parent.parent
        rows.append({"dataset": dataset_dir.name, "run": s["run"], "seed": int(seed_dir.name.removeprefix("seed")),
                     **{f"test_{m}": s["test"][m] for m in METRICS}, **{f"val_{m}": s["val"][m] for m in METRICS}})
    return pd.DataFrame(rows)


def seed_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of every test metric, per data set and run."""
    cols = [f"test_{m}" for m in METRICS]
    grouped = runs.groupby(["dataset", "run"])[cols]
    mean, sd = grouped.mean(), grouped.std(ddof=1)
    out = pd.concat({"mean": mean, "sd": sd}, axis=1).swaplevel(axis=1).sort_index(axis=1)
    out[("seeds", "n")] = grouped.size()
    return out


def versus_anchors(summary: pd.DataFrame, anchors: pd.DataFrame, resolution: int = 28) -> pd.DataFrame:
    """Our runs (rows of :func:`seed_summary`, usually one chosen per data set on validation) against every
    published non-AutoML row at ``resolution``, by mean test ACC and AUC over seeds."""
    rows = []
    automl = ("auto-sklearn", "AutoKeras", "Google AutoML Vision")
    for (dataset, run), row in summary.iterrows():
        pub = anchors[(anchors["dataset"] == dataset) & (anchors["resolution"] == resolution)
                      & ~anchors["method"].isin(automl)]
        for _, a in pub.iterrows():
            acc, auc = row[("test_accuracy", "mean")], row[("test_auroc", "mean")]
            rows.append({"dataset": dataset, "ours": run, "our_acc": acc, "our_auc": auc,
                         "published": a["method"], "pub_acc": a["test_acc"], "pub_auc": a["test_auc"],
                         "beats_acc": acc > a["test_acc"], "beats_auc": auc > a["test_auc"]})
    return pd.DataFrame(rows)


def describe_versus(table: pd.DataFrame) -> str:
    """Plain sentences: where our chosen runs beat every published non-AutoML row, and where they don't."""
    if table.empty:
        return "No data set has published anchors at this resolution."
    parts = []
    for dataset, rows in table.groupby("dataset"):
        run = rows["ours"].iloc[0]
        lost = rows[~(rows["beats_acc"] & rows["beats_auc"])]
        if lost.empty:
            parts.append(f"On **{dataset}**, {run} beats every published non-AutoML row in both ACC and AUC.")
        else:
            worse = "; ".join(f"{r.published} (ACC {r.pub_acc:.3f} vs ours {r.our_acc:.3f}, AUC {r.pub_auc:.3f} "
                              f"vs {r.our_auc:.3f})" for r in lost.itertuples())
            parts.append(f"On **{dataset}**, {run} does not beat: {worse}.")
    return " ".join(parts)


def chosen_on_validation(runs: pd.DataFrame, metric: str = "macro_f1") -> dict[str, str]:
    """Per data set, the run (strategy) with the best mean *validation* ``metric`` over seeds."""
    means = runs.groupby(["dataset", "run"])[f"val_{metric}"].mean()
    return {dataset: means.loc[dataset].idxmax() for dataset in means.index.get_level_values(0).unique()}
