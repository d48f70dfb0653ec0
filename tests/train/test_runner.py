import json

import pandas as pd
import pytest

from medvision.book.report import describe_comparison
from medvision.config import parse_strategy
from medvision.train.runner import compare_runs


def test_parse_strategy():
    assert parse_strategy("last_k:3", lr=0.01).k == 3
    assert parse_strategy("last_k:3", lr=0.01).lr == 0.01
    assert parse_strategy("two_phase:all").unfreeze_all
    with pytest.raises(ValueError, match="block count"):
        parse_strategy("last_k:x")


def _summary(path, run, weights, f1):
    path.mkdir()
    metrics = {"accuracy": f1, "balanced_accuracy": f1, "macro_f1": f1, "auroc": f1}
    (path / "summary.json").write_text(json.dumps({
        "run": run, "weights_source": weights, "val": metrics, "test": metrics, "trainable_params": 10,
        "seconds_per_epoch": 1.0 + f1, "best_epoch": 2}))
    return path


def test_compare_and_describe(tmp_path):
    dirs = [_summary(tmp_path / "a", "full", "package", 0.9), _summary(tmp_path / "b", "full-scratch", "none", 0.6)]
    table = compare_runs(dirs)
    assert table.loc["full", "test_macro_f1"] == 0.9 and list(table.index) == ["full", "full-scratch"]
    text = describe_comparison(table)
    assert "**full** (validation 0.900, test 0.900)" in text and "+0.300" in text
    assert describe_comparison(pd.DataFrame()) == "No finished runs to compare."
    with pytest.raises(FileNotFoundError, match="did not finish"):
        compare_runs([tmp_path])


def test_run_strategies_trains_each_spec_and_the_scratch_control(shared_data, tmp_path):
    from medvision.config import RunConfig
    from medvision.data.pipeline import load_cached_split
    from medvision.train.runner import run_strategies

    config = RunConfig.load("breastmnist", [{"data": {"data_root": str(shared_data)},
                                             "experiment": {"backbone": "test_efficientnet", "pretrained": "none",
                                                            "image_size": 28, "augment": "flip"},
                                             "train": {"epochs": 1, "progress": False},
                                             "strategies": ["head_only"]}])
    cache = load_cached_split(config.data, 60)
    runs = [s["run"] for s in run_strategies(cache, config, tmp_path, scratch=True)]
    assert runs == ["head_only-scratch", "full-scratch"]
    assert [s["run"] for s in run_strategies(cache, config, tmp_path)] == ["head_only-scratch"]  # reused
