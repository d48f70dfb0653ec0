"""The export bundle format: one folder a :class:`~medvision.deploy.inference.Predictor` can load without the data.

A bundle holds ``model.safetensors`` (the weights), ``bundle.json`` (architecture, class names and
descriptions, preprocessing, fitted temperature, abstention threshold, metrics, provenance, disclaimer and the
sha256 of every file) and ``MODEL_CARD.md``; optionally ``model.onnx`` and ``model.pt2`` (``torch.export``).
This module reads and verifies bundles; :mod:`medvision.deploy.export` writes them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from medvision.config.choices import SCORED_TTA_MODES
from medvision.core.errors import BundleError  # noqa: F401  (raised here; importable from here)
from medvision.models.backbones import create_model, sha256_file

FORMAT = "medvision-bundle"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
META_FILE = "bundle.json"
CARD_FILE = "MODEL_CARD.md"



@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes a model input, exactly as in training and evaluation.

    Decode to RGB uint8, resize to ``cache_size`` (``resize``: squash/crop/pad, bicubic), scale to [0, 1],
    resize to ``input_size`` (bilinear, antialiased) and normalise with the model's timm ``mean``/``std``.
    """

    cache_size: int
    input_size: int
    resize: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessing:
        return cls(int(d["cache_size"]), int(d["input_size"]), str(d["resize"]), tuple(d["mean"]), tuple(d["std"]))


@dataclass(frozen=True)
class Bundle:
    """A verified bundle: its folder, metadata and the model with its weights loaded (eval mode, CPU)."""

    path: Path
    meta: dict
    model: nn.Module

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.meta["class_names"])

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_dict(self.meta["preprocessing"])

    @property
    def temperature(self) -> float:
        return float(self.meta["temperature"])


def read_meta(path: str | os.PathLike[str]) -> dict:
    """Read and check ``bundle.json`` of a bundle folder."""
    folder = Path(path)
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise BundleError(f"{folder} is not a medvision bundle (no {META_FILE}); create one with `medvision export`")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{meta_path} is not valid JSON ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise BundleError(f"{meta_path} is not a {FORMAT} file (format={meta.get('format')!r})")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise BundleError(f"{meta_path} has format version {meta['format_version']}; this medvision reads "
                          f"up to {FORMAT_VERSION}: upgrade medvision")
    missing = [k for k in ("architecture", "class_names", "preprocessing", "temperature", "files") if k not in meta]
    if missing:
        raise BundleError(f"{meta_path} lacks {missing}")
    if meta.get("tta", "none") not in SCORED_TTA_MODES:
        raise BundleError(f"{meta_path} asks for test-time augmentation {meta['tta']!r}; this medvision knows "
                          f"{SCORED_TTA_MODES}")
    return meta


def verify_file(folder: Path, meta: dict, name: str) -> Path:
    """Check that ``name`` exists and has the sha256 recorded in ``bundle.json``."""
    path = folder / name
    expected = meta["files"].get(name)
    if expected is None:
        raise BundleError(f"{folder / META_FILE} records no checksum for {name}")
    if not path.is_file():
        raise BundleError(f"{path} is missing from the bundle")
    actual = sha256_file(path)
    if actual != expected:
        raise BundleError(f"{path} has been modified or corrupted: sha256 {actual[:16]}… but {META_FILE} "
                          f"records {expected[:16]}…; re-export the bundle")
    return path


def build_model(meta: dict) -> nn.Module:
    """The bundle's architecture with random weights (no download)."""
    return create_model(meta["architecture"], len(meta["class_names"]), pretrained="none",
                        drop_rate=float(meta.get("drop_rate", 0.0)), head_hidden=_head_widths(meta.get("head_hidden", 0)))


def load_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Verify every checksum, rebuild the architecture and load the safetensors weights strictly.

    Raises:
        BundleError: not a bundle, a file changed since export, or the weights do not fit the architecture.
    """
    folder = Path(path)
    meta = read_meta(folder)
    weights = verify_file(folder, meta, WEIGHTS_FILE)
    try:
        state = load_file(weights)
    except (SafetensorError, OSError) as exc:
        raise BundleError(f"{weights} cannot be read as safetensors ({exc})") from exc
    model = build_model(meta)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(part for part in (
            f"{len(missing)} missing (e.g. {missing[0]})" if missing else "",
            f"{len(unexpected)} unexpected (e.g. {unexpected[0]})" if unexpected else "",
            f"{len(wrong)} with other shapes (e.g. {wrong[0]}: {tuple(state[wrong[0]].shape)} vs "
            f"{tuple(expected[wrong[0]].shape)})" if wrong else "") if part)
        raise BundleError(f"{weights} does not fit architecture {meta['architecture']!r} with "
                          f"{len(meta['class_names'])} classes: {detail}")
    model.load_state_dict(state)
    model.eval()
    return Bundle(folder, meta, model)


def state_dict_for_export(model: nn.Module) -> dict[str, torch.Tensor]:
    """Contiguous, unshared tensors (safetensors refuses shared storage)."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def _head_widths(saved) -> int | tuple[int, ...]:
    """``head_hidden`` as ``bundle.json`` stores it: one width, or a list of widths (a JSON array)."""
    return tuple(int(w) for w in saved) if isinstance(saved, list | tuple) else int(saved)
