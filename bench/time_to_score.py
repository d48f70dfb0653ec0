"""Wall time to a validation score: medvision's ``fit`` against a plain PyTorch loop, seed by seed.

The plain loop trains the way a user would write it (constant learning rate, AdamW, flips, float tensors in
memory, ``F.interpolate`` per batch, a ``no_grad`` validation pass after every epoch) for ``epochs`` epochs;
its final validation macro-F1 is the target. medvision's ``fit`` then trains the same model from the same
ImageNet weights with the same optimizer, peak learning rate, batch, flips and epochs, with its default schedule
(cosine decay per step; ``onecycle`` can be chosen, but with three epochs its warm-up costs more than it gives:
measured 2026-11-30 it reached the target an epoch later than cosine on seeds 0 and 1), and the clock stops at the end of the first epoch whose validation macro-F1 reaches the target
(validation, checkpoints and history included). Both final models are scored on the test split, so the speed-up
can be checked against the accuracy it costs or gains. Used by ``train_throughput.py --seeds``.
"""

from __future__ import annotations

import copy
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

from medvision.data import AugmentConfig, TensorLoader
from medvision.experiment import parse_strategy
from medvision.metrics import classification_metrics
from medvision.training import TrainConfig, evaluate, fit

FLIPS = AugmentConfig(hflip=0.5, degrees=0, scale=(1, 1), ratio=(1, 1), brightness=0, contrast=0)
MONITOR = "macro_f1"


class _Clock:
    """A tracker for ``fit`` that notes the wall time at the end of every epoch (after validation and
    checkpoints), with that epoch's validation score."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.epochs: list[tuple[float, float]] = []

    def log_params(self, params: dict) -> None:
        pass

    def log_metrics(self, metrics: dict, step: int) -> None:
        self.epochs.append((time.perf_counter() - self.start, float(metrics[f"val_{MONITOR}"])))

    def log_run_dir(self, run_dir) -> None:
        pass


def _plain_scores(model, images, labels, size, mean, std) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model((F.interpolate(images[i:i + 256], size=(size, size), mode="bilinear",
                                                 align_corners=False) - mean) / std)
                            for i in range(0, len(images), 256)])
    return classification_metrics(logits, labels)


def plain_fit(model, train, val, test, size, mean, std, epochs, lr, batch, seed) -> dict:
    """A user's training loop with a validation pass per epoch; returns its timeline and final scores."""
    torch.manual_seed(seed)
    images, labels = train
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    start, timeline = time.perf_counter(), []
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(images), generator=g)
        for i in range(0, len(images), batch):
            idx = order[i:i + batch]
            x = F.interpolate(images[idx], size=(size, size), mode="bilinear", align_corners=False)
            flip = torch.rand(len(idx), generator=g) < 0.5
            x = (torch.where(flip[:, None, None, None], x.flip(3), x) - mean) / std
            loss = F.cross_entropy(model(x), labels[idx])
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        timeline.append((time.perf_counter() - start, _plain_scores(model, *val, size, mean, std)[MONITOR]))
    return {"timeline": timeline, "test": _plain_scores(model, *test, size, mean, std)}


def medvision_fit(model, train_u8, val_u8, test_u8, norm, size, epochs, lr, batch, seed,
                  scheduler: str = "cosine") -> dict:
    """``fit`` with its default schedule (everything else as the plain loop); returns timeline and test scores."""
    clock_loader = dict(mean=norm["mean"], std=norm["std"], out_size=size)
    train = TensorLoader(*train_u8, batch_size=batch, shuffle=True, augment=FLIPS, seed=seed, **clock_loader)
    val = TensorLoader(*val_u8, batch_size=256, **clock_loader)
    cfg = TrainConfig(epochs=epochs, scheduler=scheduler, monitor=MONITOR, patience=0, grad_clip=1.0, seed=seed,
                      device="cpu", progress=False)
    strategy = parse_strategy("full", lr=lr, weight_decay=0.01)  # AdamW's own default decay, as the plain loop
    clock = _Clock()
    with tempfile.TemporaryDirectory() as run_dir:
        torch.manual_seed(seed)
        clock.start = time.perf_counter()
        fit(model, train, val, cfg, strategy, run_dir, class_names=("0", "1"), tracker=clock)
    test = TensorLoader(*test_u8, batch_size=256, **clock_loader)
    return {"timeline": clock.epochs, "test": evaluate(model, test, torch.device("cpu"))}


def time_to_score(base, cache, norm, size: int, epochs: int, seeds, train_images: int, lr: float = 1e-3,
                  batch: int = 64, scheduler: str = "cosine") -> list[dict]:
    """One row per seed: both timelines, the target, medvision's time to reach it, the ratio, test scores."""
    mean, std = torch.tensor(norm["mean"]).view(1, 3, 1, 1), torch.tensor(norm["std"]).view(1, 3, 1, 1)
    splits = {}
    for name in ("train", "val", "test"):
        u8, y = cache.split(name)
        keep = np.sort(np.random.default_rng(0).permutation(len(y))[:train_images]) \
            if name == "train" and 0 < train_images < len(y) else np.arange(len(y))
        u8, y = np.ascontiguousarray(u8[keep]), np.asarray(y)[keep]
        splits[name] = ((u8, y), (torch.from_numpy(u8).float().div_(255), torch.from_numpy(y).long()))
    rows = []
    for seed in seeds:
        plain = plain_fit(copy.deepcopy(base), *(splits[s][1] for s in ("train", "val", "test")), size, mean, std,
                          epochs, lr, batch, seed)
        ours = medvision_fit(copy.deepcopy(base), *(splits[s][0] for s in ("train", "val", "test")), norm, size,
                             epochs, lr, batch, seed, scheduler)
        target = plain["timeline"][-1][1]
        reached = next((t for t, score in ours["timeline"] if score >= target), None)
        rows.append({
            "seed": seed, "epochs": epochs, "scheduler": scheduler, "train_images": len(splits["train"][0][1]),
            "size": size,
            "target_val_" + MONITOR: target, "plain_seconds": plain["timeline"][-1][0],
            "medvision_seconds_to_target": reached,
            "ratio": plain["timeline"][-1][0] / reached if reached else None,
            "plain_timeline": plain["timeline"], "medvision_timeline": ours["timeline"],
            "plain_test_accuracy": plain["test"]["accuracy"], "medvision_test_accuracy": ours["test"]["accuracy"],
            "plain_test_auroc": plain["test"]["auroc"], "medvision_test_auroc": ours["test"]["auroc"],
        })
    if rows:  # the plain loop's final score varies from seed to seed: also time its mean over the seeds
        mean_target = float(np.mean([r["target_val_" + MONITOR] for r in rows]))
        mean_plain = float(np.mean([r["plain_seconds"] for r in rows]))
        for r in rows:
            t = next((t for t, score in r["medvision_timeline"] if score >= mean_target), None)
            r.update({"mean_target_val_" + MONITOR: mean_target, "medvision_seconds_to_mean_target": t,
                      "ratio_to_mean_target": mean_plain / t if t else None})
    return rows
