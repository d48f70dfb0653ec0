"""Augmentation strengths (applied batch-wise by :mod:`medvision.data.augment`) and the named presets."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation strengths. The defaults are mild, suited to medical images.

    Attributes:
        hflip: Probability of a horizontal flip.
        vflip: Probability of a vertical flip (off by default: anatomy has an up).
        degrees: Rotation drawn uniformly from ``[-degrees, degrees]``.
        scale: Range of the crop's area as a fraction of the image (random resized crop).
        ratio: Range of the crop's aspect ratio.
        brightness: Brightness factor drawn from ``[1 - b, 1 + b]``.
        contrast: Contrast factor drawn from ``[1 - c, 1 + c]``.
        saturation: Saturation factor drawn from ``[1 - s, 1 + s]``.
        hue: Hue rotation drawn from ``[-h, h]`` turns of the colour wheel (in YIQ space).
    """

    hflip: float = 0.5
    vflip: float = 0.0
    degrees: float = 10.0
    scale: tuple[float, float] = (0.8, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    brightness: float = 0.1
    contrast: float = 0.1
    saturation: float = 0.0
    hue: float = 0.0

    @classmethod
    def none(cls) -> AugmentConfig:
        """No augmentation at all (evaluation, cached-feature training)."""
        return cls(hflip=0, vflip=0, degrees=0, scale=(1, 1), ratio=(1, 1), brightness=0, contrast=0,
                   saturation=0)

    @property
    def is_geometric(self) -> bool:
        return self.degrees > 0 or self.scale != (1, 1) or self.ratio != (1, 1)

    @property
    def is_flip_only(self) -> bool:
        """Only flips: a frozen backbone's features can then be cached once per flip."""
        return (not self.is_geometric and self.brightness == 0 and self.contrast == 0
                and self.saturation == 0 and self.hue == 0)

    @property
    def is_identity(self) -> bool:
        return (not self.is_geometric and self.hflip == 0 and self.vflip == 0
                and self.brightness == 0 and self.contrast == 0 and self.saturation == 0 and self.hue == 0)


#: Named augmentations (``ExperimentConfig.augment``; their names: ``config.choices.AUGMENT_PRESET_NAMES``,
#: checked by tests/config/test_choices.py); ``none`` is no augmentation at all.
AUGMENT_PRESETS: dict[str, AugmentConfig | None] = {
    "none": None,
    "flip": AugmentConfig(hflip=0.5, degrees=0, scale=(1, 1), ratio=(1, 1), brightness=0, contrast=0),
    "default": AugmentConfig(),
    "medium": AugmentConfig(hflip=0.5, vflip=0.5, degrees=30, saturation=0.2, hue=0.05),
}
