"""The five seed systems as configurations (``configs/*.yaml``): data, model settings, loss, strategies.

``load_system("ham10000")`` fills the same frozen dataclasses that the notebooks and the CLI use;
``fetch_system`` downloads a system's data with kagglehub where a Kaggle handle exists, and otherwise says
where to put the files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import yaml

from medvision.data.config import DataConfig
from medvision.data.paths import resolve_data_root
from medvision.experiment import ExperimentConfig
from medvision.training import TrainConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


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
    extra: dict = field(default_factory=dict)


def _fill(cls, values: dict | None, path: Path):
    values = dict(values or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{path}: unknown {cls.__name__} field(s) {unknown}; known: {sorted(known)}")
    for key in ("classes", "ratios", "scale", "ratio"):
        if isinstance(values.get(key), list):
            values[key] = tuple(values[key])
    return cls(**values)


def available_systems() -> list[str]:
    return sorted(p.stem for p in CONFIGS.glob("*.yaml"))


def load_system(name_or_path: str | os.PathLike[str], data_root: str = "") -> SystemConfig:
    """Read ``configs/<name>.yaml`` (or a YAML path) into a :class:`SystemConfig`."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIGS / f"{name_or_path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no system configuration {path}; available: {', '.join(available_systems())}")
    raw = yaml.safe_load(path.read_text()) or {}
    data = _fill(DataConfig, raw.get("data"), path)
    if data_root:
        data = replace(data, data_root=data_root)
    return SystemConfig(name=path.stem, description=raw.get("description", ""), data=data,
                        experiment=_fill(ExperimentConfig, raw.get("experiment"), path),
                        train=_fill(TrainConfig, raw.get("train"), path),
                        strategies=tuple(raw.get("strategies", ("head_only",))), kaggle=raw.get("kaggle"),
                        layout=raw.get("layout", ""))


def fetch_system(system: SystemConfig) -> Path:
    """Download a system's data with kagglehub (the ``[kaggle]`` extra) into the data root.

    Raises:
        RuntimeError: there is no Kaggle handle (the message says where to put the files), kagglehub is
            missing, or the download failed (offline, no Kaggle credentials).
    """
    root = resolve_data_root(system.data.data_root or None)
    if not system.kaggle:
        raise RuntimeError(f"{system.name} has no public Kaggle handle; put the files as {system.layout} "
                           f"(data root {root})")
    try:
        import kagglehub
    except ImportError as exc:
        raise RuntimeError("fetching from Kaggle needs the [kaggle] extra: pip install 'medvision[kaggle]'") from exc
    try:
        downloaded = Path(kagglehub.dataset_download(system.kaggle))
    except Exception as exc:  # kagglehub raises many types (HTTP, auth, offline)
        raise RuntimeError(f"downloading {system.kaggle} from Kaggle failed ({type(exc).__name__}: {exc}); "
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
        raise RuntimeError(f"{downloaded} has no HAM10000_metadata.csv; arrange the files as {system.layout}")
    images = {p.stem: p for p in downloaded.rglob("*.jpg")}
    frame = pd.read_csv(meta)
    missing = sorted(set(frame["image_id"]) - set(images))
    if missing:
        raise RuntimeError(f"{len(missing)} images named in {meta} are missing under {downloaded}, e.g. {missing[0]}")
    folder = root / "ham10000"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "images-full"
    if not link.exists():
        link.symlink_to(downloaded.resolve(), target_is_directory=True)
    frame["file"] = [f"images-full/{images[i].relative_to(downloaded).as_posix()}" for i in frame["image_id"]]
    out = folder / "manifest.csv"
    frame.to_csv(out, index=False)
    return out
