"""Wall time to a validation score: medvision's ``fit`` against a plain PyTorch loop, seed by seed.

The plain loop trains the way a user would write it (constant learning rate, AdamW, flips, float tensors in
memory, ``F.interpolate`` per batch, a ``no_grad`` validation pass after every epoch) for ``epochs`` epochs; its
final validation macro-F1 is the target. medvision's ``fit`` trains the same model from the same ImageNet
weights with the same optimizer (AdamW, weight decay), batch, flips and gradient clipping, with its recipe for a
fast fine-tune (:data:`RECIPE`), fastai's ``fine_tune(epochs, freeze_epochs=1)``: one epoch trains the new head
alone on the frozen backbone (cheap: no backward pass through the backbone; the "linear probe, then fine-tune"
of Kumar et al., ICLR 2022, which keeps a random head from distorting the pretrained features), then everything
trains for as many epochs as the plain loop runs. Each phase follows a cosine from twice the plain loop's rate
to zero, so the full-network epochs see the same mean learning rate as the plain loop's constant one. The clock
stops at the end of the first epoch whose validation macro-F1 reaches the target (validation, checkpoints and
history included).

The plain loop's final score varies from seed to seed (its last epoch at a constant rate lands where it lands),
so the time to the *mean* of the plain finals over the seeds is reported beside each seed's own target. Both
final models are scored once on the test split: a faster route to a worse model would not count. Each side runs
in its own worker process (``sides.py``). Used by ``train_throughput.py --seeds``.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from sides import data, pair, plain_logits

from medvision.config.choices import HEADLINE_METRICS

MONITOR = "macro_f1"
# fit's settings for the time to score: one head-only epoch, then the plain loop's number of epochs for
# everything; a cosine per phase from ``peak_lr_scale`` times the plain loop's rate (same mean rate).
RECIPE = {"strategy": "two_phase:all", "phase1_epochs": 1, "backbone_lr_scale": 1.0, "scheduler": "cosine",
          "peak_lr_scale": 2.0}


def _plain_scores(model, images, labels, size) -> dict[str, float]:

    from medvision.metrics.classification import classification_metrics

    return classification_metrics(plain_logits(model, images, size, *data().mean_std()), labels)


def plain_fit(seed: int, size: int, epochs: int, lr: float, batch: int, train_images: int) -> dict:
    """A user's training loop with a validation pass per epoch; returns its timeline and final test scores."""
    images, labels = data().floats("train", train_images)
    mean, std = data().mean_std()
    model = data().model()
    torch.manual_seed(seed)
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
        timeline.append((time.perf_counter() - start, _plain_scores(model, *data().floats("val"), size)[MONITOR]))
    return {"timeline": timeline, "test": _plain_scores(model, *data().floats("test"), size),
            "train_images": len(labels)}


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


def medvision_fit(seed: int, size: int, epochs: int, lr: float, batch: int, train_images: int) -> dict:
    """``fit`` with :data:`RECIPE` (everything else as the plain loop, ``epochs`` and ``lr`` being the plain
    loop's); returns its timeline and test scores."""
    from medvision.config import AugmentConfig, TrainConfig, parse_strategy
    from medvision.data import TensorLoader
    from medvision.train.loop import evaluate, fit

    flips = AugmentConfig(hflip=0.5, degrees=0, scale=(1, 1), ratio=(1, 1), brightness=0, contrast=0)
    common = dict(mean=data().norm["mean"], std=data().norm["std"], out_size=size)
    train = TensorLoader(*data().split("train", train_images), batch_size=batch, shuffle=True, augment=flips,
                         seed=seed, **common)
    val = TensorLoader(*data().split("val"), batch_size=256, **common)
    cfg = TrainConfig(epochs=RECIPE["phase1_epochs"] + epochs, scheduler=RECIPE["scheduler"], monitor=MONITOR,
                      patience=0, grad_clip=1.0, seed=seed, device="cpu", progress=False)
    strategy = parse_strategy(RECIPE["strategy"], lr=lr * RECIPE["peak_lr_scale"],
                              weight_decay=0.01,  # AdamW's own default decay
                              phase1_epochs=RECIPE["phase1_epochs"], backbone_lr_scale=RECIPE["backbone_lr_scale"])
    model, clock = data().model(), _Clock()
    with tempfile.TemporaryDirectory() as run_dir:
        torch.manual_seed(seed)
        clock.start = time.perf_counter()
        fit(model, train, val, cfg, strategy, run_dir, class_names=("0", "1"), tracker=clock)
    test = TensorLoader(*data().split("test"), batch_size=256, **common)
    return {"timeline": clock.epochs, "test": evaluate(model, test, torch.device("cpu"))}


def time_to_score(size: int, epochs: int, seeds, train_images: int, lr: float = 1e-3, batch: int = 64
                  ) -> list[dict]:
    """One row per seed (a fresh pair of worker processes each, as two training scripts would run): both
    timelines, the targets, medvision's time to reach them, the ratios, test scores."""
    rows = []
    for seed in seeds:
        with pair() as (plain, ours):
            p = plain(plain_fit, seed, size, epochs, lr, batch, train_images)
            m = ours(medvision_fit, seed, size, epochs, lr, batch, train_images)
        target = p["timeline"][-1][1]
        reached = next((t for t, score in m["timeline"] if score >= target), None)
        rows.append({
            "seed": seed, "epochs": epochs, "recipe": RECIPE, "train_images": p["train_images"], "size": size,
            "target_val_" + MONITOR: target, "plain_seconds": p["timeline"][-1][0],
            "medvision_seconds_to_target": reached,
            "ratio": p["timeline"][-1][0] / reached if reached else None,
            "plain_timeline": p["timeline"], "medvision_timeline": m["timeline"],
            **{f"{who}_test_{k}": r["test"][k] for who, r in (("plain", p), ("medvision", m))
               for k in HEADLINE_METRICS},
        })
    if rows:  # the plain loop's final score varies from seed to seed: also time its mean over the seeds
        mean_target = float(np.mean([r["target_val_" + MONITOR] for r in rows]))
        mean_plain = float(np.mean([r["plain_seconds"] for r in rows]))
        for r in rows:
            t = next((t for t, score in r["medvision_timeline"] if score >= mean_target), None)
            r.update({"mean_target_val_" + MONITOR: mean_target, "mean_plain_seconds": mean_plain,
                      "medvision_seconds_to_mean_target": t, "ratio_to_mean_target": mean_plain / t if t else None})
    return rows
