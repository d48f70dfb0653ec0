import json

import pandas as pd
import pytest

from medvision.experiment import compare_runs, describe_comparison, parse_strategy


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
