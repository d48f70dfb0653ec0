"""What trains at which learning rate: a strategy's settings, its phases, and strategy specs (``"last_k:2"``).

The strategy functions themselves live in :mod:`medvision.train.strategies`, registered under the names of
:data:`medvision.config.choices.STRATEGY_NAMES`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from medvision.config.choices import STRATEGY_NAMES
from medvision.core.errors import ConfigError


@dataclass(frozen=True)
class StrategyConfig:
    """Settings of a strategy.

    Attributes:
        name: Registry name: ``head_only``, ``last_k``, ``full``, ``two_phase``, ``discriminative``.
        lr: Learning rate of the head (and of everything under ``full``).
        k: Blocks (timm coarse groups) trained with the head under ``last_k`` and in two-phase's 2nd phase.
        backbone_lr_scale: Backbone LR as a fraction of ``lr`` (``last_k``, two-phase's 2nd phase).
        layer_decay: Per-group LR decay towards the stem under ``discriminative`` (timm's layer decay).
        weight_decay: AdamW weight decay.
        phase1_epochs: Head-only epochs before two-phase unfreezes.
        unfreeze_all: Two-phase unfreezes every block instead of the last ``k``.
        restart_from_best: Two-phase's second phase starts from the best head-only epoch (on validation),
            not from the last one (the CXR-TB seed's phase B).
    """

    name: str = "head_only"
    lr: float = 1e-3
    k: int = 2
    backbone_lr_scale: float = 0.1
    layer_decay: float = 0.75
    weight_decay: float = 0.01
    phase1_epochs: int = 3
    unfreeze_all: bool = False
    restart_from_best: bool = False

    def phase(self, epoch: int) -> int:
        """0 for single-phase strategies and two-phase's head-only epochs, 1 after the switch."""
        return int(self.name == "two_phase" and epoch >= self.phase1_epochs)

    @property
    def head_only(self) -> bool:
        """Only the classifier trains (so cached backbone features can stand in for the images)."""
        return self.name == "head_only"

    def phases(self, epochs: int) -> list[Phase]:
        """The phases of a run of ``epochs`` epochs, in order: each trains its own parameter groups
        (:func:`medvision.train.strategies.param_groups` at its first epoch) under its own optimizer and schedule."""
        if self.name == "two_phase" and 0 < self.phase1_epochs < epochs:
            return [Phase(0, 0, self.phase1_epochs),
                    Phase(1, self.phase1_epochs, epochs, restart=self.restart_from_best)]
        if self.name == "two_phase" and self.phase1_epochs >= epochs:  # the run ends in the head-only phase,
            return [Phase(0, 0, epochs, self.phase1_epochs)]  # whose schedule keeps its planned length
        return [Phase(self.phase(0), 0, epochs)]


@dataclass(frozen=True)
class Phase:
    """A stretch of epochs ``[start, end)`` with one set of trainable parameters and learning rates, whose
    schedule spans ``planned`` epochs (``end - start`` unless the run stops inside a longer phase); with
    ``restart`` it starts from the best weights so far instead of the last ones."""

    index: int
    start: int
    end: int
    planned: int = 0
    restart: bool = False

    @property
    def schedule_epochs(self) -> int:
        return self.planned or self.end - self.start


def parse_strategy(spec: str, base: StrategyConfig | None = None, **defaults) -> StrategyConfig:
    """``"head_only"``, ``"last_k:2"``, ``"full"``, ``"two_phase"`` (last k), ``"two_phase:all"``,
    ``"discriminative"`` → a :class:`StrategyConfig`; its other fields come from ``base`` (a configuration's
    ``strategy`` section), then ``defaults``.

    Raises:
        ConfigError: an unknown strategy, or a malformed argument after ``:``.
    """
    name, _, arg = spec.partition(":")
    if name not in STRATEGY_NAMES:
        raise ConfigError(f"unknown strategy {spec!r}; choose from {', '.join(STRATEGY_NAMES)} "
                          "(last_k and two_phase take ':<blocks>', two_phase also ':all')")
    cfg = replace(base or StrategyConfig(), name=name, **defaults)
    if arg == "all" and name == "two_phase":
        return replace(cfg, unfreeze_all=True)
    if arg:
        if not arg.isdigit():
            raise ConfigError(f"strategy {spec!r}: expected a block count after ':'")
        return replace(cfg, k=int(arg))
    return cfg
