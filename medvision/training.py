"""The training loop: ``train_one_epoch`` and ``evaluate`` return dicts; ``fit`` composes them.

``fit`` writes a run directory (resolved config, history, ``best`` / ``last`` checkpoints written atomically,
split manifest, class names), resumes from ``last`` after an interruption, stops cleanly on a NaN loss,
and rebuilds the optimizer and scheduler whenever the strategy's phase changes (two-phase fine-tuning).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
import yaml
from timm.utils import ModelEmaV3
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from medvision import distributed
from medvision.atomic import write_text_atomic
from medvision.checkpoints import load_checkpoint, save_atomic
from medvision.data.classes import class_weights
from medvision.data.loader import TensorLoader, epoch_order
from medvision.devices import autocast_dtype, resolve_device
from medvision.fusion import folded_for_inference
from medvision.losses import make_loss
from medvision.metrics import classification_metrics
from medvision.models import TTA_MODES, mean_probability_logits, with_tta
from medvision.strategies import StrategyConfig, count_trainable, param_groups, train_mode

_log = logging.getLogger(__name__)


class RunConfigMismatchError(ValueError):
    """A run directory holds a run made with another configuration."""


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite. The last good checkpoint is kept."""


@dataclass(frozen=True)
class TrainConfig:
    """How to train (the strategy — what trains at which LR — is a :class:`StrategyConfig`).

    Attributes:
        epochs: Maximum epochs.
        scheduler: ``cosine`` (per step), ``cosine_restarts``, ``onecycle``, ``plateau`` or ``none``.
        loss: ``ce``, ``weighted_ce`` (balanced class weights from the training labels) or ``focal``.
        label_smoothing: Label smoothing of the loss.
        focal_gamma: Focusing parameter of the focal loss.
        monitor: Validation metric for best-checkpoint selection and early stopping (higher is better,
            except ``loss``).
        patience: Epochs without improvement before stopping; 0 never stops early.
        grad_clip: Max gradient norm; 0 disables clipping.
        amp: Mixed precision: ``auto`` (on CUDA bf16 where supported, else fp16; full precision on the CPU),
            ``bf16`` (CUDA or CPU), ``fp16`` (CUDA only) or ``off`` (see :func:`medvision.devices.autocast_dtype`).
        channels_last: Use channels-last memory format (on CPU too, where oneDNN's convolutions are faster in it).
        seed: Seed of weights init, dropout, shuffling and augmentation.
        device: ``auto`` (CUDA if available), ``cpu`` or ``cuda``.
        cached_head: Train a head-only strategy on cached backbone features when augmentation allows.
        ema_decay: Keep an exponential moving average of the weights (timm's ``ModelEmaV3`` with warm-up:
            the decay grows with the optimizer step towards this value); validation, the best checkpoint
            and the test score then use the averaged weights. 0 disables it.
        mixup: Mixup (Zhang et al. 2018) ``alpha``: every training batch is blended with a shuffled copy of
            itself with a weight drawn from ``Beta(alpha, alpha)``, and so is the loss of the two label
            sets (this works with every loss). 0 disables it. With mixup a head-only strategy trains on
            images, not on cached features.
        tta: Test-time augmentation of every evaluation of the run (validation during training, the test
            score, saved logits, exported bundles): ``hflip`` averages the class probabilities of each image
            and its mirror image; ``none`` scores the image alone.
        progress: Show a tqdm bar per epoch.
    """

    epochs: int = 10
    scheduler: Literal["cosine", "cosine_restarts", "onecycle", "plateau", "none"] = "cosine"
    loss: Literal["ce", "weighted_ce", "focal"] = "ce"
    label_smoothing: float = 0.0
    focal_gamma: float = 2.0
    monitor: str = "macro_f1"
    patience: int = 5
    grad_clip: float = 1.0
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"
    channels_last: bool = True
    seed: int = 0
    device: str = "auto"
    cached_head: bool = True
    ema_decay: float = 0.0
    mixup: float = 0.0
    tta: Literal["none", "hflip"] = "none"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.mixup < 0:
            raise ValueError(f"TrainConfig.mixup (the Beta alpha) must be >= 0, not {self.mixup}")
        if self.tta not in TTA_MODES:
            raise ValueError(f"TrainConfig.tta must be one of {TTA_MODES}, not {self.tta!r}")


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


