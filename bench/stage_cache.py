"""Last-k fine-tuning at 224 px with and without the stage-activation cache: speed, disk, memory, exactness, scores.

Both sides run medvision's own ``fit`` (EfficientNet-Lite0 with its packaged ImageNet weights, ``last_k:2``, the
same seed, data, split and schedule), each in a fresh spawned process; only ``train.cached_stages`` differs. Per
augmentation (flips only: the cache holds both outcomes, exactly; the default augmentation: a fixed pool of
``--views`` draws against a fresh draw every epoch) it prints

- training images/s per epoch (the median epoch) and the ratio, measured in one run;
- the one-off cost of building the cache and the speed-up over the run, that cost included;
- the cache's size on disk and each side's peak memory (resident set);
- exactness: the largest difference between the logits of the trained model on the validation images and of
  its unfrozen part on their cached (fp16) activations;
- the best validation macro-F1 and AUROC of each side (one seed: a check that the fixed pool does not cost
  accuracy, not a comparison with an interval).

    python bench/stage_cache.py [--data pneumoniamnist] [--max-images 300] [--epochs 4] [--size 224] [--views 4]

``--data`` is a MedMNIST flag (the bundled files: PneumoniaMNIST's 28 px images upsampled, by default, so it runs
on any machine) or an image folder under the data root (``$MEDVISION_DATA``): the README's figures are
``MEDVISION_DATA=<folder holding chest_xray_224> python bench/stage_cache.py --data chest_xray_224``, the
400-image Kermany chest X-ray subset at 224 px with validation carved by patient.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
from pathlib import Path

import torch
from sides import Side


def _side(data_name: str, max_images: int, size: int, epochs: int, augment: str, cached: bool, views: int,
          workdir: str) -> dict:
    """One ``fit`` in this worker; what it cost and scored."""
    import numpy as np

    from medvision.config import (
        DataConfig,
        ExperimentConfig,
        RunConfig,
        StrategyConfig,
        TrainConfig,
    )
    from medvision.data.pipeline import load_cached_split
    from medvision.models.backbones import create_model
    from medvision.train.loop import fit
    from medvision.train.runner import make_loaders
    from medvision.train.stage_cache import (
        StageSuffix,
        evaluation_views,
        frozen_stages,
        stage_cache,
    )

    os.environ["MEDVISION_CACHE"] = str(Path(workdir) / "tensor-cache")
    from medmnist import INFO

    data = DataConfig(name=data_name) if data_name in INFO else RunConfig.load(  # the chest X-ray system's
        "chest_xray_pneumonia", [{"data": {"name": data_name, "size": size, "min_val": 30}}]).data  # patient split
    cache = load_cached_split(data, max_images)
    torch.manual_seed(0)
    model = create_model("tf_efficientnet_lite0", cache.table.num_classes, pretrained="package")
    exp = ExperimentConfig(image_size=size, batch_size=32, augment=augment)
    loaders = make_loaders(cache, model, exp, seed=0)
    train, val = loaders["train"], loaders["val"]
    cfg = TrainConfig(epochs=epochs, patience=0, progress=False, seed=0, loss="weighted_ce", cached_stages=cached,
                      cache_views=views)
    result = fit(model, train, val, cfg, StrategyConfig("last_k", k=2, lr=1e-3),
                 Path(workdir) / f"{augment}-{'cached' if cached else 'plain'}", cache.table.class_names)
    seconds = float(np.median(result.history["seconds"]))
    out = {"images": len(train.images), "s_per_epoch": seconds, "images_per_s": len(train.images) / seconds,
           "total_train_s": float(result.history["seconds"].sum()),
           "cache_s": result.extra["feature_extraction_seconds"],
           "cache_bytes": result.extra.get("stage_cache", {}).get("bytes", 0),
           "views": result.extra.get("stage_cache", {}).get("views", 0),
           "val_macro_f1": result.best_metrics["macro_f1"], "val_auroc": result.best_metrics["auroc"],
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if cached:  # the trained model on validation images vs its unfrozen part on their cached activations
        n = frozen_stages(model)
        acts = stage_cache(model, n, val, evaluation_views(val, False), torch.device("cpu")).activations[0]
        model.eval()
        with torch.no_grad():
            want = torch.cat([model(x) for x, _ in val])
            got = StageSuffix(model, n)(torch.from_numpy(np.array(acts)).float())
        out["max_logit_diff"] = float((got - want).abs().max())
        out["max_abs_logit"] = float(want.abs().max())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="pneumoniamnist", help="a MedMNIST flag or an image folder under the data root")
    parser.add_argument("--max-images", type=int, default=300, help="training images kept (0: all)")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--views", type=int, default=4, help="cache views for the default augmentation")
    parser.add_argument("--augment", nargs="+", default=["flip", "default"])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as workdir:
        for augment in args.augment:
            for cached in (False, True):
                with Side("cached" if cached else "plain") as side:
                    rows[f"{augment}/{'cached' if cached else 'plain'}"] = side(
                        _side, args.data, args.max_images, args.size, args.epochs, augment, cached, args.views, workdir)
    print(f"EfficientNet-Lite0, last_k:2, {args.size} px, {args.epochs} epochs, {args.data}, "
          f"torch threads {torch.get_num_threads()}")
    for augment in args.augment:
        plain, cached = rows[f"{augment}/plain"], rows[f"{augment}/cached"]
        ratio = cached["images_per_s"] / plain["images_per_s"]
        overall = plain["total_train_s"] / (cached["total_train_s"] + cached["cache_s"])
        print(f"\naugment {augment}: {plain['images']} training images, cache of {cached['views']} views "
              f"({cached['cache_bytes'] / 1e6:.0f} MB on disk, built in {cached['cache_s']:.1f} s)")
        print(f"  images/s per epoch  plain {plain['images_per_s']:7.1f}   cached {cached['images_per_s']:7.1f}   "
              f"ratio {ratio:.2f}x")
        print(f"  whole run, cache build included: {overall:.2f}x")
        print(f"  peak memory MB      plain {plain['peak_rss_mb']:7.0f}   cached {cached['peak_rss_mb']:7.0f}")
        print(f"  exactness: max |logit difference| {cached['max_logit_diff']:.2e} "
              f"(largest |logit| {cached['max_abs_logit']:.1f})")
        print(f"  best validation macro-F1 plain {plain['val_macro_f1']:.3f} cached {cached['val_macro_f1']:.3f}; "
              f"AUROC plain {plain['val_auroc']:.3f} cached {cached['val_auroc']:.3f} (one seed)")
        rows[f"{augment}/ratio"] = {"images_per_s": ratio, "with_build": overall}
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
