"""Models layer: timm backbones with offline ImageNet weights, heads, test-time augmentation, BatchNorm folding,
checkpoints and saliency.

May import ``core``, ``config`` and ``data``.
"""
