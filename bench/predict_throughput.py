"""Prediction images/s: ``Predictor.predict`` on a folder and the exported ONNX / ``torch.export`` files,
against a plain ``model.eval()`` loop. Used by ``train_throughput.py``; each side runs in its own worker
process (``sides.py``).

The folder holds PNG files of the bundled PneumoniaMNIST train images. The plain folder loop reads each file
with Pillow, stacks a batch, resizes it with ``F.interpolate``, normalises and calls the model under
``no_grad``; ``Predictor.predict`` reads the same files and returns calibrated predictions, once with its torch
backend (BatchNorm folded, channels-last, ``inference_mode``) and once with ONNX Runtime. The deployment files
are timed on in-memory batches against the plain in-memory loop.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from sides import alternate, data, pair, plain_logits

BATCH = 64
META = "bench-bundle.json"  # the bundle's metadata, read by the next worker
_LOADED: dict[tuple, object] = {}  # per worker: predictors and deployment files, loaded once


def plain_folder(files: list[Path], size: int) -> float:
    """A user's folder loop: Pillow, a stacked batch, ``F.interpolate``, normalise, ``no_grad``; images/s."""
    model = _LOADED.setdefault(("plain",), data().model()).eval()
    mean, std = data().mean_std()
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(files), BATCH):
            arrays = [np.asarray(Image.open(f).convert("RGB")) for f in files[i:i + BATCH]]
            x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div(255)
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
            model((x - mean) / std).softmax(1)
    return len(files) / (time.perf_counter() - start)


def plain_tensors(size: int, n: int) -> float:
    """The plain in-memory evaluation loop (``sides.plain_logits``) on ``n`` images; images/s."""

    model = _LOADED.setdefault(("plain",), data().model()).eval()
    images = data().floats("train")[0][:n]
    start = time.perf_counter()
    plain_logits(model, images, size, *data().mean_std())
    return len(images) / (time.perf_counter() - start)


def deploy_formats() -> list[str]:
    """``pt2`` always; ``onnx`` where the ``[onnx]`` extra is installed."""
    onnx = importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnxscript")
    return ["pt2"] + (["onnx"] if onnx else [])


def write_bundle(folder: Path, size: int) -> None:
    """An unpacked bundle of the ImageNet model (28 px cache, ``size`` px input) with its deployment files."""
    from medvision import DISCLAIMER
    from medvision.deploy.export import export_deploy
    from medvision.models.backbones import sha256_file

    norm, files = data().norm, {}
    for kind in deploy_formats():
        path, _ = export_deploy(kind, data().model().eval(), size, folder)
        files[path.name] = sha256_file(path)
    meta = {"architecture": "tf_efficientnet_lite0", "class_names": ["normal", "pneumonia"], "temperature": 1.0,
            "preprocessing": {"cache_size": 28, "input_size": size, "resize": "squash", "mean": list(norm["mean"]),
                              "std": list(norm["std"])}, "files": files, "disclaimer": DISCLAIMER, "tta": "none"}
    (folder / META).write_text(json.dumps(meta))


def _predictor(folder: Path, backend: str):
    from medvision.deploy.bundle import Bundle
    from medvision.deploy.inference import Predictor

    key = ("predictor", str(folder), backend)
    if key not in _LOADED:
        bundle = Bundle(folder, json.loads((folder / META).read_text()), data().model().eval())
        _LOADED[key] = Predictor(bundle, device="cpu", batch_size=BATCH, backend=backend)
    return _LOADED[key]


def predictor_folder(folder: Path, backend: str, files: list[Path]) -> float:
    """images/s of ``Predictor.predict`` on ``files`` with the bundle in ``folder``."""
    predictor = _predictor(folder, backend)
    start = time.perf_counter()
    predictor.predict(files)
    return len(files) / (time.perf_counter() - start)


def deploy_tensors(folder: Path, kind: str, size: int, n: int) -> float:
    """images/s of an exported file (``pt2`` under torch, ``onnx`` under ONNX Runtime) on in-memory batches."""
    key = ("deploy", str(folder), kind)
    if key not in _LOADED:
        if kind == "pt2":
            _LOADED[key] = torch.export.load(folder / "model.pt2").module()
        else:  # the ONNX Runtime session the Predictor opened on model.onnx
            _LOADED[key] = _predictor(folder, "onnx")._onnx
    run = _LOADED[key]
    images = data().floats("train")[0][:n]
    mean, std = data().mean_std()
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(images), 256):
            x = F.interpolate(images[i:i + 256], size=(size, size), mode="bilinear", align_corners=False)
            run((x - mean) / std)
    return len(images) / (time.perf_counter() - start)


def prediction_rows(size: int, rounds: int, n: int) -> list[dict]:
    """Rows of the benchmark table: Predictor on a folder (torch, ONNX) and the deployment files on tensors,
    each row in a fresh pair of worker processes (as a prediction script would run)."""
    formats, rows = deploy_formats(), []
    with tempfile.TemporaryDirectory() as tmp:
        images, bundle = Path(tmp) / "images", Path(tmp) / "bundle"
        images.mkdir()
        bundle.mkdir()
        files = []
        for i, image in enumerate(data().split("train")[0][:n]):
            files.append(images / f"{i:05d}.png")
            Image.fromarray(image.transpose(1, 2, 0)).save(files[-1])
        with pair() as (_, ours):
            ours(write_bundle, bundle, size)
        for backend in ["torch"] + (["onnx"] if "onnx" in formats else []):
            with pair() as (plain, ours):
                p, m = alternate(rounds, lambda: plain(plain_folder, files, size),
                                 lambda b=backend: ours(predictor_folder, bundle, b, files))
            rows.append({"kind": "predict folder", "strategy": f"Predictor ({backend})", "size": size,
                         "plain_images_per_s": p, "medvision_images_per_s": m})
        for kind in formats:
            with pair() as (plain, ours):
                p, m = alternate(rounds, lambda: plain(plain_tensors, size, n),
                                 lambda k=kind: ours(deploy_tensors, bundle, k, size, n))
            rows.append({"kind": "exported file", "strategy": {"pt2": "torch.export", "onnx": "ONNX Runtime"}[kind],
                         "size": size, "plain_images_per_s": p, "medvision_images_per_s": m})
    return rows
