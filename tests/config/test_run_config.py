"""RunConfig: the one way settings reach the frozen dataclasses (configs/, profiles, notebooks, CLI, benchmark)."""

from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from medvision.config import DataConfig, ExperimentConfig, StrategyConfig, TrainConfig
from medvision.config.run import RunConfig, available_systems, merge, parse_override
from medvision.core.errors import ConfigError, NotFoundError, RunDirectoryError
from medvision.train.run_dir import RunDirectory

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", available_systems())
def test_every_system_round_trips_through_its_dict(name):
    config = RunConfig.load(name)
    assert config.name == name and config.description
    again = RunConfig.from_dict(config.to_dict(), name=name)
    assert again == config
    assert yaml.safe_load(yaml.safe_dump(config.to_dict())) == config.to_dict()  # plain YAML types only


def test_defaults_and_medmnist_flags():
    assert RunConfig.load() == RunConfig()
    breast = RunConfig.load("breastmnist")
    assert breast.name == "breastmnist" and breast.label == "breastmnist"
    assert breast.data == DataConfig(source="medmnist", name="breastmnist")
    assert breast.experiment == ExperimentConfig() and breast.train == TrainConfig()
    assert RunConfig.load("BreastMNIST").data.name == "breastmnist"


def test_yaml_path_and_overrides_in_both_forms(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("data: {source: folder, name: scans, ratios: [0.6, 0.2, 0.2]}\n"
                    "train: {epochs: 4, loss: focal}\nstrategy: {lr: 1e-4}\nstrategies: full\n")
    config = RunConfig.load(path, ["train.epochs=2", {"experiment": {"image_size": 96}}, "strategies=[full, head_only]"])
    assert config.name == "mine" and config.label == "mine"
    assert config.data.ratios == (0.6, 0.2, 0.2) and config.data.name == "scans"
    assert (config.train.epochs, config.train.loss, config.experiment.image_size) == (2, "focal", 96)
    assert config.strategy.lr == 1e-4  # PyYAML reads 1e-4 as a string; the float field takes it
    assert config.strategies == ("full", "head_only")
    assert config.override() is config
    assert config.override("train.seed=7").train == TrainConfig(epochs=2, loss="focal", seed=7)
    assert config.strategy_for("last_k:3") == StrategyConfig(name="last_k", lr=1e-4, k=3)


@pytest.mark.parametrize("override, message", [
    ("train.epochs", "must look like section.field=value"),
    ("colour.x=1", "unknown section 'colour'"),
    ("train=3", "name a field of 'train'"),
    ("train.epoch=3", r"unknown TrainConfig field\(s\) \['epoch'\]"),
    ("train.epochs=three", "train.epochs must be an integer, not 'three'"),
    ("train.epochs=2.5", "train.epochs must be an integer"),
    ("train.scheduler=cosin", "train.scheduler must be one of cosine, cosine_restarts"),
    ("experiment.balanced_sampler=maybe", "experiment.balanced_sampler must be true or false"),
    ("data.ratios=[0.5, 0.5]", "data.ratios must be a list of 3 values"),
    ("strategy.name=full", r"unknown StrategyConfig field\(s\) \['name'\]"),
    ("strategies=[hed_only]", "unknown strategy 'hed_only'"),
    ("train.epochs=[1", "not valid YAML"),
])
def test_bad_overrides_are_clear_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig.load("breastmnist", [override])


def test_bad_files_and_names(tmp_path):
    with pytest.raises(NotFoundError, match="available systems: chest_xray_pneumonia"):
        RunConfig.load("nope")
    with pytest.raises(NotFoundError, match="no configuration file"):
        RunConfig.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [1, 2]\n")
    with pytest.raises(ConfigError, match=f"{bad}: section 'data' must be a mapping"):
        RunConfig.load(bad)
    bad.write_text("trian: {epochs: 1}\n")
    with pytest.raises(ConfigError, match=r"unknown section\(s\) \['trian'\]"):
        RunConfig.load(bad)
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        RunConfig.load(bad)


def test_merge_and_parse_override():
    assert parse_override("train.epochs=3") == {"train": {"epochs": 3}}
    assert parse_override("strategies=[full]") == {"strategies": ["full"]}
    merged = merge({"train": {"epochs": 1, "seed": 2}}, {"train": {"epochs": 5}}, "strategies=[full]")
    assert merged == {"train": {"epochs": 5, "seed": 2}, "strategies": ["full"]}
    with pytest.raises(ConfigError, match="must be a mapping of its fields"):
        merge({}, {"train": 3})


def test_a_run_directory_reads_back_its_run_config(tmp_path):
    rd = RunDirectory(tmp_path / "run")
    rd.path.mkdir()
    config = RunConfig.load("breastmnist", ["train.epochs=3", "experiment.image_size=48"])
    strategy = config.strategy_for("last_k:1")
    rd.write_config({"train": asdict(config.train), "strategy": asdict(strategy),
                     "experiment": asdict(config.experiment), "data_config": config.data.to_dict(),
                     "data": {"md5": "x"}, "system": "breastmnist"})
    back = rd.run_config()
    assert (back.data, back.experiment, back.train) == (config.data, config.experiment, config.train)
    assert back.strategy_for(back.strategies[0]).name == "last_k" and back.strategy.k == 1
    rd.write_config({"train": {}})
    with pytest.raises(RunDirectoryError, match="lacks data_config/experiment"):
        rd.run_config()


def test_profiles_build_a_run_config_for_every_chapter():
    from medvision.book.profiles import PROFILES, chapter_parameters, load_profile

    for profile in PROFILES:
        loaded = load_profile(profile, REPO)
        for nb in loaded["notebooks"]:
            params = chapter_parameters(loaded, nb)
            config = RunConfig.load(params["config"], [params["overrides"]])
            assert config.label, (profile, nb)
    params = chapter_parameters(load_profile("smoke", REPO), "02_training_strategies")
    train = RunConfig.load(params["config"], [params["overrides"]])
    assert (train.experiment.image_size, train.train.epochs, train.strategy.phase1_epochs) == (32, 2, 1)


def test_a_profile_with_a_bad_override_fails_before_anything_runs(tmp_path):
    import shutil

    from medvision.book.profiles import load_profile

    for name in ("_toc.yml", "notebooks"):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, tmp_path / name)
    (tmp_path / "profiles").mkdir()
    profile = yaml.safe_load((REPO / "profiles" / "smoke.yaml").read_text())
    profile["notebooks"]["02_training_strategies"]["train"] = {"epoch": 2}
    (tmp_path / "profiles" / "x.yaml").write_text(yaml.safe_dump(profile))
    with pytest.raises(ConfigError, match=r"unknown TrainConfig field\(s\) \['epoch'\]"):
        load_profile("x", tmp_path)
    profile["notebooks"]["02_training_strategies"]["train"] = {"epochs": 2}
    profile["trian"] = {}
    (tmp_path / "profiles" / "x.yaml").write_text(yaml.safe_dump(profile))
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['trian'\]"):
        load_profile("x", tmp_path)


def test_every_chapter_takes_a_config_and_overrides():
    import jupytext

    for source in sorted((REPO / "notebooks").glob("*.py")):
        cell = next(c for c in jupytext.read(source).cells if "parameters" in c.metadata.get("tags", []))
        declared = {line.split(":")[0].strip() for line in cell.source.splitlines() if ":" in line}
        assert {"config", "overrides"} <= declared, source.name
