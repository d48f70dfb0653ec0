"""How the loop trains: epochs, schedule, loss, precision, averaging, test-time augmentation."""

from __future__ import annotations

from dataclasses import dataclass

from medvision.config.choices import (
    AMP_MODES,
    LOSSES,
    SCHEDULERS,
    TTA_MODES,
    AmpMode,
    LossName,
    Scheduler,
    TTAMode,
)
from medvision.core.errors import ConfigError


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
            ``bf16`` (CUDA or CPU), ``fp16`` (CUDA only) or ``off`` (see :func:`medvision.core.devices.autocast_dtype`).
        channels_last: Use channels-last memory format (on CPU too, where oneDNN's convolutions are faster in it).
        seed: Seed of weights init, dropout, shuffling and augmentation.
        device: ``auto`` (CUDA if available), ``cpu`` or ``cuda``.
        cached_head: Train a head-only strategy on cached backbone features when augmentation allows.
        cached_stages: Train a strategy (or phase) that freezes the first stages — ``last_k``, ``two_phase``'s
            later phase — on their cached output (:mod:`medvision.train.stage_cache`): the frozen stages run
            once per view, not once per epoch. Exact for the views the cache holds (fp16 storage).
        cache_views: Views per training image in that cache when augmentation is more than a flip: the
            image, its mirror and ``cache_views - 2`` draws of the augmentation, one fixed pool shared by every seed; each
            epoch picks one per image. (With flips only the cache holds the image and its mirror, exactly
            the augmentation's two outcomes.) A fixed pool is a weaker augmentation than a fresh draw per
            epoch: ``bench/stage_cache.py`` compares validation scores with and without it.
        ema_decay: Keep an exponential moving average of the weights (timm's ``ModelEmaV3`` with warm-up:
            the decay grows with the optimizer step towards this value); validation, the best checkpoint
            and the test score then use the averaged weights. 0 disables it.
        mixup: Mixup (Zhang et al. 2018) ``alpha``: every training batch is blended with a shuffled copy of
            itself with a weight drawn from ``Beta(alpha, alpha)``, and so is the loss of the two label
            sets (this works with every loss). 0 disables it. With mixup a head-only strategy trains on
            images, not on cached features.
        tta: Test-time augmentation of every evaluation of the run (validation during training, the test
            score, saved logits, exported bundles): ``hflip`` averages the class probabilities of each image
            and its mirror image; ``none`` scores the image alone; ``auto`` validates without it while
            training, then scores the best checkpoint's validation split both ways and keeps the better on
            ``monitor`` (``none`` on a tie) for the test score, saved logits and bundles; ``summary.json``
            records the choice and both validation scores.
        warmup_epochs: Linear learning-rate warm-up (from 1% of each group's rate) over this many epochs at the
            start of every phase, before a per-step schedule (``cosine``, ``cosine_restarts``, ``none``).
        top_k: Top-k accuracies to add to every evaluation (validation, the test score), e.g. ``[3, 5]``.
        progress: Show a tqdm bar per epoch.
    """

    epochs: int = 10
    scheduler: Scheduler = "cosine"
    loss: LossName = "ce"
    label_smoothing: float = 0.0
    focal_gamma: float = 2.0
    monitor: str = "macro_f1"
    patience: int = 5
    grad_clip: float = 1.0
    amp: AmpMode = "auto"
    channels_last: bool = True
    seed: int = 0
    device: str = "auto"
    cached_head: bool = True
    cached_stages: bool = True
    cache_views: int = 4
    ema_decay: float = 0.0
    mixup: float = 0.0
    tta: TTAMode = "none"
    warmup_epochs: float = 0.0
    top_k: tuple[int, ...] = ()
    progress: bool = True

    @property
    def training_tta(self) -> str:
        """The test-time augmentation of validation during training (``auto`` chooses after training)."""
        return "none" if self.tta == "auto" else self.tta

    def __post_init__(self) -> None:
        if self.cache_views < 1:
            raise ConfigError(f"TrainConfig.cache_views must be >= 1, not {self.cache_views}")
        if self.mixup < 0:
            raise ConfigError(f"TrainConfig.mixup (the Beta alpha) must be >= 0, not {self.mixup}")
        if self.tta not in TTA_MODES:
            raise ConfigError(f"TrainConfig.tta must be one of {TTA_MODES}, not {self.tta!r}")
        if self.warmup_epochs < 0:
            raise ConfigError(f"TrainConfig.warmup_epochs must be >= 0, not {self.warmup_epochs}")
        if self.scheduler not in SCHEDULERS:
            raise ConfigError(f"TrainConfig.scheduler must be one of {SCHEDULERS}, not {self.scheduler!r}")
        if self.warmup_epochs and self.scheduler in ("onecycle", "plateau"):
            raise ConfigError(f"warm-up does not combine with the {self.scheduler} schedule; set warmup_epochs to 0")
        if self.amp not in AMP_MODES:
            raise ConfigError(f"TrainConfig.amp must be one of {AMP_MODES}, not {self.amp!r}")
        if self.loss not in LOSSES:
            raise ConfigError(f"TrainConfig.loss must be one of {LOSSES}, not {self.loss!r}")
