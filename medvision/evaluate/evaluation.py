"""Evaluate a finished run directory: test metrics with bootstrap CIs, per-class report, predictions CSV,
temperature fitted on validation, calibration before/after. Results are written next to the checkpoints.

Files written to the run directory: ``evaluation.json``, ``predictions.csv`` (test cases, calibrated
probabilities and raw logits), ``temperature.json`` and ``logits.pt`` (val/test logits, for the chapters).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from medvision import plots
from medvision.config.choices import HEADLINE_METRICS
from medvision.config.run import RunConfig
from medvision.core.atomic import atomic_path
from medvision.core.errors import (  # noqa: F401  (MixedRunsError: importable from here)
    ConfigError,
    MixedRunsError,
    RunDirectoryError,
)
from medvision.data.cache import TensorCache
from medvision.data.leakage import audit_of
from medvision.data.loader import TensorLoader
from medvision.data.pipeline import load_cached_split
from medvision.metrics.calibration import (
    TemperatureFit,
    calibrate_temperature,
    calibration_table,
    reliability_bins,
)
from medvision.metrics.classification import (
    bootstrap_ci,
    detailed_metrics,
    per_class_report,
    predictions_table,
)
from medvision.metrics.operating_point import operating_points
from medvision.models.backbones import create_model, with_tta
from medvision.models.checkpoints import load_checkpoint, save_atomic
from medvision.models.saliency import gradcam, overlay
from medvision.train.loop import predict_logits
from medvision.train.run_dir import RunDirectory, with_defaults
from medvision.train.runner import make_loaders

#: Part of an evaluation's settings: evaluations saved before the temperature guard are recomputed.
CALIBRATION_VERSION = "guarded-1+clean-test"


@dataclass
class LoadedRun:
    """A run rebuilt from its directory: configuration, best model, the same data split and loaders."""

    run_dir: Path
    config: RunConfig
    model: nn.Module
    cache: TensorCache
    class_names: tuple[str, ...]
    loaders: dict[str, TensorLoader]
    tta: str = "none"  # the test-time augmentation the run is scored with (chosen on validation under auto)


@dataclass
class Evaluation:
    """Logits and the tables computed from them (also saved in the run directory)."""

    run_dir: Path
    class_names: tuple[str, ...]
    temperature: float
    val_logits: torch.Tensor
    val_targets: torch.Tensor
    test_logits: torch.Tensor
    test_targets: torch.Tensor
    test_ids: list[str]
    metrics: dict
    ci: pd.DataFrame
    per_class: pd.DataFrame
    calibration: pd.DataFrame
    temperature_fit: TemperatureFit
    clean: dict  # clean_test(): metrics on the test images with no duplicate in train/val

    @property
    def calibrated_test_probs(self) -> torch.Tensor:
        """The test split's class probabilities after temperature scaling."""
        return (self.test_logits / self.temperature).softmax(1)


def load_run(run_dir: str | os.PathLike[str], checkpoint: str = "best") -> LoadedRun:
    """Rebuild the model (from ``<checkpoint>.pt``) and the exact data split (from ``split.csv``) of a run."""
    rd = RunDirectory(run_dir)
    config = rd.run_config()
    data_cfg, exp = config.data, config.experiment
    cache = load_cached_split(replace(data_cfg, manifest=str(rd / rd.SPLIT)))
    table = cache.table
    model = create_model(exp.backbone, table.num_classes, pretrained="none", drop_rate=exp.drop_rate,
                         head_hidden=exp.head_hidden)
    model.load_state_dict(load_checkpoint(rd.checkpoint(checkpoint))["model"])
    model.eval()
    loaders = make_loaders(cache, model, exp, config.train.seed)
    return LoadedRun(rd.path, config, model, cache, table.class_names, loaders, rd.tta())


