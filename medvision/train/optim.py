"""Optimizer and learning-rate schedule factories, in the shape of timm's ``create_optimizer_v2`` /
``create_scheduler_v2``: a name, the parameter groups or the optimizer, the schedule's length and its warm-up.

The schedules are PyTorch's own (``torch.optim.lr_scheduler``), so their state dicts resume exactly.
"""

from __future__ import annotations

import torch

from medvision.config.choices import SCHEDULERS
from medvision.core.errors import ConfigError

OPTIMIZERS = {"adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


def make_optimizer(groups: list[dict], opt: str = "adamw", **kwargs) -> torch.optim.Optimizer:
    """``opt`` (``adamw`` or ``sgd``) over the strategy's parameter groups; each group carries its own ``lr``
    and ``weight_decay`` (the ``names`` a strategy records are dropped); ``kwargs`` go to the optimizer."""
    if opt not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {opt!r}; choose {', '.join(OPTIMIZERS)}")
    clean = [{k: v for k, v in g.items() if k != "names"} for g in groups]
    return OPTIMIZERS[opt](clean, **kwargs)


def make_scheduler(name: str, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int,
                   mode: str = "max", warmup_epochs: float = 0.0):
    """A learning-rate schedule and whether it steps per batch (True) or per epoch (False).

    Args:
        name: ``cosine`` (to zero over the phase, per step), ``cosine_restarts`` (three cycles), ``onecycle``
            (fastai's, with its own warm-up), ``plateau`` (halve after a validation plateau) or ``none``.
        optimizer: The optimizer whose groups' ``lr`` are the peak rates.
        epochs: Length of the schedule (the strategy's phase).
        steps_per_epoch: Optimizer steps per epoch.
        mode: ``max`` or ``min``: the direction of the monitored metric (``plateau``).
        warmup_epochs: A linear warm-up from 1% of each group's rate over this many epochs (fractions allowed)
            before a per-step schedule; 0 disables it. Not with ``onecycle`` (it warms up itself) or
            ``plateau`` (it steps per epoch).
    """
    if name not in SCHEDULERS:
        raise ConfigError(f"unknown scheduler {name!r}; choose {', '.join(SCHEDULERS)}")
    total = max(1, epochs * steps_per_epoch)
    warmup = min(total - 1, round(warmup_epochs * steps_per_epoch)) if warmup_epochs > 0 else 0
    if warmup and name in ("onecycle", "plateau"):
        raise ConfigError(f"warm-up does not combine with the {name} schedule; set warmup_epochs to 0")
    lr = torch.optim.lr_scheduler
    if name == "plateau":
        return lr.ReduceLROnPlateau(optimizer, mode=mode, factor=0.5, patience=1), False
    if name == "onecycle":
        return lr.OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total), True
    main_steps = total - warmup
    if name == "cosine":
        main = lr.CosineAnnealingLR(optimizer, T_max=main_steps)
    elif name == "cosine_restarts":
        period = max(1, main_steps // 3) if warmup else max(1, (epochs // 3) * steps_per_epoch)
        main = lr.CosineAnnealingWarmRestarts(optimizer, T_0=period)
    elif name == "none":  # a constant rate, after the warm-up if there is one
        if not warmup:
            return None, False
        main = lr.ConstantLR(optimizer, factor=1.0, total_iters=0)
    else:  # declared in config.choices.SCHEDULERS but not built here
        raise ConfigError(f"scheduler {name!r} is declared but has no implementation")
    if not warmup:
        return main, True
    ramp = lr.LinearLR(optimizer, start_factor=0.01, end_factor=1.0, total_iters=warmup)
    return lr.SequentialLR(optimizer, [ramp, main], milestones=[warmup]), True
