"""Predict with an exported bundle: class, calibrated confidence, top-k, description and the disclaimer.

>>> predictor = Predictor.from_bundle("bundles/pneumonia")          # doctest: +SKIP
>>> predictor.predict("chest.png").label                            # doctest: +SKIP
'pneumonia'

Images go through exactly the preprocessing of training and evaluation (recorded in the bundle), so the
probabilities equal those of the run's own evaluation (within 1e-4 when the bundle's ``model.onnx`` runs them). On
the CPU a bundle exported with ``medvision export --onnx`` is run by ONNX Runtime, several times faster than eager
PyTorch; otherwise the network runs with its BatchNorms folded (:mod:`medvision.models.fusion`), channels-last batches and
``torch.inference_mode`` (``bench/train_throughput.py`` measures both against a plain ``model.eval()`` loop).
Inputs may be paths, Pillow images, uint8 arrays (grayscale, RGB or RGBA) or binary file objects (uploads); bad
files raise :class:`~medvision.data.errors.ImageLoadError` naming the file.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from PIL import Image

from medvision.config.choices import BACKENDS
from medvision.core.devices import resolve_device, tune_allocator
from medvision.core.errors import ConfigError, MissingExtraError, NotFoundError
from medvision.data.augment import normalize, resize_batch
from medvision.data.cache import resize_image, to_rgb
from medvision.data.decode import IMAGE_EXTENSIONS, decode_image, pil_to_rgb, read_image
from medvision.data.errors import ImageLoadError
from medvision.deploy.bundle import Bundle, BundleError, Preprocessing, load_bundle, verify_file
from medvision.models.backbones import with_tta
from medvision.models.fusion import folded_for_inference
from medvision.models.saliency import gradcam, overlay

ImageInput = str | os.PathLike | Image.Image | np.ndarray | BinaryIO
ONNX_FILE = "model.onnx"


@dataclass(frozen=True)
class Prediction:
    """One image's prediction.

    Attributes:
        source: The file name (or ``<array>`` / ``<image>``).
        label: The most probable class (also when ``abstained``).
        index: Its class index.
        confidence: Its temperature-calibrated probability.
        top_k: ``(class, probability)`` pairs, most probable first.
        probabilities: Calibrated probability of every class.
        description: The class description from the bundle ('' if none).
        abstained: Confidence is below the abstention threshold: refer the case to a person.
        threshold: The abstention threshold used (``None``: abstention off).
        disclaimer: Education and research only, not diagnosis.
    """

    source: str
    label: str
    index: int
    confidence: float
    top_k: tuple[tuple[str, float], ...]
    probabilities: dict[str, float]
    description: str
    abstained: bool
    threshold: float | None
    disclaimer: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["top_k"] = [list(pair) for pair in self.top_k]
        return d


def load_input(item: ImageInput) -> tuple[np.ndarray, str]:
    """Any supported input → ``(H, W, 3)`` uint8 RGB and a name for messages and results."""
    if isinstance(item, (str, os.PathLike)):
        return read_image(item), str(item)
    if isinstance(item, Image.Image):
        return pil_to_rgb(item), "<image>"
    if isinstance(item, np.ndarray):
        if item.dtype != np.uint8:
            raise ImageLoadError(f"array input must be uint8 (0-255), not {item.dtype}")
        if item.ndim not in (2, 3) or (item.ndim == 3 and item.shape[2] not in (1, 3, 4)):
            raise ImageLoadError(f"array input must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), not {item.shape}")
        return to_rgb(item), "<array>"
    if hasattr(item, "read"):
        name = str(getattr(item, "name", "<upload>"))
        return decode_image(item, name, getattr(item, "size", None)), name
    raise TypeError(f"cannot predict on {type(item).__name__}: pass a path, PIL image, uint8 array or file object")


def to_cache_resolution(image: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """Resize as the training cache did: ``(cache_size, cache_size, 3)`` uint8."""
    return resize_image(image, pre.cache_size, pre.resize)  # type: ignore[arg-type]


def to_model_input(images: Sequence[np.ndarray], pre: Preprocessing, device: torch.device | str = "cpu"
                   ) -> torch.Tensor:
    """Cache-resolution uint8 images → the normalised float batch the model saw in evaluation."""
    # Stacked (N, H, W, 3) and viewed as (N, 3, H, W): a channels-last batch without a copy, the layout the
    # network runs fastest in on the CPU; resizing and normalising keep the layout.
    x = torch.from_numpy(np.stack(images)).to(device).permute(0, 3, 1, 2).float().div_(255)
    return normalize(resize_batch(x, pre.input_size), pre.mean, pre.std)


class Predictor:
    """Batched, calibrated prediction with an exported bundle.

    Args:
        bundle: A loaded :class:`~medvision.deploy.bundle.Bundle`.
        device: ``auto`` (CUDA if available), ``cpu``, ``cuda``...
        abstain: ``False`` (off), ``True`` (the bundle's validation-chosen threshold) or a threshold in (0, 1].
        batch_size: Images per forward pass.
        backend: ``torch``, ``onnx`` (the bundle's ``model.onnx`` under ONNX Runtime, CPU only; needs the
            ``[onnx]`` extra) or ``auto``: ``onnx`` on the CPU when the bundle has the file and ONNX Runtime is
            installed, else ``torch``.
    """

    def __init__(self, bundle: Bundle, device: str = "auto", abstain: bool | float = False, batch_size: int = 32,
                 backend: str = "auto"):
        tune_allocator()
        self.bundle = bundle
        self.device = resolve_device(device)
        self.net = bundle.model.to(self.device).eval()  # unfolded, with gradients for Grad-CAM
        self.pre = bundle.preprocessing
        self.backend = _choose_backend(backend, bundle, self.device)
        self.tta = bundle.meta.get("tta", "none")  # scores as the bundle's run was scored
        if self.backend == "onnx":
            self._session = _onnx_session(verify_file(bundle.path, bundle.meta, ONNX_FILE))
            self.model = None
        else:
            sample = torch.rand(2, 3, self.pre.input_size, self.pre.input_size, generator=torch.Generator()
                                .manual_seed(0)).to(self.device)
            self.model = with_tta(folded_for_inference(self.net, normalize(sample, self.pre.mean, self.pre.std)),
                                  self.tta)
        self.temperature = bundle.temperature
        self.class_names = bundle.class_names
        self.descriptions: dict[str, str] = dict(bundle.meta.get("descriptions", {}))
        self.disclaimer: str = bundle.meta["disclaimer"]
        self.batch_size = batch_size
        self._cam_lock = threading.Lock()  # Grad-CAM hooks the shared model: one explanation at a time
        if abstain is True:
            self.threshold: float | None = float(bundle.meta["abstention"]["threshold"])
        elif abstain is False or abstain is None:
            self.threshold = None
        elif 0 < float(abstain) <= 1:
            self.threshold = float(abstain)
        else:
            raise ConfigError(f"abstain must be True, False or a confidence threshold in (0, 1], not {abstain!r}")

    @classmethod
    def from_bundle(cls, path: str | os.PathLike[str], device: str = "auto", abstain: bool | float = False,
                    batch_size: int = 32, backend: str = "auto") -> Predictor:
        """Load and verify a bundle folder written by :func:`medvision.deploy.export.export_bundle`."""
        return cls(load_bundle(path), device=device, abstain=abstain, batch_size=batch_size, backend=backend)

    def __repr__(self) -> str:
        return (f"Predictor({self.bundle.meta['architecture']}, classes={list(self.class_names)}, "
                f"device={self.device}, backend={self.backend}, threshold={self.threshold})")

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Uncalibrated logits ``(N, C)`` of a preprocessed batch (see :func:`to_model_input`), as the run scored
        them (test-time augmentation included)."""
        if self.backend == "onnx":  # model.onnx was exported with the run's test-time augmentation inside
            return self._onnx(x)
        with torch.inference_mode():
            return self.model(x.contiguous(memory_format=torch.channels_last)).float()

    def _onnx(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self._session.run(None, {self._session.get_inputs()[0].name: x.cpu().numpy()})[0])

    def _prepare(self, items: Sequence[ImageInput]) -> tuple[torch.Tensor, list[str]]:
        """Decode and preprocess one batch: the model input and the name of every item."""
        loaded = [load_input(it) for it in items]
        chunk = [to_cache_resolution(image, self.pre) for image, _ in loaded]
        return to_model_input(chunk, self.pre, self.device), [name for _, name in loaded]

    def _probabilities(self, items: Sequence[ImageInput]) -> tuple[torch.Tensor, list[str]]:
        """Calibrated probabilities ``(N, C)`` on the CPU and the name of every input, batch by batch; the next
        batch is decoded in a background thread while the model runs on this one (Pillow and ONNX Runtime
        release the GIL). A bad file raises :class:`ImageLoadError` as it would without the overlap."""
        out, names = [], []
        chunks = [items[i:i + self.batch_size] for i in range(0, len(items), self.batch_size)]
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(self._prepare, chunks[0]) if chunks else None
            for i in range(len(chunks)):
                x, batch_names = pending.result()
                if i + 1 < len(chunks):
                    pending = pool.submit(self._prepare, chunks[i + 1])
                names += batch_names
                out.append((self.logits(x) / self.temperature).softmax(1).cpu())
        return (torch.cat(out) if out else torch.empty(0, len(self.class_names))), names

    def predict_proba(self, inputs: ImageInput | Sequence[ImageInput]) -> torch.Tensor:
        """Calibrated class probabilities, ``(N, C)`` on the CPU."""
        return self._probabilities(_as_list(inputs)[0])[0]

    def predict(self, inputs: ImageInput | Sequence[ImageInput], top_k: int = 3
                ) -> Prediction | list[Prediction]:
        """Predict one input (returns a :class:`Prediction`) or a list (returns a list)."""
        items, single = _as_list(inputs)
        probs, names = self._probabilities(items)
        k = max(1, min(top_k, len(self.class_names)))
        results = []
        for name, p in zip(names, probs, strict=True):
            idx = int(p.argmax())
            conf = float(p[idx])
            order = p.argsort(descending=True)[:k].tolist()
            label = self.class_names[idx]
            results.append(Prediction(
                source=name, label=label, index=idx, confidence=conf,
                top_k=tuple((self.class_names[j], float(p[j])) for j in order),
                probabilities={c: float(p[j]) for j, c in enumerate(self.class_names)},
                description=self.descriptions.get(label, ""),
                abstained=self.threshold is not None and conf < self.threshold,
                threshold=self.threshold, disclaimer=self.disclaimer))
        return results[0] if single else results

    def explain(self, item: ImageInput, class_index: int | None = None) -> tuple[np.ndarray, int]:
        """A Grad-CAM overlay (RGB uint8 at the model's input size) for ``class_index`` (default: predicted)."""
        image = to_cache_resolution(load_input(item)[0], self.pre)
        x = to_model_input([image], self.pre, self.device)
        if class_index is None:
            class_index = int(self.logits(x).argmax(1))
        with self._cam_lock:
            cam = gradcam(self.net, x, [class_index])[0]
        raw = resize_batch(torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)[None])).float(),
                           self.pre.input_size)
        raw = raw[0].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
        return overlay(raw, cam), class_index


def _choose_backend(backend: str, bundle: Bundle, device: torch.device) -> str:
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {BACKENDS}, not {backend!r}")
    has_file = ONNX_FILE in bundle.meta["files"]
    if backend == "torch" or (backend == "auto" and (device.type != "cpu" or not has_file)):
        return "torch"
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        if backend == "auto":
            return "torch"
        raise MissingExtraError("the onnx backend needs ONNX Runtime: pip install 'medvision[onnx]'") from exc
    if not has_file:
        raise BundleError(f"{bundle.path} has no {ONNX_FILE}; export it with `medvision export RUN OUT --onnx`")
    if device.type != "cpu":
        raise ConfigError(f"the onnx backend runs on the CPU here, not on {device}; use backend='torch'")
    return "onnx"


def _onnx_session(path: Path):
    """An ONNX Runtime CPU session using as many threads as torch does."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _as_list(inputs) -> tuple[list, bool]:
    if isinstance(inputs, (list, tuple)):
        return list(inputs), False
    return [inputs], True


def image_files(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files and the image files inside folders (recursively, sorted); a missing path is an error."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        elif p.is_file():
            files.append(p)
        else:
            raise NotFoundError(f"{p} does not exist")
    return files
