import json

import pandas as pd
import pytest

from medvision.benchmark import (
    Settings,
    chosen_on_validation,
    collect,
    describe_versus,
    experiment_for,
    load_anchors,
    seed_summary,
    settings_for,
    versus_anchors,
)


def _run(root, dataset, seed, run, acc, auc, val_f1):
    d = root / dataset / f"seed{seed}" / run
    d.mkdir(parents=True)
    m = {"accuracy": acc, "balanced_accuracy": acc, "macro_f1": acc, "auroc": auc}
    (d / "summary.json").write_text(json.dumps({"run": run, "test": m, "val": {**m, "macro_f1": val_f1}}))
    return d


def test_seed_summary_and_anchor_comparison(tmp_path):
    dirs = [_run(tmp_path, "breastmnist", s, "full", 0.85 + 0.02 * s, 0.90 + 0.01 * s, 0.9) for s in range(3)]
    dirs += [_run(tmp_path, "breastmnist", s, "head_only", 0.80, 0.85, 0.7) for s in range(3)]
    runs = collect(dirs)
    assert set(runs["seed"]) == {0, 1, 2}
    summary = seed_summary(runs)
    assert summary.loc[("breastmnist", "full"), ("test_accuracy", "mean")] == pd.Series([0.85, 0.87, 0.89]).mean()
    assert abs(summary.loc[("breastmnist", "full"), ("test_accuracy", "sd")] - 0.02) < 1e-9
    chosen = chosen_on_validation(runs)
    assert chosen == {"breastmnist": "full"}
    anchors = load_anchors()
    versus = versus_anchors(summary.loc[[("breastmnist", "full")]], anchors, resolution=28)
    published = set(versus["published"])
    assert "ResNet-18" in published and "Google AutoML Vision" not in published  # AutoML kept apart
    r18 = versus[versus["published"] == "ResNet-18"].iloc[0]
    assert r18["pub_acc"] == 0.863 and r18["beats_acc"] == (0.87 > 0.863)
    assert describe_versus(versus) == ("On **breastmnist**, full beats every published non-AutoML row in both "
                                       "ACC and AUC.")
    weaker = versus_anchors(summary.loc[[("breastmnist", "head_only")]], anchors, resolution=28)
    text = describe_versus(weaker)
    assert "does not beat" in text and "ResNet-18 (ACC 0.863 vs ours 0.800" in text


def test_anchors_copy_matches_published_values():
    anchors = load_anchors()
    row = anchors[(anchors["dataset"] == "pneumoniamnist") & (anchors["method"] == "ResNet-18")
                  & (anchors["resolution"] == 28)].iloc[0]
    assert (row["test_auc"], row["test_acc"]) == (0.944, 0.854)


def test_per_dataset_settings_override_the_chapter_defaults():
    base = Settings(epochs=6, augment="flip", lr=1e-3, image_size=64)
    per = {"breastmnist": {"epochs": 30, "augment": "default", "ema_decay": 0.99}}
    assert settings_for("breastmnist", base, per) == Settings(30, "default", 1e-3, 64, 0.99, patience=5)
    assert settings_for("pneumoniamnist", base, per) == base
    with pytest.raises(ValueError, match=r"per_dataset\['retinamnist'\] sets \['epoch'\]"):
        settings_for("pneumoniamnist", base, {"retinamnist": {"epoch": 3}})


def test_head_only_runs_train_on_cached_features_with_flips():
    from medvision.experiment import ExperimentConfig

    heavy = ExperimentConfig(augment="default")
    assert experiment_for("head_only", heavy).augment == "flip"
    assert experiment_for("full", heavy) == heavy
    assert experiment_for("head_only", ExperimentConfig(augment="none")).augment == "none"


def test_every_profile_overrides_only_known_settings():
    from pathlib import Path

    import yaml

    for path in sorted((Path(__file__).resolve().parents[1] / "profiles").glob("*.yaml")):
        params = yaml.safe_load(path.read_text())["notebooks"].get("06_benchmark", {})
        for dataset in params.get("datasets", []):
            settings_for(dataset, Settings(), params.get("per_dataset", {}))  # raises on an unknown key
