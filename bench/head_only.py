"""Per-epoch speed-up of head-only training on cached backbone features vs running the frozen backbone.

Same model (EfficientNet-Lite0, ImageNet weights from the registry package), same data (PneumoniaMNIST
train split resized to 64 px, flips), same optimizer; measured in one run and printed as a ratio.

    python bench/head_only.py [--epochs 2] [--image-size 64] [--max-images 0]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch

from medvision.config import AugmentConfig, StrategyConfig
from medvision.data import TensorLoader, build_tensor_cache, load_medmnist, normalization_from_model
from medvision.data.splits import stratified_subsample
from medvision.models.backbones import create_model
from medvision.train.loop import (
    CachedHead,
    FeatureLoader,
    extract_features,
    make_optimizer,
    train_one_epoch,
)
from medvision.train.strategies import param_groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--max-images", type=int, default=0, help="subsample the train split (0: all)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    torch.manual_seed(0)
    table = stratified_subsample(load_medmnist("pneumoniamnist"), args.max_images)
    cache = build_tensor_cache(table, 28, progress=False)
    images, labels = cache.split("train")
    model = create_model("tf_efficientnet_lite0", 2, pretrained="package")
    cfg = normalization_from_model(model)
    flips = AugmentConfig(hflip=0.5, degrees=0, scale=(1, 1), ratio=(1, 1), brightness=0, contrast=0)
    loader = TensorLoader(images, labels, cfg["mean"], cfg["std"], batch_size=64, shuffle=True, augment=flips,
                          out_size=args.image_size)
    criterion = torch.nn.CrossEntropyLoss()
    device = torch.device("cpu")
    strategy = StrategyConfig("head_only", lr=1e-3)

    def seconds_per_epoch(net, batches) -> float:
        optimizer = make_optimizer(param_groups(model, strategy))
        start = time.perf_counter()
        for epoch in range(args.epochs):
            batches.set_epoch(epoch)
            train_one_epoch(net, batches, criterion, optimizer, device, progress=False)
        return (time.perf_counter() - start) / args.epochs

    backbone_epoch = seconds_per_epoch(model, loader)

    start = time.perf_counter()
    ordered = TensorLoader(images, labels, cfg["mean"], cfg["std"], batch_size=256, out_size=args.image_size)
    feats, feat_labels = extract_features(model, ordered, flips=True)
    extraction = time.perf_counter() - start
    features = FeatureLoader(feats, feat_labels, batch_size=64, shuffle=True)
    cached_epoch = seconds_per_epoch(CachedHead(model), features)

    print(f"{len(images)} training images at {args.image_size}px, EfficientNet-Lite0, {args.epochs} epochs each, "
          f"torch threads {torch.get_num_threads()}")
    print(f"frozen backbone every epoch : {backbone_epoch:8.3f} s/epoch")
    print(f"cached features             : {cached_epoch:8.3f} s/epoch "
          f"(one-off extraction of 2 flip views: {extraction:.2f} s)")
    print(f"per-epoch speed-up (backbone / cached): {backbone_epoch / cached_epoch:.0f}x")
    for n in (5, 20):
        total = (extraction + n * cached_epoch)
        print(f"speed-up over {n} epochs, extraction included: {n * backbone_epoch / total:.1f}x")
    if args.json:
        args.json.write_text(json.dumps({
            "images": len(images), "image_size": args.image_size, "epochs": args.epochs,
            "backbone_s_per_epoch": backbone_epoch, "cached_s_per_epoch": cached_epoch,
            "extraction_s": extraction, "ratio": backbone_epoch / cached_epoch,
            "ratio_20_epochs_with_extraction": 20 * backbone_epoch / (extraction + 20 * cached_epoch),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}, indent=1))


if __name__ == "__main__":
    main()
