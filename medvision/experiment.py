"""One training run per strategy, as the training-strategies chapter runs them, and their comparison.

``run_strategy`` builds the model and loaders, calls :func:`medvision.training.fit`, then evaluates the
best-on-validation checkpoint once on the test split and writes ``summary.json`` in the run directory.
``compare_runs`` turns a set of run directories into the comparison table.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch

from medvision import distributed, run_log
from medvision.data.augment import AugmentConfig
from medvision.data.cache import TensorCache
from medvision.data.leakage import audit_of, describe_audit
from medvision.data.loader import TensorLoader, normalization_from_model
from medvision.data.splits import save_manifest
from medvision.devices import autocast_dtype, resolve_device
from medvision.errors import ConfigError, LeakageWarning
from medvision.models import create_model, with_tta
from medvision.run_dir import RunDirectory
from medvision.strategies import STRATEGIES, StrategyConfig
from medvision.training import evaluate, fit, seed_everything

if TYPE_CHECKING:
    from medvision.run_config import RunConfig

_log = logging.getLogger(__name__)


#: Named augmentations (``ExperimentConfig.augment``); ``none`` is no augmentation at all.
AUGMENT_PRESETS: dict[str, AugmentConfig | None] = {
    "none": None,
    "flip": AugmentConfig(hflip=0.5, degrees=0, scale=(1, 1), ratio=(1, 1), brightness=0, contrast=0),
    "default": AugmentConfig(),
    "medium": AugmentConfig(hflip=0.5, vflip=0.5, degrees=30, saturation=0.2, hue=0.05),
}


@dataclass(frozen=True)
class ExperimentConfig:
    """The model and data settings shared by every strategy of a comparison.

    Attributes:
        backbone: timm architecture.
        pretrained: ``auto``, ``package``, ``hub``, ``none`` or a weights file.
        image_size: Model input size (cached images are resized on the fly).
        batch_size: Training batch size.
        augment: Train-time augmentation: ``none``, ``flip`` (flips only), ``default`` (mild: flips, ±10°, crops,
            brightness/contrast), ``medium`` (the HAM10000 seed's: ±30°, vertical flips, hue and saturation
            jitter), or a mapping of :class:`~medvision.data.augment.AugmentConfig` fields over ``default``
            (``{degrees: 30, vflip: 0.5, hue: 0.05}``).
        head_hidden: Width of an MLP head, or a list of widths for a deeper one with BatchNorm
            (:func:`medvision.models.mlp_head`; 0: timm's linear classifier).
        drop_rate: Dropout before the classifier.
        balanced_sampler: Draw training batches with class-balancing weights (with replacement).
        fallback: With ``pretrained: auto``, the architecture to train instead when the backbone's weights
            cannot be had (no hub, no package, no local file): one with offline weights, such as
            ``tf_efficientnet_lite0``. The run records which was used and why.
    """

    backbone: str = "tf_efficientnet_lite0"
    pretrained: str = "auto"
    image_size: int = 64
    batch_size: int = 64
    augment: str | dict = "default"
    head_hidden: int | tuple[int, ...] = 0
    drop_rate: float = 0.2
    balanced_sampler: bool = False
    fallback: str = ""

    def __post_init__(self) -> None:
        self.augment_config()  # a bad augmentation fails when the configuration is made, not at the first batch

    def augment_config(self) -> AugmentConfig | None:
        if isinstance(self.augment, dict):
            known = {f.name for f in fields(AugmentConfig)}
            unknown = sorted(set(self.augment) - known)
            if unknown:
                raise ConfigError(f"augment sets unknown field(s) {unknown}; AugmentConfig has {sorted(known)}")
            values = {k: tuple(v) if isinstance(v, list) else v for k, v in self.augment.items()}
            return AugmentConfig(**values)
        if self.augment not in AUGMENT_PRESETS:
            raise ConfigError(f"augment must be one of {', '.join(AUGMENT_PRESETS)} or a mapping of AugmentConfig "
                              f"fields, not {self.augment!r}")
        return AUGMENT_PRESETS[self.augment]


def parse_strategy(spec: str, base: StrategyConfig | None = None, **defaults) -> StrategyConfig:
    """``"head_only"``, ``"last_k:2"``, ``"full"``, ``"two_phase"`` (last k), ``"two_phase:all"``,
    ``"discriminative"`` → a :class:`StrategyConfig`; its other fields come from ``base`` (a configuration's
    ``strategy`` section), then ``defaults``.

    Raises:
        ConfigError: an unknown strategy, or a malformed argument after ``:``.
    """
    name, _, arg = spec.partition(":")
    if name not in STRATEGIES:
        raise ConfigError(f"unknown strategy {spec!r}; choose from {', '.join(STRATEGIES)} "
                          "(last_k and two_phase take ':<blocks>', two_phase also ':all')")
    cfg = replace(base or StrategyConfig(), name=name, **defaults)
    if arg == "all" and name == "two_phase":
        return replace(cfg, unfreeze_all=True)
    if arg:
        if not arg.isdigit():
            raise ConfigError(f"strategy {spec!r}: expected a block count after ':'")
        return replace(cfg, k=int(arg))
    return cfg


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
    from medvision.errors import WeightsError

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
        tracker: An experiment tracker for ``fit`` (:class:`medvision.tracking.MLflowTracker`), started.

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
    audit = audit_of(table, data_config.near_distance)
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
    test = evaluate(with_tta(model.to(device), train.tta), loaders["test"], device, autocast_dtype(train.amp, device),
                    train.top_k)
    hist = result.history
    summary = {
        "run": run_dir.name, "strategy": spec, "weights": str(weights), "weights_source": weights.source,
        "weights_note": weights_note,
        "backbone": exp.backbone, "image_size": exp.image_size, "best_epoch": result.best_epoch,
        "epochs_run": int(len(hist)), "trainable_params": result.trainable_params,
        "seconds_per_epoch": float(hist["seconds"].mean()),
        "feature_extraction_seconds": result.extra["feature_extraction_seconds"],
        "cached_features": result.cached_features, "world_size": result.extra["world_size"],
        "val": result.best_metrics, "test": test,
        "leakage": {k: v for k, v in audit.items() if k != "test_leaking"},
    }
    if main:
        RunDirectory(run_dir).write_summary(summary)
        run_log.note_run(result.extra["epochs_trained"])
    return summary


def _write_split(rd: RunDirectory, table, audit: dict) -> None:
    """The run's split (``split.csv``), its leakage audit and, where the table has one, its split report."""
    save_manifest(table, rd / rd.SPLIT)
    rd.write_leakage(audit)
    if table.split_report is not None:
        rd.write_split_report(table.split_report)


class collect_leakage:
    """Collect the :class:`~medvision.errors.LeakageWarning` of the runs trained inside the ``with`` block,
    once per message, to show them as sentences (a chapter's page) instead of as warnings."""

    def __enter__(self) -> collect_leakage:
        self._catch = warnings.catch_warnings(record=True)
        self._caught = self._catch.__enter__()
        warnings.simplefilter("always", LeakageWarning)
        return self

    def __exit__(self, *exc) -> None:
        self._catch.__exit__(*exc)
        others = [w for w in self._caught if not issubclass(w.category, LeakageWarning)]
        self.messages = list(dict.fromkeys(str(w.message) for w in self._caught
                                           if issubclass(w.category, LeakageWarning)))
        for w in others:  # every other warning as Python would have shown it
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)

    def markdown(self) -> str:
        if not self.messages:
            return "**Leakage audit.** No duplicate image or shared group crosses this split's train, val and test."
        return "**Leakage audit.** " + " ".join(f"{m}." for m in self.messages)


def _write_environment(run_dir: Path, table, seed: int) -> None:
    """Record what produced the run (kept apart from config.yaml, which decides whether a run may resume)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from medvision.provenance import source_commit

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
            for m in ("accuracy", "balanced_accuracy", "macro_f1", "auroc"):
                row[f"{split}_{m}"] = s[split].get(m, float("nan"))
        row["trainable_params"] = s["trainable_params"]
        row["s_per_epoch"] = s["seconds_per_epoch"]
        row["best_epoch"] = s["best_epoch"]
        rows.append(row)
    return pd.DataFrame(rows).set_index("run")


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
