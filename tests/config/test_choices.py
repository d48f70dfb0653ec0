"""Every named choice is declared once, in ``medvision.config.choices``; each registry that implements a choice
is checked against that declaration here, so adding a scheduler (or a loss, a TTA mode...) in one place and not
the other fails."""

from __future__ import annotations

import typing

import pytest
import torch
from torch import nn

from medvision.cli import build_parser
from medvision.config import AUGMENT_PRESETS, DataConfig, ExperimentConfig, TrainConfig, choices
from medvision.config.strategy import parse_strategy
from medvision.core.errors import ConfigError
from medvision.data.cache import resize_image
from medvision.evaluate import anchors
from medvision.metrics.classification import classification_metrics
from medvision.models.backbones import with_tta
from medvision.train.losses import make_loss
from medvision.train.optim import make_optimizer, make_scheduler
from medvision.train.strategies import STRATEGIES


def test_each_literal_and_its_tuple_agree():
    hints = {**typing.get_type_hints(DataConfig), **typing.get_type_hints(TrainConfig)}
    assert typing.get_args(hints["scheduler"]) == choices.SCHEDULERS
    assert typing.get_args(hints["loss"]) == choices.LOSSES
    assert typing.get_args(hints["tta"]) == choices.TTA_MODES
    assert typing.get_args(hints["amp"]) == choices.AMP_MODES
    assert typing.get_args(hints["resize"]) == choices.RESIZE_MODES
    assert typing.get_args(hints["on_error"]) == choices.ON_ERROR
    assert typing.get_args(hints["dedupe"]) == choices.DEDUPE_MODES
    assert typing.get_args(hints["official_split"]) == choices.OFFICIAL_SPLIT_POLICIES
    assert typing.get_args(hints["source"]) == choices.SOURCES


def test_every_scheduler_is_built_and_no_other():
    model = nn.Linear(2, 2)
    built = {}
    for name in choices.SCHEDULERS:
        sched, _ = make_scheduler(name, make_optimizer([{"params": model.parameters(), "lr": 0.1}]), epochs=3,
                                  steps_per_epoch=3)
        built[name] = type(sched).__name__
    assert len(set(built.values())) == len(built), built  # every name builds its own schedule
    with pytest.raises(ConfigError):
        TrainConfig(scheduler="linear")  # type: ignore[arg-type]


def test_every_loss_is_built():
    weights = torch.ones(3)
    for name in choices.LOSSES:
        loss = make_loss(name, class_weights=weights)
        assert loss(torch.zeros(4, 3), torch.tensor([0, 1, 2, 0])).item() > 0
    with pytest.raises(ConfigError):
        TrainConfig(loss="hinge")  # type: ignore[arg-type]


def test_every_scored_tta_mode_wraps_a_model_and_auto_chooses_among_them():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    for mode in choices.SCORED_TTA_MODES:
        assert with_tta(model, mode)(torch.zeros(1, 3, 4, 4)).shape == (1, 2)
    assert set(choices.TTA_MODES) == {*choices.SCORED_TTA_MODES, "auto"}


def test_strategy_registry_and_parser_share_the_names():
    assert tuple(STRATEGIES) == choices.STRATEGY_NAMES
    for name in choices.STRATEGY_NAMES:
        assert parse_strategy(name).name == name
    with pytest.raises(ConfigError, match="choose from head_only, last_k"):
        parse_strategy("head")


def test_augment_presets_and_resize_modes():
    assert tuple(AUGMENT_PRESETS) == choices.AUGMENT_PRESET_NAMES
    for preset in choices.AUGMENT_PRESET_NAMES:
        ExperimentConfig(augment=preset)
    image = torch.zeros(20, 30, 3, dtype=torch.uint8).numpy()
    for mode in choices.RESIZE_MODES:
        assert resize_image(image, 8, mode).shape[:2] == (8, 8)


def _cli_choices(*path: str) -> dict[str, tuple]:
    parser = build_parser()
    for name in path:
        sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        parser = sub.choices[name]
    return {a.option_strings[0]: tuple(a.choices) for a in parser._actions if a.choices and a.option_strings}


def test_cli_choices_come_from_the_config_layer():
    data = _cli_choices("data", "split")
    assert data["--source"] == choices.SOURCES
    assert data["--dedupe"] == choices.DEDUPE_MODES
    assert data["--official-split"] == choices.OFFICIAL_SPLIT_POLICIES
    assert _cli_choices("predict")["--backend"] == choices.BACKENDS
    assert _cli_choices("train")["--track"] == choices.TRACKERS


def test_headline_metrics_are_computed_and_compared():
    scores = classification_metrics(torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]]), torch.tensor([0, 1, 1]))
    assert set(choices.HEADLINE_METRICS) <= set(scores)
    assert anchors.METRICS is choices.HEADLINE_METRICS


def test_every_amp_mode_is_understood_on_the_cpu():
    from medvision.core.devices import autocast_dtype

    cpu = torch.device("cpu")
    accepted = {mode: autocast_dtype(mode, cpu) for mode in choices.AMP_MODES if mode != "fp16"}
    assert accepted == {"auto": None, "bf16": torch.bfloat16, "off": None}
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        autocast_dtype("fp16", cpu)
    with pytest.raises(ConfigError, match="unknown amp"):
        autocast_dtype("fp8", cpu)
