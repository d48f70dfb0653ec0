"""Leakage you can act on: a folder of real chest X-rays with exact and near duplicates planted across its
official train/test split, found, split around (keep / drop_duplicates / resplit), warned about, and left out of
the clean test score."""

from __future__ import annotations

import io
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from medvision.config import DataConfig
from medvision.core.errors import LeakageWarning
from medvision.data import leakage_report, load_data
from medvision.data.dedupe import cross_split_clusters, describe_split_report, duplicate_clusters

PER_CLASS = {"train": 40, "test": 15}
PLANTED = 4  # exact copies and near duplicates per class, train -> test


@pytest.fixture(scope="module")
def planted(shared_data, tmp_path_factory) -> tuple[Path, dict]:
    """``<root>/planted/{train,test}/{NORMAL,PNEUMONIA}``: real images, then per class ``PLANTED`` train images
    copied byte for byte into test and ``PLANTED`` others re-encoded a little brighter into test."""
    source = shared_data / "chest_xray_224"
    root = tmp_path_factory.mktemp("dedupe")
    planted = {"exact": [], "near": []}
    for cls in ("NORMAL", "PNEUMONIA"):
        for split, n in PER_CLASS.items():
            files = sorted((source / split / cls).glob("*.jpeg"))[:n]
            (root / "planted" / split / cls).mkdir(parents=True)
            for f in files:
                shutil.copy(f, root / "planted" / split / cls / f.name)
        train = sorted((root / "planted" / "train" / cls).iterdir())
        for f in train[:PLANTED]:
            shutil.copy(f, root / "planted" / "test" / cls / f"copy-{f.name}")
            planted["exact"].append(f"test/{cls}/copy-{f.name}")
        for f in train[PLANTED:2 * PLANTED]:
            image = ImageEnhance.Brightness(Image.open(f).convert("RGB")).enhance(1.04)
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=85)
            (root / "planted" / "test" / cls / f"near-{f.name}").write_bytes(buffer.getvalue())
            planted["near"].append(f"test/{cls}/near-{f.name}")
    return root, planted


def _config(root: Path, **kw) -> DataConfig:
    return DataConfig(source="folder", name="planted", data_root=str(root), size=64, val_fraction=0.2, **kw)


def test_the_planted_duplicates_are_found(planted):
    root, plants = planted
    table = load_data(_config(root))
    report = leakage_report(table)
    cross = report[report["cross_split"]]
    pairs = {frozenset((a, b)) for a, b in zip(cross["sample_a"], cross["sample_b"], strict=True)}
    found = {sid for p in pairs for sid in p}
    assert set(plants["exact"]) <= found and set(plants["near"]) <= found
    kinds = dict(zip(cross["sample_b"], cross["kind"], strict=False)) | dict(zip(cross["sample_a"], cross["kind"],
                                                                                 strict=False))
    assert all(kinds[s] == "exact" for s in plants["exact"]) and all(kinds[s] == "near" for s in plants["near"])


def test_keep_carves_validation_around_clusters_and_reports_the_official_leak(planted):
    root, plants = planted
    table = load_data(_config(root, dedupe="near"))
    report = table.split_report
    assert report["official_split"] == "keep" and report["cross_split_before"] >= 2 * 2 * PLANTED
    frame = table.frame
    train_val = frame[frame["split"].isin(["train", "val"])]
    assert cross_split_clusters(train_val["cluster"].to_numpy(), train_val["split"].to_numpy()) == 0
    assert set(plants["exact"] + plants["near"]) <= set(frame.loc[frame["split"] == "test", "sample_id"])
    assert "official split was kept" in describe_split_report(report)


def test_drop_duplicates_leaves_no_cluster_across_splits(planted):
    root, plants = planted
    table = load_data(_config(root, dedupe="near", official_split="drop_duplicates"))
    report = table.split_report
    dropped = {d["sample_id"] for d in report["dropped"]}
    assert set(plants["exact"] + plants["near"]) <= dropped and {d["split"] for d in report["dropped"]} == {"test"}
    assert report["cross_split_after"] == 0
    assert cross_split_clusters(table.frame["cluster"].to_numpy(), table.frame["split"].to_numpy()) == 0
    assert len(table) == report["images"] - len(dropped)
    assert f"Dropped {len(dropped)} evaluation image(s)" in describe_split_report(report)
    exact_only = load_data(_config(root, dedupe="exact", official_split="drop_duplicates")).split_report
    assert {d["sample_id"] for d in exact_only["dropped"]} >= set(plants["exact"])
    assert not {d["sample_id"] for d in exact_only["dropped"]} & set(plants["near"])  # not identical pixels


def test_resplit_splits_anew_by_clusters_and_lists_every_move(planted):
    root, _ = planted
    table = load_data(_config(root, dedupe="near", official_split="resplit", ratios=(0.6, 0.2, 0.2)))
    report = table.split_report
    assert report["official_split"] == "resplit" and report["cross_split_after"] == 0 and report["moved"]
    assert set(table.splits) == {"train", "val", "test"} and len(table) == report["images"]
    moved = {m["sample_id"]: m for m in report["moved"]}
    row = table.frame.set_index("sample_id").loc[next(iter(moved)), "split"]
    assert moved[next(iter(moved))]["to"] == row


