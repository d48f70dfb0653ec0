import json

import pandas as pd
import pytest
import torch

from medvision.config import DataConfig, ExperimentConfig, StrategyConfig, TrainConfig
from medvision.config.run import RunConfig
from medvision.data import build_tensor_cache, load_data
from medvision.data.splits import stratified_subsample
from medvision.evaluate.evaluation import (
    best_run,
    evaluate_run,
    finished_runs,
    load_run,
    top_losses,
)
from medvision.train.runner import run_strategy


@pytest.fixture(scope="module")
def runs(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    data_cfg = DataConfig(source="medmnist", name="breastmnist", data_root=str(shared_data))
    table = stratified_subsample(load_data(data_cfg), 120)
    cache = build_tensor_cache(table, 28, progress=False)
    exp = ExperimentConfig(backbone="test_efficientnet", pretrained="none", image_size=32, augment="flip")
    train = TrainConfig(epochs=2, progress=False)
    for spec in ("head_only", "full"):
        run_strategy(cache, spec, RunConfig(data_cfg, exp, train, StrategyConfig(lr=1e-2)), out)
    return out


def test_run_directory_and_summary(runs):
    dirs = finished_runs(runs)
    assert [d.name for d in dirs] == ["full-scratch", "head_only-scratch"]
    summary = json.loads((dirs[0] / "summary.json").read_text())
    assert set(summary["test"]) >= {"accuracy", "balanced_accuracy", "macro_f1", "auroc"}
    assert summary["weights_source"] == "none"
    env = json.loads((dirs[0] / "environment.json").read_text())
    assert env["seed"] == 0 and env["data_md5"] == "750601b1f35ba3300ea97c75c52ff8f6"
    assert env["packages"]["torch"] != "not installed"
    assert len(env["git_commit"]) == 40 or env["git_commit"] == "unknown"
    split = pd.read_csv(dirs[0] / "split.csv")
    assert (split["split"] == "train").sum() == 120 and (split["split"] == "test").sum() == 156


def test_best_run_is_chosen_on_validation(runs):
    best = best_run(runs)
    vals = {d.name: json.loads((d / "summary.json").read_text())["val"]["macro_f1"] for d in finished_runs(runs)}
    assert vals[best.name] == max(vals.values())


def test_evaluate_run_writes_evaluation_predictions_and_temperature(runs):
    run_dir = runs / "full-scratch"
    ev = evaluate_run(run_dir, n_resamples=50)
    for name in ("evaluation.json", "predictions.csv", "temperature.json", "logits.pt"):
        assert (run_dir / name).is_file(), name
    saved_fit = json.loads((run_dir / "temperature.json").read_text())
    assert saved_fit["fitted_on"] == "val"
    # a real, badly calibrated run (random init, 2 epochs): its validation mistakes are many, so T is fitted as
    # before the guard existed
    from medvision.metrics.calibration import fit_temperature

    assert ev.temperature_fit.used and ev.temperature_fit.val_errors >= 5 and saved_fit["used"]
    assert ev.temperature == pytest.approx(fit_temperature(ev.val_logits, ev.val_targets, split="val"))
    preds = pd.read_csv(run_dir / "predictions.csv")
    assert len(preds) == 156 and {"sample_id", "true", "predicted", "confidence", "p[malignant]"} <= set(preds)
    data = json.loads((run_dir / "evaluation.json").read_text())
    assert data["split"] == "test" and data["temperature"] == pytest.approx(ev.temperature)
    assert ev.metrics["accuracy"] == pytest.approx(preds["correct"].mean(), abs=1e-6)
    again = evaluate_run(run_dir, n_resamples=50)  # reused from disk
    pd.testing.assert_frame_equal(again.ci, ev.ci, check_dtype=False, check_names=False)
    assert again.temperature == ev.temperature and again.temperature_fit == ev.temperature_fit
    assert top_losses(ev, n=3)["loss"].is_monotonic_decreasing


def test_load_run_rebuilds_the_same_split_and_model(runs):
    run = load_run(runs / "head_only-scratch")
    assert run.cache.table.frame["split"].value_counts()["train"] == 120
    assert run.class_names == ("malignant", "normal, benign")
    assert not run.model.training


def test_finished_runs_refuses_a_folder_that_mixes_settings(runs, tmp_path):
    import shutil

    import yaml

    from medvision.evaluate.evaluation import MixedRunsError

    mixed = tmp_path / "mixed"
    for d in finished_runs(runs):
        shutil.copytree(d, mixed / d.name)
    config = yaml.safe_load((mixed / "full-scratch" / "config.yaml").read_text())
    config["train"]["epochs"] = 99
    (mixed / "full-scratch" / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(MixedRunsError, match="head_only-scratch differ from full-scratch"):
        finished_runs(mixed)
    with pytest.raises(MixedRunsError):
        best_run(mixed)
    assert len(finished_runs(mixed, check_consistent=False)) == 2


def test_figures_are_drawn_once_for_the_chapters_and_the_cli(runs, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medvision.evaluate.evaluation import evaluation_figures, save_figures

    ev = evaluate_run(best_run(runs), n_resamples=50)
    open_before = plt.get_fignums()
    figures = evaluation_figures(ev)
    assert plt.get_fignums() == open_before  # closed to pyplot: a notebook shows each once, where it is displayed
    assert set(figures) == {"per_class", "confusion_matrix", "roc", "precision_recall", "reliability"}
    assert sorted(p.name for p in save_figures(ev, tmp_path)) == ["confusion_matrix.png", "reliability.png",
                                                                  "roc.png"]
    probs = ev.calibrated_test_probs
    assert torch.allclose(probs.sum(1), torch.ones(len(probs)))


def test_bootstrap_intervals_of_one_seed_of_a_sweep(runs):
    from medvision.evaluate.evaluation import bootstrap_intervals

    rows = pd.DataFrame([{"dataset": "breastmnist", "seed": 0, "run_dir": str(d)} for d in finished_runs(runs)]
                        + [{"dataset": "breastmnist", "seed": 0, "run_dir": ""},  # a baseline row: no run
                           {"dataset": "breastmnist", "seed": 1, "run_dir": str(finished_runs(runs)[0])}])
    table = bootstrap_intervals(rows, of_seed=0, metrics=("accuracy",), n_resamples=50)
    assert list(table.index) == [("breastmnist", "full-scratch", "accuracy"),
                                 ("breastmnist", "head_only-scratch", "accuracy")]
    assert (table["lower"] <= table["estimate"]).all() and (table["estimate"] <= table["upper"]).all()


def test_weakest_class_mistakes_come_with_titles(runs):
    from medvision.evaluate.evaluation import weakest_class, weakest_class_mistakes

    ev = evaluate_run(best_run(runs), n_resamples=50)
    found = weakest_class_mistakes(ev, n=2)
    assert weakest_class(ev) in ev.class_names
    if found is not None:
        tiles, titles = found
        assert len(tiles) == len(titles) <= 2 and titles[0].startswith(f"true {weakest_class(ev)}")


def test_no_runs_is_an_empty_list_when_allowed(tmp_path):
    from medvision.core.errors import RunDirectoryError
    from medvision.train.runner import compare_runs

    assert finished_runs(tmp_path / "nothing", missing_ok=True) == []
    assert compare_runs([]).empty
    with pytest.raises(RunDirectoryError):
        finished_runs(tmp_path / "nothing")


def test_operating_table_of_a_binary_run_uses_validation_thresholds(runs):
    from medvision.evaluate.evaluation import (
        binary_positive,
        describe_operating_points,
        operating_table,
    )

    ev = evaluate_run(best_run(runs), n_resamples=50)
    reference = {"positive": ev.class_names[0], "metrics": {"sensitivity": 0.8}}
    table = operating_table(ev, reference, specificity=0.85)
    assert table.index[0] == "argmax" and len(table) == 4
    assert "threshold from val (sensitivity >= 0.8)" in table.index
    assert (table.drop(index="argmax")["val_sensitivity"].dropna() >= 0).all()
    assert binary_positive(ev, reference) == ev.class_names[0]
    assert binary_positive(ev) == "malignant"  # BreastMNIST: "benign" reads as the negative finding
    sentence = describe_operating_points(table, ev.class_names[0])
    assert sentence.startswith(f"With {ev.class_names[0]} as the positive class") and "chosen on validation" in sentence
    assert "at the validation threshold for Youden's J (" in sentence
