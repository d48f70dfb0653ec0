"""Transfer-learning strategies: which parameters train, at which learning rate.

A strategy is a named function ``fn(model, cfg, phase) -> list of optimizer parameter groups``. It freezes
everything else (``requires_grad=False``); :func:`train_mode` keeps frozen BatchNorm layers in eval mode so
their running statistics stay those of ImageNet. Layer groups come from timm's ``group_matcher`` (coarse: stem,
stages, head), never from slicing parameter names. The registry lets a YAML / papermill string pick one.
The optimizer is rebuilt from the returned groups whenever the phase changes.
"""

from __future__ import annotations

from collections.abc import Callable

from timm.models import group_parameters
from timm.optim import param_groups_layer_decay
from torch import nn

from medvision.config.strategy import StrategyConfig
from medvision.core.errors import ConfigError


def layer_groups(model: nn.Module) -> tuple[list[list[str]], list[str]]:
    """Parameter names per coarse timm group (stem first), and the head's names (the classifier's group)."""
    grouped = group_parameters(model, model.group_matcher(coarse=True))
    groups = [list(v) for _, v in sorted(grouped.items())]
    classifier = model.get_classifier()
    head_ids = {id(p) for p in classifier.parameters()}
    names = dict(model.named_parameters())
    head_idx = [i for i, g in enumerate(groups) if any(id(names[n]) in head_ids for n in g)]
    if head_idx != [len(groups) - 1]:
        raise ConfigError(f"{type(model).__name__}: the classifier is not the last timm group")
    return groups[:-1], groups[-1]


def _set_trainable(model: nn.Module, names: set[str]) -> None:
    """Train exactly the parameters in ``names``; every other parameter gets ``requires_grad=False``."""
    for name, p in model.named_parameters():
        p.requires_grad_(name in names)


def train_mode(model: nn.Module) -> nn.Module:
    """``model.train()``, except that normalisation layers whose parameters are all frozen stay in eval
    mode, so frozen BatchNorm keeps its ImageNet running statistics (fastai's ``train_bn=False``)."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._NormBase):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.eval()
    return model


def _groups(model: nn.Module, spec: list[tuple[list[str], float]], cfg: StrategyConfig) -> list[dict]:
    params = dict(model.named_parameters())
    _set_trainable(model, {n for names, _ in spec for n in names})
    return [{"params": [params[n] for n in names], "lr": lr, "weight_decay": cfg.weight_decay,
             "names": names} for names, lr in spec if names]


def head_only(model: nn.Module, cfg: StrategyConfig, phase: int = 0) -> list[dict]:
    """Train the classifier only; the backbone is a fixed feature extractor."""
    _, head = layer_groups(model)
    return _groups(model, [(head, cfg.lr)], cfg)


def last_k(model: nn.Module, cfg: StrategyConfig, phase: int = 0) -> list[dict]:
    """Train the head and the last ``k`` blocks (backbone at ``lr * backbone_lr_scale``)."""
    blocks, head = layer_groups(model)
    if not 1 <= cfg.k < len(blocks):
        raise ConfigError(f"k must be in 1..{len(blocks) - 1} for {type(model).__name__}, got {cfg.k}")
    chosen = [n for g in blocks[-cfg.k:] for n in g]
    return _groups(model, [(chosen, cfg.lr * cfg.backbone_lr_scale), (head, cfg.lr)], cfg)


def full(model: nn.Module, cfg: StrategyConfig, phase: int = 0) -> list[dict]:
    """Fine-tune everything at one learning rate."""
    blocks, head = layer_groups(model)
    return _groups(model, [([n for g in blocks for n in g] + head, cfg.lr)], cfg)


def two_phase(model: nn.Module, cfg: StrategyConfig, phase: int = 0) -> list[dict]:
    """fastai's ``fine_tune``: head only for ``phase1_epochs``, then the last ``k`` (or all) blocks too
    at ``lr * backbone_lr_scale``. The caller rebuilds optimizer and scheduler at the switch."""
    if phase == 0:
        return head_only(model, cfg)
    blocks, head = layer_groups(model)
    chosen = blocks if cfg.unfreeze_all else blocks[-cfg.k:]
    backbone = [n for g in chosen for n in g]
    return _groups(model, [(backbone, cfg.lr * cfg.backbone_lr_scale), (head, cfg.lr * cfg.backbone_lr_scale)],
                   cfg)


def discriminative(model: nn.Module, cfg: StrategyConfig, phase: int = 0) -> list[dict]:
    """Everything trains; the LR decays by ``layer_decay`` per group from head to stem (timm's layer decay)."""
    _set_trainable(model, {n for n, _ in model.named_parameters()})
    groups = param_groups_layer_decay(model, weight_decay=cfg.weight_decay, layer_decay=cfg.layer_decay)
    names = {id(p): n for n, p in model.named_parameters()}
    return [{"params": g["params"], "lr": cfg.lr * g.get("lr_scale", 1.0), "weight_decay": g["weight_decay"],
             "names": [names[id(p)] for p in g["params"]]} for g in groups]


Strategy = Callable[[nn.Module, StrategyConfig, int], list[dict]]
STRATEGIES: dict[str, Strategy] = {"head_only": head_only, "last_k": last_k, "full": full,
                                   "two_phase": two_phase, "discriminative": discriminative}


def get_strategy(name: str) -> Strategy:
    """Look a strategy up by name."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ConfigError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}") from None


def param_groups(model: nn.Module, cfg: StrategyConfig, epoch: int = 0) -> list[dict]:
    """The parameter groups of ``cfg``'s strategy at ``epoch`` (two-phase switches after ``phase1_epochs``)."""
    return get_strategy(cfg.name)(model, cfg, cfg.phase(epoch))


def count_trainable(model: nn.Module) -> int:
    """Number of parameters that will receive gradients."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