def evaluate_run(run_dir: str | os.PathLike[str], n_resamples: int = 1000, seed: int = 0, n_bins: int = 15,
                 force: bool = False) -> Evaluation:
    """Evaluate the best checkpoint of a run once on val (temperature) and test (metrics), and save it all.

    Reuses saved results when they are newer than ``best.pt`` and were made with the same settings.
    """
    rd = RunDirectory(run_dir)
    settings = {"n_resamples": n_resamples, "seed": seed, "n_bins": n_bins, "calibration": CALIBRATION_VERSION}
    if not force and rd.evaluation_is_current(settings):
        return _load_evaluation(rd)
    run = load_run(run_dir)
    device = torch.device("cpu")
    scored = with_tta(run.model, run.tta)  # as the run was scored
    val_logits, val_targets = predict_logits(scored, run.loaders["val"], device)
    test_logits, test_targets = predict_logits(scored, run.loaders["test"], device)
    fit = calibrate_temperature(val_logits, val_targets, split="val")
    temperature = fit.temperature
    test_ids = run.cache.table.frame.loc[run.cache.table.frame["split"] == "test", "sample_id"].tolist()
    save_atomic({"val_logits": val_logits, "val_targets": val_targets, "test_logits": test_logits,
                 "test_targets": test_targets, "test_ids": test_ids, "class_names": list(run.class_names),
                 "temperature": temperature}, rd / rd.LOGITS)
    rd.write_temperature(fit.to_dict())
    preds = predictions_table(test_logits, test_targets, test_ids, run.class_names, temperature)
    for j, name in enumerate(run.class_names):
        preds[f"logit[{name}]"] = test_logits[:, j].numpy()
    rd.write_predictions(preds)
    metrics = detailed_metrics(test_logits, test_targets)
    ci = bootstrap_ci(test_logits, test_targets, n_resamples, seed=seed, per_class_names=run.class_names)
    report = per_class_report(test_logits, test_targets, run.class_names)
    calib = calibration_table(test_logits, test_targets, temperature, n_bins)
    audit = rd.leakage()
    if audit is None:  # a run trained before audits were written
        audit = audit_of(run.cache.table, run.config.data.near_distance, run.config.data.on_error)
        rd.write_leakage(audit)
    clean = clean_test(test_logits, test_targets, test_ids, audit, n_resamples, seed)
    rd.write_evaluation({"split": "test", "settings": settings, "metrics": metrics,
                         "ci": ci.reset_index().to_dict(orient="records"),
                         "per_class": report.reset_index().to_dict(orient="records"),
                         "calibration": calib.reset_index(names="when").to_dict(orient="records"),
                         "temperature": temperature, "temperature_fit": fit.to_dict(), "clean_test": clean})
    return Evaluation(rd.path, run.class_names, temperature, val_logits, val_targets, test_logits, test_targets,
                      test_ids, metrics, ci, report, calib, fit, clean)


def clean_test(logits: torch.Tensor, targets: torch.Tensor, ids: list[str], audit: dict, n_resamples: int,
               seed: int) -> dict:
    """Test metrics on the test images with no duplicate (or shared group) in train/val, with bootstrap CIs:
    ``{"images", "excluded", "metrics", "ci"}`` (``metrics``/``ci`` are those of the whole split when nothing
    is excluded, and empty when everything is)."""
    leaking = set(audit.get("test_leaking", []))
    keep = torch.tensor([str(i) not in leaking for i in ids], dtype=torch.bool)
    out = {"images": int(keep.sum()), "excluded": int((~keep).sum()), "max_distance": audit.get("max_distance"),
           "similarity": {k: v for k, v in (audit.get("similarity") or {}).items() if k in ("verdict", "sentence")},
           "metrics": {}, "ci": [], "per_class": torch.bincount(targets[keep], minlength=logits.shape[1]).tolist(),
           "per_class_all": torch.bincount(targets, minlength=logits.shape[1]).tolist()}
    if keep.any():
        out["metrics"] = detailed_metrics(logits[keep], targets[keep])
        out["ci"] = bootstrap_ci(logits[keep], targets[keep], n_resamples, seed=seed).reset_index().to_dict(
            orient="records")
    return out


def describe_clean_test(ev: Evaluation, metric: str = "accuracy") -> str:
    """How many test images the leakage audit left out and what that does to ``metric``, and the feature-space
    verdict (or that it did not run: without it "no duplicate" rests on pixel hashes alone)."""
    return _clean_test_sentence(ev, metric) + " " + describe_similarity(ev.clean.get("similarity"))


def describe_similarity(similarity: dict | None) -> str:
    """The residual-similarity verdict of a run's split, or that the feature-space check did not run."""
    if similarity and similarity.get("sentence"):
        return similarity["sentence"]
    return ("The feature-space check did not run for this split (`data.dedupe: embedding` runs it), so this rests "
            "on pixel hashes alone: frames of one source that differ by a shift or a crop are not caught.")


