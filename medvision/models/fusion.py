"""Faster evaluation: an eval-mode copy of a network with each BatchNorm folded into the convolution before it.

In eval mode a BatchNorm is a per-channel affine map, so it can be merged into the preceding convolution's
weights and bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``): one pass over the activations less per block.
Pairs are found structurally (a ``Conv2d`` child followed by a ``BatchNorm2d`` child of the same module, the
layout of timm's EfficientNet, MobileNet and ResNet blocks); because a module's child order need not be its
call order, the folded copy is checked against the original on a small batch and dropped if they differ.
The original network is never modified. The folded copy is kept (weakly, per network) until a parameter or
buffer of the original changes, so repeated evaluations of one checkpoint fold it once.
"""

from __future__ import annotations

import copy
import weakref

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def _after_norm(bn: nn.BatchNorm2d) -> nn.Module:
    """What a BatchNorm layer still does once its affine map lives in the convolution: timm's
    ``BatchNormAct2d`` goes on with its dropout and activation; a plain BatchNorm does nothing more."""
    rest = [m for m in (getattr(bn, "drop", None), getattr(bn, "act", None)) if m is not None]
    return nn.Sequential(*rest) if rest else nn.Identity()


def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, int]:
    """An eval-mode copy of ``model`` with BatchNorms folded into their convolutions, and how many were folded."""
    folded = copy.deepcopy(model).eval()
    count = 0
    for parent in list(folded.modules()):
        children = list(parent.named_children())
        for (conv_name, conv), (bn_name, bn) in zip(children, children[1:], strict=False):
            if (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.running_mean is not None
                    and conv.out_channels == bn.num_features):
                setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(parent, bn_name, _after_norm(bn))
                count += 1
    return folded, count


_FOLDED: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, nn.Module]] = weakref.WeakKeyDictionary()


def _state_signature(model: nn.Module) -> tuple | None:
    """Changes whenever a parameter or buffer is replaced or modified: the tensors' identities, their in-place
    write counters (``_version``) and, for writes that bypass the counter (``p.data.copy_``, BatchNorm's
    running statistics), their sums. ``None`` when the model holds inference tensors (no counters)."""
    tensors = [*model.parameters(), *model.buffers()]
    try:
        versions = tuple(t._version for t in tensors)
    except RuntimeError:  # tensors created under inference_mode keep no version counter
        return None
    with torch.no_grad():
        sums = tuple(torch.stack([t.detach().double().sum() for t in tensors]).tolist()) if tensors else ()
    return tuple(id(t) for t in tensors), versions, sums


def folded_copy(model: nn.Module, sample: torch.Tensor, atol: float = 1e-3) -> nn.Module:
    """``model`` with BatchNorms folded where that leaves its outputs on ``sample`` unchanged (within ``atol``
    relative to their scale), else ``model`` itself, in eval mode either way (a fresh copy each call, with
    ordinary tensors: ``torch.export`` can trace it)."""
    model.eval()
    folded, count = fold_batchnorm(model)
    if not count:
        return model
    with torch.no_grad():
        reference, candidate = model(sample), folded(sample)
    if reference.shape != candidate.shape:
        return model
    scale = reference.abs().max().clamp_min(1.0)
    return folded if bool(((reference - candidate).abs().max() / scale) <= atol) else model


@torch.inference_mode()
def folded_for_inference(model: nn.Module, sample: torch.Tensor, atol: float = 1e-3) -> nn.Module:
    """:func:`folded_copy` for evaluation, kept until a parameter or buffer of ``model`` changes."""
    model.eval()
    signature = _state_signature(model)
    cached = _FOLDED.get(model)
    if signature is not None and cached is not None and cached[0] == signature:
        return cached[1].eval()
    chosen = folded_copy(model, sample, atol)
    if chosen is not model and signature is not None:  # (caching the model itself would keep it alive)
        _FOLDED[model] = (signature, chosen)
    return chosen
