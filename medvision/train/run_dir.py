"""The run directory: every file a training run and its evaluation write, named, read and written in one place.

``runs/<profile>/<dataset>/<run>/`` holds::

    config.yaml        resolved configuration (decides whether the folder may be resumed or reused)
    classes.json       class names, in label order
    split.csv          the split manifest (sample id, split, label)
    history.csv        one row per epoch
    last.pt / best.pt  the last epoch's full state (resume) / the best epoch's weights (selection on val)
    environment.json   what produced the run (versions, commit, seed, data fingerprint)
    summary.json       validation metrics of the best epoch and the one test evaluation; present = finished
    evaluation.json    test metrics, bootstrap CIs, per-class report, calibration (evaluation chapters)
    logits.pt          validation and test logits of the best checkpoint
    predictions.csv    one row per test case
    temperature.json   the temperature fitted on the validation split (or why it was kept at 1)
    leakage.json       the run's leakage audit: duplicate pairs and shared groups by split pair, leaking test images
    split_report.json  what de-duplication did to the split (data.dedupe), when it was on
    external/<name>/   an external validation: evaluation.json and predictions.csv on another data set

Writes are atomic (a temporary file renamed into place), so an interrupted run never leaves a torn file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from medvision.config import DataConfig, StrategyConfig, TrainConfig
from medvision.config.choices import SCORED_TTA_MODES
from medvision.config.run import RunConfig
from medvision.core.atomic import atomic_path, write_json_atomic, write_text_atomic
from medvision.core.errors import (
    RunConfigMismatchError,
    RunDirectoryError,
    RunDirectoryNotWritableError,
)


@dataclass(frozen=True)
class RunDirectory:
    """One run's folder and the names, readers and atomic writers of its files."""

    path: Path  # a str or os.PathLike is accepted and converted

    CONFIG = "config.yaml"
    CLASSES = "classes.json"
    SPLIT = "split.csv"
    HISTORY = "history.csv"
    LAST = "last.pt"
    BEST = "best.pt"
    ENVIRONMENT = "environment.json"
    SUMMARY = "summary.json"
    EVALUATION = "evaluation.json"
    LOGITS = "logits.pt"
    PREDICTIONS = "predictions.csv"
    TEMPERATURE = "temperature.json"
    LEAKAGE = "leakage.json"
    SPLIT_REPORT = "split_report.json"
    EXTERNAL = "external"
    TRACKED = (CONFIG, HISTORY, CLASSES, SPLIT, SUMMARY)  # the small files an experiment tracker keeps

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    def checkpoint(self, which: str = "best") -> Path:
        """``best.pt`` or ``last.pt`` (or another ``<which>.pt``)."""
        return self.path / f"{which}.pt"

    # ------------------------------------------------------------------------------------------ state
    def is_run(self) -> bool:
        return (self.path / self.CONFIG).is_file()

    def is_finished(self) -> bool:
        return (self.path / self.SUMMARY).is_file()

    def require(self, *names: str) -> None:
        """Raise :class:`RunDirectoryError` naming the first of ``names`` that is missing."""
        for name in names:
            if not (self.path / name).is_file():
                raise RunDirectoryError(f"{self.path} is not a finished run directory (no {name})")

    def ensure_writable(self) -> None:
        """Create the folder and write a probe file: fail before training, not after the first epoch."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / f".write-test-{os.getpid()}"
            probe.write_bytes(b"0" * 1024)
            probe.unlink()
        except OSError as exc:
            raise RunDirectoryNotWritableError(f"run directory {self.path} is not writable "
                                               f"({exc.strerror or exc}); nothing was trained") from exc

    @staticmethod
    def finished_under(root: str | os.PathLike[str]) -> list[RunDirectory]:
        """Finished runs directly below ``root``, sorted by name."""
        return [RunDirectory(p.parent) for p in sorted(Path(root).glob(f"*/{RunDirectory.SUMMARY}"))]

    # ----------------------------------------------------------------------------------------- config
    def config(self) -> dict:
        """``config.yaml`` as written (see :func:`with_defaults` for settings added since)."""
        path = self.path / self.CONFIG
        if not path.is_file():
            raise RunDirectoryError(f"{self.path} is not a run directory (no {self.CONFIG})")
        try:
            return yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise RunDirectoryError(f"{path} is not valid YAML ({exc}); the run directory is damaged") from exc

    def run_config(self) -> RunConfig:
        """The saved configuration as a :class:`~medvision.config.run.RunConfig` (settings added by a later
        medvision at their defaults; ``strategies`` is the run's strategy).

        Raises:
            RunDirectoryError: ``config.yaml`` is missing, damaged or was not written by a training run.
        """
        config = self.config()
        if "data_config" not in config or "experiment" not in config:
            raise RunDirectoryError(f"{self.path / self.CONFIG} lacks data_config/experiment: it was not written "
                                    "by a training run (medvision.train.runner.run_strategy)")
        strategy = dict(config.get("strategy") or {})
        name = strategy.pop("name", "head_only")
        return RunConfig.from_dict({"data": config["data_config"], "experiment": config["experiment"],
                                    "train": config.get("train") or {}, "strategy": strategy,
                                    "strategies": [name]}, str(self.path / self.CONFIG),
                                   name=str(config.get("system", "")))

    def write_config(self, config: dict) -> None:
        write_text_atomic(self.path / self.CONFIG, yaml.safe_dump(_plain(config), sort_keys=False))

    def check_resumable(self, config: dict) -> None:
        """Raise :class:`RunConfigMismatchError` unless the saved configuration equals ``config`` (settings
        added by a later medvision count at their defaults; a data file known by its md5 counts by content)."""
        path = self.path / self.CONFIG
        previous = yaml.safe_load(path.read_text()) if path.is_file() else None
        if previous is None or resume_key(previous) != resume_key(_plain(config)):
            raise RunConfigMismatchError(
                f"{self.path} holds a run with a different configuration ({path}); resuming would mix "
                "two experiments. Delete the folder or choose another run directory.")

    # ------------------------------------------------------------------------------------ small files
    def classes(self) -> list[str]:
        return self._json(self.CLASSES)

    def write_classes(self, class_names: Iterable[str]) -> None:
        write_text_atomic(self.path / self.CLASSES, json.dumps(list(class_names)))

    def history(self) -> pd.DataFrame:
        self.require(self.HISTORY)
        return pd.read_csv(self.path / self.HISTORY)

    def write_history(self, rows: list[dict]) -> None:
        write_text_atomic(self.path / self.HISTORY, pd.DataFrame(rows).to_csv(index=False))

    def summary(self) -> dict:
        path = self.path / self.SUMMARY
        if not path.is_file():
            raise RunDirectoryError(f"{self.path} has no {self.SUMMARY}: the run did not finish")
        return self._json(self.SUMMARY)

    def tta(self) -> str:
        """The test-time augmentation the run is scored with: the configured mode, or with ``tta: auto`` the one
        chosen on validation after training (``summary.json``'s ``tta``)."""
        configured = self.run_config().train.tta
        if configured != "auto":
            return configured
        chosen = self.summary().get("tta", "")
        if chosen not in SCORED_TTA_MODES:
            raise RunDirectoryError(f"{self.path / self.SUMMARY} does not say which test-time augmentation the run "
                                    f"chose on validation (tta: auto); delete the run directory and train it again")
        return chosen

    def write_summary(self, summary: dict) -> None:
        write_json_atomic(self.path / self.SUMMARY, summary)

    def environment(self) -> dict:
        path = self.path / self.ENVIRONMENT
        return json.loads(path.read_text()) if path.is_file() else {}

    def write_environment(self, env: dict) -> None:
        write_json_atomic(self.path / self.ENVIRONMENT, env)

    def evaluation(self) -> dict:
        return self._json(self.EVALUATION)

    def _json(self, name: str) -> Any:
        path = self.path / name
        self.require(name)
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise RunDirectoryError(f"{path} is not valid JSON ({exc}); the run directory is damaged") from exc

    def write_evaluation(self, evaluation: dict) -> None:
        write_json_atomic(self.path / self.EVALUATION, evaluation)

    def evaluation_is_current(self, settings: dict) -> bool:
        """``evaluation.json`` and ``logits.pt`` exist, are newer than ``best.pt`` and used ``settings``."""
        files = [self.path / n for n in (self.EVALUATION, self.LOGITS)]
        best = self.checkpoint("best")
        return (all(f.is_file() for f in files) and best.is_file()
                and files[0].stat().st_mtime >= best.stat().st_mtime
                and self.evaluation().get("settings") == settings)

    def write_temperature(self, fit: dict) -> None:
        """``temperature.json``: the temperature used and how it was chosen
        (:meth:`medvision.metrics.calibration.TemperatureFit.to_dict`)."""
        write_json_atomic(self.path / self.TEMPERATURE, fit)

    def leakage(self) -> dict | None:
        """The run's leakage audit (:func:`medvision.data.leakage.leakage_audit`), or ``None`` for runs
        trained before audits were written."""
        return self._json(self.LEAKAGE) if (self.path / self.LEAKAGE).is_file() else None

    def write_leakage(self, audit: dict) -> None:
        write_json_atomic(self.path / self.LEAKAGE, audit)

    def split_report(self) -> dict | None:
        return self._json(self.SPLIT_REPORT) if (self.path / self.SPLIT_REPORT).is_file() else None

    def write_split_report(self, report: dict) -> None:
        write_json_atomic(self.path / self.SPLIT_REPORT, report)

    def external(self, name: str) -> RunDirectory:
        """The folder of an external validation on the data set ``name`` (same file names as the run's own)."""
        return RunDirectory(self.path / self.EXTERNAL / name)

    def externals(self) -> list[str]:
        """Names of the external validations written so far."""
        root = self.path / self.EXTERNAL
        return sorted(p.parent.name for p in root.glob(f"*/{self.EVALUATION}")) if root.is_dir() else []

    def write_predictions(self, table: pd.DataFrame) -> None:
        with atomic_path(self.path / self.PREDICTIONS) as tmp:
            table.to_csv(tmp, index=False)


def _plain(config: dict) -> Any:
    """Tuples to lists and the like: the configuration as YAML/JSON gives it back."""
    return json.loads(json.dumps(config))


def with_defaults(config: dict) -> dict:
    """A run's ``config.yaml`` with the loop, strategy and data settings it does not record filled in at their
    defaults: a setting added by a later medvision, at its default, changes nothing, so older run
    directories still resume and still compare with new ones."""
    from dataclasses import asdict


    out = dict(config)
    for key, cls in (("train", TrainConfig), ("strategy", StrategyConfig), ("data_config", DataConfig)):
        if isinstance(out.get(key), dict):
            out[key] = {**_plain(asdict(cls())), **out[key]}
    return out


def resume_key(config: dict) -> dict:
    """What must match for a run directory to be resumed: the configuration with defaults filled in, where
    a data file known by its md5 counts by content, not by location (the bundled copy of a MedMNIST file and
    the same file under ``$MEDVISION_DATA`` are one data set)."""
    out = with_defaults(config)
    data = out.get("data")
    if isinstance(data, dict) and data.get("md5"):
        out["data"] = {k: v for k, v in data.items() if k != "file"}
    return out
