"""Images/s of medvision's tensor pipeline vs torchvision ImageFolder + PIL transforms, measured in one run.

Same images (the chest X-ray subset, 224 px JPEGs), same output (64 px, normalised), equivalent
augmentation (random resized crop 0.8-1.0, horizontal flip, +-10 degree rotation, brightness/contrast 0.1).
Prints a ratio; absolute numbers on these noisy machines mean little.

The images are ``chest_xray_224/`` under the data roots (``$MEDVISION_DATA``, then ``~/.cache/medvision``),
or ``--data``. Where that folder is absent (a fresh clone), the bundled PneumoniaMNIST train images are
exported as 224 px JPEGs in the same ``train/<class>/`` layout and timed instead; the JSON says which.

    python bench/data_pipeline.py [--data DIR] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import ConcatDataset, DataLoader
from torchvision import datasets, transforms

from medvision.config import AugmentConfig
from medvision.data import TensorLoader, build_tensor_cache, load_image_folder, load_medmnist
from medvision.data.paths import search_roots

SIZE = 64
MEAN = STD = (0.5, 0.5, 0.5)


FOLDER = "chest_xray_224"


def find_folder() -> Path | None:
    """``chest_xray_224/`` under the first data root that has it, else ``None``."""
    return next((r / FOLDER for r in search_roots() if (r / FOLDER).is_dir()), None)


def torchvision_loader(root: Path, batch_size: int, workers: int) -> DataLoader:
    tf = transforms.Compose([
        transforms.RandomResizedCrop(SIZE, scale=(0.8, 1.0)),
        transforms.RandomHorizontalFlip(),
        transforms.RandomRotation(10),
        transforms.ColorJitter(brightness=0.1, contrast=0.1),
        transforms.ToTensor(),
        transforms.Normalize(MEAN, STD),
    ])
    splits = [datasets.ImageFolder(str(d), transform=tf) for d in sorted(root.iterdir()) if d.is_dir()]
    return DataLoader(ConcatDataset(splits), batch_size=batch_size, shuffle=True, num_workers=workers,
                      persistent_workers=workers > 0)


def export_medmnist_folder(dest: Path, per_class: int = 200, size: int = 224) -> Path:
    """Fallback images when the chest X-ray folder is absent: bundled PneumoniaMNIST train images written as
    224 px JPEGs in a pre-split ImageFolder tree, ``dest/train/<class>/*.jpeg`` (the layout of
    ``chest_xray_224/``, as such data usually arrives)."""
    table = load_medmnist("pneumoniamnist").subset("train")
    rng = np.random.default_rng(0)
    for c, name in enumerate(table.class_names):
        folder = dest / "train" / name
        folder.mkdir(parents=True, exist_ok=True)
        rows = rng.choice(np.flatnonzero(table.labels == c), per_class, replace=False)
        for i in rows:
            img = Image.fromarray(table.images[int(table.frame["index"].iloc[i])]).convert("RGB")
            img.resize((size, size), Image.Resampling.BICUBIC).save(folder / f"{i}.jpeg", quality=90)
    return dest


def images_per_second(loader, epochs: int) -> float:
    n = 0
    start = time.perf_counter()
    for epoch in range(epochs):
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        for x, _ in loader:
            n += len(x)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None,
                        help=f"a pre-split image folder (default: {FOLDER}/ under the data roots)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    torch.manual_seed(0)
    exported = None
    if args.data is None:
        args.data = find_folder()
    elif not args.data.is_dir():
        parser.error(f"--data {args.data} is not a folder")
    if args.data is None:
        exported = tempfile.TemporaryDirectory()
        args.data = export_medmnist_folder(Path(exported.name) / "pneumoniamnist_224")
        print(f"{FOLDER}/ is not under any data root ({', '.join(map(str, search_roots()))}): timing "
              f"{len(list(args.data.rglob('*.jpeg')))} bundled PneumoniaMNIST images exported as 224 px JPEGs")

    baseline = torchvision_loader(args.data, args.batch_size, args.workers)
    next(iter(baseline))  # start the workers before timing
    tv = images_per_second(baseline, args.epochs)

    table = load_image_folder(args.data)
    with tempfile.TemporaryDirectory() as cache_dir:
        start = time.perf_counter()
        cache = build_tensor_cache(table, SIZE, cache_dir=cache_dir, progress=False)
        build = time.perf_counter() - start
        aug = AugmentConfig(hflip=0.5, degrees=10, scale=(0.8, 1.0), brightness=0.1, contrast=0.1)
        loader = TensorLoader(cache.array, cache.table.labels, MEAN, STD, batch_size=args.batch_size,
                              shuffle=True, augment=aug)
        mv = images_per_second(loader, args.epochs)

    n = len(table)
    print(f"images: {n} ({args.data.name}), output {SIZE}px, {args.epochs} epochs, batch {args.batch_size}, "
          f"torch threads {torch.get_num_threads()}, torchvision workers {args.workers}")
    print(f"torchvision ImageFolder + PIL transforms : {tv:9.0f} images/s")
    print(f"medvision tensor cache + batch augment   : {mv:9.0f} images/s "
          f"(one-off cache build {build:.2f} s = {n / build:.0f} images/s)")
    print(f"ratio per epoch (medvision / torchvision): {mv / tv:.1f}x")
    first = n / (build + n / mv)
    print(f"ratio of the first epoch, cache build included: {first / tv:.1f}x")
    if args.json:
        args.json.write_text(json.dumps({
            "images": n, "data": args.data.name, "fallback": exported is not None, "output_px": SIZE, "epochs": args.epochs,
            "torchvision_images_per_s": tv, "medvision_images_per_s": mv, "ratio": mv / tv,
            "first_epoch_ratio": first / tv, "cache_build_s": build,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}, indent=1))
    if exported is not None:
        exported.cleanup()


if __name__ == "__main__":
    main()
