import dataclasses

import pandas as pd
import pytest

from medvision.config import dataset_config
from medvision.config.run import RunConfig
from medvision.evaluate.anchors import (
    chosen_on_validation,
    collect,
    describe_versus,
    load_anchors,
    seed_summary,
    versus_anchors,
)
from medvision.train.sweeps import strategy_config


def _run(root, dataset, seed, run, acc, auc, val_f1):
    """A row of a sweep's table (``run_sweep``) for one run."""
    m = {"accuracy": acc, "balanced_accuracy": acc, "macro_f1": acc, "auroc": auc}
    return {"dataset": dataset, "strategy": run.replace("-", ":"), "seed": seed,
            "run_dir": str(root / dataset / "all" / f"seed{seed}" / run),
            **{f"test_{k}": v for k, v in m.items()}, **{f"val_{k}": v for k, v in {**m, "macro_f1": val_f1}.items()}}


def test_seed_summary_and_anchor_comparison(tmp_path):
    dirs = [_run(tmp_path, "breastmnist", s, "full", 0.85 + 0.02 * s, 0.90 + 0.01 * s, 0.9) for s in range(3)]
    dirs += [_run(tmp_path, "breastmnist", s, "head_only", 0.80, 0.85, 0.7) for s in range(3)]
    runs = collect(pd.DataFrame(dirs))
    assert set(runs["seed"]) == {0, 1, 2}
    summary = seed_summary(runs)
    assert summary.loc[("breastmnist", "full"), ("test_accuracy", "mean")] == pd.Series([0.85, 0.87, 0.89]).mean()
    assert abs(summary.loc[("breastmnist", "full"), ("test_accuracy", "sd")] - 0.02) < 1e-9
    chosen = chosen_on_validation(runs)
    assert chosen == {"breastmnist": "full"}


def _ours(acc, acc_low, acc_high, auc, auc_low, auc_high, seeds=3):
    from medvision.metrics.intervals import Interval

    return {"breastmnist": ("full", {"accuracy": Interval(acc, acc_low, acc_high, seeds, 156),
                                     "auroc": Interval(auc, auc_low, auc_high, seeds, 156)})}


def test_anchor_verdicts_are_the_books_words_from_the_interval():
    anchors = load_anchors()
    versus = versus_anchors(_ours(0.87, 0.82, 0.91, 0.90, 0.86, 0.94), anchors, resolution=28)
    published = set(versus["published"])
    assert "ResNet-18" in published and "Google AutoML Vision" not in published  # AutoML kept apart
    r18 = versus[versus["published"] == "ResNet-18"].iloc[0]
    # 0.87 with an interval 0.82-0.91 against ResNet-18's 0.863: the interval straddles it (the issue's case:
    # 0.868 +- 0.020 was called a win over every published row)
    assert r18["pub_acc"] == 0.863 and r18["acc"] == "inconclusive" and r18["seeds"] == 3
    text = describe_versus(versus)
    assert "is **inconclusive** against" in text and "ResNet-18 (0.863)" in text and "156 test images" in text
    ahead = versus_anchors(_ours(0.95, 0.93, 0.97, 0.80, 0.76, 0.84, seeds=5), anchors, resolution=28)
    r18 = ahead[ahead["published"] == "ResNet-18"].iloc[0]
    assert (r18["acc"], r18["auc"]) == ("ahead", "behind")
    text = describe_versus(ahead)
    assert "In ACC it is **ahead** of" in text and "In AUC it is **behind**" in text
    assert describe_versus(versus_anchors({}, anchors)) == "No data set has published anchors at this resolution."


def test_anchors_copy_matches_published_values():
    anchors = load_anchors()
    row = anchors[(anchors["dataset"] == "pneumoniamnist") & (anchors["method"] == "ResNet-18")
                  & (anchors["resolution"] == 28)].iloc[0]
    assert (row["test_auc"], row["test_acc"]) == (0.944, 0.854)


def test_per_dataset_settings_override_the_chapter_defaults():
    base = {"experiment": {"augment": "flip", "image_size": 64}, "train": {"epochs": 6}, "strategy": {"lr": 1e-3}}
    per = {"breastmnist": {"train": {"epochs": 30, "ema_decay": 0.99}, "experiment": {"augment": "default"}}}
    breast = dataset_config("breastmnist", base, per)
    assert (breast.train.epochs, breast.experiment.augment, breast.strategy.lr, breast.experiment.image_size,
            breast.train.ema_decay, breast.train.patience) == (30, "default", 1e-3, 64, 0.99, 5)
    assert breast.data.source == "medmnist" and breast.data.name == "breastmnist"
    assert dataset_config("pneumoniamnist", base, per) == RunConfig.load("pneumoniamnist", [base])
    with pytest.raises(ValueError, match=r"per_dataset\['retinamnist'\]: unknown TrainConfig field\(s\) \['epoch'\]"):
        dataset_config("pneumoniamnist", base, {"retinamnist": {"train": {"epoch": 3}}})


