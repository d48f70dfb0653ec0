"""One run configuration — data, model settings, training loop, strategy — and the one YAML schema that fills it.

``medvision/configs/*.yaml``, the book's profiles, the chapters' ``config`` + ``overrides`` parameters, the CLI's
``--set`` and the benchmark all build a :class:`RunConfig` through :meth:`RunConfig.load` and
:meth:`RunConfig.override`; nothing else translates settings into the frozen dataclasses. The schema::

    description: what the data set is          # optional facts about a system
    kaggle: owner/dataset                      # where `medvision data fetch` downloads it (or null)
    layout: "<data root>/..."                  # where the files go when there is no download
    data: {source: csv, name: ham10000/manifest.csv, ...}     # medvision.config.DataConfig
    experiment: {backbone: ..., image_size: 128, ...}         # medvision.config.ExperimentConfig
    train: {epochs: 10, loss: focal, ...}                     # medvision.config.TrainConfig
    strategy: {lr: 1.0e-3, phase1_epochs: 3, ...}             # medvision.config.StrategyConfig
    strategies: [head_only, "last_k:2", full, two_phase]      # what `medvision train` and chapter 02 run
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from medvision.config.data import DataConfig
from medvision.config.experiment import ExperimentConfig
from medvision.config.strategy import StrategyConfig, parse_strategy
from medvision.config.train import TrainConfig
from medvision.core.errors import ConfigError, NotFoundError
from medvision.resources import config_dir

#: The sections of the schema that fill a dataclass, and the class each fills.
DATACLASS_SECTIONS: dict[str, type] = {"data": DataConfig, "experiment": ExperimentConfig, "train": TrainConfig,
                                       "strategy": StrategyConfig}
#: Every top-level key the schema knows.
SECTIONS = ("description", "kaggle", "layout", "reference", *DATACLASS_SECTIONS, "strategies", "cycles")
#: The keys of an override (a profile's, a chapter's): the sections that change a run.
OVERRIDE_KEYS = ("data", "experiment", "train", "strategy", "strategies")
#: StrategyConfig fields a configuration may not set: a strategy spec (``"last_k:2"``) names the strategy.
_SPEC_ONLY = {"name"}

Override = str | Mapping[str, Any]


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides a training run (and, through ``strategies``, a comparison of runs).

    Attributes:
        data: Which images, which classes, which split.
        experiment: The model and input settings every strategy shares.
        train: How the loop trains.
        strategy: The settings every strategy spec starts from (learning rate, ``k``, phase lengths...).
        strategies: Strategy specs to run, in order (``head_only``, ``"last_k:2"``, ``full``, ``two_phase``...).
        name: The system's name (a ``configs/`` file's stem or a MedMNIST flag); empty for ad-hoc settings.
        description: One line on the data set.
        kaggle: The Kaggle handle ``medvision data fetch`` downloads, if any.
        layout: Where the files go under the data root when they are put there by hand.
        reference: Published (or a seed project's expected) test results to show beside ours: ``source``, a
            ``metrics`` mapping of a number or a ``[low, high]`` range per metric, and for a binary task the
            ``positive`` class that sensitivity refers to.
        cycles: Class cycles (the eardrum seed's 6-class cycle before its 4-class problem): overrides in this
            schema, each trained in turn (its first strategy) from the previous cycle's best backbone, before the
            strategies themselves start from the last cycle's (:func:`medvision.train.systems.train_system`).
    """

    data: DataConfig = field(default_factory=DataConfig)
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    strategies: tuple[str, ...] = ("head_only",)
    name: str = ""
    description: str = ""
    kaggle: str | None = None
    layout: str = ""
    reference: dict = field(default_factory=dict)
    cycles: tuple[dict, ...] = ()

    # ------------------------------------------------------------------------------------------ reading
    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None, where: str = "configuration", name: str = "") -> RunConfig:
        """A configuration from a mapping in the schema above; ``where`` names its origin in error messages.

        Raises:
            ConfigError: an unknown section or field, or a value of the wrong type or outside its choices.
        """
        raw = dict(raw or {})
        unknown = sorted(set(raw) - set(SECTIONS))
        if unknown:
            raise ConfigError(f"{where}: unknown section(s) {unknown}; known: {', '.join(SECTIONS)}")
        parts = {key: _fill(kind, raw.get(key), where, key) for key, kind in DATACLASS_SECTIONS.items()}
        strategies = raw.get("strategies", cls.strategies)
        strategies = (strategies,) if isinstance(strategies, str) else tuple(str(s) for s in strategies or ())
        for spec in strategies:  # a typo fails here, not after the first strategy has trained
            parse_strategy(spec, parts["strategy"])
        reference = raw.get("reference") or {}
        if not isinstance(reference, Mapping) or (reference and not isinstance(reference.get("metrics"), Mapping)):
            raise ConfigError(f"{where}: reference must be a mapping with source, metrics (metric: number or "
                              f"[low, high]) and optionally positive, not {reference!r}")
        cycles = raw.get("cycles") or ()
        if isinstance(cycles, Mapping) or not all(isinstance(c, Mapping) for c in cycles):
            raise ConfigError(f"{where}: cycles must be a list of overrides in this schema, not {cycles!r}")
        config = cls(**parts, strategies=strategies, name=name, description=str(raw.get("description") or ""),
                     kaggle=raw.get("kaggle"), layout=str(raw.get("layout") or ""), reference=dict(reference),
                     cycles=tuple(dict(c) for c in cycles))
        for i, cycle in enumerate(config.cycles):  # every cycle is a valid configuration of its own
            cls.from_dict(merge(config.to_dict() | {"cycles": []}, cycle, where=f"{where}: cycles[{i}]"),
                          f"{where}: cycles[{i}]")
        return config

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str], overrides: Iterable[Override] = ()) -> RunConfig:
        """Read a YAML file in the schema (named after the file's stem), then apply ``overrides``."""
        path = Path(path)
        if not path.is_file():
            raise NotFoundError(f"no configuration file {path}")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML ({exc})") from exc
        if raw is not None and not isinstance(raw, dict):
            raise ConfigError(f"{path} must be a YAML mapping with sections {', '.join(SECTIONS)}")
        return cls.from_dict(merge(raw or {}, *overrides, where=str(path)), str(path), name=path.stem)

    @classmethod
    def load(cls, config: str | os.PathLike[str] = "", overrides: Iterable[Override] = ()) -> RunConfig:
        """The one way in: ``config`` is a system of ``medvision/configs/`` (``ham10000``), a YAML path, a
        MedMNIST flag (``breastmnist``: its official files and splits) or empty (the defaults); ``overrides``
        are applied in order (dotted ``section.field=value`` strings or mappings in the schema).

        Raises:
            NotFoundError: ``config`` is none of these.
            ConfigError: the configuration or an override is invalid.
        """
        text = os.fspath(config)
        if not text:
            return cls.from_dict(merge({}, *overrides), "overrides")
        path = Path(text).expanduser()
        if path.suffix in (".yaml", ".yml") or path.is_file():
            return cls.from_yaml(path, overrides)
        system = config_dir() / f"{text}.yaml"
        if system.is_file():
            return cls.from_yaml(Path(str(system)), overrides)
        if is_medmnist_flag(text):
            base = {"description": f"MedMNIST {text} (official files and splits)",
                    "data": {"source": "medmnist", "name": text.lower()}}
            return cls.from_dict(merge(base, *overrides, where=text), text, name=text.lower())
        raise NotFoundError(f"no configuration {text!r}: not a YAML file, not a MedMNIST flag (pneumoniamnist, "
                            f"...) and not a system; available systems: {', '.join(available_systems())}")

    # ------------------------------------------------------------------------------------------ writing
    def to_dict(self) -> dict[str, Any]:
        """The configuration in the schema, plain YAML/JSON types only; :meth:`from_dict` reads it back."""
        out: dict[str, Any] = {"description": self.description, "kaggle": self.kaggle, "layout": self.layout,
                               "reference": self.reference, "cycles": [dict(c) for c in self.cycles]}
        for key in DATACLASS_SECTIONS:
            part = getattr(self, key)
            out[key] = {f.name: _plain(getattr(part, f.name)) for f in fields(part) if f.name not in _SPEC_ONLY
                        or key != "strategy"}
        out["strategies"] = list(self.strategies)
        return out

    def override(self, *overrides: Override) -> RunConfig:
        """This configuration with ``overrides`` applied (dotted strings such as ``train.epochs=3`` — values
        read as YAML — or mappings such as ``{"train": {"epochs": 3}}``), validated again."""
        if not overrides:
            return self
        return RunConfig.from_dict(merge(self.to_dict(), *overrides, where=self.name or "configuration"),
                                   self.name or "overrides", name=self.name)

    # ------------------------------------------------------------------------------------------- using
    def strategy_for(self, spec: str) -> StrategyConfig:
        """The :class:`StrategyConfig` of one strategy spec, starting from this configuration's ``strategy``."""
        return parse_strategy(spec, self.strategy)

    @property
    def label(self) -> str:
        """A short name for folders and pages: the system's name, else the data set's."""
        return self.name or Path(self.data.name).stem or "data"


