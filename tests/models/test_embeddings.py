"""Image embeddings for feature-space near duplicates: cached once per data set and model, a clear error (no
random network) when the weights cannot be had, and the audit wired into runs, the CLI, the EDA helpers and
external validation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from medvision.cli import main
from medvision.config import DataConfig, RunConfig
from medvision.core.errors import WeightsError
from medvision.data import load_csv, load_medmnist
from medvision.data.load import load_data
from medvision.models import backbones, embeddings


@pytest.fixture
def no_hub(monkeypatch):
    monkeypatch.setattr(backbones, "hub_reachable", lambda *a, **k: False)


def test_embeddings_are_unit_vectors_cached_once(shared_data, monkeypatch):
    table = load_medmnist("breastmnist", root=shared_data)
    table = table.with_frame(table.frame.iloc[:40])
    first = embeddings.image_embeddings(table, size=32)
    assert first.shape == (40, 1280) and np.allclose(np.linalg.norm(first, axis=1), 1, atol=1e-5)
    monkeypatch.setattr(embeddings.F, "normalize", lambda *a, **k: pytest.fail("features recomputed"))
    assert np.array_equal(embeddings.image_embeddings(table, size=32), first)  # from the cache file


def test_no_weights_means_a_clear_error_not_a_random_network(shared_data, no_hub):
    cfg = DataConfig(source="medmnist", name="breastmnist", data_root=str(shared_data), dedupe="embedding",
                     official_split="resplit", embedding_model="resnet18")
    with pytest.raises(WeightsError, match="resnet18"):
        load_data(cfg)


def test_data_leakage_reports_the_feature_check_or_why_it_did_not_run(shared_data, capsys, no_hub):
    args = ["data", "leakage", "breastmnist", "--data-root", str(shared_data)]
    assert main([*args, "--set", "data.embedding_size=32"]) == 0
    out = capsys.readouterr().out
    assert "by split pair: exact train-test 1" in out and "Feature-space check:" in out
    assert main([*args, "--set", "data.embedding_model=resnet18"]) == 0  # still the pHash audit, and why not more
    out = capsys.readouterr().out
    assert "by split pair:" in out and "The feature-space check did not run: could not get ImageNet weights" in out


def test_split_with_embedding_writes_clusters_and_the_threshold(shared_data, tmp_path, capsys):
    out = tmp_path / "split.csv"
    assert main(["data", "split", "breastmnist", "--data-root", str(shared_data), "--dedupe", "embedding",
                 "--official-split", "resplit", "--set", "data.embedding_size=32", "--out", str(out)]) == 0
    manifest = pd.read_csv(out)
    report = json.loads(out.with_suffix(".report.json").read_text())
    assert "cluster" in manifest and report["dedupe"] == "embedding"
    assert report["embedding"]["threshold"]["derived"] and report["embedding"]["pairs"] > 0
    assert "feature-space pair(s) at cosine similarity" in capsys.readouterr().out


def test_runs_record_and_warn_about_the_feature_check(shared_data, tmp_path):
    from medvision.core.errors import LeakageWarning
    from medvision.data.pipeline import load_cached_split
    from medvision.train.runner import run_strategy

    config = RunConfig.load("breastmnist", [{"data": {"data_root": str(shared_data), "embedding_size": 32,
                                                      "dedupe": "embedding", "official_split": "keep"},
                                             "experiment": {"backbone": "test_efficientnet", "pretrained": "none",
                                                            "image_size": 28, "augment": "flip"},
                                             "train": {"epochs": 1, "progress": False}}])
    cache = load_cached_split(config.data, 60)
    with pytest.warns(LeakageWarning):
        summary = run_strategy(cache, "head_only", config, tmp_path)
    leakage = json.loads((tmp_path / summary["run"] / "leakage.json").read_text())
    assert leakage["similarity"]["verdict"] in ("clean", "optimistic")
    assert set(leakage["similarity"]["splits"]) == {"val", "test"}


def test_eda_helpers_and_the_figure(shared_data):
    from medvision import plots
    from medvision.book import eda

    table = load_medmnist("breastmnist", root=shared_data)
    cfg = DataConfig(source="medmnist", name="breastmnist", embedding_size=32)
    audit, sentence = eda.feature_audit(table, cfg, max_images=200)
    assert audit is not None and sentence.startswith("Feature-space check:") and "(on 200 of 780 images" in sentence
    fig, ax = plots.plot_residual_similarity(audit)
    assert len(ax.lines) == 5  # nearest and distinct for val and test, and the threshold
    optimistic = {**audit, "verdict": "optimistic"}
    advice = eda.group_advice(table, optimistic)
    assert "data.dedupe: embedding" in advice and "group_pattern" not in advice  # arrays have no file names
    files = load_csv(shared_data / "ham10000" / "subset.csv", path_col="file", label_col="dx")
    assert "data.group_pattern" in eda.group_advice(files, optimistic)
    assert eda.group_advice(table, audit if audit["verdict"] == "clean" else None) == ""
