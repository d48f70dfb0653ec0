"""Benchmark tables: our runs over data sets x strategies x seeds, beside published MedMNIST anchors.

Published numbers are read from ``medvision/resources/anchors/medmnist_v2_benchmark.csv`` and never mixed into our
columns. ACC and AUC are computed as the anchors define them (argmax = 0.5 threshold for binary; one-vs-rest
macro AUC), which is what :func:`medvision.metrics.classification_metrics` returns as ``accuracy`` / ``auroc``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

import pandas as pd

from medvision.errors import ConfigError, DataNotFoundError
from medvision.experiment import ExperimentConfig
from medvision.resources import anchors_file
from medvision.run_dir import RunDirectory

METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "auroc")


@dataclass(frozen=True)
class Settings:
    """How the benchmark trains on one data set (the chapter's parameters, overridable per data set).

    Attributes:
        epochs: Maximum epochs per run.
        augment: ``none``, ``flip`` or ``default``.
        lr: Head learning rate (the whole network's under ``full``).
        image_size: Model input size.
        ema_decay: Weight-average decay (0: off); see :class:`medvision.training.TrainConfig`.
        patience: Early-stopping patience in epochs (0: train every epoch, still select on validation).
        tta: Test-time augmentation of validation and test scores, ``none`` or ``hflip``; see
            :class:`medvision.training.TrainConfig`.
    """

    epochs: int = 6
    augment: str = "flip"
    lr: float = 1e-3
    image_size: int = 64
    ema_decay: float = 0.0
    patience: int = 5
    tta: str = "none"


def settings_for(dataset: str, base: Settings, per_dataset: dict[str, dict]) -> Settings:
    """``base`` with ``per_dataset[dataset]``'s overrides (e.g. ``{"breastmnist": {"epochs": 30}}``).

    Raises:
        ValueError: an override names a setting that does not exist.
    """
    known = {f.name for f in fields(Settings)}
    for name, overrides in per_dataset.items():
        unknown = set(overrides) - known
        if unknown:
            raise ConfigError(f"per_dataset[{name!r}] sets {sorted(unknown)}; a data set may override "
                             f"{sorted(known)}")
    return replace(base, **per_dataset.get(dataset, {}))


def experiment_for(spec: str, exp: ExperimentConfig) -> ExperimentConfig:
    """The experiment settings of one strategy: head-only runs train the classifier on cached features with
    flips only (as linear probes are trained, and without a backbone pass per epoch); the strategies that
    train the backbone use the data set's augmentation."""
    if spec == "head_only" and exp.augment not in ("none", "flip"):
        return replace(exp, augment="flip")
    return exp


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