def dataset_config(dataset: str, overrides: Mapping[str, Any] | None = None,
                   per_dataset: Mapping[str, Mapping[str, Any]] | None = None) -> RunConfig:
    """The configuration of one benchmarked data set: ``RunConfig.load(dataset)`` (a MedMNIST flag or a
    ``configs/`` system) with the chapter's ``overrides``, then ``per_dataset[dataset]``'s (the same schema, e.g.
    ``{"breastmnist": {"train": {"epochs": 30}}}``).

    Raises:
        ConfigError: an entry of ``per_dataset`` — any, not only ``dataset``'s — sets an unknown section or field.
    """
    per_dataset = dict(per_dataset or {})
    for name, extra in per_dataset.items():
        where = f"per_dataset[{name!r}]"
        RunConfig.from_dict(merge({}, extra, where=where), where)
    return RunConfig.load(dataset, [overrides or {}, per_dataset.get(dataset, {})])


# ------------------------------------------------------------------------------------------- overrides
def merge(raw: Mapping[str, Any], *overrides: Override, where: str = "configuration") -> dict[str, Any]:
    """``raw`` with each override applied in turn: a mapping section by section (fields of a dataclass section
    merge; ``strategies`` and the facts are replaced), a string ``section.field=value`` (value read as YAML:
    ``2``, ``true``, ``[a, b]``) or ``section=value``."""
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in raw.items()}
    for item in overrides:
        mapping = parse_override(item) if isinstance(item, str) else item
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"{where}: an override must be a mapping or a 'section.field=value' string, "
                              f"not {item!r}")
        for section, value in mapping.items():
            if section not in SECTIONS:
                raise ConfigError(f"{where}: override of unknown section {section!r}; sections: "
                                  f"{', '.join(SECTIONS)}")
            if section in DATACLASS_SECTIONS:
                if not isinstance(value, Mapping):
                    raise ConfigError(f"{where}: the override of section {section!r} must be a mapping of its "
                                      f"fields, not {value!r}")
                out[section] = {**(out.get(section) or {}), **value}
            else:
                out[section] = value
    return out