def _clean_test_sentence(ev: Evaluation, metric: str) -> str:
    if not ev.clean["excluded"]:
        return (f"None of the {len(ev.test_ids)} test images has a duplicate in train/val (pHash distance <= "
                f"{ev.clean['max_distance']}), so both columns are the same.")
    if not ev.clean["images"]:
        return f"Every one of the {len(ev.test_ids)} test images has a duplicate in train/val: no clean score."
    whole, clean = ev.metrics[metric], ev.clean["metrics"][metric]
    text = (f"{ev.clean['excluded']} of {len(ev.test_ids)} test images have a duplicate or a shared group in "
            f"train/val (pHash distance <= {ev.clean['max_distance']}); without them, test {metric.replace('_', ' ')} "
            f"is {clean:.3f} against {whole:.3f} on the whole split ({clean - whole:+.3f}).")
    if "per_class" in ev.clean:  # a different class mix moves accuracy too: say what is left
        left = ", ".join(f"{n} {c}" for c, n in zip(ev.class_names, ev.clean["per_class"], strict=True))
        everything = ", ".join(f"{n}" for n in ev.clean["per_class_all"])
        text += f" The images left are {left} (whole split: {everything})."
    return text




def whole_and_clean(ci: pd.DataFrame, clean: dict, label: str = "test",
                    metrics: tuple[str, ...] = HEADLINE_METRICS) -> pd.DataFrame:
    """The headline metrics with 95% CIs on all images of ``label`` and on those with no duplicate in the
    run's train/val (``clean``: :func:`clean_test`), side by side (one row per metric)."""
    whole = ci.loc[list(metrics), ["estimate", "lower", "upper"]]
    without = pd.DataFrame(clean["ci"]).set_index("metric") if clean["ci"] else None
    table = pd.concat({f"whole {label} ({clean['images'] + clean['excluded']})": whole,
                       f"no duplicate in train/val ({clean['images']})":
                       without.loc[list(metrics), ["estimate", "lower", "upper"]] if without is not None
                       else whole * float("nan")}, axis=1)
    table.index.name = "metric"
    return table


def whole_and_clean_test(ev: Evaluation, metrics: tuple[str, ...] = HEADLINE_METRICS) -> pd.DataFrame:
    """:func:`whole_and_clean` of a run's own test split."""
    return whole_and_clean(ev.ci, ev.clean, "test", metrics)


def _load_evaluation(rd: RunDirectory) -> Evaluation:
    saved = load_checkpoint(rd / rd.LOGITS, require_model=False)
    data = rd.evaluation()
    return Evaluation(
        rd.path, tuple(saved["class_names"]), float(saved["temperature"]), saved["val_logits"],
        saved["val_targets"], saved["test_logits"], saved["test_targets"], list(saved["test_ids"]), data["metrics"],
        pd.DataFrame(data["ci"]).set_index("metric"), pd.DataFrame(data["per_class"]).set_index("class"),
        pd.DataFrame(data["calibration"]).set_index("when"), _fit_from(data["temperature_fit"]), data["clean_test"])


def _fit_from(saved: dict) -> TemperatureFit:
    return TemperatureFit(float(saved["temperature"]), saved["fitted"], saved["reason"], int(saved["val_cases"]),
                          int(saved["val_errors"]))



def comparable_settings(run_dir: Path) -> dict:
    """What must be equal for two runs to be compared: data, training loop, model and input settings (the
    strategy, its augmentation and whether the weights were pretrained may differ)."""
    config = with_defaults(RunDirectory(run_dir).config())
    experiment = dict(config.get("experiment", {}))
    experiment.pop("pretrained", None)
    experiment.pop("augment", None)
    return {"data_config": config.get("data_config"), "train": config.get("train"), "experiment": experiment}


def finished_runs(runs_dir: str | os.PathLike[str], check_consistent: bool = True, missing_ok: bool = False
                  ) -> list[Path]:
    """Run directories under ``runs_dir`` that finished (hold ``summary.json``), sorted by name; with
    ``missing_ok`` an empty list where there are none.

    Raises:
        MixedRunsError: the runs were made with different settings (e.g. a leftover of an older profile);
            they would be compared as if they were one experiment. ``check_consistent=False`` skips this.
    """
    runs_dir = Path(runs_dir)
    if missing_ok and not (runs_dir.is_dir() and RunDirectory.finished_under(runs_dir)):
        return []
    if not runs_dir.is_dir():
        raise RunDirectoryError(f"no run directories at {runs_dir}: run the training-strategies chapter first")
    runs = [rd.path for rd in RunDirectory.finished_under(runs_dir)]
    if not runs:
        raise RunDirectoryError(f"{runs_dir} holds no finished run (no */{RunDirectory.SUMMARY})")
    if check_consistent:
        reference = comparable_settings(runs[0])
        odd = [r.name for r in runs[1:] if comparable_settings(r) != reference]
        if odd:
            raise MixedRunsError(f"{runs_dir} mixes runs made with different settings: {', '.join(odd)} differ "
                                 f"from {runs[0].name} (data, training or model settings). Delete the stale run "
                                 "directories or point runs_dir elsewhere.")
    return runs


