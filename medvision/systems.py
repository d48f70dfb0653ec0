"""The five seed systems as configurations (``medvision/configs/*.yaml``): data, model settings, loss, strategies.

``load_system("ham10000")`` fills the same frozen dataclasses that the notebooks and the CLI use;
``fetch_system`` downloads a system's data with kagglehub where a Kaggle handle exists, and otherwise says
where to put the files.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import yaml

from medvision import distributed
from medvision.data.config import DataConfig
from medvision.data.paths import resolve_data_root
from medvision.errors import ConfigError, DownloadError, MissingExtraError, NotFoundError
from medvision.experiment import ExperimentConfig
from medvision.resources import config_dir
from medvision.strategies import StrategyConfig
from medvision.training import TrainConfig

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SystemConfig:
    """One data set's complete recipe."""

    name: str
    description: str
    data: DataConfig
    experiment: ExperimentConfig
    train: TrainConfig
    strategies: tuple[str, ...]
    kaggle: str | None = None
    layout: str = ""
    strategy_defaults: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


def _fill(cls, values: dict | None, path: Path):
    values = dict(values or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown {cls.__name__} field(s) {unknown}; known: {sorted(known)}")
    for key in ("classes", "ratios", "scale", "ratio"):
        if isinstance(values.get(key), list):
            values[key] = tuple(values[key])
    return cls(**values)


def available_systems() -> list[str]:
    """Names of the seed systems that ship with medvision (``medvision/configs/*.yaml``)."""
    return sorted(p.name.removesuffix(".yaml") for p in config_dir().iterdir() if p.name.endswith(".yaml"))


SECTIONS = ("description", "kaggle", "layout", "data", "experiment", "train", "strategy", "strategies")


def apply_overrides(raw: dict, overrides: Sequence[str], where: str = "config") -> dict:
    """Apply dotted ``section.field=value`` overrides (values parsed as YAML: ``2``, ``true``, ``[a, b]``)."""
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for item in overrides:
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
        if name:
            raw.setdefault(section, {})
            if not isinstance(raw[section], dict):
                raise ConfigError(f"override {item!r}: {where} section {section!r} is not a mapping")
            raw[section][name] = value
        else:
            raw[section] = value
    return raw


def load_system(name_or_path: str | os.PathLike[str], data_root: str = "", overrides: Sequence[str] = ()
                ) -> SystemConfig:
    """Read ``medvision/configs/<name>.yaml`` (or a YAML path) into a :class:`SystemConfig`.

    ``overrides`` are dotted ``section.field=value`` strings applied before validation.
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = config_dir() / f"{name_or_path}.yaml"
    if not path.is_file():
        raise NotFoundError(f"no system configuration {path}; available: {', '.join(available_systems())}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a YAML mapping with sections {', '.join(SECTIONS)}")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {unknown}; known: {', '.join(SECTIONS)}")
    raw = apply_overrides(raw, overrides, str(path))
    strategy = dict(raw.get("strategy") or {})
    known = {f.name for f in fields(StrategyConfig)} - {"name"}
    if set(strategy) - known:
        raise ConfigError(f"{path}: unknown strategy field(s) {sorted(set(strategy) - known)}; known: {sorted(known)}")
    strategies = raw.get("strategies", ("head_only",))
    data = _fill(DataConfig, raw.get("data"), path)
    if data_root:
        data = replace(data, data_root=data_root)
    return SystemConfig(name=Path(path.name).stem, description=raw.get("description", ""), data=data,
                        experiment=_fill(ExperimentConfig, raw.get("experiment"), path),
                        train=_fill(TrainConfig, raw.get("train"), path),
                        strategies=(strategies,) if isinstance(strategies, str) else tuple(strategies),
                        kaggle=raw.get("kaggle"), layout=raw.get("layout", ""), strategy_defaults=strategy)


def fetch_system(system: SystemConfig) -> Path:
    """Download a system's data with kagglehub (the ``[kaggle]`` extra) into the data root.

    Raises:
        DownloadError: there is no Kaggle handle (the message says where to put the files) or the download
            failed (offline, no Kaggle credentials, files missing from it).
        MissingExtraError: kagglehub is not installed.
    """
    root = resolve_data_root(system.data.data_root or None)
    if not system.kaggle:
        raise DownloadError(f"{system.name} has no public Kaggle handle; put the files as {system.layout} "
                            f"(data root {root})")
    try:
        import kagglehub
    except ImportError as exc:
        raise MissingExtraError("fetching from Kaggle needs the [kaggle] extra: pip install 'medvision[kaggle]'") from exc
    try:
        downloaded = Path(kagglehub.dataset_download(system.kaggle))
    except Exception as exc:  # kagglehub raises many types (HTTP, auth, offline)
        raise DownloadError(f"downloading {system.kaggle} from Kaggle failed ({type(exc).__name__}: {exc}); "
                           f"download it by hand and put the files as {system.layout} (data root {root})") from exc
    return arrange_download(system, downloaded, root)


def arrange_download(system: SystemConfig, downloaded: Path, root: Path) -> Path:
    """Make a downloaded Kaggle folder readable by the system's data config, under the data root.

    Folder sources: link ``<root>/<data.name>`` to the downloaded folder that holds the class (or split)
    folders. HAM10000: write ``<root>/ham10000/manifest.csv`` (image path, ``dx``, ``lesion_id``) from the
    official metadata CSV and the images found under the download.
    """
    import pandas as pd

    if system.data.source == "folder":
        splits = {"train", "test"}
        candidates = [downloaded, *sorted(p for p in downloaded.rglob("*") if p.is_dir())]
        holder = next((p for p in candidates if splits <= {c.name.lower() for c in p.iterdir() if c.is_dir()}),
                      downloaded)
        target = root / system.data.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(holder.resolve(), target_is_directory=True)
        return target
    meta = next(downloaded.rglob("HAM10000_metadata.csv"), None)
    if meta is None:
        raise DownloadError(f"{downloaded} has no HAM10000_metadata.csv; arrange the files as {system.layout}")
    images = {p.stem: p for p in downloaded.rglob("*.jpg")}
    frame = pd.read_csv(meta)
    missing = sorted(set(frame["image_id"]) - set(images))
    if missing:
        raise DownloadError(f"{len(missing)} images named in {meta} are missing under {downloaded}, e.g. {missing[0]}")
    folder = root / "ham10000"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "images-full"
    if not link.exists():
        link.symlink_to(downloaded.resolve(), target_is_directory=True)
    frame["file"] = [f"images-full/{images[i].relative_to(downloaded).as_posix()}" for i in frame["image_id"]]
    out = folder / "manifest.csv"
    frame.to_csv(out, index=False)
    return out


def train_system(system: SystemConfig, runs_dir: str | os.PathLike[str], strategies: Sequence[str] = (),
                 limit: int = 0, progress: bool = True) -> list[dict]:
    """Load a system's data, cache it and train each strategy (default: the configuration's list).

    Args:
        system: The configuration (overrides already applied).
        runs_dir: Run directories go to ``<runs_dir>/<strategy>``; finished or interrupted runs resume.
        strategies: Strategy specs (``head_only``, ``last_k:2``, ``full``, ``two_phase``, ``discriminative``).
        limit: Keep at most this many training images (stratified; 0 keeps all) for a quick try.
        progress: Progress bars for caching and training (rank 0 only under torchrun).

    Returns:
        The ``summary.json`` of every run.
    """
    from medvision.data import build_tensor_cache, load_data
    from medvision.data.splits import stratified_subsample
    from medvision.experiment import run_strategy

    table = load_data(system.data)
    if limit:
        table = stratified_subsample(table, limit, seed=system.data.seed)
    with distributed.main_first():  # under torchrun rank 0 builds the cache, the others then reuse it
        cache = build_tensor_cache(table, system.data.size, resize=system.data.resize,
                                   on_error=system.data.on_error, progress=progress and distributed.info().is_main)
    for sample_id, reason in cache.skipped:
        _log.warning("skipped %s: %s", sample_id, reason)
    train = replace(system.train, progress=progress)
    extra = {"system": system.name}
    return [run_strategy(cache, spec, system.experiment, train, runs_dir, system.data, system.strategy_defaults,
                         extra_config=extra)
            for spec in (strategies or system.strategies)]
