"""Batched augmentation on uint8 image tensors: flips, small rotations, random resized crops, colour jitter.

One affine grid per batch does flip + rotation + crop + resize in a single ``grid_sample``; colour jitter is
a few tensor ops. Nothing is decoded again and nothing loops over samples in Python.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from medvision.config.augment import AugmentConfig


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) * (hi - lo) + lo


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator,
                  out_size: int | None = None) -> torch.Tensor:
    """Augment a float batch in ``[0, 1]`` of shape (B, 3, H, W); returns (B, 3, out, out)."""
    b, _, h, w = x.shape
    out = out_size or h
    dev = x.device
    g = generator
    if cfg.is_geometric or cfg.hflip or cfg.vflip or out != h or h != w:
        area = _uniform(b, *cfg.scale, g, dev)
        log_r = _uniform(b, math.log(cfg.ratio[0]), math.log(cfg.ratio[1]), g, dev)
        r = torch.exp(log_r)
        sx = torch.sqrt(area * r).clamp(max=1.0)  # half-widths of the crop in [-1, 1] coordinates
        sy = torch.sqrt(area / r).clamp(max=1.0)
        tx = (torch.rand(b, generator=g, device=dev) * 2 - 1) * (1 - sx)
        ty = (torch.rand(b, generator=g, device=dev) * 2 - 1) * (1 - sy)
        ang = _uniform(b, -cfg.degrees, cfg.degrees, g, dev) * (math.pi / 180)
        fx = torch.where(torch.rand(b, generator=g, device=dev) < cfg.hflip, -1.0, 1.0)
        fy = torch.where(torch.rand(b, generator=g, device=dev) < cfg.vflip, -1.0, 1.0)
        cos, sin = torch.cos(ang), torch.sin(ang)
        theta = torch.stack([
            torch.stack([sx * cos * fx, -sy * sin * fy, tx], dim=1),
            torch.stack([sx * sin * fx, sy * cos * fy, ty], dim=1),
        ], dim=1).to(x.dtype)
        grid = F.affine_grid(theta, [b, 3, out, out], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if cfg.brightness:
        x = x * _uniform(b, 1 - cfg.brightness, 1 + cfg.brightness, g, dev).view(b, 1, 1, 1).to(x.dtype)
    if cfg.contrast or cfg.saturation:
        gray = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
        if cfg.saturation:
            s = _uniform(b, 1 - cfg.saturation, 1 + cfg.saturation, g, dev).view(b, 1, 1, 1).to(x.dtype)
            x = gray + (x - gray) * s
        if cfg.contrast:
            c = _uniform(b, 1 - cfg.contrast, 1 + cfg.contrast, g, dev).view(b, 1, 1, 1).to(x.dtype)
            mean = gray.mean(dim=(2, 3), keepdim=True)
            x = mean + (x - mean) * c
    if cfg.hue:
        x = _rotate_hue(x, _uniform(b, -cfg.hue, cfg.hue, g, dev) * (2 * math.pi))
    return x.clamp_(0, 1)


_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def _rotate_hue(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate each image's chroma (the I/Q plane of YIQ) by ``angle`` radians: a hue shift that keeps luma."""
    to_yiq = _TO_YIQ.to(x.device, x.dtype)
    cos, sin = torch.cos(angle).to(x.dtype), torch.sin(angle).to(x.dtype)
    one, zero = torch.ones_like(cos), torch.zeros_like(cos)
    rotation = torch.stack([torch.stack([one, zero, zero], 1), torch.stack([zero, cos, -sin], 1),
                            torch.stack([zero, sin, cos], 1)], 1)  # (B, 3, 3)
    transform = torch.linalg.inv(to_yiq) @ rotation @ to_yiq
    return torch.einsum("bij,bjhw->bihw", transform, x)


def resize_batch(x: torch.Tensor, out_size: int) -> torch.Tensor:
    """Deterministic resize of a float batch (evaluation path)."""
    if x.shape[-2:] == (out_size, out_size):
        return x
    return F.interpolate(x, size=(out_size, out_size), mode="bilinear", antialias=True, align_corners=False)


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Channel-wise ``(x - mean) / std`` with statistics from the model's timm data config."""
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s
