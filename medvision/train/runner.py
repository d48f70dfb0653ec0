"""One training run per strategy, as the training-strategies chapter runs them, and their comparison.

``run_strategy`` builds the model and loaders, calls :func:`medvision.train.loop.fit`, then evaluates the
best-on-validation checkpoint once on the test split and writes ``summary.json`` in the run directory.
``compare_runs`` turns a set of run directories into the comparison table (its sentences:
:mod:`medvision.book.report`).
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd
import torch

from medvision.config.choices import HEADLINE_METRICS, SCORED_TTA_MODES
from medvision.config.experiment import ExperimentConfig
from medvision.config.run import RunConfig
from medvision.config.train import TrainConfig
from medvision.core import distributed, run_log
from medvision.core.devices import autocast_dtype, resolve_device
from medvision.core.errors import LeakageWarning, WeightsError
from medvision.core.provenance import source_commit
from medvision.data.cache import TensorCache
from medvision.data.leakage import audit_of, describe_audit
from medvision.data.loader import TensorLoader, normalization_from_model
from medvision.data.splits import save_manifest
from medvision.models.backbones import create_model, with_tta
from medvision.models.embeddings import similarity_audit
from medvision.train.loop import evaluate, fit, seed_everything
from medvision.train.run_dir import RunDirectory

_log = logging.getLogger(__name__)


def run_name(spec: str, pretrained: str) -> str:
    return spec.replace(":", "-") + ("-scratch" if pretrained == "none" else "")


def make_loaders(cache: TensorCache, model: torch.nn.Module, exp: ExperimentConfig, seed: int = 0
                 ) -> dict[str, TensorLoader]:
    """Train (shuffled, augmented), val and test loaders; normalisation from the model's timm data config."""
    data_cfg = normalization_from_model(model)
    loaders = {}
    for split in cache.table.splits:
        images, labels = cache.split(split)
        is_train = split == "train"
        loaders[split] = TensorLoader(images, labels, data_cfg["mean"], data_cfg["std"],
                                      batch_size=exp.batch_size if is_train else 256, shuffle=is_train,
                                      balanced=exp.balanced_sampler and is_train,
                                      augment=exp.augment_config() if is_train else None,
                                      out_size=exp.image_size, seed=seed)
    return loaders


def build_model(exp: ExperimentConfig, num_classes: int) -> tuple[torch.nn.Module, ExperimentConfig, str]:
    """The run's model; with ``pretrained: auto`` and a ``fallback``, the fallback architecture when the
    backbone's weights cannot be had. Returns the model, the settings it was built with (the fallback's when
    used) and a note saying why (empty when the backbone was used)."""
    try:
        model = create_model(exp.backbone, num_classes, exp.pretrained, drop_rate=exp.drop_rate,
                             head_hidden=exp.head_hidden)
        return model, exp, ""
    except WeightsError as exc:
        if exp.pretrained != "auto" or not exp.fallback or exp.fallback == exp.backbone:
            raise
        used = replace(exp, backbone=exp.fallback, fallback="")
        model = create_model(used.backbone, num_classes, "auto", drop_rate=used.drop_rate,
                             head_hidden=used.head_hidden)
        note = (f"the configuration asks for {exp.backbone}, whose ImageNet weights are not available here (no "
                f"hub, no package, no local file); {used.backbone} was trained instead, from "
                f"{model.weights_source}")
        _log.info("%s (%s)", note, exc)
        return model, used, note


def run_strategy(cache: TensorCache, spec: str, config: RunConfig, runs_dir: str | os.PathLike[str],
                 extra_config: dict | None = None, resume: bool = True, tracker=None) -> dict:
    """Train one strategy on ``cache``'s train split, select on val, score the best checkpoint on test once.

    Args:
        cache: The decoded images of ``config.data``'s split (:func:`medvision.data.build_tensor_cache`).
        spec: A strategy spec (``"last_k:2"``), completed from ``config.strategy``.
        config: The run's configuration; its ``data`` (how ``cache``'s table was loaded) is saved so that later
            chapters can rebuild the data.
        runs_dir: The run directory is ``<runs_dir>/<run name>``; a finished or interrupted one resumes.
        extra_config: More facts for the saved configuration (the system's name...).
        resume: Continue an interrupted run in that directory.
        tracker: An experiment tracker for ``fit`` (:class:`medvision.train.tracking.MLflowTracker`), started.

    Returns:
        The summary also written to ``<run dir>/summary.json``.
    """
    exp, train, data_config = config.experiment, config.train, config.data
    table = cache.table
    strategy = config.strategy_for(spec)
    run_dir = Path(runs_dir) / run_name(spec, exp.pretrained)
    seed_everything(train.seed)
    model, exp, weights_note = build_model(exp, table.num_classes)
    loaders = make_loaders(cache, model, exp, train.seed)
    main = distributed.info().is_main  # under torchrun only rank 0 writes; every rank trains and evaluates
    audit = audit_of(table, data_config.near_distance, data_config.on_error)
    if data_config.dedupe == "embedding":  # the feature-space check: the split is called clean only if it passes
        audit = {**audit, "similarity": similarity_audit(table, data_config)}
    rd = RunDirectory(run_dir)
    split_written = False
    if main:
        rd.ensure_writable()  # before anything is written: one clear error, nothing trained
        if not rd.is_run():  # a new run: its split is there to read while it trains
            _write_split(rd, table, audit)
            split_written = True
    leaking = describe_audit(audit)
    if leaking:
        warnings.warn(LeakageWarning(f"{table.name}: {leaking}"), stacklevel=2)
    weights = model.weights_source
    saved = {"experiment": asdict(exp), "weights": asdict(weights), "data_config": data_config.to_dict(),
             "data": table.provenance | {"name": table.name, "images": len(table)}, **(extra_config or {})}
    result = fit(model, loaders["train"], loaders["val"], train, strategy, run_dir, table.class_names,
                 resume=resume, extra_config=saved, tracker=tracker)
    if main:
        if not split_written:  # fit accepted the old run's folder (other settings are refused unwritten)
            _write_split(rd, table, audit)
        _write_environment(run_dir, table, train.seed)
    device = resolve_device(train.device)
    amp = autocast_dtype(train.amp, device)
    tta, tta_val = choose_tta(model.to(device), loaders["val"], train, device)
    test = evaluate(with_tta(model, tta), loaders["test"], device, amp, train.top_k)
    hist = result.history
    summary = {
        "run": run_dir.name, "strategy": spec, "weights": str(weights), "weights_source": weights.source,
        "weights_note": weights_note,
        "backbone": exp.backbone, "image_size": exp.image_size, "best_epoch": result.best_epoch,
        "epochs_run": int(len(hist)), "trainable_params": result.trainable_params,
        "seconds_per_epoch": float(hist["seconds"].mean()),
        "feature_extraction_seconds": result.extra["feature_extraction_seconds"],
        "cached_features": result.cached_features, "cached": result.extra["cached"],
        "stage_cache": result.extra.get("stage_cache", {}), "world_size": result.extra["world_size"],
        # Validation as the run is scored: under tta: auto, the chosen mode's (the epoch was selected without flips,
        # kept as val_training), so val and test columns side by side use the same test-time augmentation.
        "val": tta_val.get(tta, result.best_metrics), "test": test, "tta": tta,
        **({"tta_val": tta_val, "val_training": result.best_metrics} if tta_val else {}),
        "leakage": {k: v for k, v in audit.items() if k != "test_leaking"},
    }
    if main:
        RunDirectory(run_dir).write_summary(summary)
        run_log.note_run(result.extra["epochs_trained"])
    return summary


