"""Sweeps on the bundled BreastMNIST with timm's tiny test model: label budgets, reuse, refusal, remedies."""

import numpy as np
import pandas as pd
import pytest

from medvision.book import evidence
from medvision.config import DataConfig
from medvision.config.run import RunConfig
from medvision.core.errors import ConfigError, LeakageWarning, RunConfigMismatchError
from medvision.data import build_tensor_cache, load_data
from medvision.data.splits import per_class_rows, stratified_rows
from medvision.train import sweeps

TINY = {"data": {"size": 28}, "experiment": {"backbone": "test_efficientnet", "pretrained": "none",
                                             "image_size": 32, "augment": "flip"},
        "train": {"epochs": 1, "progress": False}, "strategy": {"lr": 1e-2}}


@pytest.fixture(scope="module")
def breast():
    return load_data(DataConfig(source="medmnist", name="breastmnist", size=28))


def test_per_class_rows_draw_a_label_budget_per_seed_and_keep_val_and_test(breast):
    rows = per_class_rows(breast, 10, seed=0)
    kept = breast.frame.iloc[rows]
    train = kept[kept["split"] == "train"]
    assert train["label"].value_counts().to_dict() == {0: 10, 1: 10}
    for split in ("val", "test"):
        assert (kept["split"] == split).sum() == (breast.frame["split"] == split).sum()
    assert not np.array_equal(rows, per_class_rows(breast, 10, seed=1))  # each seed labels other images
    assert np.array_equal(rows, per_class_rows(breast, 10, seed=0))
    assert len(per_class_rows(breast, 0)) == len(breast)
    capped = breast.frame.iloc[per_class_rows(breast, 10_000)]
    assert len(capped) == len(breast)  # a class with fewer images keeps them all
    assert np.all(np.diff(rows) > 0)


def test_cache_subset_keeps_images_aligned_with_rows(breast):
    cache = build_tensor_cache(breast, 28, progress=False)
    rows = per_class_rows(breast, 5, seed=3)
    sub = cache.subset(rows)
    assert len(sub) == len(rows) == len(sub.table)
    np.testing.assert_array_equal(sub.array, cache.array[rows])
    assert list(sub.table.frame["sample_id"]) == list(breast.frame["sample_id"].iloc[rows])
    assert cache.subset(np.arange(len(cache))) is cache
    both = stratified_rows(sub.table, 4, seed=0)
    assert (sub.table.frame.iloc[both]["split"] == "train").sum() == 4


def test_epochs_for_small_budgets():
    assert sweeps.epochs_for(20, 64, 3, min_steps=30) == 30  # one batch per epoch
    assert sweeps.epochs_for(20, 64, 3, min_steps=30, max_epochs=12) == 12
    assert sweeps.epochs_for(5000, 64, 3, min_steps=30) == 3
    assert sweeps.epochs_for(20, 64, 3, min_steps=0) == 3
    assert sweeps.epochs_for(5000, 64, 30, min_steps=30, max_epochs=10) == 30  # the config's epochs are kept


def test_a_two_phase_run_that_never_unfreezes_is_refused(tmp_path):
    config = RunConfig.load("breastmnist", [TINY, {"strategy": {"phase1_epochs": 3}}])
    with pytest.raises(ConfigError, match="would train the head only"):
        sweeps.run_sweep(config, sweeps.Sweep("per_class", sweeps.label_budgets([4]), seeds=(0,),
                                              strategies=("two_phase",)), tmp_path)


def test_sweep_points_and_bad_settings():
    assert [p.name for p in sweeps.label_budgets([10, 0])] == ["n10", "all"]
    assert sweeps.resolutions([32], decode_at_size=True)[0].overrides == {"experiment": {"image_size": 32},
                                                                          "data": {"size": 32}}
    with pytest.raises(ConfigError, match="twice"):
        sweeps.Sweep("per_class", sweeps.label_budgets([10, 10]))
    with pytest.raises(ConfigError, match="no points"):
        sweeps.Sweep("per_class", ())
    with pytest.raises(ConfigError, match="logit_adjustment is post-hoc"):
        sweeps.remedies(["logit_adjustment"])
    with pytest.raises(ConfigError, match="images per class"):
        sweeps.label_budgets([-1])
    with pytest.raises(ConfigError, match="already sets train.loss: focal"):
        sweeps.check_plain_loss(RunConfig.load("ham10000"))
    sweeps.check_plain_loss(RunConfig.load("breastmnist"))