def best_run(runs_dir: str | os.PathLike[str], metric: str = "macro_f1") -> Path:
    """The finished run with the best *validation* ``metric`` (never chosen on test)."""
    runs = finished_runs(runs_dir)
    return max(runs, key=lambda d: RunDirectory(d).summary()["val"][metric])


def top_losses(ev: Evaluation, true_class: int | None = None, n: int = 8, mistakes_only: bool = True
               ) -> pd.DataFrame:
    """Test cases with the highest loss (most confident mistakes first), optionally of one true class."""
    probs = (ev.test_logits / ev.temperature).softmax(1)
    loss = nn.functional.cross_entropy(ev.test_logits / ev.temperature, ev.test_targets, reduction="none")
    pred = probs.argmax(1)
    table = pd.DataFrame({"position": range(len(loss)), "sample_id": ev.test_ids,
                          "true": ev.test_targets.numpy(), "predicted": pred.numpy(),
                          "confidence": probs.max(1).values.numpy(), "loss": loss.numpy()})
    if true_class is not None:
        table = table[table["true"] == true_class]
    if mistakes_only:
        table = table[table["true"] != table["predicted"]]
    return table.sort_values("loss", ascending=False).head(n).reset_index(drop=True)


def explain_cases(run: LoadedRun, positions, classes, split: str = "test"):
    """Grad-CAM overlays (RGB uint8, model input size) of test cases for the given classes."""
    images, labels = run.cache.split(split)
    pos = np.asarray(positions, dtype=np.int64)
    if not len(pos):
        return []
    base = run.loaders[split]
    batch = TensorLoader(np.ascontiguousarray(images[pos]), labels[pos], base.mean, base.std,
                         batch_size=len(pos), out_size=base.out_size)
    x, _ = next(iter(batch))
    maps = gradcam(run.model, x, list(classes))
    size = x.shape[-1]
    raw = torch.nn.functional.interpolate(torch.from_numpy(np.ascontiguousarray(images[pos])).float(),
                                          size=(size, size), mode="bilinear", align_corners=False)
    raw = raw.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [overlay(img, cam) for img, cam in zip(raw, maps, strict=True)]



def weakest_class(ev: Evaluation) -> str:
    """The class with the lowest test F1."""
    return str(ev.per_class["f1"].idxmin())


def weakest_class_mistakes(ev: Evaluation, n: int = 8) -> tuple[list[np.ndarray], list[str]] | None:
    """Grad-CAM tiles (of the predicted class) of the ``n`` most confident test mistakes on the weakest class
    (:func:`weakest_class`), with a title each; ``None`` when that class has no mistake."""
    cases = top_losses(ev, true_class=ev.class_names.index(weakest_class(ev)), n=n)
    if cases.empty:
        return None
    tiles = explain_cases(load_run(ev.run_dir), cases["position"], cases["predicted"])
    titles = [f"true {ev.class_names[t]} / pred {ev.class_names[p]}\nconf {c:.2f}"
              for t, p, c in zip(cases["true"], cases["predicted"], cases["confidence"], strict=True)]
    return tiles, titles

def reference_metric(ev: Evaluation, metric: str, positive: str = "") -> tuple[float, float, float]:
    """Our estimate and 95% CI of a reference's metric: a headline metric, or for a binary task with a
    ``positive`` class ``sensitivity`` (its recall) and ``specificity`` (the other class's recall)."""
    names = list(ev.class_names)
    if metric in ("sensitivity", "specificity"):
        if len(names) != 2 or positive not in names:
            raise ConfigError(f"{metric} needs a binary task and the reference's positive class (one of {names})")
        cls = positive if metric == "sensitivity" else next(n for n in names if n != positive)
        metric = f"recall[{cls}]"
    row = ev.ci.loc[metric]
    return float(row["estimate"]), float(row["lower"]), float(row["upper"])


