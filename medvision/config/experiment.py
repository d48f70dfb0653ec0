"""The model and input settings every strategy of a comparison shares."""

from __future__ import annotations

from dataclasses import dataclass, fields

from medvision.config.augment import AUGMENT_PRESETS, AugmentConfig
from medvision.core.errors import ConfigError


@dataclass(frozen=True)
class ExperimentConfig:
    """The model and data settings shared by every strategy of a comparison.

    Attributes:
        backbone: timm architecture.
        pretrained: ``auto``, ``package``, ``hub``, ``none`` or a weights file.
        image_size: Model input size (cached images are resized on the fly).
        batch_size: Training batch size.
        augment: Train-time augmentation: ``none``, ``flip`` (flips only), ``default`` (mild: flips, ±10°, crops,
            brightness/contrast), ``medium`` (the HAM10000 seed's: ±30°, vertical flips, hue and saturation
            jitter), or a mapping of :class:`~medvision.config.AugmentConfig` fields over ``default``
            (``{degrees: 30, vflip: 0.5, hue: 0.05}``).
        head_hidden: Width of an MLP head, or a list of widths for a deeper one with BatchNorm
            (:func:`medvision.models.backbones.mlp_head`; 0: timm's linear classifier).
        drop_rate: Dropout before the classifier.
        balanced_sampler: Draw training batches with class-balancing weights (with replacement).
        fallback: With ``pretrained: auto``, the architecture to train instead when the backbone's weights
            cannot be had (no hub, no package, no local file): one with offline weights, such as
            ``tf_efficientnet_lite0``. The run records which was used and why.
    """

    backbone: str = "tf_efficientnet_lite0"
    pretrained: str = "auto"
    image_size: int = 64
    batch_size: int = 64
    augment: str | dict = "default"
    head_hidden: int | tuple[int, ...] = 0
    drop_rate: float = 0.2
    balanced_sampler: bool = False
    fallback: str = ""

    def __post_init__(self) -> None:
        self.augment_config()  # a bad augmentation fails when the configuration is made, not at the first batch

    def augment_config(self) -> AugmentConfig | None:
        if isinstance(self.augment, dict):
            known = {f.name for f in fields(AugmentConfig)}
            unknown = sorted(set(self.augment) - known)
            if unknown:
                raise ConfigError(f"augment sets unknown field(s) {unknown}; AugmentConfig has {sorted(known)}")
            values = {k: tuple(v) if isinstance(v, list) else v for k, v in self.augment.items()}
            return AugmentConfig(**values)
        if self.augment not in AUGMENT_PRESETS:
            raise ConfigError(f"augment must be one of {', '.join(AUGMENT_PRESETS)} or a mapping of AugmentConfig "
                              f"fields, not {self.augment!r}")
        return AUGMENT_PRESETS[self.augment]
