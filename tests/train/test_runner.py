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


def test_choose_tta_keeps_the_better_mode_on_validation_and_none_on_a_tie(monkeypatch):
    import torch

    from medvision.config import TrainConfig
    from medvision.models.backbones import FlipTTA
    from medvision.train import runner

    net = torch.nn.Linear(2, 2)
    scored = {"none": 0.80, "hflip": 0.85}

    def fake_evaluate(model, loader, device, amp=None, top_k=()):
        assert loader == "val"  # only the validation loader is scored
        mode = "hflip" if isinstance(model, FlipTTA) else "none"
        return {"macro_f1": scored[mode], "loss": 1.0 - scored[mode]}

    monkeypatch.setattr(runner, "evaluate", fake_evaluate)
    cpu = torch.device("cpu")
    assert runner.choose_tta(net, "val", TrainConfig(tta="hflip"), cpu) == ("hflip", {})  # a named mode is kept
    mode, scores = runner.choose_tta(net, "val", TrainConfig(tta="auto"), cpu)
    assert mode == "hflip" and scores["none"]["macro_f1"] == 0.80 and scores["hflip"]["macro_f1"] == 0.85
    assert runner.choose_tta(net, "val", TrainConfig(tta="auto", monitor="loss"), cpu)[0] == "hflip"
    scored.update(hflip=0.75)
    assert runner.choose_tta(net, "val", TrainConfig(tta="auto"), cpu)[0] == "none"
    assert runner.choose_tta(net, "val", TrainConfig(tta="auto", monitor="loss"), cpu)[0] == "none"
    scored.update(hflip=0.80)
    assert runner.choose_tta(net, "val", TrainConfig(tta="auto"), cpu)[0] == "none"  # a tie: one pass


def test_auto_tta_run_is_scored_evaluated_and_exported_with_the_mode_it_chose(shared_data, tmp_path):
    import torch

    from medvision.config import RunConfig
    from medvision.data.pipeline import load_cached_split
    from medvision.evaluate.evaluation import evaluate_run, load_run
    from medvision.models.backbones import with_tta
    from medvision.train.loop import evaluate
    from medvision.train.run_dir import RunDirectory
    from medvision.train.runner import run_strategy

    config = RunConfig.load("breastmnist", [{"data": {"data_root": str(shared_data)},
                                             "experiment": {"backbone": "test_efficientnet", "pretrained": "none",
                                                            "image_size": 28, "augment": "flip"},
                                             "train": {"epochs": 1, "progress": False, "tta": "auto"}}])
    cache = load_cached_split(config.data, 60)
    summary = run_strategy(cache, "full", config, tmp_path)
    chosen = summary["tta"]
    assert chosen in ("none", "hflip") and set(summary["tta_val"]) == {"none", "hflip"}
    other = "hflip" if chosen == "none" else "none"
    assert summary["tta_val"][chosen]["macro_f1"] >= summary["tta_val"][other]["macro_f1"]
    assert summary["val"] == summary["tta_val"][chosen] and "macro_f1" in summary["val_training"]
    rd = RunDirectory(tmp_path / summary["run"])
    assert rd.tta() == chosen and rd.run_config().train.tta == "auto"
    run = load_run(rd.path)
    assert run.tta == chosen
    cpu = torch.device("cpu")
    test = evaluate(with_tta(run.model, chosen), run.loaders["test"], cpu)
    assert test["macro_f1"] == pytest.approx(summary["test"]["macro_f1"], abs=1e-6)
    ev = evaluate_run(rd.path, n_resamples=20)
    assert float(ev.metrics["macro_f1"]) == pytest.approx(summary["test"]["macro_f1"], abs=1e-6)
    from medvision.deploy.export import export_bundle

    bundle = export_bundle(rd.path, tmp_path / "bundle")  # the bundle scores as the run was scored
    assert json.loads((bundle / "bundle.json").read_text())["tta"] == chosen
    lost = {k: v for k, v in rd.summary().items() if k != "tta"}  # a summary that lost its choice is refused
    rd.write_summary(lost)
    from medvision.core.errors import RunDirectoryError
    with pytest.raises(RunDirectoryError, match="does not say which test-time augmentation"):
        rd.tta()


def test_auto_is_not_a_mode_a_model_is_scored_with():
    from medvision.core.errors import ConfigError
    from medvision.models.backbones import with_tta

    with pytest.raises(ConfigError, match="chosen on validation after training"):
        with_tta(None, "auto")