@pytest.mark.slow
def test_label_budget_sweep_trains_reuses_and_refuses_mixed_settings(tmp_path, monkeypatch):
    config = RunConfig.load("breastmnist", [TINY, {"strategies": ["head_only", "full"]}])
    sweep = sweeps.Sweep("per_class", sweeps.label_budgets([4, 12]), seeds=(0, 1), min_steps=3,
                         features_baseline=True)
    with pytest.warns(LeakageWarning) as caught:
        rows = sweeps.run_sweep(config, sweep, tmp_path)
    leaks = [w for w in caught if issubclass(w.category, LeakageWarning)]
    assert len(leaks) == 1 and "56 of 156 test images" in str(leaks[0].message)  # the whole split, once
    assert len(rows) == 2 * 2 * 3  # budgets x seeds x (2 strategies + logistic regression)
    assert set(rows["strategy"]) == {"head_only", "full", sweeps.FEATURES_BASELINE}
    assert sorted(rows["train_images"].unique()) == [8, 24]
    assert rows.loc[rows["train_images"] == 8, "epochs"].eq(3).all()  # one batch per epoch: 3 steps
    for d in rows["run_dir"][rows["run_dir"] != ""]:
        split = pd.read_csv(f"{d}/split.csv")
        assert (split["split"] == "train").sum() in (8, 24)
    assert (tmp_path / "breastmnist" / "n4" / "seed0" / "logistic_regression.json").is_file()
    stamps = {d: (tmp_path / d / "best.pt").stat().st_mtime_ns for d in rows["run_dir"] if d}
    again = sweeps.run_sweep(config, sweep, tmp_path)  # finished runs are reused, not retrained
    assert {d: (tmp_path / d / "best.pt").stat().st_mtime_ns for d in again["run_dir"] if d} == stamps
    pd.testing.assert_frame_equal(again, rows)
    with pytest.raises(RunConfigMismatchError, match="different configuration"):
        sweeps.run_sweep(config.override({"strategy": {"lr": 3e-3}}), sweep, tmp_path)
    other_draw = sweeps.Sweep("per_class", (sweeps.SweepPoint("n4", 4, per_class=4),), seeds=(0,),
                              strategies=("full",))
    monkeypatch.setattr(sweeps.SweepPoint, "rows", lambda self, table, seed: per_class_rows(table, 4, seed=seed + 7))
    with pytest.raises(RunConfigMismatchError, match="different configuration"):  # same budget, other images
        sweeps.run_sweep(config, other_draw, tmp_path)
    monkeypatch.undo()
    cache = build_tensor_cache(load_data(config.data), 28, progress=False)
    with pytest.raises(RunConfigMismatchError, match="another draw"):
        sweeps.features_baseline(cache, cache.subset(per_class_rows(cache.table, 4, seed=7)),
                                 config.override({"train": {"seed": 0}}), tmp_path / "breastmnist" / "n4" / "seed0")
    for d in rows.loc[rows["strategy"] == "full", "run_dir"]:  # what each run trained on is recorded
        assert "train_images:" in (tmp_path / d / "config.yaml").read_text()
    means = evidence.seed_means(rows, ["dataset", "per_class", "strategy"], ["test_macro_f1", "val_macro_f1"])
    assert set(means["seeds"]) == {2}
    assert "best mean validation macro f1 at each budget" in evidence.describe_label_budget(means)


@pytest.mark.slow
def test_remedies_sweep_scores_each_remedy_and_adjusts_the_cross_entropy_logits(tmp_path):
    config = RunConfig.load("breastmnist", [TINY, {"train": {"epochs": 2}}])
    sweep = sweeps.Sweep("remedy", sweeps.remedies(["cross_entropy", "focal", "balanced_sampler"]), seeds=(0,),
                         strategies=("full",))
    rows = sweeps.run_sweep(config, sweep, tmp_path)
    assert len(rows) == 3 and rows["remedy"].tolist() == ["cross_entropy", "focal", "balanced_sampler"]
    scores = evidence.remedy_scores(rows, n_resamples=20)
    assert list(scores["remedy"]) == ["cross_entropy", "logit_adjustment", "focal", "balanced_sampler"]
    adjusted = scores[scores["remedy"] == "logit_adjustment"].iloc[0]
    assert adjusted["tau"] in (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
    recalls = [c for c in scores if c.startswith("recall_")]
    assert len(recalls) == 2 and scores[recalls].notna().all().all()
    assert scores["test_ece"].between(0, 1).all()
    means = evidence.seed_means(scores, ["dataset", "remedy"], ["test_balanced_accuracy", "test_ece", *recalls])
    text = evidence.describe_remedies(means)
    assert "best remedy by mean test balanced accuracy" in text and "ECE" in text
    with pytest.raises(ConfigError, match="not classes"):
        evidence.remedy_scores(rows, rare=["nope"], n_resamples=20)


def test_sweep_datasets_reports_absent_data_instead_of_failing(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVISION_DATA", str(tmp_path / "empty"))
    result = sweeps.sweep_datasets(["ham10000"], TINY, {}, lambda cfg: None, tmp_path / "runs")
    assert result.rows.empty and "ham10000" in result.missing
    assert "manifest.csv" in result.missing["ham10000"] or "not found" in result.missing["ham10000"]
    assert "is not on this machine" in result.missing_markdown()
    assert result.banner_facts()["data"] == "none here"


def test_the_benchmark_sweep_is_one_point_over_seeds():
    sweep = sweeps.seeds_sweep([0, 1, 2], max_train_samples=200, strategies=["full"])
    assert sweep.seeds == (0, 1, 2) and sweep.strategies == ("full",) and len(sweep.points) == 1
    assert sweep.points[0].name == "train200" and sweep.points[0].train_samples == 200
    assert sweeps.seeds_sweep([0]).points[0].name == "all"