def versus_reference(ev: Evaluation, reference: dict) -> pd.DataFrame:
    """Our test metrics (with 95% CIs) beside a published or expected reference (``RunConfig.reference``): a
    single number gets ``above`` / ``level`` / ``below`` from our interval, a ``[low, high]`` range ``within`` /
    ``above`` / ``below`` from our estimate."""
    rows = []
    for metric, ref in reference.get("metrics", {}).items():
        est, low, high = reference_metric(ev, metric, reference.get("positive", ""))
        if isinstance(ref, list | tuple):
            lo, hi = float(ref[0]), float(ref[1])
            verdict = "within" if lo <= est <= hi else "above" if est > hi else "below"
            shown = f"{lo:.2f}-{hi:.2f}"
        else:
            verdict = "above" if low > float(ref) else "below" if high < float(ref) else "level"
            shown = f"{float(ref):.3f}"
        rows.append({"metric": metric, "ours": est, "ours_low": low, "ours_high": high, "reference": shown,
                     "verdict": verdict})
    return pd.DataFrame(rows).set_index("metric") if rows else pd.DataFrame()


#: Class names that read as the negative finding of a two-class task (the other class is then the positive one).
NEGATIVE_NAMES = re.compile(r"\b(normal|benign|healthy|negative|no[ _-]?finding)\b", re.IGNORECASE)


def binary_positive(ev: Evaluation, reference: dict | None = None) -> str:
    """The class a binary task looks for: the reference's ``positive``; else the class whose partner alone is
    named as a negative finding (``normal``, ``benign``, ``healthy``...); else the rarer class on validation."""
    if reference and reference.get("positive") in ev.class_names:
        return reference["positive"]
    negative = [bool(NEGATIVE_NAMES.search(name)) for name in ev.class_names]
    if sum(negative) == 1:
        return ev.class_names[negative.index(False)]
    counts = np.bincount(ev.val_targets.numpy(), minlength=2)
    return ev.class_names[int(np.argmin(counts))]


def operating_table(ev: Evaluation, reference: dict | None = None, specificity: float = 0.90) -> pd.DataFrame:
    """Test sensitivity, specificity and accuracy of a binary task at the argmax and at thresholds chosen on
    validation: Youden's J, specificity >= ``specificity``, and the reference's sensitivity where it has one
    (:func:`medvision.metrics.operating_point.operating_points`). Empty for more than two classes."""
    if len(ev.class_names) != 2 or len(np.unique(ev.val_targets.numpy())) < 2:
        return pd.DataFrame()  # no threshold can be chosen on a validation split without both classes
    positive = ev.class_names.index(binary_positive(ev, reference))
    rules: list[tuple[str, float | None]] = [("youden", None), ("specificity", specificity)]
    ref_sens = (reference or {}).get("metrics", {}).get("sensitivity")
    if isinstance(ref_sens, int | float):
        rules.append(("sensitivity", float(ref_sens)))
    return operating_points(ev.val_logits, ev.val_targets, ev.test_logits, ev.test_targets, positive, rules)


def describe_operating_points(table: pd.DataFrame, positive: str) -> str:
    """What moving the threshold from the argmax to a validation-chosen point does on test, in one sentence."""
    if table.empty:
        return ""
    arg = table.loc["argmax"]
    parts = [f"at the validation threshold for {name.partition('(')[2].rstrip(')')} ({r.threshold:.2f}), "
             f"{r.sensitivity:.3f} and {r.specificity:.3f}" for name, r in table.drop(index="argmax").iterrows()]
    return (f"With {positive} as the positive class, the argmax gives test sensitivity {arg.sensitivity:.3f} and "
            f"specificity {arg.specificity:.3f}; " + "; ".join(parts) + ". Every threshold was chosen on validation "
            "and only then applied to test.")


def describe_reference(table: pd.DataFrame, reference: dict) -> str:
    """One sentence per metric of :func:`versus_reference`, naming the reference's source."""
    if table.empty:
        return ""
    words = {"within": "within the expected", "above": "above", "below": "below", "level": "level with"}
    parts = [f"{m.replace('_', ' ')} {r.ours:.3f} (95% CI {r.ours_low:.3f}-{r.ours_high:.3f}) is {words[r.verdict]} "
             f"{'range ' if r.verdict == 'within' else ''}{r.reference}" for m, r in table.iterrows()]
    return f"Against {reference.get('source', 'the reference')}: " + "; ".join(parts) + "."


