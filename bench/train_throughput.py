"""Training and evaluation images/s of medvision against a plain PyTorch loop, alternating in one run.

Same model (EfficientNet-Lite0 with the package's ImageNet weights), same images (bundled PneumoniaMNIST train
split, 28 px, resized on the fly), same batch, horizontal flips, AdamW, cross-entropy and gradient clipping.
The plain loop is written the way a user would (tensors in memory, ``F.interpolate`` per batch, ``no_grad``
evaluation); medvision's side is what ``fit`` and ``evaluate`` run. Each side runs in its own worker process
(``sides.py``: neither inherits the other's process state) and the two alternate round by round, so the ratios
hold on a noisy machine; the median of the rounds is reported.

    python bench/train_throughput.py [--batches 8] [--rounds 3] [--sizes 64 128] [--predict-sizes 64 128]
        [--json out.json]
        [--seeds 0 1 2 --score-epochs 3 --score-train-images 0]

With ``--seeds`` it also measures, seed by seed, the wall time medvision's ``fit`` needs to reach the validation
score a plain loop ends with, and both final test scores (``time_to_score.py``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from predict_throughput import prediction_rows
from sides import alternate, data, pair, plain_logits
from time_to_score import time_to_score

BATCH = 64
_MODELS: dict[tuple, torch.nn.Module] = {}  # per worker: the model each (side, strategy, size) row trains on


def _row_model(side: str, spec: str, size: int):
    """The model a training row keeps training across its rounds, and its strategy's parameter groups."""
    from medvision.config import parse_strategy
    from medvision.train.strategies import param_groups, train_mode

    key = (side, spec, size)
    if key not in _MODELS:
        model = data().model()
        if side == "medvision":
            model = model.to(memory_format=torch.channels_last)
        groups = param_groups(model, parse_strategy(spec))
        if side == "medvision":
            train_mode(model)
        _MODELS[key] = (model, groups)
    return _MODELS[key]


def plain_train(spec: str, size: int, batches: int) -> float:
    """A user's loop: float tensors in memory, resize and flip per batch, AdamW; returns images/s."""
    model, groups = _row_model("plain", spec, size)
    images, labels = data().floats("train")
    mean, std = data().mean_std()
    optimizer = torch.optim.AdamW([{k: v for k, v in g.items() if k != "names"} for g in groups])
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


def medvision_train(spec: str, size: int, batches: int) -> float:
    """``train_one_epoch`` as ``fit`` calls it (channels-last model and batches); returns images/s."""
    from medvision.config import AugmentConfig
    from medvision.data import TensorLoader
    from medvision.train.loop import make_optimizer, train_one_epoch

    model, groups = _row_model("medvision", spec, size)
    u8, y = data().split("train")
    flips = AugmentConfig(hflip=0.5, degrees=0, scale=(1, 1), ratio=(1, 1), brightness=0, contrast=0)
    loader = TensorLoader(u8, y, data().norm["mean"], data().norm["std"], batch_size=BATCH, shuffle=True,
                          augment=flips, out_size=size)
    optimizer = make_optimizer(groups)
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


def plain_eval(size: int, n: int) -> float:
    """images/s of :func:`plain_logits` on the first ``n`` training images."""
    images = data().floats("train")[0][:n]
    model = _MODELS.setdefault(("plain-eval",), data().model())
    start = time.perf_counter()
    plain_logits(model, images, size, *data().mean_std())
    return len(images) / (time.perf_counter() - start)


def medvision_eval(size: int, n: int) -> float:
    """images/s of ``evaluate`` (BatchNorm folded, channels-last, ``inference_mode``) on the same images."""
    from medvision.data import TensorLoader
    from medvision.train.loop import evaluate

    u8, y = data().split("train")
    loader = TensorLoader(u8[:n], y[:n], data().norm["mean"], data().norm["std"], batch_size=256, out_size=size)
    model = _MODELS.setdefault(("medvision-eval",), data().model())
    start = time.perf_counter()
    evaluate(model, loader, torch.device("cpu"))
    return len(loader.images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=8, help="training batches timed per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median reported)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128], help="model input sizes")
    parser.add_argument("--predict-sizes", type=int, nargs="*", default=None,
                        help="input sizes of the prediction rows (default: --sizes; none: skip them)")
    parser.add_argument("--strategies", nargs="+", default=["full", "last_k:2"])
    parser.add_argument("--eval-images", type=int, default=1024)
    parser.add_argument("--seeds", type=int, nargs="*", default=[], help="seeds of the time-to-score runs (none: skip)")
    parser.add_argument("--score-epochs", type=int, default=3, help="epochs of the plain loop (fit: one head-only epoch, then as many)")
    parser.add_argument("--score-train-images", type=int, default=0, help="training images (0: the whole split)")
    parser.add_argument("--score-size", type=int, default=64, help="input size of the time-to-score runs")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        for spec in args.strategies:
            with pair() as (plain, ours):
                p, m = alternate(args.rounds, lambda s=spec, z=size: plain(plain_train, s, z, args.batches),
                                 lambda s=spec, z=size: ours(medvision_train, s, z, args.batches))
            rows.append({"kind": "train", "strategy": spec, "size": size, "plain_images_per_s": p,
                         "medvision_images_per_s": m})
        with pair() as (plain, ours):
            p, m = alternate(args.rounds, lambda z=size: plain(plain_eval, z, args.eval_images),
                             lambda z=size: ours(medvision_eval, z, args.eval_images))
            threads = plain(torch.get_num_threads)
        rows.append({"kind": "evaluate", "strategy": "-", "size": size, "plain_images_per_s": p,
                     "medvision_images_per_s": m})
        if args.predict_sizes is None or size in args.predict_sizes:
            rows += prediction_rows(size, args.rounds, args.eval_images)
    print(f"EfficientNet-Lite0, batch {BATCH}, torch threads {threads} per worker, {args.rounds} rounds "
          f"(median), {args.batches} training batches per round; a fresh pair of worker processes per row")
    for r in rows:
        r["ratio"] = r["medvision_images_per_s"] / r["plain_images_per_s"]
        print(f"{r['kind']:14s} {r['strategy']:20s} {r['size']:4d}px  plain {r['plain_images_per_s']:7.1f}  "
              f"medvision {r['medvision_images_per_s']:7.1f} images/s  ratio {r['ratio']:.2f}x")
    scores = time_to_score(args.score_size, args.score_epochs, args.seeds, args.score_train_images)
    for r in scores:
        reached = (f"{r['medvision_seconds_to_target']:.0f} s, ratio {r['ratio']:.2f}x" if r["ratio"]
                   else "not reached")
        print(f"seed {r['seed']}: plain {r['epochs']} epochs {r['plain_seconds']:.0f} s to val macro-F1 "
              f"{r['target_val_macro_f1']:.3f}; medvision {reached}; mean target "
              f"{r['mean_target_val_macro_f1']:.3f}: {r['ratio_to_mean_target'] or 0:.2f}x; test accuracy plain "
              f"{r['plain_test_accuracy']:.3f} medvision {r['medvision_test_accuracy']:.3f}")
    if args.json:
        args.json.write_text(json.dumps({"threads": threads, "batch": BATCH, "rounds": args.rounds,
                                         "separate_processes": True, "rows": rows, "time_to_score": scores},
                                        indent=1))


if __name__ == "__main__":
    main()
