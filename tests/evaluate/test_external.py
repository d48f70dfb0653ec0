"""External validation: a run trained on the bundled PneumoniaMNIST scored on the full Kermany chest X-ray folder
(the same two classes, named NORMAL / PNEUMONIA there), with its duplicates of the training images found."""

from __future__ import annotations

import json

import pytest

from medvision.cli import main
from medvision.core.errors import ConfigError
from medvision.evaluate.external import (
    DROP,
    describe_external,
    evaluate_external,
    external_table,
    match_classes,
)


@pytest.fixture(scope="module")
def pneumonia_run(tmp_path_factory):
    from medvision.config import DataConfig, ExperimentConfig, TrainConfig
    from medvision.config.run import RunConfig
    from medvision.data import build_tensor_cache, load_data
    from medvision.data.splits import stratified_subsample
    from medvision.train.runner import run_strategy

    out = tmp_path_factory.mktemp("external-runs")
    data = DataConfig(source="medmnist", name="pneumoniamnist")  # the copy the package ships
    cache = build_tensor_cache(stratified_subsample(load_data(data), 400), 28, progress=False)
    config = RunConfig(data, ExperimentConfig(backbone="test_efficientnet", pretrained="none", image_size=32,
                                              augment="flip"), TrainConfig(epochs=1, progress=False))
    with pytest.warns(Warning):  # the official PneumoniaMNIST split has near duplicates across it
        summary = run_strategy(cache, "full", config, out)
    return out / summary["run"]


def test_class_names_are_matched_or_mapped():
    run = ("normal", "pneumonia")
    assert match_classes(("NORMAL", "PNEUMONIA"), run) == {"NORMAL": "normal", "PNEUMONIA": "pneumonia"}
    assert match_classes(("bacteria", "virus", "healthy"), run, {"bacteria": "pneumonia", "virus": "pneumonia",
                                                                "healthy": "normal"})["virus"] == "pneumonia"
    assert match_classes(("TB", "NORMAL"), run, {"TB": DROP})["TB"] == DROP
    with pytest.raises(ConfigError, match=r"external class 'TB' matches none of the run's classes.*--map TB="):
        match_classes(("TB", "NORMAL"), run)
    with pytest.raises(ConfigError, match="which the run does not have"):
        match_classes(("NORMAL",), run, {"NORMAL": "healthy"})
    with pytest.raises(ConfigError, match="which the external data set does not have"):
        match_classes(("NORMAL",), run, {"HEALTHY": "normal"})


def test_a_pneumoniamnist_run_on_the_chest_xray_folder(pneumonia_run, shared_data, capsys):
    folder = shared_data / "chest_xray"
    assert main(["evaluate", str(pneumonia_run), "--data", str(folder), "--map", "NORMAL=normal",
                 "--map", "PNEUMONIA=pneumonia", "--resamples", "30"]) == 0
    out = capsys.readouterr().out
    assert "5840 images" in out and "near duplicates of the run's training/validation images" in out
    saved = json.loads((pneumonia_run / "external" / "chest_xray" / "evaluation.json").read_text())
    assert saved["images"] == 5840 and saved["class_map"] == {"NORMAL": "normal", "PNEUMONIA": "pneumonia"}
    assert saved["temperature"] == json.loads((pneumonia_run / "evaluation.json").read_text())["temperature"]
    assert {r["metric"] for r in saved["ci"]} >= {"accuracy", "auroc", "macro_f1"}
    audit = saved["audit"]
    assert audit["test"] == 5840 and audit["test_clean"] + saved["clean_test"]["excluded"] == 5840
    assert (pneumonia_run / "external" / "chest_xray" / "predictions.csv").is_file()
    table = external_table(saved)
    assert table.shape == (4, 6) and "whole external set (5840)" in table.columns.get_level_values(0)
    assert "**chest_xray** (5840 images, classes NORMAL → normal, PNEUMONIA → pneumonia)" in \
        describe_external("chest_xray", saved)


def test_leaving_a_class_out_and_bad_mappings(pneumonia_run, shared_data, capsys):
    ev = evaluate_external(pneumonia_run, shared_data / "chest_xray_224", {"NORMAL": DROP}, name="pneumonia-only",
                           n_resamples=20)
    assert ev.images == 200 and ev.class_map["NORMAL"] == DROP
    saved = json.loads((ev.folder / "evaluation.json").read_text())
    assert saved["classes_absent"] == ["normal"]
    assert main(["evaluate", str(pneumonia_run), "--data", str(shared_data / "chest_xray_224"), "--map",
                 "NORMAL=healthy"]) == 2
    assert "which the run does not have" in capsys.readouterr().err
    assert main(["evaluate", str(pneumonia_run), "--data", str(shared_data / "ham10000" / "subset.csv"),
                 "--set", "data.path_col=file", "--set", "data.label_col=dx"]) == 2
    assert "matches none of the run's classes" in capsys.readouterr().err


def test_the_external_audit_uses_the_runs_dedupe_mode(shared_data):
    from medvision.config import DataConfig
    from medvision.data import load_medmnist
    from medvision.evaluate.external import external_audit

    table = load_medmnist("breastmnist", root=shared_data)
    external = table.with_frame(table.frame[table.frame["split"] == "test"])
    plain = external_audit(external, table, 4)
    assert plain["similarity"] is None
    embedded = external_audit(external, table, 4, DataConfig(source="medmnist", name="breastmnist",
                                                             dedupe="embedding", embedding_size=32))
    assert embedded["similarity"]["verdict"] in ("clean", "optimistic")
    assert set(plain["test_leaking"]) <= set(embedded["test_leaking"])  # feature-space copies count too
    assert embedded["similarity"]["sentence"].startswith("Feature-space check:")