def _per_class_figure(ev: Evaluation, n_bins: int) -> Figure:
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    plots.plot_per_class_metric(ev.ci, "f1", ax=axes[0])
    plots.plot_per_class_metric(ev.ci, "recall", ax=axes[1])
    axes[0].set_title("F1 per class")
    axes[1].set_title("sensitivity (recall) per class")
    return fig


def _confusion_figure(ev: Evaluation, n_bins: int) -> Figure:
    pred = ev.test_logits.argmax(1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
    plots.plot_confusion_matrix(ev.test_targets, pred, ev.class_names, ax=axes[0])
    plots.plot_confusion_matrix(ev.test_targets, pred, ev.class_names, normalize=True, ax=axes[1])
    return fig


def _reliability_figure(ev: Evaluation, n_bins: int) -> Figure:
    curves = {"before": reliability_bins(ev.test_logits.softmax(1), ev.test_targets, n_bins),
              f"after (T = {ev.temperature:.2f})": reliability_bins(ev.calibrated_test_probs, ev.test_targets,
                                                                     n_bins)}
    fig, ax = plots.plot_reliability_diagram(curves)
    ax.set_title(f"{ev.run_dir.name}: reliability on the test split")
    return fig


#: The figures of a run's test split, by name: each drawn by a function of the evaluation and the bin count.
FIGURES = {
    "per_class": _per_class_figure,
    "confusion_matrix": _confusion_figure,
    "roc": lambda ev, n_bins: plots.plot_roc_curves(ev.calibrated_test_probs.numpy(), ev.test_targets.numpy(),
                                                    ev.class_names)[0],
    "precision_recall": lambda ev, n_bins: plots.plot_pr_curves(ev.calibrated_test_probs.numpy(),
                                                                ev.test_targets.numpy(), ev.class_names)[0],
    "reliability": _reliability_figure,
}


def evaluation_figures(ev: Evaluation, n_bins: int = 15, names: Sequence[str] = tuple(FIGURES)
                       ) -> dict[str, Figure]:
    """The figures of a run's test split, drawn here for the per-class and calibration chapters and for
    ``medvision evaluate --figures`` (only those in ``names``): per-class F1 and sensitivity with their
    intervals, the confusion matrix (counts and row-normalised), one-vs-rest ROC and precision-recall curves of
    the calibrated probabilities, and the reliability diagram before and after temperature scaling (``n_bins``
    confidence bins). The figures are closed to pyplot, so a notebook shows each where it is displayed, once."""
    figures = {name: FIGURES[name](ev, n_bins) for name in names}
    for figure in figures.values():
        plt.close(figure)
    return figures


#: The figures ``medvision evaluate --figures`` writes.
SAVED_FIGURES = ("confusion_matrix", "roc", "reliability")


def save_figures(ev: Evaluation, folder: str | os.PathLike[str], dpi: int = 150) -> list[Path]:
    """The test split's confusion matrix (counts and row-normalised), one-vs-rest ROC curves and reliability
    diagram (before and after temperature scaling), as PNG files in ``folder`` (written atomically)."""
    folder = Path(folder)
    figures = evaluation_figures(ev, names=SAVED_FIGURES)
    written = []
    for name in SAVED_FIGURES:
        with atomic_path(folder / f"{name}.png") as tmp:
            figures[name].savefig(tmp, dpi=dpi, format="png")
        written.append(folder / f"{name}.png")
    return written


def bootstrap_intervals(rows: pd.DataFrame, of_seed: int, metrics: Sequence[str] = ("accuracy", "auroc", "macro_f1"),
                        n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Percentile-bootstrap intervals over the test cases (:func:`evaluate_run`'s ``ci``) of the runs of one seed
    of a sweep (``rows``: :func:`medvision.train.sweeps.run_sweep`'s table): one row per data set, run and
    metric with ``estimate``, ``lower`` and ``upper``."""
    out = []
    ran = rows[(rows["seed"] == of_seed) & (rows["run_dir"].fillna("").astype(str) != "")]
    for dataset, run_dir in zip(ran["dataset"], ran["run_dir"], strict=True):
        ev = evaluate_run(run_dir, n_resamples=n_resamples, seed=seed)
        for m in metrics:
            out.append({"dataset": dataset, "run": Path(run_dir).name, "metric": m,
                        **ev.ci.loc[m, ["estimate", "lower", "upper"]].to_dict()})
    return pd.DataFrame(out, columns=["dataset", "run", "metric", "estimate", "lower", "upper"]
                        ).set_index(["dataset", "run", "metric"]).astype(float)
