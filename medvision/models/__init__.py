"""Models layer: timm backbones with offline ImageNet weights, heads, test-time augmentation, BatchNorm folding,
checkpoints, Grad-CAM, and image embeddings (feature-space near duplicates).

May import the layers below it (``core``, ``config``, ``data``, ``metrics``, ``plots``).
"""

# Registers the feature provider of data.dedupe: embedding (the data layer compares vectors, builds no model).
from medvision.models import embeddings  # noqa: E402, F401
