"""Configuration layer: every configuration dataclass, every named choice, and the one YAML schema.

YAML files, the book's profiles, papermill parameters and the CLI all fill the same frozen dataclasses through
:meth:`RunConfig.load`. May import ``medvision.core`` and ``medvision.resources`` only.
"""

from medvision.config.augment import AUGMENT_PRESETS, AugmentConfig
from medvision.config.data import DataConfig
from medvision.config.experiment import ExperimentConfig
from medvision.config.run import (
    OVERRIDE_KEYS,
    Override,
    RunConfig,
    available_systems,
    dataset_config,
    is_medmnist_flag,
    merge,
    parse_override,
)
from medvision.config.strategy import Phase, StrategyConfig, parse_strategy
from medvision.config.train import TrainConfig

__all__ = [
    "AUGMENT_PRESETS", "OVERRIDE_KEYS", "AugmentConfig", "DataConfig", "ExperimentConfig", "Override", "Phase",
    "RunConfig", "StrategyConfig", "TrainConfig", "available_systems", "dataset_config", "is_medmnist_flag", "merge",
    "parse_override", "parse_strategy",
]
