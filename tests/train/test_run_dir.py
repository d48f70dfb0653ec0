"""RunDirectory owns the run files (issue 17, point 2): names, atomic reads and writes, resume compatibility."""

from __future__ import annotations

import ast
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest

from medvision.config import TrainConfig
from medvision.core.errors import (
    RunConfigMismatchError,
    RunDirectoryError,
    RunDirectoryNotWritableError,
)
from medvision.train.run_dir import RunDirectory, resume_key, with_defaults

PACKAGE = Path(__file__).resolve().parents[2] / "medvision"
NAMES = {v for k, v in vars(RunDirectory).items() if k.isupper() and isinstance(v, str)}


def test_files_round_trip_atomically(tmp_path):
    rd = RunDirectory(tmp_path / "run")
    rd.ensure_writable()
    config = {"train": asdict(TrainConfig()), "data": {"name": "x", "sizes": (1, 2)}}
    rd.write_config(config)
    rd.write_classes(("normal", "pneumonia"))
    rd.write_history([{"epoch": 1, "val_macro_f1": 0.5}, {"epoch": 2, "val_macro_f1": 0.7}])
    assert not rd.is_finished()
    rd.write_summary({"val": {"macro_f1": 0.7}})
    rd.write_temperature({"temperature": 1.5, "fitted_on": "val"})
    rd.write_predictions(pd.DataFrame({"sample_id": ["a"], "label": [1]}))
    assert rd.is_run() and rd.is_finished() and rd.config()["data"]["sizes"] == [1, 2]
    assert rd.classes() == ["normal", "pneumonia"] and rd.history()["val_macro_f1"].tolist() == [0.5, 0.7]
    assert rd.summary()["val"]["macro_f1"] == 0.7 and rd.environment() == {}
    assert rd.checkpoint("best") == rd.path / "best.pt" and rd / rd.SPLIT == rd.path / "split.csv"
    assert not [p for p in rd.path.iterdir() if p.name.startswith(".")]  # no temporary files left behind
    assert [r.name for r in RunDirectory.finished_under(tmp_path)] == ["run"]


def test_missing_and_unfinished_runs_are_named(tmp_path):
    rd = RunDirectory(tmp_path)
    with pytest.raises(RunDirectoryError, match="is not a run directory .no config.yaml"):
        rd.config()
    with pytest.raises(RunDirectoryError, match="did not finish"):
        rd.summary()
    rd.write_config({})
    with pytest.raises(RunDirectoryError, match="no best.pt"):
        rd.require(rd.CONFIG, rd.checkpoint("best").name)
    assert not rd.evaluation_is_current({})


def test_unwritable_folder_fails_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(RunDirectoryNotWritableError, match="nothing was trained"):
        RunDirectory(blocker / "run").ensure_writable()


def test_resume_compatibility(tmp_path):
    rd = RunDirectory(tmp_path)
    old = {"train": {"epochs": 3}, "data": {"md5": "abc", "file": "/bundled/x.npz"}}
    rd.write_config(old)
    rd.check_resumable({"train": {**asdict(TrainConfig()), "epochs": 3}, "data": {"md5": "abc", "file": "/other"}})
    with pytest.raises(RunConfigMismatchError, match="different configuration"):
        rd.check_resumable({"train": {"epochs": 4}, "data": {"md5": "abc"}})
    assert with_defaults(old)["train"]["scheduler"] == TrainConfig().scheduler
    assert "file" not in resume_key(old)["data"]


def test_no_other_module_spells_a_run_file_name():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "run_dir.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and any(
                    node.value == n or node.value.endswith("/" + n) for n in NAMES):
                offenders.append(f"{path.name}:{node.lineno} {node.value!r}")
    assert offenders == []
