"""The training loop: ``train_one_epoch`` and ``evaluate`` return dicts; ``fit`` composes them.

``fit`` writes a run directory (resolved config, history, ``best`` / ``last`` checkpoints written atomically,
split manifest, class names), resumes from ``last`` after an interruption, stops cleanly on a NaN loss,
and rebuilds the optimizer and scheduler whenever the strategy's phase changes (two-phase fine-tuning).
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from timm.utils import ModelEmaV3
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from medvision.config import StrategyConfig
from medvision.config.train import TrainConfig
from medvision.core import distributed
from medvision.core.devices import as_model_input, autocast_dtype, resolve_device, tune_allocator
from medvision.core.errors import ConfigError, RunConfigMismatchError, TrainingDivergedError  # noqa: F401  (importable)
from medvision.data.classes import class_weights
from medvision.data.loader import TensorLoader
from medvision.metrics.classification import classification_metrics
from medvision.models.backbones import with_tta
from medvision.models.checkpoints import load_checkpoint, save_atomic
from medvision.models.fusion import folded_for_inference
from medvision.train.feature_cache import (  # noqa: F401  (importable from here)
    CachedHead,
    FeatureLoader,
    cached_feature_loaders,
    can_cache_features,
    extract_features,
)
from medvision.train.losses import make_loss
from medvision.train.optim import make_optimizer, make_scheduler  # noqa: F401  (importable from here)
from medvision.train.run_dir import RunDirectory, with_defaults  # noqa: F401  (with_defaults: importable from here)
from medvision.train.stage_cache import (
    StageSuffix,
    can_cache_stages,
    frozen_stages,
    stage_loaders,
    stages,
)
from medvision.train.strategies import count_trainable, param_groups, train_mode

_log = logging.getLogger(__name__)




@dataclass
class FitResult:
    """What ``fit`` returns: the history, the best epoch and its validation metrics, and the run directory."""

    history: pd.DataFrame
    best_epoch: int
    best_metrics: dict[str, float]
    run_dir: Path
    trainable_params: int
    cached_features: bool = False
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- helpers
def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _better(score: float, best: float, monitor: str) -> bool:
    if math.isnan(score):
        return False
    return score < best if monitor == "loss" else score > best


def _initial_best(monitor: str) -> float:
    return math.inf if monitor == "loss" else -math.inf


class WeightAverage:
    """An exponential moving average of ``model``'s weights and buffers (timm's ``ModelEmaV3`` with decay
    warm-up, so short fine-tuning runs average over a window that grows with the step count) and the step
    count that the warm-up needs, both saved in checkpoints so that a resumed run averages identically."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ConfigError(f"ema_decay must be in (0, 1) (0 disables the average), got {decay}")
        self.source = model
        self.ema = ModelEmaV3(model, decay=decay, use_warmup=True)
        self.steps = 0

    @property
    def module(self) -> nn.Module:
        """The averaged model (eval mode)."""
        return self.ema.module

    def update(self) -> None:
        """Fold the source model's current weights into the average (call after each optimizer step)."""
        self.steps += 1
        self.ema.update(self.source, step=self.steps)

    def state_dict(self) -> dict:
        return {"model": self.ema.module.state_dict(), "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.ema.module.load_state_dict(state["model"])
        self.steps = int(state["steps"])


# ------------------------------------------------------------------------------------ epoch functions
def train_one_epoch(model: nn.Module, loader: Iterable, criterion: nn.Module, optimizer: torch.optim.Optimizer,
                    device: torch.device, scheduler=None, step_per_batch: bool = False, grad_clip: float = 0.0,
                    amp_dtype: torch.dtype | None = None, scaler: torch.amp.GradScaler | None = None,
                    channels_last: bool = False, desc: str = "train", progress: bool = True,
                    ema: WeightAverage | None = None, mixup: float = 0.0) -> dict[str, float]:
    """One pass over ``loader``; returns mean loss, accuracy and the last learning rate. ``ema``, if given,
    is updated after every optimizer step; ``mixup`` > 0 blends each batch with a shuffled copy of itself
    (the Beta alpha; draws come from torch's global generator, which ``fit`` seeds per epoch).

    Raises:
        TrainingDivergedError: the loss is NaN or infinite.
    """
    tune_allocator()
    if isinstance(model, CachedHead):
        model.train()
    else:
        train_mode(model)
    total, correct, loss_sum = 0, 0, 0.0
    bar = tqdm(loader, desc=desc, leave=False, disable=not progress, total=len(loader))  # type: ignore[arg-type]
    for x, y in bar:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        lam, perm = 1.0, None
        if mixup > 0:
            lam = float(torch.distributions.Beta(mixup, mixup).sample())
            perm = torch.randperm(len(y)).to(device)
            x = x * lam + x[perm] * (1 - lam)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            logits = model(x)
            loss = criterion(logits.float(), y)
            if perm is not None:
                loss = loss * lam + criterion(logits.float(), y[perm]) * (1 - lam)
        if not torch.isfinite(loss):
            raise TrainingDivergedError(f"loss became {loss.item()} at batch {bar.n} of {desc}; "
                                        "lower the learning rate or enable gradient clipping")
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if grad_clip:
            nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        if ema is not None:
            ema.update()
        if scheduler is not None and step_per_batch:
            scheduler.step()
        n = len(y)
        total += n
        loss_sum += loss.item() * n
        correct += (logits.argmax(1) == y).sum().item()
        bar.set_postfix(loss=f"{loss_sum / total:.4f}")
    return {"loss": loss_sum / max(total, 1), "accuracy": correct / max(total, 1),
            "lr": max(g["lr"] for g in optimizer.param_groups)}


def predict_logits(model: nn.Module, loader: Iterable, device: torch.device,
                   amp_dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and targets of every batch, in eval mode under ``torch.inference_mode`` with BatchNorm folded into
    the convolutions (:mod:`medvision.models.fusion`); under DDP gathered from all ranks in sample order."""
    tune_allocator()
    model.eval()
    logits, targets, net = [], [], None
    for x, y in loader:
        x = as_model_input(x, device)
        if net is None:  # BatchNorm folded into the convolutions, where that leaves the outputs unchanged
            net = model if distributed.info().enabled else folded_for_inference(model, x[:2])
        with torch.inference_mode(), torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                                                    enabled=amp_dtype is not None):
            logits.append(net(x).float().cpu())
        targets.append(y.cpu())
    out_logits = torch.cat(logits) if logits else torch.empty(0, 0)
    out_targets = torch.cat(targets) if targets else torch.empty(0, dtype=torch.long)
    if distributed.info().enabled and hasattr(loader, "positions"):  # every rank gets all, in sample order
        pos = loader.positions()
        return distributed.gather_in_order(out_logits, pos), distributed.gather_in_order(out_targets, pos)
    return out_logits, out_targets


def evaluate(model: nn.Module, loader: Iterable, device: torch.device,
             amp_dtype: torch.dtype | None = None, top_k: Sequence[int] = ()) -> dict[str, float]:
    """Cross-entropy loss and classification metrics (accuracy, balanced accuracy, macro-F1, AUROC, and the
    ``top_k`` accuracies asked for)."""
    logits, targets = predict_logits(model, loader, device, amp_dtype)
    return {"loss": nn.functional.cross_entropy(logits, targets).item(),
            **classification_metrics(logits, targets, top_k)}


# ------------------------------------------------------------------------------------------------ fit
def _rng_state() -> dict:
    """Every random generator the run may draw from, in a form ``torch.load(weights_only=True)`` accepts."""
    version, mt, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": [version, list(mt), gauss],
            "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                      "cached_gaussian": float(cached)}}


def _restore_rng(saved: dict) -> None:
    torch.set_rng_state(saved["torch"])
    python, numpy_state = saved.get("python"), saved.get("numpy")
    if isinstance(python, list) and len(python) == 3:  # checkpoints before 2026-11-30 hold the key only
        random.setstate((python[0], tuple(python[1]), python[2]))
    if isinstance(numpy_state, dict):
        np.random.set_state(("MT19937", numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
                             numpy_state["has_gauss"], numpy_state["cached_gaussian"]))


@dataclass
class TrainState:
    """What a run carries from epoch to epoch and what ``last.pt`` saves for resuming, besides the weights."""

    monitor: str
    next_epoch: int = 0
    best_score: float = math.nan
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list[dict] = field(default_factory=list)
    saved: dict | None = None  # the checkpoint resumed from, until its optimizer state has been loaded

    def __post_init__(self) -> None:
        if math.isnan(self.best_score):
            self.best_score = _initial_best(self.monitor)

    @classmethod
    def resume(cls, checkpoint: dict, monitor: str, patience: int, epochs: int) -> TrainState:
        """The state saved in ``checkpoint``, with every random generator it saved restored."""
        state = cls(monitor, checkpoint["epoch"] + 1, checkpoint["best_score"], checkpoint["best_epoch"],
                    checkpoint["bad_epochs"], list(checkpoint["history"]), checkpoint)
        if patience and state.bad_epochs >= patience:
            state.next_epoch = epochs  # the run had stopped early: it is finished, not interrupted
        _restore_rng(checkpoint["rng"])
        return state

    def record(self, row: dict, score: float) -> bool:
        """Add an epoch's row; True when its score is the best so far."""
        self.history.append(row)
        self.next_epoch = row["epoch"]
        if _better(score, self.best_score, self.monitor):
            self.best_score, self.best_epoch, self.bad_epochs = score, row["epoch"], 0
            return True
        self.bad_epochs += 1
        return False

    def best_metrics(self) -> dict[str, float]:
        """Validation metrics of the best epoch (empty before the first epoch)."""
        row = next((r for r in self.history if r["epoch"] == self.best_epoch), None)
        return {k[4:]: float(v) for k, v in row.items() if k.startswith("val_")} if row is not None else {}

    def checkpoint(self, model: nn.Module, phase: int, optimizer, scheduler, scaler, ema) -> dict:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else {},
                "scaler": scaler.state_dict() if scaler is not None else {}, "epoch": self.next_epoch - 1,
                "phase": phase, "best_score": self.best_score, "best_epoch": self.best_epoch,
                "bad_epochs": self.bad_epochs, "history": self.history, "rng": _rng_state(),
                **({"ema": ema.state_dict()} if ema is not None else {})}

    def load_optimizer(self, phase: int, optimizer, scheduler, scaler) -> None:
        """Restore the saved optimizer, schedule and scaler if the run stopped inside ``phase``."""
        saved, self.saved = self.saved, None
        if saved is None or saved.get("phase") != phase or not saved.get("optimizer"):
            return
        optimizer.load_state_dict(saved["optimizer"])
        for part, name in ((scheduler, "scheduler"), (scaler, "scaler")):
            if part is not None and saved.get(name):
                part.load_state_dict(saved[name])


def fit(model: nn.Module, train_loader: TensorLoader, val_loader: TensorLoader, cfg: TrainConfig,
        strategy: StrategyConfig, run_dir: str | os.PathLike[str], class_names: Sequence[str] = (),
        resume: bool = False, extra_config: dict | None = None, tracker=None) -> FitResult:
    """Train ``model`` with ``strategy``; keep the best epoch on validation ``cfg.monitor``.

    The strategy's phases (:meth:`StrategyConfig.phases`) say what trains at which rates for how long; each
    phase gets a fresh optimizer and schedule (:mod:`medvision.train.optim`). ``run_dir`` receives the configuration,
    history and checkpoints (:class:`~medvision.train.run_dir.RunDirectory`); with ``resume`` an interrupted run
    continues from ``last.pt`` with every random generator restored (:class:`TrainState`). ``train_loader``
    gives augmented training batches and ``val_loader`` validation batches (the test split is never used here);
    ``extra_config`` adds facts to the saved configuration; ``tracker`` is an optional
    :class:`medvision.train.tracking.MLflowTracker`. Only rank 0 writes under DDP; every rank trains.

    Returns:
        The history and the best epoch; the model holds the best weights on return.
    """
    run = _Run.start(model, cfg, strategy, RunDirectory(run_dir), class_names, train_loader.labels,
                     {"train": asdict(cfg), "strategy": asdict(strategy), **(extra_config or {})}, resume, tracker,
                     balanced=bool(getattr(train_loader, "balanced", False)))
    spent = _CacheCosts()
    for phase in strategy.phases(cfg.epochs):
        if phase.end <= run.state.next_epoch or run.stopped_early:
            continue
        optimizer = make_optimizer(param_groups(model, strategy, phase.start))
        if phase.restart and run.state.next_epoch <= phase.start:  # start the phase from the best epoch so far
            run.load_best(model)
        data = _EpochData.build(model, cfg, train_loader, val_loader, run)  # after the freezing: it decides
        spent.add(data)
        scheduler, per_batch = make_scheduler(cfg.scheduler, optimizer, phase.schedule_epochs, len(data.train),
                                              "min" if cfg.monitor == "loss" else "max", cfg.warmup_epochs)
        run.state.load_optimizer(phase.index, optimizer, scheduler, run.scaler)
        run.trainable = count_trainable(model)
        stepped = data.step_model if not run.dist.enabled else DistributedDataParallel(  # the groups trainable now
            model, device_ids=[run.device.index or 0] if run.device.type == "cuda" else None)
        for epoch in range(max(phase.start, run.state.next_epoch), phase.end):
            torch.manual_seed(cfg.seed * 100_003 + epoch)  # dropout etc.: identical with or without resume
            data.train.set_epoch(epoch)
            start = time.perf_counter()
            train_stats = train_one_epoch(stepped, data.train, run.criterion, optimizer, run.device, scheduler,
                                          per_batch, cfg.grad_clip, run.amp_dtype, run.scaler,
                                          cfg.channels_last and data.cached != "features", desc=f"epoch {epoch + 1}/{cfg.epochs}",
                                          progress=cfg.progress and run.dist.is_main, ema=run.ema, mixup=cfg.mixup)
            seconds = time.perf_counter() - start
            val_stats = evaluate(data.scored, data.val, run.device, run.amp_dtype, cfg.top_k)  # all ranks' logits
            if scheduler is not None and not per_batch:
                scheduler.step(val_stats[cfg.monitor] if cfg.scheduler == "plateau" else None)
            run.end_epoch(epoch, phase.index, train_stats, val_stats, seconds, model, optimizer, scheduler)
            if run.stopped_early:
                break
    return run.finish(model, strategy, spent)


@dataclass
class _Run:
    """What one ``fit`` call wires together — device and precision, loss, weight average, resume state, run
    directory and tracker — and what it does at the end of each epoch and of the run."""

    rd: RunDirectory
    cfg: TrainConfig
    dist: distributed.DistInfo
    device: torch.device
    amp_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler | None
    criterion: nn.Module
    state: TrainState
    ema: WeightAverage | None
    tracker: object | None
    trainable: int = 0
    epochs_trained: int = 0

    @classmethod
    def start(cls, model: nn.Module, cfg: TrainConfig, strategy: StrategyConfig, rd: RunDirectory,
              class_names: Sequence[str], labels: np.ndarray, config: dict, resume: bool, tracker,
              balanced: bool = False) -> _Run:
        """Place the model, build the loss, restore an interrupted run, write the configuration.

        The loss's class weights (``weighted_ce``, and ``focal``'s alpha) come from the training labels — unless
        the batches are already drawn class-balanced (``balanced``), when they are uniform: balancing twice
        would push the model towards the rare classes as hard as the data pushes it away from them.
        """
        dist = distributed.info()
        if dist.is_main:
            rd.ensure_writable()
        device, amp_dtype, scaler = _place(model, cfg)
        n_classes = len(class_names) or int(labels.max()) + 1
        weights = torch.ones(n_classes) if balanced else class_weights(labels, n_classes)
        criterion = make_loss(cfg.loss, weights.to(device), cfg.label_smoothing, cfg.focal_gamma).to(device)
        state = _resumed_state(rd, config, model, cfg) if resume else TrainState(cfg.monitor)
        ema = WeightAverage(model, cfg.ema_decay) if cfg.ema_decay else None
        if ema is not None and state.saved is not None:
            ema.load_state_dict(state.saved["ema"])
        tracker = tracker if dist.is_main else None
        if dist.is_main:
            rd.write_config(config)
            rd.write_classes(class_names)
            if tracker is not None:
                tracker.log_params(config)
        return cls(rd, cfg, dist, device, amp_dtype, scaler, criterion, state, ema, tracker)

    @property
    def stopped_early(self) -> bool:
        return bool(self.cfg.patience) and self.state.bad_epochs >= self.cfg.patience

    def scored(self, model: nn.Module) -> nn.Module:
        """The weights validation scores and ``best.pt`` keeps: the weight average where there is one."""
        return self.ema.module if self.ema is not None else model

    def end_epoch(self, epoch: int, phase: int, train_stats: dict, val_stats: dict, seconds: float,
                  model: nn.Module, optimizer, scheduler) -> None:
        """Record the epoch; write ``best.pt`` when it improved, then ``last.pt`` and the history; track it."""
        row = {"epoch": epoch + 1, "phase": phase, **{f"train_{k}": v for k, v in train_stats.items()},
               **{f"val_{k}": v for k, v in val_stats.items()}, "seconds": seconds}
        improved = self.state.record(row, val_stats[self.cfg.monitor])
        if self.dist.is_main:
            if improved:
                save_atomic({"model": self.scored(model).state_dict(), "epoch": epoch, "metrics": val_stats},
                            self.rd.checkpoint("best"))
            save_atomic(self.state.checkpoint(model, phase, optimizer, scheduler, self.scaler, self.ema),
                        self.rd.checkpoint("last"))
            self.rd.write_history(self.state.history)
        if self.tracker is not None:
            self.tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch + 1)
        self.epochs_trained += 1

    def load_best(self, model: nn.Module) -> None:
        """Load ``best.pt`` into ``model`` (and the weight average), where rank 0 has written one."""
        distributed.barrier()
        if self.rd.checkpoint("best").is_file():
            weights = load_checkpoint(self.rd.checkpoint("best"))["model"]
            model.load_state_dict(weights)
            if self.ema is not None:
                self.ema.module.load_state_dict(weights)

    def finish(self, model: nn.Module, strategy: StrategyConfig, spent: _CacheCosts) -> FitResult:
        """Load the best weights into ``model`` (rank 0 wrote them) and say what the run did."""
        if self.tracker is not None:
            self.tracker.log_run_dir(self.rd.path)
        distributed.barrier()
        if self.rd.checkpoint("best").is_file():
            model.load_state_dict(load_checkpoint(self.rd.checkpoint("best"))["model"])
        if not self.trainable:  # resumed a finished run: the loop did not build the last phase's groups
            param_groups(model, strategy, max(0, self.cfg.epochs - 1))
            self.trainable = count_trainable(model)
        return FitResult(pd.DataFrame(self.state.history), self.state.best_epoch, self.state.best_metrics(),
                         self.rd.path, self.trainable, "features" in spent.kinds,
                         {"feature_extraction_seconds": spent.seconds, "world_size": self.dist.world_size,
                          "epochs_trained": self.epochs_trained, "cached": spent.kinds,
                          **({"stage_cache": spent.stage} if spent.stage else {})})


