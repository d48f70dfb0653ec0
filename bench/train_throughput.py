"""Training and evaluation images/s of medvision against a plain PyTorch loop, interleaved in one run.

Same model (EfficientNet-Lite0 with the package's ImageNet weights), same images (bundled PneumoniaMNIST train
split, 28 px, resized on the fly), same batch, horizontal flips, AdamW, cross-entropy and gradient clipping.
The plain loop is written the way a user would (tensors in memory, ``F.interpolate`` per batch, ``no_grad``
evaluation); medvision's side is what ``fit`` and ``evaluate`` run. The two alternate round by round, so the
ratios hold on a noisy machine; the median of the rounds is reported.

    python bench/train_throughput.py [--batches 8] [--rounds 3] [--sizes 64 128] [--json out.json]
        [--seeds 0 1 2 --score-epochs 3 --score-train-images 1500]

With ``--seeds`` it also measures, seed by seed, the wall time medvision's ``fit`` (one-cycle schedule) needs to
reach the validation score a plain loop ends with (cosine schedule), and both final test scores (``time_to_score.py``).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from predict_throughput import prediction_rows
from time_to_score import time_to_score

from medvision.data import (
    AugmentConfig,
    TensorLoader,
    build_tensor_cache,
    load_medmnist,
    normalization_from_model,
)
from medvision.experiment import parse_strategy
from medvision.models import create_model
from medvision.strategies import param_groups, train_mode
from medvision.training import evaluate, make_optimizer, train_one_epoch

BATCH = 64
FLIPS = AugmentConfig(hflip=0.5, degrees=0, scale=(1, 1), ratio=(1, 1), brightness=0, contrast=0)


def plain_train(model, images, labels, size, mean, std, batches, strategy_groups) -> float:
    """A user's loop: float tensors in memory, resize and flip per batch, AdamW; returns images/s."""
    optimizer = torch.optim.AdamW([{k: v for k, v in g.items() if k != "names"} for g in strategy_groups])
    model.train()
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(images), generator=g)[: batches * BATCH]
    start = time.perf_counter()
    for i in range(batches):
        idx = order[i * BATCH:(i + 1) * BATCH]
        x = F.interpolate(images[idx], size=(size, size), mode="bilinear", align_corners=False)
        flip = torch.rand(len(idx), generator=g) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        x = (x - mean) / std
        loss = F.cross_entropy(model(x), labels[idx])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return batches * BATCH / (time.perf_counter() - start)


def medvision_train(model, loader, batches, strategy_groups) -> float:
    """``train_one_epoch`` as ``fit`` calls it (channels-last model and batches); returns images/s."""
    optimizer = make_optimizer(strategy_groups)
    loader.set_epoch(0)
    limited = _first(loader, batches)
    start = time.perf_counter()
    train_one_epoch(model, limited, torch.nn.CrossEntropyLoss(), optimizer, torch.device("cpu"), grad_clip=1.0,
                    channels_last=True, progress=False)
    return batches * BATCH / (time.perf_counter() - start)


class _first:
    """The first ``n`` batches of a loader (a loader with a length, for tqdm)."""

    def __init__(self, loader, n):
        self.loader, self.n = loader, n

    def __len__(self):
        return self.n

    def __iter__(self):
        for i, batch in enumerate(self.loader):
            if i == self.n:
                return
            yield batch


def plain_eval(model, images, size, mean, std) -> float:
    model.eval()
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(images), 256):
            x = F.interpolate(images[i:i + 256], size=(size, size), mode="bilinear", align_corners=False)
            model((x - mean) / std)
    return len(images) / (time.perf_counter() - start)


