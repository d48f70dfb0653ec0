"""Loss functions by name: cross-entropy, class-weighted cross-entropy, focal; all with label smoothing."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medvision.config.choices import LOSSES
from medvision.core.errors import ConfigError


class FocalLoss(nn.Module):
    """Softmax focal loss (Lin et al. 2017): cross-entropy scaled by ``(1 - p_t) ** gamma``.

    Down-weights easy examples so rare, hard classes count more; ``weight`` adds class weights.
    """

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None, label_smoothing: float = 0.0):
        super().__init__()
        self.gamma = gamma
        self.label_smoothing = label_smoothing
        self.register_buffer("weight", weight if weight is not None else None)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        ce = F.cross_entropy(logits, targets, weight=self.weight, reduction="none",
                             label_smoothing=self.label_smoothing)
        pt = logits.softmax(dim=1).gather(1, targets[:, None]).squeeze(1)
        loss = (1 - pt).clamp(min=0).pow(self.gamma) * ce
        if self.weight is not None:
            return loss.sum() / self.weight[targets].sum()
        return loss.mean()


def make_loss(name: str, class_weights: torch.Tensor | None = None, label_smoothing: float = 0.0,
              focal_gamma: float = 2.0) -> nn.Module:
    """``ce``, ``weighted_ce`` (needs ``class_weights``) or ``focal`` (class weights optional)."""
    if name == "ce":
        return nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    if name == "weighted_ce":
        if class_weights is None:
            raise ConfigError("weighted_ce needs class weights")
        return nn.CrossEntropyLoss(weight=class_weights, label_smoothing=label_smoothing)
    if name == "focal":
        return FocalLoss(focal_gamma, class_weights, label_smoothing)
    raise ConfigError(f"unknown loss {name!r}; choose {', '.join(LOSSES)}")
