"""The Seed systems part of the book and a book for any one data set (``medvision book --system``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from medvision.book.profiles import (
    BOOK_CHAPTERS,
    PART_CHAPTERS,
    PROFILES,
    SystemPlan,
    compute_overrides,
    load_profile,
    plan_for_system,
    plans_from_profile,
)
from medvision.book.systems import landing_page, write_toc
from medvision.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_the_systems_profile_runs_the_two_full_systems_and_no_medmnist_chapter():
    profile = load_profile("systems", REPO)
    plans = plans_from_profile(profile)
    assert set(plans) == {"ham10000", "chest_xray_pneumonia"} and not profile["notebooks"]
    ham = plans["ham10000"].run_config()
    assert ham.data.name == "ham10000/manifest.csv" and ham.data.group_col == "lesion_id"  # all 10,015, by lesion
    assert ham.strategies == ("head_only", "last_k:2", "full") and ham.experiment.head_hidden == (512, 256)
    chest = plans["chest_xray_pneumonia"].run_config()
    assert chest.data.group_pattern and chest.data.min_val == 50 and chest.reference["metrics"]["auroc"] == 0.968
    assert all(p.chapters == PART_CHAPTERS for p in plans.values())


def test_bad_system_entries_fail_when_the_profile_is_read(tmp_path):
    import shutil

    for name in ("_toc.yml", "notebooks"):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, tmp_path / name)
    (tmp_path / "profiles").mkdir()
    for entry, message in (({"train": {"epoch": 3}}, r"unknown TrainConfig field\(s\) \['epoch'\]"),
                           ({"chapters": ["07_performance"]}, "cannot run on a system"),
                           ({"colour": 1}, r"unknown key\(s\) \['colour'\]")):
        (tmp_path / "profiles" / "x.yaml").write_text(yaml.safe_dump({"systems": {"ham10000": entry}}))
        with pytest.raises(ConfigError, match=message):
            load_profile("x", tmp_path)


def test_a_system_book_takes_the_profiles_compute_budget_and_the_systems_recipe():
    plan = plan_for_system("ham10000", load_profile("default", REPO), data_root="/data")
    config = plan.run_config()
    assert plan.chapters == BOOK_CHAPTERS
    assert (config.experiment.image_size, config.train.epochs, config.strategy.phase1_epochs) == (64, 3, 1)
    assert config.experiment.backbone == "tf_efficientnetv2_s" and config.data.name == "ham10000/manifest.csv"
    assert config.data.data_root == "/data" and config.train.loss == "focal"  # the system's, not the profile's
    assert plan.parameters["02_training_strategies"]["lr_find_steps"] == 40
    assert compute_overrides({"data": {"size": 28}, "experiment": {"pretrained": "package", "image_size": 64},
                              "train": {"epochs": 3}}) == {"experiment": {"image_size": 64}, "train": {"epochs": 3}}


def test_a_system_without_its_data_gets_a_page_saying_how_to_fetch_it(tmp_path):
    plan = SystemPlan("ham10000", {"data": {"data_root": str(tmp_path)}})
    page = landing_page("ham10000", plan, {"chapters": {}, "missing": "CSV manifest x does not exist"}, "systems")
    assert "## The data is not here" in page and "medvision data fetch ham10000" in page
    assert "kmader/skin-cancer-mnist-ham10000" in page and "not a medical device" in page
    assert "80-0.85" in page or "0.8-0.85" in page  # the seed's expectation is shown anyway
    ran = landing_page("chest_xray_pneumonia", SystemPlan("chest_xray_pneumonia"), {"chapters": {"01_eda": 1.0},
                                                                                     "missing": ""}, "systems")
    assert "## What ran" in ran and "tf_efficientnetv2_l" in ran and "Kermany" in ran


def test_the_generated_toc_lists_what_ran(tmp_path):
    (tmp_path / "book" / "generated").mkdir(parents=True)
    records = {"ham10000": {"chapters": {"01_eda": 1.0, "02_training_strategies": 2.0}, "missing": ""},
               "kvasir": {"chapters": {}, "missing": "no data"}}
    toc = yaml.safe_load(write_toc(REPO, tmp_path, set(), records).read_text())
    captions = [p["caption"] for p in toc["parts"]]
    assert "Results" not in captions and "Evidence" not in captions and "Seed systems" in captions
    systems = next(p for p in toc["parts"] if p["caption"] == "Seed systems")["chapters"]
    assert systems[0] == {"file": "book/systems"}
    assert systems[1] == {"file": "book/generated/systems/ham10000", "sections": [
        {"file": "book/generated/systems/ham10000/01_eda"},
        {"file": "book/generated/systems/ham10000/02_training_strategies"}]}
    assert systems[2] == {"file": "book/generated/systems/kvasir"}
    every = {c["file"].rsplit("/", 1)[-1] for p in yaml.safe_load((REPO / "_toc.yml").read_text())["parts"]
             for c in p["chapters"]}
    full = yaml.safe_load(write_toc(REPO, tmp_path, every, {}).read_text())
    assert [p["caption"] for p in full["parts"]] == [p["caption"] for p in yaml.safe_load(
        (REPO / "_toc.yml").read_text())["parts"]]
    results_only = yaml.safe_load(write_toc(REPO, tmp_path, {"01_eda"}, {}).read_text())
    assert "Results" in [p["caption"] for p in results_only["parts"]]
    assert "Evidence" not in [p["caption"] for p in results_only["parts"]]
    assert "systems" in PROFILES


@pytest.mark.slow
def test_medvision_book_system_renders_the_chapters_for_a_folder_given_only_its_yaml(shared_data, tmp_path,
                                                                                     monkeypatch):
    """`medvision book --system my.yaml` on an image folder: EDA, strategies, per-class, calibration and
    feature baselines, built with `jb build -W`."""
    from medvision.cli import main

    monkeypatch.setenv("MEDVISION_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    mine = tmp_path / "xrays.yaml"
    mine.write_text("description: a folder of chest X-rays\n"
                    f"data: {{source: folder, name: chest_xray_224, size: 32, data_root: {shared_data}}}\n"
                    "experiment: {backbone: tf_efficientnet_lite0, pretrained: package}\n"
                    "strategies: [head_only, full]\n")
    out = tmp_path / "book"
    assert main(["book", "--system", str(mine), "--profile", "smoke", "--stage", str(out)]) == 0
    pages = out / "book" / "generated" / "systems" / "xrays"
    assert sorted(p.stem for p in pages.glob("*.ipynb")) == list(BOOK_CHAPTERS)
    assert (out / "_build" / "html" / "book" / "generated" / "systems" / "xrays" / "03_per_class_analysis.html").is_file()
    landing = (out / "book" / "generated" / "systems" / "xrays.md").read_text()
    assert "a folder of chest X-rays" in landing and "## What ran" in landing
    split = (pages / "split.csv").read_text().splitlines()  # the split the numbers are on, published
    assert split[0].startswith("sample_id,split,label") and str(shared_data) not in "\n".join(split)
    html = (out / "_build" / "html" / "book" / "generated" / "systems" / "xrays.html").read_text()
    assert "split.csv" in html and list((out / "_build" / "html" / "_downloads").rglob("split.csv"))
    record = json.loads((out / "book" / "generated" / "_run.json").read_text())
    assert set(record["systems"]["xrays"]["chapters"]) == set(BOOK_CHAPTERS)
    strategies = json.loads((pages / "02_training_strategies.ipynb").read_text())
    text = json.dumps(strategies["cells"])
    assert "chest_xray_224" in text and "Smoke profile" in text


def test_a_systems_page_cites_the_reference_profiles_runs_with_their_date(shared_data, tmp_path, monkeypatch):
    from datetime import datetime, timezone

    from medvision.book.systems import reference_results
    from medvision.config.run import RunConfig
    from medvision.data.pipeline import load_cached_split
    from medvision.train.sweeps import run_sweep, seeds_sweep

    config = RunConfig.load("breastmnist", [{"data": {"data_root": str(shared_data)},
                                             "experiment": {"backbone": "test_efficientnet", "pretrained": "none",
                                                            "image_size": 28, "augment": "flip"},
                                             "train": {"epochs": 1, "progress": False}, "strategies": ["full"]}])
    load_cached_split(config.data)
    assert reference_results(config.label, tmp_path / "reference" / "benchmark") == []  # no runs: no section
    rows = run_sweep(config, seeds_sweep([0, 1]), tmp_path / "reference" / "benchmark")  # the whole train split
    text = "\n".join(reference_results(config.label, tmp_path / "reference" / "benchmark"))
    assert "## At the seeds' input size (reference profile)" in text and "at 28 px" in text
    assert datetime.now(timezone.utc).date().isoformat() in text and "full-scratch" in text
    assert f"accuracy {rows['test_accuracy'].mean():.3f} (95% interval" in text and "2 seeds x 156 test images" in text
    assert str(tmp_path) not in text  # no machine path on a page
    monkeypatch.setenv("MEDVISION_RUNS", str(tmp_path))  # where the book's runs go
    assert "\n".join(reference_results(config.label)) == text


def test_a_systems_benchmark_runs_on_the_system_whatever_the_chapter_stores(tmp_path, monkeypatch):
    """Chapter 06 stores the default build's data sets; run for a system it must benchmark that system alone."""
    from medvision.book import systems

    calls = []
    monkeypatch.setattr(systems, "execute_notebook", lambda src, dst, params, cwd: calls.append(params))
    monkeypatch.setenv("MEDVISION_RUNS", str(tmp_path / "runs"))
    plan = SystemPlan("breastmnist", chapters=("06_benchmark",), parameters={"06_benchmark": {"seeds": [0, 1, 2]}})
    record = systems.run_system("breastmnist", plan, "reference", REPO, tmp_path)
    assert record["chapters"].keys() == {"06_benchmark"} and not record["missing"]
    [params] = calls
    assert params["config"] == "breastmnist" and params["datasets"] == [] and params["per_dataset"] == {}
    assert params["seeds"] == [0, 1, 2] and params["profile"] == "reference"
    landing = (tmp_path / "book" / "generated" / "systems" / "breastmnist.md").read_text()
    assert "benchmark page follows" in landing and "training-strategies page" not in landing