def medvision_eval(model, loader) -> float:
    start = time.perf_counter()
    evaluate(model, loader, torch.device("cpu"))
    return len(loader.images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=8, help="training batches timed per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median reported)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128], help="model input sizes")
    parser.add_argument("--strategies", nargs="+", default=["full", "last_k:2"])
    parser.add_argument("--eval-images", type=int, default=1024)
    parser.add_argument("--seeds", type=int, nargs="*", default=[], help="seeds of the time-to-score runs (none: skip)")
    parser.add_argument("--score-epochs", type=int, default=3, help="epochs of the plain loop and of fit")
    parser.add_argument("--score-train-images", type=int, default=0, help="training images (0: the whole split)")
    parser.add_argument("--score-size", type=int, default=64, help="input size of the time-to-score runs")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    torch.manual_seed(0)
    table = load_medmnist("pneumoniamnist")
    cache = build_tensor_cache(table, 28, progress=False)
    u8, y = cache.split("train")
    images, labels = torch.from_numpy(np.array(u8)).float().div_(255), torch.from_numpy(np.asarray(y)).long()
    base = create_model("tf_efficientnet_lite0", 2, pretrained="package")
    cfg = normalization_from_model(base)
    mean, std = torch.tensor(cfg["mean"]).view(1, 3, 1, 1), torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    rows = []
    for size in args.sizes:
        for spec in args.strategies:
            strategy = parse_strategy(spec)
            plain, ours = copy.deepcopy(base), copy.deepcopy(base).to(memory_format=torch.channels_last)
            plain_groups, our_groups = param_groups(plain, strategy), param_groups(ours, strategy)
            train_mode(ours)
            loader = TensorLoader(u8, y, cfg["mean"], cfg["std"], batch_size=BATCH, shuffle=True, augment=FLIPS,
                                  out_size=size)
            p, m = [], []
            for _ in range(args.rounds):
                p.append(plain_train(plain, images, labels, size, mean, std, args.batches, plain_groups))
                m.append(medvision_train(ours, loader, args.batches, our_groups))
            rows.append({"kind": "train", "strategy": spec, "size": size, "plain_images_per_s": statistics.median(p),
                         "medvision_images_per_s": statistics.median(m)})
        n = min(args.eval_images, len(images))
        loader = TensorLoader(u8[:n], y[:n], cfg["mean"], cfg["std"], batch_size=256, out_size=size)
        model = copy.deepcopy(base)
        p, m = [], []
        for _ in range(args.rounds):
            p.append(plain_eval(model, images[:n], size, mean, std))
            m.append(medvision_eval(model, loader))
        rows.append({"kind": "evaluate", "strategy": "-", "size": size, "plain_images_per_s": statistics.median(p),
                     "medvision_images_per_s": statistics.median(m)})
        rows += prediction_rows(copy.deepcopy(base), np.asarray(u8[:n]), cfg, size, args.rounds, plain_eval, images[:n])
    print(f"EfficientNet-Lite0, batch {BATCH}, torch threads {torch.get_num_threads()}, {args.rounds} rounds "
          f"(median), {args.batches} training batches per round")
    for r in rows:
        r["ratio"] = r["medvision_images_per_s"] / r["plain_images_per_s"]
        print(f"{r['kind']:14s} {r['strategy']:20s} {r['size']:4d}px  plain {r['plain_images_per_s']:7.1f}  "
              f"medvision {r['medvision_images_per_s']:7.1f} images/s  ratio {r['ratio']:.2f}x")
    scores = time_to_score(base, cache, cfg, args.score_size, args.score_epochs, args.seeds, args.score_train_images)
    for r in scores:
        reached = (f"{r['medvision_seconds_to_target']:.0f} s, ratio {r['ratio']:.2f}x" if r["ratio"]
                   else "not reached")
        print(f"seed {r['seed']}: plain {r['epochs']} epochs {r['plain_seconds']:.0f} s to val macro-F1 "
              f"{r['target_val_macro_f1']:.3f}; medvision {reached}; test accuracy plain "
              f"{r['plain_test_accuracy']:.3f} medvision {r['medvision_test_accuracy']:.3f}")
    if args.json:
        args.json.write_text(json.dumps({"threads": torch.get_num_threads(), "batch": BATCH, "rounds": args.rounds,
                                         "rows": rows, "time_to_score": scores}, indent=1))


if __name__ == "__main__":
    main()