def parse_override(item: str) -> dict[str, Any]:
    """``"train.epochs=3"`` → ``{"train": {"epochs": 3}}``; ``"strategies=[full]"`` → ``{"strategies":
    ["full"]}``."""
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r} must look like section.field=value (e.g. train.epochs=3)")
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {item!r}: the value is not valid YAML ({exc})") from exc
    section, _, name = key.partition(".")
    if section not in SECTIONS:
        raise ConfigError(f"override {item!r}: unknown section {section!r}; sections: {', '.join(SECTIONS)}")
    if section in DATACLASS_SECTIONS and not name:
        raise ConfigError(f"override {item!r}: name a field of {section!r}, e.g. {section}.<field>=value")
    return {section: {name: value}} if name else {section: value}


# ------------------------------------------------------------------------------------------ validation
def _fill(cls: type, values: Any, where: str, section: str):
    """``cls`` from a section's mapping, each value checked (and widened: ``1`` for a float, a list for a
    tuple, ``"1e-3"`` for a float) against the field's type hint."""
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: section {section!r} must be a mapping of {cls.__name__} fields, "
                          f"not {values!r}")
    known = [f.name for f in fields(cls) if not (cls is StrategyConfig and f.name in _SPEC_ONLY)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown {cls.__name__} field(s) {unknown}; known: {sorted(known)}")
    hints = typing.get_type_hints(cls)
    return cls(**{k: _coerce(v, hints[k], f"{where}: {section}.{k}") for k, v in values.items()})


def _coerce(value: Any, hint: Any, what: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        members = [a for a in args if a is not type(None)]
        for member in members[:-1]:  # the first member that takes the value; the last one's error otherwise
            try:
                return _coerce(value, member, what)
            except ConfigError:
                continue
        return _coerce(value, members[-1], what)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{what} must be one of {', '.join(map(str, args))}, not {value!r}")
        return value
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, Iterable):
            raise ConfigError(f"{what} must be a list, not {value!r}")
        items = list(value)
        inner = args[:1] * len(items) if len(args) == 2 and args[1] is Ellipsis else args
        if len(inner) != len(items):
            raise ConfigError(f"{what} must be a list of {len(inner)} values, not {value!r}")
        return tuple(_coerce(v, h, what) for v, h in zip(items, inner, strict=True))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{what} must be true or false, not {value!r}")
        return value
    if hint is dict or typing.get_origin(hint) is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{what} must be a mapping, not {value!r}")
        return dict(value)
    if hint in (int, float):
        try:
            number = float(value) if isinstance(value, str | int | float) and not isinstance(value, bool) else None
        except ValueError:
            number = None
        if number is None or (hint is int and not number.is_integer()):
            raise ConfigError(f"{what} must be {'an integer' if hint is int else 'a number'}, not {value!r}")
        return int(number) if hint is int else number
    if hint is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(f"{what} must be a string, not {value!r}")
        return str(value)
    return value


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# --------------------------------------------------------------------------------------------- systems
def available_systems() -> list[str]:
    """Names of the seed systems that ship with medvision (``medvision/configs/*.yaml``)."""
    return sorted(p.name.removesuffix(".yaml") for p in config_dir().iterdir() if p.name.endswith(".yaml"))


def is_medmnist_flag(name: str) -> bool:
    """Whether ``name`` is a 2D MedMNIST data set (``pneumoniamnist``, ``dermamnist``...)."""
    from medmnist import INFO

    key = name.lower()
    return key in INFO and not key.endswith("3d")

