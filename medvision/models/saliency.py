"""Grad-CAM saliency through the ``grad-cam`` package, with the target layer taken from the timm model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn


def target_layer(model: nn.Module, input_size: int | None = None) -> nn.Module:
    """The deepest feature stage timm reports (``model.feature_info``), where Grad-CAM is usual.

    With ``input_size``, the deepest stage whose map is still at least 7 x 7 px: on small inputs (MedMNIST's
    28-64 px) the last stage is 1 x 1 or 2 x 2 and its Grad-CAM says nothing about where.
    """
    info = getattr(model, "feature_info", None)
    if not info:
        raise ValueError(f"{type(model).__name__} has no timm feature_info; pass the target layer explicitly")
    stages = list(info)
    if input_size:
        fine = [s for s in stages if input_size / s["reduction"] >= 7]
        stages = fine or stages[:1]
    return model.get_submodule(stages[-1]["module"])


def gradcam(model: nn.Module, inputs: torch.Tensor, classes: Sequence[int], layer: nn.Module | None = None
            ) -> np.ndarray:
    """Grad-CAM maps in ``[0, 1]`` of shape (N, H, W) for ``classes[i]`` of each normalised input."""
    model.eval()
    from pytorch_grad_cam import (
        GradCAM,  # grad-cam pulls in OpenCV: loaded when a map is asked for, not with
    )
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # every Predictor

    with GradCAM(model=model, target_layers=[layer or target_layer(model, inputs.shape[-1])]) as cam:
        maps = cam(input_tensor=inputs, targets=[ClassifierOutputTarget(int(c)) for c in classes])
    return np.asarray(maps, dtype=np.float32)


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """An RGB uint8 overlay of a Grad-CAM map on an (H, W, 3) uint8 image of the same size."""
    rgb = image.astype(np.float32) / 255.0
    from pytorch_grad_cam.utils.image import show_cam_on_image

    return show_cam_on_image(rgb, cam, use_rgb=True, image_weight=1 - alpha)
