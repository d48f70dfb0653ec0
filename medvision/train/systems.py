"""The five seed systems (``medvision/configs/*.yaml``): loading one, fetching its data, training its strategies.

``load_system("ham10000")`` is :meth:`medvision.config.run.RunConfig.load` with a data root;
``fetch_system`` downloads a system's data with kagglehub where a Kaggle handle exists, and otherwise says
where to put the files.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from medvision.config.run import Override, RunConfig
from medvision.core import distributed
from medvision.core.atomic import atomic_path
from medvision.core.errors import ConfigError, DownloadError, MissingExtraError
from medvision.data.paths import resolve_data_root
from medvision.data.pipeline import load_cached_split
from medvision.data.sources import IGNORED_DIRS
from medvision.models.backbones import RUN_WEIGHTS
from medvision.train.run_dir import RunDirectory
from medvision.train.runner import run_strategy
from medvision.train.tracking import MLflowTracker

_log = logging.getLogger(__name__)


def load_system(name_or_path: str | os.PathLike[str], data_root: str = "", overrides: Sequence[Override] = ()
                ) -> RunConfig:
    """A seed system (``medvision/configs/<name>.yaml``), a YAML path or a MedMNIST flag as a
    :class:`~medvision.config.run.RunConfig` (:meth:`RunConfig.load`), with ``overrides`` applied and the data
    read from ``data_root`` when one is given."""
    return RunConfig.load(name_or_path, [*overrides, *([{"data": {"data_root": data_root}}] if data_root else [])])


def fetch_system(system: RunConfig) -> Path:
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


def arrange_download(system: RunConfig, downloaded: Path, root: Path) -> Path:
    """Make a downloaded Kaggle folder readable by the system's data config, under the data root.

    Folder sources: link ``<root>/<data.name>`` to the downloaded folder that holds the class (or split)
    folders. HAM10000: write ``<root>/ham10000/manifest.csv`` (image path, ``dx``, ``lesion_id``) from the
    official metadata CSV and the images found under the download.
    """
    import pandas as pd

    if system.data.source == "folder":
        splits = {"train", "test"}
        candidates = [downloaded, *sorted(p for p in downloaded.rglob("*") if p.is_dir()
                                          and not IGNORED_DIRS & set(p.relative_to(downloaded).parts))]
        # the shallowest folder holding the split folders (not a __MACOSX shadow, not the archive's nested copy)
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
    with atomic_path(out) as tmp:
        frame.to_csv(tmp, index=False)
    return out


def train_system(system: RunConfig, runs_dir: str | os.PathLike[str], strategies: Sequence[str] = (),
                 limit: int = 0, progress: bool = True, track: str = "", tracking_uri: str = "") -> list[dict]:
    """Load a system's data, cache it and train each strategy (default: the configuration's list).

    Args:
        system: The configuration (overrides already applied).
        runs_dir: Run directories go to ``<runs_dir>/<strategy>``; finished or interrupted runs resume.
        strategies: Strategy specs (``head_only``, ``last_k:2``, ``full``, ``two_phase``, ``discriminative``).
        limit: Keep at most this many training images (stratified; 0 keeps all) for a quick try.
        progress: Progress bars for caching and training (rank 0 only under torchrun).
        track: ``mlflow`` logs every run (parameters, per-epoch metrics, the run's files) to MLflow, one
            MLflow run per strategy in an experiment named after the system (the ``[track]`` extra).
        tracking_uri: Where MLflow writes (default: a file store, ``./mlruns``).

    A configuration with ``cycles`` trains each cycle first (its first strategy, into ``<runs_dir>/cycle<i>``),
    each from the previous cycle's best backbone, and the strategies then start from the last cycle's.

    Returns:
        The ``summary.json`` of every run.
    """
    config = replace(system, train=replace(system.train, progress=progress))
    for i, cycle in enumerate(system.cycles, start=1):  # each cycle starts from the previous one's best backbone
        stage = config.override(cycle, {"cycles": []})
        spec = stage.strategies[0]
        with _tracker(track, system.label, f"cycle{i}-{spec}", tracking_uri) as tracker:
            done = run_strategy(load_cached_split(stage.data, limit, progress=progress), spec, stage, Path(runs_dir) / f"cycle{i}",
                                extra_config={"system": system.name, "cycle": i}, tracker=tracker)
        best = RunDirectory(Path(runs_dir) / f"cycle{i}" / done["run"]).checkpoint("best")
        config = config.override({"experiment": {"backbone": done["backbone"], "fallback": "",
                                                  "pretrained": f"{RUN_WEIGHTS}{best}"}})
    cache = load_cached_split(config.data, limit, progress=progress)
    summaries = []
    for spec in strategies or system.strategies:
        with _tracker(track, system.label, spec, tracking_uri) as tracker:
            summaries.append(run_strategy(cache, spec, config, runs_dir, extra_config={"system": system.name},
                                          tracker=tracker))
    return summaries


def _tracker(track: str, experiment: str, run: str, tracking_uri: str):
    """An MLflow run for one strategy (``track="mlflow"``), or nothing (``track=""``); only rank 0 tracks."""
    if not track or not distributed.info().is_main:
        return contextlib.nullcontext()
    if track != "mlflow":
        raise ConfigError(f"unknown tracker {track!r}; medvision tracks with mlflow")

    return MLflowTracker(experiment=f"medvision-{experiment}", run_name=run, tracking_uri=tracking_uri or None)