def make_optimizer(groups: list[dict]) -> torch.optim.Optimizer:
    """AdamW over the strategy's parameter groups (each carries its own ``lr`` and ``weight_decay``)."""
    clean = [{k: v for k, v in g.items() if k != "names"} for g in groups]
    return torch.optim.AdamW(clean)


def make_scheduler(name: str, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int,
                   mode: str = "max"):
    """A torch LR scheduler and whether it steps per batch (True) or per epoch (False)."""
    total = max(1, epochs * steps_per_epoch)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total), True
    if name == "onecycle":
        max_lr = [g["lr"] for g in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total), True
    if name == "cosine_restarts":
        t0 = max(1, (epochs // 3) * steps_per_epoch)
        return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=t0), True
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=0.5, patience=1), False
    if name == "none":
        return None, False
    raise ValueError(f"unknown scheduler {name!r}; choose cosine, cosine_restarts, onecycle, plateau or none")


@dataclass
class FeatureLoader:
    """Batches of cached backbone features (``views`` x N x D), one random view (e.g. flip) per sample, or
    with ``all_views`` every view, as ``(batch, views, D)`` (for test-time augmentation)."""

    features: torch.Tensor
    labels: np.ndarray
    batch_size: int = 64
    shuffle: bool = False
    balanced: bool = False
    seed: int = 0
    epoch: int = 0
    all_views: bool = False

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.features.shape[1] // self.batch_size)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        order = epoch_order(self.labels, self.shuffle, self.balanced, g)
        views = torch.randint(0, self.features.shape[0], (len(order),), generator=g) if self.shuffle or \
            self.balanced else torch.zeros(len(order), dtype=torch.long)
        for start in range(0, len(order), self.batch_size):
            idx = torch.from_numpy(order[start:start + self.batch_size])
            x = self.features[:, idx].transpose(0, 1) if self.all_views else \
                self.features[views[start:start + len(idx)], idx]
            yield x, torch.from_numpy(self.labels[idx.numpy()])


@torch.no_grad()
def extract_features(model: nn.Module, loader: Iterable, flips: bool = False, device: torch.device | None = None
                     ) -> tuple[torch.Tensor, np.ndarray]:
    """Pooled pre-logit features of every batch (``forward_head(pre_logits=True)``), in eval mode.

    Returns ``(views, N, D)`` features — ``views`` is 2 with horizontal flips — and the labels.
    """
    device = device or next(model.parameters()).device
    model.eval()
    feats: list[list[torch.Tensor]] = [[] for _ in range(2 if flips else 1)]
    labels = []
    for x, y in loader:
        x = _as_model_input(x, device)
        for v, batch in enumerate([x, torch.flip(x, dims=[3])] if flips else [x]):
            feats[v].append(model.forward_head(model.forward_features(batch), pre_logits=True).float().cpu())
        labels.append(y.cpu())
    return torch.stack([torch.cat(f) for f in feats]), torch.cat(labels).numpy()


class CachedHead(nn.Module):
    """The model's own classifier (shared parameters) with its dropout, for training on cached features.

    Features of shape ``(batch, views, D)`` (test-time views such as flips) give the log of the views' mean
    class probabilities, as :class:`medvision.models.FlipTTA` does with images.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.drop = nn.Dropout(float(getattr(model, "drop_rate", 0.0)))
        self.classifier = model.get_classifier()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(self.drop(features))
        return mean_probability_logits(logits) if features.ndim == 3 else logits


class WeightAverage:
    """An exponential moving average of ``model``'s weights and buffers (timm's ``ModelEmaV3`` with decay
    warm-up, so short fine-tuning runs average over a window that grows with the step count) and the step
    count that the warm-up needs, both saved in checkpoints so that a resumed run averages identically."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1) (0 disables the average), got {decay}")
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