def choose_tta(model: torch.nn.Module, val_loader, train: TrainConfig, device: torch.device
               ) -> tuple[str, dict[str, dict[str, float]]]:
    """The test-time augmentation a run is scored with: ``train.tta`` when it names one; with ``auto`` the mode
    whose validation ``train.monitor`` is better on the trained ``model`` (``none`` on a tie: one pass costs
    less), with each mode's validation metrics. The test split is never looked at."""
    if train.tta != "auto":
        return train.tta, {}
    amp = autocast_dtype(train.amp, device)
    scores = {mode: evaluate(with_tta(model, mode), val_loader, device, amp, train.top_k)
              for mode in SCORED_TTA_MODES}
    sign = -1.0 if train.monitor == "loss" else 1.0
    best = max(SCORED_TTA_MODES, key=lambda m: (sign * scores[m][train.monitor], m == "none"))
    return best, scores


def run_strategies(cache: TensorCache, config: RunConfig, runs_dir: str | os.PathLike[str], scratch: bool = False
                   ) -> list[dict]:
    """:func:`run_strategy` for every strategy of ``config`` in turn, and with ``scratch`` a ``full`` fine-tune of
    the same backbone from random initialisation (what pretraining buys at the same budget); their summaries."""
    specs = [(spec, config) for spec in config.strategies]
    if scratch:
        specs.append(("full", config.override({"experiment": {"pretrained": "none"}})))
    return [run_strategy(cache, spec, c, runs_dir) for spec, c in specs]


def _write_split(rd: RunDirectory, table, audit: dict) -> None:
    """The run's split (``split.csv``), its leakage audit and, where the table has one, its split report."""
    save_manifest(table, rd / rd.SPLIT)
    rd.write_leakage(audit)
    if table.split_report is not None:
        rd.write_split_report(table.split_report)


def _write_environment(run_dir: Path, table, seed: int) -> None:
    """Record what produced the run (kept apart from config.yaml, which decides whether a run may resume)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version


    versions = {}
    for pkg in ("medvision", "torch", "torchvision", "timm", "torchmetrics", "numpy", "scikit-learn"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = "not installed"
    env = {"python": platform.python_version(), "platform": platform.platform(), "packages": versions,
           "git_commit": source_commit(), "seed": seed,
           "data_fingerprint": table.fingerprint(), "data_md5": table.provenance.get("md5", "")}
    RunDirectory(run_dir).write_environment(env)


def load_summary(run_dir: str | os.PathLike[str]) -> dict:
    return RunDirectory(run_dir).summary()


def load_history(run_dir: str | os.PathLike[str]) -> pd.DataFrame:
    return RunDirectory(run_dir).history()


def compare_runs(run_dirs: list[str | os.PathLike[str]]) -> pd.DataFrame:
    """One row per run: validation and test accuracy, balanced accuracy, macro-F1, AUROC, trainable
    parameters and wall time per epoch."""
    rows = []
    for d in run_dirs:
        s = load_summary(d)
        row = {"run": s["run"], "weights": s["weights_source"]}
        for split in ("val", "test"):
            for m in HEADLINE_METRICS:
                row[f"{split}_{m}"] = s[split].get(m, float("nan"))
        row["trainable_params"] = s["trainable_params"]
        row["s_per_epoch"] = s["seconds_per_epoch"]
        row["best_epoch"] = s["best_epoch"]
        rows.append(row)
    columns = ["run", "weights", *(f"{s}_{m}" for s in ("val", "test") for m in HEADLINE_METRICS),
               "trainable_params", "s_per_epoch", "best_epoch"]
    return pd.DataFrame(rows, columns=columns).set_index("run")
