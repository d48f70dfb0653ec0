"""Prediction images/s: ``Predictor.predict`` on a folder and the exported ONNX / ``torch.export`` files,
against a plain ``model.eval()`` loop. Used by ``train_throughput.py``.

The folder holds PNG files of the bundled PneumoniaMNIST train images. The plain folder loop reads each file
with Pillow, stacks a batch, resizes it with ``F.interpolate``, normalises and calls the model under
``no_grad``; ``Predictor.predict`` reads the same files and returns calibrated predictions, once with its torch
backend (BatchNorm folded, channels-last, ``inference_mode``) and once with ONNX Runtime. The deployment files
are timed on in-memory batches against the plain in-memory loop.
"""

from __future__ import annotations

import importlib.util
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from medvision import DISCLAIMER
from medvision.bundle import Bundle
from medvision.export import export_deploy
from medvision.inference import Predictor
from medvision.models import sha256_file

BATCH = 64


def _bundle(model, folder: Path, norm: dict, size: int, formats: list[str]) -> Bundle:
    """An in-memory bundle of ``model`` (28 px cache, ``size`` px input) with the deployment files written."""
    files = {}
    for kind in formats:
        path, _ = export_deploy(kind, model, size, folder)
        files[path.name] = sha256_file(path)
    meta = {"architecture": "tf_efficientnet_lite0", "class_names": ["normal", "pneumonia"], "temperature": 1.0,
            "preprocessing": {"cache_size": 28, "input_size": size, "resize": "squash", "mean": list(norm["mean"]),
                              "std": list(norm["std"])}, "files": files, "disclaimer": DISCLAIMER, "tta": "none"}
    return Bundle(folder, meta, model)


def plain_folder(model, files, size, mean, std) -> float:
    """A user's folder loop: Pillow, a stacked batch, ``F.interpolate``, normalise, ``no_grad``; images/s."""
    model.eval()
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(files), BATCH):
            arrays = [np.asarray(Image.open(f).convert("RGB")) for f in files[i:i + BATCH]]
            x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div(255)
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
            model((x - mean) / std).softmax(1)
    return len(files) / (time.perf_counter() - start)


def _rate(fn, n: int) -> float:
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def prediction_rows(base, u8: np.ndarray, norm: dict, size: int, rounds: int, plain_eval, images: torch.Tensor
                    ) -> list[dict]:
    """Rows of the benchmark table: Predictor on a folder (torch, ONNX) and the deployment files on tensors."""
    mean, std = torch.tensor(norm["mean"]).view(1, 3, 1, 1), torch.tensor(norm["std"]).view(1, 3, 1, 1)
    model = base.eval()
    formats = ["pt2"] + (["onnx"] if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec(
        "onnxscript") else [])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder, bundle_dir = Path(tmp) / "images", Path(tmp) / "bundle"
        folder.mkdir()
        bundle_dir.mkdir()
        files = []
        for i, image in enumerate(u8):
            files.append(folder / f"{i:05d}.png")
            Image.fromarray(image.transpose(1, 2, 0)).save(files[-1])
        bundle = _bundle(model, bundle_dir, norm, size, formats)
        predictors = {b: Predictor(bundle, device="cpu", batch_size=BATCH, backend=b)
                      for b in ("torch", "onnx") if b == "torch" or "onnx" in formats}
        deploy = {"pt2": torch.export.load(bundle_dir / "model.pt2").module()}
        if "onnx" in formats:
            deploy["onnx"] = predictors["onnx"]._onnx
        timed = {"folder": [], **{f"predict {b}": [] for b in predictors}, "tensors": [],
                 **{f"file {k}": [] for k in deploy}}
        for _ in range(rounds):
            timed["folder"].append(plain_folder(model, files, size, mean, std))
            for b, predictor in predictors.items():
                timed[f"predict {b}"].append(_rate(lambda p=predictor: p.predict(files), len(files)))
            timed["tensors"].append(plain_eval(model, images, size, mean, std))
            for k, run in deploy.items():
                def call(run=run):
                    with torch.inference_mode():
                        for i in range(0, len(images), 256):
                            x = F.interpolate(images[i:i + 256], size=(size, size), mode="bilinear",
                                              align_corners=False)
                            run((x - mean) / std)
                timed[f"file {k}"].append(_rate(call, len(images)))
    plain_folder_rate, plain_tensor_rate = statistics.median(timed["folder"]), statistics.median(timed["tensors"])
    for b in predictors:
        rows.append({"kind": "predict folder", "strategy": f"Predictor ({b})", "size": size,
                     "plain_images_per_s": plain_folder_rate,
                     "medvision_images_per_s": statistics.median(timed[f"predict {b}"])})
    for k in deploy:
        rows.append({"kind": "exported file", "strategy": {"pt2": "torch.export", "onnx": "ONNX Runtime"}[k],
                     "size": size, "plain_images_per_s": plain_tensor_rate,
                     "medvision_images_per_s": statistics.median(timed[f"file {k}"])})
    return rows
