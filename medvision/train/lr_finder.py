"""Learning-rate range test (Smith 2017; fastai's ``lr_find``): an exponential LR sweep on a copy of the model."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from medvision.config import StrategyConfig
from medvision.core import distributed
from medvision.train.loop import make_optimizer
from medvision.train.strategies import param_groups, train_mode


@dataclass(frozen=True)
class LRFinderResult:
    """Learning rates tried, smoothed losses, and the suggested LR (steepest descent of the smoothed loss)."""

    lrs: np.ndarray
    losses: np.ndarray
    suggestion: float


def lr_find(model: nn.Module, loader: Iterable, strategy: StrategyConfig, criterion: nn.Module | None = None,
            start_lr: float = 1e-6, end_lr: float = 1.0, num_steps: int = 60, beta: float = 0.9,
            diverge: float = 4.0, device: torch.device | str = "cpu") -> LRFinderResult:
    """Sweep the head LR exponentially from ``start_lr`` to ``end_lr`` on a deep copy of ``model``.

    The strategy's relative learning rates between groups are kept. The sweep stops when the smoothed
    loss exceeds ``diverge`` times its minimum. ``model`` itself is not changed. Single-process only
    (it does not support DistributedDataParallel).
    """
    if distributed.info().enabled:
        raise RuntimeError("lr_find does not support DistributedDataParallel: run it in a single process "
                           "(python, not torchrun) and pass the chosen LR to the distributed run")
    device = torch.device(device)
    work = copy.deepcopy(model).to(device)
    groups = param_groups(work, strategy)
    base = [g["lr"] for g in groups]
    head_lr = max(base)
    optimizer = make_optimizer(groups)
    criterion = criterion or nn.CrossEntropyLoss()
    factor = (end_lr / start_lr) ** (1 / max(1, num_steps - 1))
    lrs, losses = [], []
    avg, best, step = 0.0, math.inf, 0
    train_mode(work)
    while step < num_steps:
        for x, y in loader:
            lr = start_lr * factor**step
            for g, b in zip(optimizer.param_groups, base, strict=True):
                g["lr"] = lr * b / head_lr
            loss = criterion(work(x.to(device)), y.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            avg = beta * avg + (1 - beta) * loss.item()
            smoothed = avg / (1 - beta ** (step + 1))
            lrs.append(lr)
            losses.append(smoothed)
            best = min(best, smoothed)
            step += 1
            if step >= num_steps or not math.isfinite(smoothed) or smoothed > diverge * best:
                step = num_steps
                break
    lr_arr, loss_arr = np.array(lrs), np.array(losses)
    finite = np.isfinite(loss_arr)
    lr_arr, loss_arr = lr_arr[finite], loss_arr[finite]
    if len(loss_arr) < 3:
        raise RuntimeError("the LR sweep diverged immediately; lower start_lr")
    grads = np.gradient(loss_arr, np.log10(lr_arr))
    stop = int(np.argmin(loss_arr)) + 1  # steepest descent before the minimum
    suggestion = float(lr_arr[int(np.argmin(grads[:max(stop, 2)]))])
    return LRFinderResult(lr_arr, loss_arr, suggestion)