@dataclass
class _EpochData:
    """What a phase's epochs train and validate on: the image loaders; or, for a phase whose frozen part allows
    it, the cached output of that part — pooled features of a frozen backbone
    (:mod:`medvision.train.feature_cache`, with the classifier alone) or the activations of the first frozen
    stages (:mod:`medvision.train.stage_cache`, with the stages after them and the head)."""

    train: TensorLoader | FeatureLoader
    val: TensorLoader | FeatureLoader
    step_model: nn.Module
    scored: nn.Module
    cached: str = ""  # "", "features" or "stages"
    feature_seconds: float = 0.0
    stage: dict = field(default_factory=dict)

    @classmethod
    def build(cls, model: nn.Module, cfg: TrainConfig, train_loader: TensorLoader, val_loader: TensorLoader,
              run: _Run) -> _EpochData:
        """The phase's data; ``model``'s parameters must already be frozen as the phase wants them."""
        scored = run.scored(model)
        if can_cache_features(train_loader, _backbone_frozen(model), cfg.cached_head, cfg.mixup, run.dist.enabled):
            train, val, seconds = cached_feature_loaders(model, train_loader, val_loader, cfg.training_tta == "hflip",
                                                         run.device)
            return cls(train, val, CachedHead(model), CachedHead(scored), "features", seconds)
        seq = stages(model)
        n = frozen_stages(model)
        if seq is not None and can_cache_stages(train_loader, n, len(seq), cfg.cached_stages, cfg.mixup,
                                                run.dist.enabled):
            train, val, info = stage_loaders(model, n, train_loader, val_loader, cfg.training_tta == "hflip",
                                             cfg.cache_views, run.device)
            return cls(train, val, StageSuffix(model, n), StageSuffix(scored, n), "stages", info["seconds"], info)
        return cls(train_loader, val_loader, model, with_tta(scored, cfg.training_tta))