def test_head_only_runs_train_on_cached_features_with_flips():
    heavy = RunConfig.load("breastmnist", ["experiment.augment=default"])
    assert strategy_config("head_only", heavy).experiment.augment == "flip"
    assert strategy_config("full", heavy) == heavy
    plain = RunConfig.load("breastmnist", ["experiment.augment=none"])
    assert strategy_config("head_only", plain).experiment.augment == "none"


def test_every_profile_overrides_only_known_settings():
    from pathlib import Path

    from medvision.book.profiles import chapter_parameters, load_profile

    repo = Path(__file__).resolve().parents[2]
    for path in sorted((repo / "profiles").glob("*.yaml")):
        params = chapter_parameters(load_profile(path.stem, repo), "06_benchmark")
        for dataset in params.get("datasets") or [params["config"]]:  # raises on an unknown key
            dataset_config(dataset, params["overrides"], params.get("per_dataset", {}))


def test_a_systems_seeds_against_its_reference_with_the_books_interval(shared_data, tmp_path):
    """Two seeds of a two-class run against a reference with a single number, a range and an operating point:
    the mean is the seeds' test mean, thresholds come from validation, the verdict words are the book's."""
    import numpy as np

    from medvision.data.pipeline import load_cached_split
    from medvision.evaluate.anchors import (
        chosen_intervals,
        reference_comparisons,
        seed_runs,
        versus_reference,
    )
    from medvision.evaluate.evaluation import evaluate_run
    from medvision.metrics.operating_point import choose_threshold, positive_scores
    from medvision.train.sweeps import run_sweep, seeds_sweep

    config = RunConfig.load("breastmnist", [{"data": {"data_root": str(shared_data)},
                                             "experiment": {"backbone": "test_efficientnet", "pretrained": "none",
                                                            "image_size": 28, "augment": "flip"},
                                             "train": {"epochs": 1, "progress": False},
                                             "strategies": ["full"]}])
    load_cached_split(config.data)
    rows = run_sweep(config, seeds_sweep([0, 1], max_train_samples=120), tmp_path)
    dirs = seed_runs(rows, config.label, "full-scratch")  # random initialisation: a test backbone
    assert [d.parent.name for d in dirs] == ["seed0", "seed1"]
    reference = {"source": "a test", "positive": "malignant",
                 "metrics": {"accuracy": 0.01, "auroc": [0.98, 0.99], "sensitivity": 0.8, "specificity": 0.5}}
    table = versus_reference(dirs, reference, n_resamples=200)
    assert list(table.index) == ["accuracy", "auroc", "sensitivity", "specificity"]
    assert table.loc["accuracy", "ours"] == pytest.approx(rows["test_accuracy"].mean(), abs=1e-5)
    assert table.loc["accuracy", "verdict"] == "ahead" and table.loc["auroc", "verdict"].startswith("behind")
    assert table.loc["auroc", "reference"] == "0.98-0.99" and (table["seeds"] == 2).all()
    evs = [evaluate_run(d) for d in dirs]
    positive = evs[0].class_names.index("malignant")
    specs = []
    for ev in evs:  # the threshold keeps validation sensitivity >= 0.8; its test specificity is what is compared
        t = choose_threshold(positive_scores(ev.val_logits, positive),
                             (ev.val_targets.numpy() == positive).astype(int), "sensitivity", 0.8)
        called = positive_scores(ev.test_logits, positive) >= t.value
        specs.append(float((~called[ev.test_targets.numpy() != positive]).mean()))
    assert table.loc["specificity", "ours"] == pytest.approx(np.mean(specs))
    assert "validation" in table.loc["specificity", "operating point"]
    assert set(table["verdict"].str.split().str[0]) <= {"ahead", "behind", "inconclusive"}
    [(dataset, (run, ivs))] = chosen_intervals(rows, n_resamples=100).items()  # the benchmark's verdicts
    assert (dataset, run) == (config.label, "full-scratch") and ivs["accuracy"].seeds == 2
    assert ivs["accuracy"].estimate == pytest.approx(rows["test_accuracy"].mean(), abs=1e-5)
    assert ivs["accuracy"].cases == 156 and ivs["auroc"].lower <= ivs["auroc"].estimate <= ivs["auroc"].upper
    medmnist = dict.fromkeys([config.label], config)  # a MedMNIST flag has no reference: no section
    assert reference_comparisons(rows, medmnist) == []
    system = {config.label: dataclasses.replace(config, reference=reference)}
    [(name, shown, text)] = reference_comparisons(rows, system, n_resamples=50)
    assert name == config.label and "a test" in text and "2 seeds" in text and "**" in text