def _as_model_input(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch on ``device``; image batches in channels-last layout, which oneDNN (CPU) and cuDNN run faster
    whatever the layout of the weights."""
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x


def predict_logits(model: nn.Module, loader: Iterable, device: torch.device,
                   amp_dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and targets of every batch, in eval mode under ``torch.inference_mode`` with BatchNorm folded into
    the convolutions (:mod:`medvision.fusion`); under DDP gathered from all ranks in sample order."""
    model.eval()
    logits, targets, net = [], [], None
    for x, y in loader:
        x = _as_model_input(x, device)
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
             amp_dtype: torch.dtype | None = None) -> dict[str, float]:
    """Cross-entropy loss and classification metrics (accuracy, balanced accuracy, macro-F1, AUROC)."""
    logits, targets = predict_logits(model, loader, device, amp_dtype)
    return {"loss": nn.functional.cross_entropy(logits, targets).item(),
            **classification_metrics(logits, targets)}


# ------------------------------------------------------------------------------------------------ fit
def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
            "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64))}


def check_run_dir(run_dir: Path) -> None:
    """Fail before training when the run directory cannot be written."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"0" * 1024)
        probe.unlink()
    except OSError as exc:
        raise OSError(f"run directory {run_dir} is not writable ({exc.strerror or exc}); "
                      "nothing was trained") from exc


def fit(model: nn.Module, train_loader: TensorLoader, val_loader: TensorLoader, cfg: TrainConfig,
        strategy: StrategyConfig, run_dir: str | os.PathLike[str], class_names: Sequence[str] = (),
        resume: bool = False, extra_config: dict | None = None, tracker=None) -> FitResult:
    """Train ``model`` with ``strategy``; keep the best epoch on validation ``cfg.monitor``.

    Args:
        model: A timm model (see :func:`medvision.models.create_model`).
        train_loader: Training batches (shuffled, augmented).
        val_loader: Validation batches (no augmentation). The test split is never used here.
        cfg: Loop settings.
        strategy: What trains at which learning rate.
        run_dir: Where config, history and checkpoints go.
        class_names: Saved as ``classes.json``.
        resume: Continue from ``run_dir/last.pt`` if it exists.
        extra_config: More facts for ``config.yaml`` (data config, weights source...).
        tracker: Optional :class:`medvision.tracking.MLflowTracker` (params, per-epoch metrics, artifacts).

    Returns:
        The history and the best epoch; the model holds the best weights on return.
    """
    run_dir = Path(run_dir)
    dist = distributed.info()
    main = dist.is_main  # only rank 0 writes files; every rank trains
    if main:
        check_run_dir(run_dir)
    device = resolve_device(cfg.device)
    amp_dtype = autocast_dtype(cfg.amp, device)
    channels_last = cfg.channels_last  # faster on CPU (oneDNN) as on CUDA: measured in bench/train_throughput.py
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)

    weights = class_weights(train_loader.labels, len(class_names) or int(train_loader.labels.max()) + 1)
    criterion = make_loss(cfg.loss, weights.to(device), cfg.label_smoothing, cfg.focal_gamma).to(device)

    augment = train_loader.augment
    use_cache = (cfg.cached_head and strategy.name == "head_only" and not cfg.mixup
                 and (augment is None or augment.is_flip_only))
    if use_cache and dist.enabled:
        _log.warning("cached head-only features are single-process: under DDP the frozen backbone runs on every "
                     "rank instead")
        use_cache = False
    start_epoch, best_score, best_epoch, bad_epochs, history = 0, _initial_best(cfg.monitor), -1, 0, []
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    config = {"train": asdict(cfg), "strategy": asdict(strategy), **(extra_config or {})}
    config_path = run_dir / "config.yaml"
    state = None
    if resume and last_path.is_file():
        previous = yaml.safe_load(config_path.read_text()) if config_path.is_file() else None
        if previous is None or _resume_key(previous) != _resume_key(json.loads(json.dumps(config))):
            raise RunConfigMismatchError(
                f"{run_dir} holds a run with a different configuration ({config_path}); resuming would mix "
                "two experiments. Delete the folder or choose another run directory.")
        state = load_checkpoint(last_path)
        model.load_state_dict(state["model"])
        start_epoch, best_score = state["epoch"] + 1, state["best_score"]
        best_epoch, bad_epochs, history = state["best_epoch"], state["bad_epochs"], list(state["history"])
        if cfg.patience and bad_epochs >= cfg.patience:
            start_epoch = cfg.epochs  # the run had stopped early: it is finished, not interrupted
    ema = WeightAverage(model, cfg.ema_decay) if cfg.ema_decay else None
    if ema is not None and state is not None:
        ema.load_state_dict(state["ema"])
    scored = ema.module if ema is not None else model  # the weights validation scores and best.pt keeps

    if main:
        write_text_atomic(config_path, yaml.safe_dump(json.loads(json.dumps(config)), sort_keys=False))
        if tracker is not None:
            tracker.log_params(config)
        write_text_atomic(run_dir / "classes.json", json.dumps(list(class_names)))
    else:
        tracker = None

    train_iter, val_iter, step_model = train_loader, val_loader, model
    feature_seconds = 0.0
    if use_cache:
        param_groups(model, strategy)  # freeze the backbone before extracting
        flips = augment is not None and (augment.hflip > 0)
        extract_start = time.perf_counter()
        feats, labels = extract_features(model, _ordered(train_loader), flips=flips, device=device)
        val_flips = cfg.tta == "hflip"  # test-time flips: both views of each validation image
        vfeats, vlabels = extract_features(model, val_loader, flips=val_flips, device=device)
        train_iter = FeatureLoader(feats, labels, train_loader.batch_size, shuffle=True,
                                   balanced=train_loader.balanced, seed=train_loader.seed)
        val_iter = FeatureLoader(vfeats, vlabels, val_loader.batch_size, all_views=val_flips)
        step_model = CachedHead(model)
        feature_seconds = time.perf_counter() - extract_start

    optimizer = scheduler = None
    phase, per_batch, trainable, epochs_trained = None, False, 0, 0
    for epoch in range(start_epoch, cfg.epochs):
        new_phase = strategy.phase(epoch)
        if new_phase != phase:  # the optimizer and scheduler are rebuilt at every phase change
            groups = param_groups(model, strategy, epoch)
            optimizer = make_optimizer(groups)
            phase_end = strategy.phase1_epochs if (strategy.name == "two_phase" and new_phase == 0) else cfg.epochs
            phase_start = strategy.phase1_epochs if new_phase == 1 else 0
            scheduler, per_batch = make_scheduler(cfg.scheduler, optimizer, phase_end - phase_start,
                                                  len(train_iter), "min" if cfg.monitor == "loss" else "max")
            trainable = count_trainable(model)
            if dist.enabled:  # rebuilt per phase: DDP registers the parameters that require grad now
                step_model = DistributedDataParallel(
                    model, device_ids=[device.index or 0] if device.type == "cuda" else None)
            if state is not None and state.get("phase") == new_phase and state.get("optimizer"):
                optimizer.load_state_dict(state["optimizer"])
                if scheduler is not None and state.get("scheduler"):
                    scheduler.load_state_dict(state["scheduler"])
                if scaler is not None and state.get("scaler"):
                    scaler.load_state_dict(state["scaler"])
                torch.set_rng_state(state["rng"]["torch"])
            state = None
            phase = new_phase
        torch.manual_seed(cfg.seed * 100_003 + epoch)  # dropout etc.: identical with or without resume
        train_iter.set_epoch(epoch)
        start = time.perf_counter()
        train_stats = train_one_epoch(step_model, train_iter, criterion, optimizer, device, scheduler, per_batch,
                                      cfg.grad_clip, amp_dtype, scaler, channels_last and not use_cache,
                                      desc=f"epoch {epoch + 1}/{cfg.epochs}", progress=cfg.progress and main,
                                      ema=ema, mixup=cfg.mixup)
        seconds = time.perf_counter() - start
        val_stats = evaluate(CachedHead(scored) if use_cache else with_tta(scored, cfg.tta), val_iter, device,
                             amp_dtype)
        if scheduler is not None and not per_batch:
            scheduler.step(val_stats[cfg.monitor] if cfg.scheduler == "plateau" else None)
        row = {"epoch": epoch + 1, "phase": phase, **{f"train_{k}": v for k, v in train_stats.items()},
               **{f"val_{k}": v for k, v in val_stats.items()}, "seconds": seconds}
        history.append(row)
        score = val_stats[cfg.monitor]
        # val_stats are computed from the logits of all ranks: every rank takes the same decisions here.
        if _better(score, best_score, cfg.monitor):
            best_score, best_epoch, bad_epochs = score, epoch + 1, 0
            if main:
                save_atomic({"model": scored.state_dict(), "epoch": epoch, "metrics": val_stats}, best_path)
        else:
            bad_epochs += 1
        if main:
            save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "scheduler": scheduler.state_dict() if scheduler is not None else {},
                         "scaler": scaler.state_dict() if scaler is not None else {}, "epoch": epoch,
                         "phase": phase, "best_score": best_score, "best_epoch": best_epoch,
                         "bad_epochs": bad_epochs, "history": history, "rng": _rng_state(),
                         **({"ema": ema.state_dict()} if ema is not None else {})}, last_path)
            write_text_atomic(run_dir / "history.csv", pd.DataFrame(history).to_csv(index=False))
        if tracker is not None:
            tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch + 1)
        epochs_trained += 1
        if cfg.patience and bad_epochs >= cfg.patience:
            break

    if tracker is not None:
        tracker.log_run_dir(run_dir)
    distributed.barrier()  # rank 0 has written best.pt
    if best_path.is_file():
        model.load_state_dict(load_checkpoint(best_path)["model"])
    frame = pd.DataFrame(history)
    best_row = frame[frame["epoch"] == best_epoch].iloc[0] if best_epoch > 0 else None
    best_metrics = {k[4:]: float(v) for k, v in best_row.items() if k.startswith("val_")} \
        if best_row is not None else {}
    if not trainable:  # resumed a finished run: the loop did not build the last phase's groups
        param_groups(model, strategy, max(0, cfg.epochs - 1))
        trainable = count_trainable(model)
    return FitResult(frame, best_epoch, best_metrics, run_dir, trainable, use_cache,
                     {"feature_extraction_seconds": feature_seconds, "world_size": dist.world_size,
                      "epochs_trained": epochs_trained})


def _resume_key(config: dict) -> dict:
    """What must match for a run directory to be resumed: the configuration with defaults filled in, where
    a data file known by its md5 counts by content, not by location (the bundled copy of a MedMNIST file and
    the same file under ``$MEDVISION_DATA`` are one data set)."""
    out = with_defaults(config)
    data = out.get("data")
    if isinstance(data, dict) and data.get("md5"):
        out["data"] = {k: v for k, v in data.items() if k != "file"}
    return out


def with_defaults(config: dict) -> dict:
    """A run's ``config.yaml`` with the loop and strategy settings it does not record filled in at their
    defaults: a setting added by a later medvision, at its default, changes nothing, so older run
    directories still resume and still compare with new ones."""
    out = dict(config)
    for key, cls in (("train", TrainConfig), ("strategy", StrategyConfig)):
        if isinstance(out.get(key), dict):
            out[key] = {**json.loads(json.dumps(asdict(cls()))), **out[key]}
    return out


def _ordered(loader: TensorLoader) -> TensorLoader:
    """The same images in file order, without augmentation (for feature extraction)."""
    from dataclasses import replace

    return replace(loader, shuffle=False, balanced=False, augment=None)
