"""Partial activation caching: a strategy that freezes the first stages trains on their cached output.

``last_k`` (and ``two_phase`` after its head-only phase) leaves the stem and the first blocks frozen, with their
BatchNorm in eval mode (:func:`medvision.train.strategies.train_mode`): their output for a given input image never
changes during training. :func:`stage_loaders` runs them once per *view* of each training image — the image, its
mirror and, when augmentation is more than a flip, ``cache_views - 2`` draws of the augmentation, fixed for the
run — stores the activation maps in fp16 in a memory-mapped array beside the tensor cache, and trains the
unfrozen stages and the head (:class:`StageSuffix`, sharing the model's parameters) on them; each epoch picks one
view per image. Validation reads the cached image (and mirror, for flip test-time augmentation) too.

Exactness: ``StageSuffix(model, k)(prefix(x)) == model(x)`` in eval mode; the cache adds only its storage
rounding (fp16: relative 2**-11 per activation; ``tests/train/test_stage_cache.py`` bounds the logits' error,
and checks float32 storage to 1e-5). A cache entry is keyed by the frozen stages' weights and buffers, the split,
the views (augmentation, count, seed, size, normalisation) and the image bytes and labels, so changed weights,
a changed ``k`` or a changed augmentation build a new entry, never reuse an old one. Entries are written into a
temporary folder and renamed into place: an interrupted or failed write (a full disk) leaves nothing a later
run would read. ``bench/stage_cache.py`` measures the speed-up at 224 px and the validation scores with and
without the cache.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medvision.core.devices import as_model_input, tune_allocator
from medvision.core.errors import CacheError
from medvision.data.loader import TensorLoader
from medvision.data.paths import user_cache_dir
from medvision.models.backbones import mean_probability_logits
from medvision.models.embeddings import feature_key
from medvision.train.feature_cache import FeatureLoader, in_file_order

_log = logging.getLogger(__name__)

#: Version of the cache layout; part of every key.
STAGE_CACHE_VERSION = 1
#: Storage precision of cached activations.
STORAGE_DTYPE = np.float16


# ------------------------------------------------------------------------------------------- the split
def stages(model: nn.Module) -> list[nn.Module] | None:
    """The backbone's ``forward_features`` as a sequence of modules, or ``None`` for an architecture whose
    stages are not known here (it then trains uncached).

    timm's EfficientNet family (EfficientNet-Lite, MobileNetV2/V3-style ``conv_stem, bn1, blocks, conv_head,
    bn2``) and ResNets (``conv1, bn1, act1, maxpool, layer1..4``) are supported; each item of ``blocks`` (a
    stage) is one module, matching timm's coarse layer groups.
    """
    if all(hasattr(model, a) for a in ("conv_stem", "bn1", "blocks", "conv_head", "bn2")):
        return [model.conv_stem, model.bn1, *model.blocks, model.conv_head, model.bn2]
    if all(hasattr(model, a) for a in ("conv1", "bn1", "act1", "maxpool", "layer1", "layer4")):
        return [model.conv1, model.bn1, model.act1, model.maxpool, model.layer1, model.layer2, model.layer3,
                model.layer4]
    return None


def frozen_stages(model: nn.Module) -> int:
    """How many leading stages have no trainable parameter (0 where the architecture is not supported).

    Equal to ``len(stages(model))`` when the whole backbone is frozen (head-only).
    """
    seq = stages(model)
    if seq is None:
        return 0
    for i, module in enumerate(seq):
        if any(p.requires_grad for p in module.parameters()):
            return i
    return len(seq)


class StagePrefix(nn.Module):
    """The first ``n`` stages of ``model`` (shared modules), as one module."""

    def __init__(self, model: nn.Module, n: int):
        super().__init__()
        self.body = nn.Sequential(*stages(model)[:n])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class StageSuffix(nn.Module):
    """The stages of ``model`` from ``n`` on and its head, taking the cached output of the first ``n``.

    It holds ``model`` itself, so its parameters *are* the model's (what the optimizer steps is what the run
    saves) and :func:`~medvision.train.strategies.train_mode` keeps frozen BatchNorm in eval mode as it does for
    the model. Input of shape ``(batch, views, C, H, W)`` (test-time views) gives the log of the views' mean class
    probabilities, as :class:`medvision.models.backbones.FlipTTA` does with images.
    """

    def __init__(self, model: nn.Module, n: int):
        super().__init__()
        self.model = model
        self.n = n

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        if a.ndim == 5:
            b, v = a.shape[:2]
            logits = self(a.flatten(0, 1).contiguous(memory_format=torch.channels_last))
            return mean_probability_logits(logits.view(b, v, -1))
        for module in stages(self.model)[self.n:]:
            a = module(a)
        return self.model.forward_head(a)


# -------------------------------------------------------------------------------------------- the views
@dataclass(frozen=True)
class ViewSpec:
    """Which views of each image a cache holds: the image, its mirror (``mirror``), and ``random`` draws of
    ``augment`` seeded by ``seed`` (the loader's batch size fixes how draws fall on images)."""

    mirror: bool
    random: int
    seed: int
    augment: dict | None
    batch_size: int
    out_size: int | None
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def count(self) -> int:
        return 1 + int(self.mirror) + self.random


#: The seed of a training cache's random views. The pool is part of the data, like the split: every training
#: seed shares it (and its cache), so a sweep over seeds builds the cache once; each seed still picks its own
#: view per image and epoch.
POOL_SEED = 0


def training_views(loader: TensorLoader, cache_views: int) -> ViewSpec:
    """The views a training cache holds for ``loader``'s augmentation: none → the image; flips only → the
    image and its mirror (both outcomes: exact); anything more → the image, its mirror and
    ``cache_views - 2`` random draws (a fixed pool, drawn with :data:`POOL_SEED` whatever the loader's seed)."""
    aug = loader.augment
    if aug is None or aug.is_identity:
        mirror, random, seed, spec = False, 0, 0, None
    elif aug.is_flip_only and not aug.vflip:
        mirror, random, seed, spec = aug.hflip > 0, 0, 0, None
    else:
        mirror, random, seed, spec = aug.hflip > 0, max(0, cache_views - 1 - int(aug.hflip > 0)), POOL_SEED, \
            asdict(aug)
    return ViewSpec(mirror, random, seed, spec, loader.batch_size, loader.out_size, tuple(map(float, loader.mean)),
                    tuple(map(float, loader.std)))


def evaluation_views(loader: TensorLoader, mirror: bool) -> ViewSpec:
    """The image (and its mirror, for flip test-time augmentation) of an evaluation loader."""
    return ViewSpec(mirror, 0, 0, None, loader.batch_size, loader.out_size, tuple(map(float, loader.mean)),
                    tuple(map(float, loader.std)))


def view_batches(loader: TensorLoader, spec: ViewSpec, view: int) -> Iterator[torch.Tensor]:
    """Normalised image batches of view ``view`` (0: the image, then the mirror, then the random draws), in
    file order."""
    plain = in_file_order(loader)
    if view == 0 or (spec.mirror and view == 1):
        for x, _ in plain:
            yield torch.flip(x, dims=[3]) if view else x
        return
    drawn = replace(plain, augment=loader.augment, seed=spec.seed * 7919 + 104_729 * view)
    yield from (x for x, _ in drawn)


# ------------------------------------------------------------------------------------------- the cache
def _digest_tensors(tensors) -> str:
    h = hashlib.blake2b(digest_size=16)
    for t in tensors:
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _digest_images(images: np.ndarray, labels: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(str((images.shape, str(images.dtype))).encode())
    for start in range(0, len(images), 256):
        h.update(np.ascontiguousarray(images[start:start + 256]).tobytes())
    h.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return h.hexdigest()


def cache_key(model: nn.Module, n: int, loader: TensorLoader, spec: ViewSpec, dtype=None) -> str:
    """Key of the activations of ``model``'s first ``n`` stages on ``loader``'s images under ``spec``, in the
    package's one key scheme for backbone outputs (:func:`medvision.models.embeddings.feature_key`): the stages'
    architecture (padding, activation and layer types: same-shaped weights can compute other things), weights
    and buffers, ``n``, the views, the images and labels, the storage type and the layout version."""
    prefix = StagePrefix(model, n)
    return feature_key(kind="stages", version=STAGE_CACHE_VERSION, model=type(model).__name__,
                       architecture=getattr(model, "pretrained_cfg", {}).get("architecture", ""),
                       layers=repr(prefix), stages=n, dtype=np.dtype(dtype or STORAGE_DTYPE).name, views=asdict(spec),
                       weights=_digest_tensors(prefix.state_dict().values()),
                       images=_digest_images(loader.images, loader.labels))


def cache_root(images: np.ndarray) -> Path:
    """Where activation caches live: an ``activations`` folder beside the tensor cache whose memory map
    ``images`` is, else the user's cache folder."""
    filename = getattr(images, "filename", None)
    return Path(filename).parent / "activations" if filename else user_cache_dir() / "activations"


@dataclass(frozen=True)
class StageCache:
    """One cache entry: ``(views, N, C, H, W)`` activations (memory-mapped) and its folder."""

    activations: np.ndarray
    path: Path
    seconds: float
    built: bool

    @property
    def nbytes(self) -> int:
        return int(self.activations.nbytes)


def _no_space(folder: Path, exc: OSError) -> CacheError:
    detail = exc.strerror or str(exc)
    return CacheError(f"no space left in {folder} for the stage-activation cache ({detail}); free space there or "
                      "set train.cached_stages: false")


@torch.no_grad()
def stage_cache(model: nn.Module, n: int, loader: TensorLoader, spec: ViewSpec, device: torch.device,
                root: Path | None = None, dtype=None) -> StageCache:
    """The cached output of ``model``'s first ``n`` stages for every view of ``loader``'s images: opened if an
    entry with the same key exists, else computed (in eval mode) and written atomically.

    Raises:
        CacheError: the disk is full (the message names the folder; no partial entry is left).
    """
    root = root or cache_root(loader.images)
    dtype = dtype or STORAGE_DTYPE
    key = cache_key(model, n, loader, spec, dtype)
    final = root / key
    meta_file = final / "meta.json"
    start = time.perf_counter()
    if meta_file.is_file():
        try:
            meta = json.loads(meta_file.read_text())
            acts = np.load(final / "activations.npy", mmap_mode="r")
            if meta.get("key") == key and list(acts.shape) == meta.get("shape"):
                return StageCache(acts, final, time.perf_counter() - start, built=False)
        except (OSError, ValueError) as exc:
            _log.warning("stage cache %s is unreadable (%s); rebuilding it", final, exc)
        shutil.rmtree(final, ignore_errors=True)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise (_no_space(root, exc) if exc.errno == errno.ENOSPC else
               CacheError(f"cannot create the stage-activation cache folder {root}: {exc.strerror or exc}")) from exc
    _remove_orphans(root)
    tmp = root / f".{key}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        _write(model, n, loader, spec, device, tmp, dtype, key)
        try:
            tmp.rename(final)
        except OSError:  # another process finished the same entry first: use theirs
            if not (final / "meta.json").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno == errno.ENOSPC:
            raise _no_space(root, exc) from None
        raise CacheError(f"cannot write the stage-activation cache in {root}: {exc.strerror or exc}; make it "
                         "writable or set train.cached_stages: false") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    acts = np.load(final / "activations.npy", mmap_mode="r")
    return StageCache(acts, final, time.perf_counter() - start, built=True)


def _remove_orphans(root: Path) -> None:
    """Delete the temporary folders of writers that died (killed, out of memory) before renaming them."""
    for tmp in root.glob(".*.partial-*"):
        try:
            pid = int(tmp.name.rsplit(".partial-", 1)[1].split("-")[0])
            os.kill(pid, 0)  # raises if no such process
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except (ValueError, IndexError, PermissionError):
            continue


def _write(model: nn.Module, n: int, loader: TensorLoader, spec: ViewSpec, device: torch.device, folder: Path,
           dtype, key: str) -> None:
    tune_allocator()
    prefix = StagePrefix(model, n).eval()
    first = next(iter(view_batches(loader, spec, 0)))
    shape = (spec.count, len(loader.images), *prefix(as_model_input(first[:1], device)).shape[1:])
    need = int(np.prod(shape)) * np.dtype(dtype).itemsize
    folder.mkdir(parents=True)
    if shutil.disk_usage(folder).free < need:
        raise OSError(errno.ENOSPC, f"{need / 1e9:.1f} GB needed")
    acts = np.lib.format.open_memmap(folder / "activations.npy", mode="w+", dtype=dtype, shape=shape)
    if hasattr(os, "posix_fallocate"):  # reserve the blocks now: a disk that fills later raises ENOSPC here,
        with open(folder / "activations.npy", "r+b") as fh:  # not SIGBUS on a sparse memory map mid-write
            os.posix_fallocate(fh.fileno(), 0, os.fstat(fh.fileno()).st_size)
    for v in range(spec.count):
        pos = 0
        for x in view_batches(loader, spec, v):
            out = prefix(as_model_input(x, device)).float().cpu().numpy()
            acts[v, pos:pos + len(out)] = out
            pos += len(out)
    acts.flush()
    del acts
    meta = {"key": key, "shape": list(shape), "dtype": np.dtype(dtype).name, "stages": n,
            "model": type(model).__name__, "views": asdict(spec)}
    (folder / "meta.json").write_text(json.dumps(meta, indent=1, default=str))


# ------------------------------------------------------------------------------------------ the loaders
def can_cache_stages(train_loader: TensorLoader, n: int, total: int, cached_stages: bool, mixup: float,
                     distributed: bool) -> bool:
    """Whether a phase whose first ``n`` of ``total`` stages are frozen trains on their cached output: some but
    not all stages frozen (a frozen backbone is the head-only feature cache's job), no mixup (it blends images,
    not activations), a single process (under DDP every rank runs the stages), and a loader that holds images."""
    ok = cached_stages and 0 < n < total and not mixup and isinstance(train_loader, TensorLoader)
    if ok and distributed:
        _log.warning("cached stage activations are single-process: under DDP the frozen stages run on every rank")
        return False
    return ok


def stage_loaders(model: nn.Module, n: int, train_loader: TensorLoader, val_loader: TensorLoader, val_views: bool,
                  cache_views: int, device: torch.device, root: Path | None = None
                  ) -> tuple[FeatureLoader, FeatureLoader, dict]:
    """Loaders over the cached output of ``model``'s first ``n`` (frozen) stages — training views and validation
    image (and mirror when ``val_views``) — and what the cache cost (seconds, bytes, whether it was built)."""
    train_cache = stage_cache(model, n, train_loader, training_views(train_loader, cache_views), device, root)
    val_cache = stage_cache(model, n, val_loader, evaluation_views(val_loader, val_views), device, root)
    train = FeatureLoader(train_cache.activations, train_loader.labels, train_loader.batch_size, shuffle=True,
                          balanced=train_loader.balanced, seed=train_loader.seed)
    val = FeatureLoader(val_cache.activations, val_loader.labels, val_loader.batch_size, all_views=val_views)
    info = {"seconds": train_cache.seconds + val_cache.seconds, "bytes": train_cache.nbytes + val_cache.nbytes,
            "built": train_cache.built or val_cache.built, "views": int(train_cache.activations.shape[0]),
            "stages_cached": n}
    return train, val, info