def test_a_fresh_split_keeps_clusters_and_groups_whole(planted):
    root, _ = planted
    flat = root / "flat"
    for f in (root / "planted").rglob("*.jpeg"):
        (flat / f.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, flat / f.parent.name / f"{f.parent.parent.name}-{f.name}")
    cfg = DataConfig(source="folder", name="flat", data_root=str(root), size=64, dedupe="exact")
    table = load_data(cfg)
    assert table.split_report["official_split"] == "none" and table.split_report["clusters"] >= 2 * PLANTED
    assert cross_split_clusters(table.frame["cluster"].to_numpy(), table.frame["split"].to_numpy()) == 0
    clusters = duplicate_clusters(table, "exact")
    assert (clusters == table.frame["cluster"].to_numpy()).all()


def test_official_split_without_dedupe_is_refused(planted):
    root, _ = planted
    with pytest.raises(ValueError, match="needs dedupe"):
        load_data(_config(root, official_split="drop_duplicates"))


def test_a_leaking_run_warns_records_its_audit_and_scores_the_clean_test_images(planted, tmp_path, capsys):
    from medvision.cli import main
    from medvision.config import ExperimentConfig, TrainConfig
    from medvision.config.run import RunConfig
    from medvision.data import build_tensor_cache
    from medvision.deploy.export import export_bundle
    from medvision.evaluate.evaluation import evaluate_run
    from medvision.train.runner import run_strategy

    root, plants = planted
    table = load_data(_config(root))
    cache = build_tensor_cache(table, 64, progress=False)
    config = RunConfig(_config(root), ExperimentConfig(backbone="test_efficientnet", pretrained="none",
                                                       image_size=32, augment="flip"),
                       TrainConfig(epochs=1, progress=False))
    with pytest.warns(LeakageWarning, match="the split leaks: .* between train and test"):
        summary = run_strategy(cache, "full", config, tmp_path / "runs")
    run_dir = tmp_path / "runs" / summary["run"]
    audit = json.loads((run_dir / "leakage.json").read_text())
    for kind in ("exact", "near"):  # the planted originals are in train, or in the validation carved from it
        assert audit["pairs"][kind]["train-test"] + audit["pairs"][kind]["val-test"] >= 2 * PLANTED
    assert set(plants["exact"] + plants["near"]) <= set(audit["test_leaking"])
    assert summary["leakage"]["test_clean"] == audit["test_clean"] < audit["test"]
    ev = evaluate_run(run_dir, n_resamples=30)
    assert ev.clean["excluded"] == len(audit["test_leaking"]) and ev.clean["images"] == audit["test_clean"]
    keep = np.array([sid not in set(audit["test_leaking"]) for sid in ev.test_ids])
    clean_accuracy = float((ev.test_logits.argmax(1).numpy()[keep] == ev.test_targets.numpy()[keep]).mean())
    assert ev.clean["metrics"]["accuracy"] == pytest.approx(clean_accuracy, abs=1e-6)
    saved = json.loads((run_dir / "evaluation.json").read_text())
    assert saved["clean_test"]["excluded"] == ev.clean["excluded"]
    card = (export_bundle(run_dir, tmp_path / "bundle") / "MODEL_CARD.md").read_text()
    assert f"no duplicate in train/val ({ev.clean['images']})" in card and "have an exact or near duplicate" in card
    assert main(["evaluate", str(run_dir), "--resamples", "30"]) == 0
    assert "have a duplicate in train/val" in capsys.readouterr().out

    yaml_file = tmp_path / "planted.yaml"
    yaml_file.write_text(f"data: {{source: folder, name: planted, data_root: {root}, size: 64, val_fraction: 0.2}}\n"
                         "experiment: {backbone: test_efficientnet, pretrained: none, image_size: 32}\n"
                         "train: {epochs: 1}\nstrategies: [full]\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", LeakageWarning)  # the CLI catches them itself
        assert main(["train", str(yaml_file), "--runs-dir", str(tmp_path / "cli-runs"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if "warning:" in line] == [
        line for line in err.splitlines() if line.startswith("medvision train: warning: planted: the split leaks")]
    assert len([line for line in err.splitlines() if "warning:" in line]) == 1

    clean_yaml = tmp_path / "clean.yaml"
    clean_yaml.write_text(yaml_file.read_text().replace("val_fraction: 0.2}", "val_fraction: 0.2, dedupe: near, "
                                                        "official_split: drop_duplicates}"))
    assert main(["train", str(clean_yaml), "--runs-dir", str(tmp_path / "clean-runs"), "--quiet"]) == 0
    assert "warning" not in capsys.readouterr().err
    clean_run = next((tmp_path / "clean-runs").iterdir())
    assert json.loads((clean_run / "split_report.json").read_text())["official_split"] == "drop_duplicates"
    assert json.loads((clean_run / "leakage.json").read_text())["test_leaking"] == []
