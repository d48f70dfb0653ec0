"""Sweeps: one configuration varied along one factor (label budget, loss, input size) x strategies x seeds.

The evidence chapters are sweeps. Each run lives at ``<root>/<data set>/<point>/seed<k>/<run>``: a finished run
is reused, an interrupted one resumes, and a folder holding a run made with other settings is refused
(:class:`~medvision.core.errors.RunConfigMismatchError`) rather than mixed into the table, as in the benchmark chapter.
Selection happens on validation only (each run's best epoch); the test split is scored once per run.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medvision.config.run import RunConfig, dataset_config
from medvision.core.atomic import write_json_atomic
from medvision.core.errors import ConfigError, LeakageWarning, RunConfigMismatchError
from medvision.data.cache import TensorCache
from medvision.data.leakage import audit_of, describe_audit
from medvision.data.load import data_problem
from medvision.data.pipeline import load_cached_split
from medvision.data.splits import per_class_rows, stratified_rows
from medvision.train.baselines import fit_feature_baselines, frozen_features
from medvision.train.run_dir import RunDirectory
from medvision.train.runner import run_strategy

#: Row columns besides the metrics.
KEYS = ("dataset", "strategy", "seed", "train_images", "epochs", "seconds_per_epoch", "run_dir")

#: The frozen-feature baseline's name in sweep tables (chapter 05's logistic regression).
FEATURES_BASELINE = "logistic_regression"

#: Imbalance remedies trained as runs: name -> overrides of the base configuration (plain cross-entropy).
REMEDIES: dict[str, dict[str, Any]] = {
    "cross_entropy": {},
    "weighted_ce": {"train": {"loss": "weighted_ce"}},
    "focal": {"train": {"loss": "focal"}},
    "balanced_sampler": {"experiment": {"balanced_sampler": True}},
    "label_smoothing": {"train": {"label_smoothing": 0.1}},
}


@dataclass(frozen=True)
class SweepPoint:
    """One value of the swept factor.

    Attributes:
        name: Its folder name under the data set's (``n25``, ``focal``, ``64px``).
        value: Its value in tables and plots (25, ``"focal"``, 64).
        overrides: :class:`~medvision.config.run.RunConfig` overrides of the base configuration.
        per_class: Label budget: at most this many training images per class, drawn per seed (0: all).
        train_samples: At most this many training images in all, a stratified draw per seed (0: all).
    """

    name: str
    value: int | float | str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    per_class: int = 0
    train_samples: int = 0

    def rows(self, table, seed: int) -> np.ndarray:
        """The rows of ``table`` this point trains, validates and tests on for ``seed``."""
        rows = per_class_rows(table, self.per_class, seed=seed)
        if self.train_samples:
            rows = rows[stratified_rows(table.with_frame(table.frame.iloc[rows]), self.train_samples, seed=seed)]
        return rows


@dataclass(frozen=True)
class Sweep:
    """A factor, its points and what runs at each.

    Attributes:
        factor: The factor's column name in the results (``per_class``, ``remedy``, ``input_px``).
        points: Its values.
        seeds: Seeds per point and strategy (each seed also draws its own label budget).
        strategies: Strategy specs run at every point (empty: the configuration's ``strategies``).
        min_steps: Train small label budgets for at least this many optimizer steps (more epochs), as
            label-efficiency studies do, so a 20-image run is not judged after one step; 0 keeps the epochs.
        max_epochs: Cap on those epochs (0: none).
        features_baseline: Also fit chapter 05's logistic regression on frozen backbone features at every
            point and seed (its C chosen on validation).
    """

    factor: str
    points: tuple[SweepPoint, ...]
    seeds: tuple[int, ...] = (0, 1, 2)
    strategies: tuple[str, ...] = ()
    min_steps: int = 0
    max_epochs: int = 0
    features_baseline: bool = False

    def __post_init__(self) -> None:
        names = [p.name for p in self.points]
        if not names:
            raise ConfigError(f"the {self.factor} sweep has no points")
        if len(set(names)) != len(names):
            raise ConfigError(f"the {self.factor} sweep names a point twice: {names}")
        if not self.seeds:
            raise ConfigError(f"the {self.factor} sweep has no seeds")


def label_budgets(per_class: Sequence[int]) -> tuple[SweepPoint, ...]:
    """Points for training on ``n`` labelled images per class (0: the whole train split)."""
    if any(int(n) < 0 for n in per_class):
        raise ConfigError(f"label budgets are images per class (0: all), not {list(per_class)}")
    return tuple(SweepPoint("all" if n == 0 else f"n{n}", int(n), per_class=int(n)) for n in per_class)


def remedies(names: Sequence[str]) -> tuple[SweepPoint, ...]:
    """Points for the trained imbalance remedies of :data:`REMEDIES` (post-hoc logit adjustment needs no
    run of its own: :func:`medvision.book.evidence.remedy_scores` derives it from the cross-entropy runs)."""
    unknown = sorted(set(names) - set(REMEDIES))
    if unknown:
        raise ConfigError(f"unknown imbalance remedies {unknown}; trained ones are {', '.join(REMEDIES)} "
                          "(logit_adjustment is post-hoc, from the cross_entropy runs)")
    return tuple(SweepPoint(n, n, REMEDIES[n]) for n in names)


def resolutions(sizes: Sequence[int], decode_at_size: bool = False, max_train_samples: int = 0
                ) -> tuple[SweepPoint, ...]:
    """Points for model input sizes; with ``decode_at_size`` the images are also decoded at that size (large
    source images), otherwise the configured files are resized on the fly (28 px MedMNIST files). Every size
    trains on the same stratified draw of at most ``max_train_samples`` images per seed (0: all)."""
    return tuple(SweepPoint(f"{s}px", int(s), {"experiment": {"image_size": int(s)},
                                               **({"data": {"size": int(s)}} if decode_at_size else {})},
                            train_samples=max_train_samples)
                 for s in sizes)


def epochs_for(train_images: int, batch_size: int, epochs: int, min_steps: int, max_epochs: int = 0) -> int:
    """``epochs``, raised so that ``train_images`` make at least ``min_steps`` batches; the raise is capped by
    ``max_epochs`` (a configuration's own epochs are never cut)."""
    if min_steps <= 0 or train_images <= 0:
        return epochs
    needed = math.ceil(min_steps / math.ceil(train_images / batch_size))
    return max(epochs, min(needed, max_epochs) if max_epochs else needed)


def strategy_config(spec: str, config: RunConfig) -> RunConfig:
    """The configuration of one strategy: head-only runs train the classifier on cached features with flips only
    (as linear probes are trained, and without a backbone pass per epoch); the strategies that train the
    backbone use the data set's augmentation."""
    if spec == "head_only" and config.experiment.augment not in ("none", "flip"):
        return config.override({"experiment": {"augment": "flip"}})
    return config


def run_sweep(config: RunConfig, sweep: Sweep, root: str | os.PathLike[str]) -> pd.DataFrame:
    """Train (or reuse) every point x seed x strategy of ``sweep`` on ``config``'s data.

    Returns one row per run: the data set, the factor's value, strategy, seed, labelled training images,
    epochs, seconds per epoch, the run directory and the best-on-validation checkpoint's ``val_*`` and
    ``test_*`` metrics.
    """
    root = Path(root)
    caches: dict[str, TensorCache] = {}
    frozen: dict[str, dict] = {}  # frozen-backbone features per data and model settings, extracted once
    rows = []
    for point in sweep.points:
        cfg = config.override(dict(point.overrides)) if point.overrides else config
        key = json.dumps(cfg.data.to_dict(), sort_keys=True, default=str)
        if key not in caches:
            caches[key] = load_cached_split(cfg.data)
            # Hash every image once (the draws reuse the hashes) and warn once for the whole split: each draw's
            # own audit (in its run directory) counts only the duplicates its subset happens to hold.
            leaking = describe_audit(audit_of(caches[key].table, cfg.data.near_distance, cfg.data.on_error))
            if leaking:
                warnings.warn(LeakageWarning(f"{caches[key].table.name}: {leaking}"), stacklevel=2)
        cache = caches[key]
        for seed in sweep.seeds:
            sub = cache.subset(point.rows(cache.table, seed))
            n_train = int((sub.table.frame["split"] == "train").sum())
            epochs = epochs_for(n_train, cfg.experiment.batch_size, cfg.train.epochs, sweep.min_steps,
                                sweep.max_epochs)
            seeded = cfg.override({"train": {"seed": seed, "epochs": epochs}})
            out = root / cfg.label / point.name / f"seed{seed}"
            facts = {"dataset": cfg.label, sweep.factor: point.value, "seed": seed, "train_images": n_train,
                     "epochs": epochs}
            drawn = {sweep.factor: point.value, "train_images": training_ids_digest(sub)}
            for spec in sweep.strategies or seeded.strategies:
                _check_phases(spec, seeded)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", LeakageWarning)
                    s = run_strategy(sub, spec, strategy_config(spec, seeded), out, extra_config={"sweep": drawn})
                rows.append({**facts, "strategy": spec, "seconds_per_epoch": s["seconds_per_epoch"],
                             "run_dir": str(out / s["run"]), **_prefixed(s["val"], s["test"])})
            if sweep.features_baseline:
                rows.append({**facts, "strategy": FEATURES_BASELINE, "seconds_per_epoch": float("nan"),
                             "run_dir": "", **features_baseline(cache, sub, seeded, out, frozen)})
    return pd.DataFrame(rows)


def training_ids_digest(cache: TensorCache) -> str:
    """A digest of which images a run trains on (saved with its configuration, so a folder holding a run on
    another draw of the same budget is refused rather than reused)."""
    import hashlib

    frame = cache.table.frame
    ids = sorted(frame.loc[frame["split"] == "train", "sample_id"].astype(str))
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


def _check_phases(spec: str, config: RunConfig) -> None:
    """A two-phase run whose first phase fills every epoch never trains the backbone: refuse it."""
    strategy = config.strategy_for(spec)
    if strategy.name == "two_phase" and strategy.phase1_epochs >= config.train.epochs:
        raise ConfigError(f"{config.label}: two_phase with strategy.phase1_epochs={strategy.phase1_epochs} and "
                          f"{config.train.epochs} epoch(s) would train the head only; lower phase1_epochs or raise "
                          "train.epochs")


def _prefixed(val: Mapping[str, float], test: Mapping[str, float]) -> dict[str, float]:
    return {**{f"val_{k}": float(v) for k, v in val.items()}, **{f"test_{k}": float(v) for k, v in test.items()}}


def features_baseline(cache: TensorCache, sub: TensorCache, config: RunConfig, out: Path,
                      frozen: dict[str, dict] | None = None) -> dict[str, float]:
    """Chapter 05's logistic regression on frozen backbone features of ``sub``'s training images (features of
    the whole ``cache`` extracted once, kept under the sweep's root and in ``frozen`` for the rest of the
    sweep); its C is chosen on validation. The result is saved as ``<out>/logistic_regression.json`` and
    reused."""
    saved = out / f"{FEATURES_BASELINE}.json"
    drawn = training_ids_digest(sub)
    if saved.is_file():
        previous = json.loads(saved.read_text())
        if previous.get("train_images_digest") == drawn:
            return {k: v for k, v in previous.items() if k != "train_images_digest"}
        raise RunConfigMismatchError(f"{saved} was fitted on another draw of training images; delete it or "
                                     "choose another run directory")
    frozen = {} if frozen is None else frozen
    exp = config.experiment
    settings = f"{cache.path}|{exp.backbone}|{exp.pretrained}|{exp.fallback}|{exp.image_size}|{len(cache)}"
    if settings not in frozen:  # the features of the whole split, loaded or extracted once per sweep
        frozen[settings] = frozen_features(cache, exp, out.parent.parent / "features")[0]
    features = frozen[settings]
    keep = _train_positions(cache, sub)
    chosen = {**features, "train": (features["train"][0][keep], features["train"][1][keep])}
    table = fit_feature_baselines(chosen, cache.table.num_classes, classifiers=(FEATURES_BASELINE,),
                                  seed=config.train.seed)
    row = {k: float(v) for k, v in table.loc[FEATURES_BASELINE].items() if k != "chosen_on_val"}
    write_json_atomic(saved, {**row, "train_images_digest": drawn})
    return row


def _train_positions(cache: TensorCache, sub: TensorCache) -> np.ndarray:
    """Where ``sub``'s training images sit among ``cache``'s training images."""
    train = cache.table.frame.loc[cache.table.frame["split"] == "train", "sample_id"].astype(str).to_numpy()
    kept = sub.table.frame.loc[sub.table.frame["split"] == "train", "sample_id"].astype(str).to_numpy()
    where = pd.Index(train).get_indexer(kept)
    if (where < 0).any():
        raise ConfigError("a label budget holds training images that are not in its data set's train split")
    return where


def check_plain_loss(config: RunConfig) -> None:
    """The remedies sweep compares each remedy with plain cross-entropy: its base configuration must be that
    (a seed's focal loss or balanced sampler would be applied to every remedy).

    Raises:
        ConfigError: the base already uses a remedy.
    """
    train, exp = config.train, config.experiment
    used = [what for what, on in (("train.loss: " + train.loss, train.loss != "ce"),
                                  (f"train.label_smoothing: {train.label_smoothing}", train.label_smoothing > 0),
                                  ("experiment.balanced_sampler: true", exp.balanced_sampler)) if on]
    if used:
        raise ConfigError(f"{config.label}: the imbalance remedies are compared with plain cross-entropy, but the "
                          f"base configuration already sets {', '.join(used)}; override it (e.g. "
                          "{train: {loss: ce}, experiment: {balanced_sampler: false}})")


@dataclass
class SweepResult:
    """The runs of one sweep over several data sets, and why any data set was left out."""

    rows: pd.DataFrame
    configs: dict[str, RunConfig]
    missing: dict[str, str]

    def banner_facts(self) -> dict[str, Any]:
        """What a chapter's banner says of the runs: data, backbone, weights, input, epochs, augmentation."""
        ran = [n for n in self.configs if n not in self.missing]
        first = self.configs[ran[0]] if ran else next(iter(self.configs.values()))
        runs = [d for d in self.rows.get("run_dir", pd.Series(dtype=str)) if d]
        weights = RunDirectory(runs[0]).summary()["weights"] if runs else "no run"
        strategies = list(dict.fromkeys(self.rows["strategy"])) if "strategy" in self.rows else []
        augment = first.experiment.augment
        head = strategy_config("head_only", first).experiment.augment
        if "head_only" in strategies and head != augment:
            augment = f"{augment} (head-only: {head}, cached features)"
        return {"data": ", ".join(ran) or "none here", "backbone": first.experiment.backbone, "weights": weights,
                "strategies": ", ".join(strategies) or "none",
                "input": f"{first.experiment.image_size}px", "epochs": first.train.epochs, "augment": augment,
                **({"weight average": first.train.ema_decay} if first.train.ema_decay else {})}

    def missing_markdown(self) -> str:
        return "\n\n".join(f"**{name} is not on this machine**, so it is left out: {why}"
                           for name, why in self.missing.items())


def sweep_datasets(names: Sequence[str], overrides: Mapping[str, Any] | None,
                   per_dataset: Mapping[str, Mapping[str, Any]] | None, make_sweep, root: str | os.PathLike[str],
                   check=None) -> SweepResult:
    """:func:`run_sweep` on each data set of ``names`` (configured as the benchmark chapter configures them:
    :func:`medvision.config.dataset_config`), with ``make_sweep(config)`` building its sweep; a data set
    whose data is absent is recorded in ``missing`` (the chapter says how to get it) instead of failing.
    ``check(config)`` may refuse a configuration before anything runs."""
    configs = {name: dataset_config(name, overrides, per_dataset).override({"train": {"progress": False}})
               for name in names}
    for cfg in configs.values():
        if check is not None:
            check(cfg)
    missing = {name: why for name, cfg in configs.items() if (why := data_problem(cfg.data))}
    frames = [run_sweep(cfg, make_sweep(cfg), root) for name, cfg in configs.items() if name not in missing]
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(KEYS))
    return SweepResult(rows, configs, missing)


def seeds_sweep(seeds: Sequence[int], max_train_samples: int = 0, strategies: Sequence[str] = ()) -> Sweep:
    """The benchmark's sweep: one point (the whole train split, or a stratified draw of at most
    ``max_train_samples`` images per seed) trained with every strategy under each of ``seeds``."""
    point = SweepPoint("all" if not max_train_samples else f"train{max_train_samples}", "all",
                       train_samples=max_train_samples)
    return Sweep("data", (point,), seeds=tuple(int(s) for s in seeds), strategies=tuple(strategies))