def _backbone_frozen(model: nn.Module) -> bool:
    """Only the classifier trains (a head-only strategy, or ``two_phase``'s first phase)."""
    head = {id(p) for p in model.get_classifier().parameters()}
    return all(not p.requires_grad for p in model.parameters() if id(p) not in head)


@dataclass
class _CacheCosts:
    """What the phases' caches cost, summed over a run: seconds, which kinds, the stage cache's facts."""

    seconds: float = 0.0
    kinds: list[str] = field(default_factory=list)
    stage: dict = field(default_factory=dict)

    def add(self, data: _EpochData) -> None:
        self.seconds += data.feature_seconds
        if data.cached:
            self.kinds.append(data.cached)
        if data.stage:
            self.stage = data.stage


def _place(model: nn.Module, cfg: TrainConfig) -> tuple[torch.device, torch.dtype | None, torch.amp.GradScaler | None]:
    """Move ``model`` to its device and memory format; the autocast dtype and, for fp16, a gradient scaler."""
    device = resolve_device(cfg.device)
    amp_dtype = autocast_dtype(cfg.amp, device)
    model.to(device)
    if cfg.channels_last:  # faster on CPU (oneDNN) as on CUDA: measured in bench/train_throughput.py
        model.to(memory_format=torch.channels_last)
    return device, amp_dtype, torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None


def _resumed_state(rd: RunDirectory, config: dict, model: nn.Module, cfg: TrainConfig) -> TrainState:
    """The state of the run in ``rd`` with its weights loaded into ``model``, or a fresh state if it has none.

    Raises:
        RunConfigMismatchError: ``rd`` holds a run made with another configuration.
    """
    if not rd.checkpoint("last").is_file():
        return TrainState(cfg.monitor)
    rd.check_resumable(config)
    saved = load_checkpoint(rd.checkpoint("last"))
    model.load_state_dict(saved["model"])
    return TrainState.resume(saved, cfg.monitor, cfg.patience, cfg.epochs)
