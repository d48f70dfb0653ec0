"""What the seed systems' configurations need: Kaggle's archive layouts, patient groups from file names, a tiny
official validation split replaced, class renames, augmentation strength and MLP heads from YAML, a second phase
that restarts from the best first-phase epoch, top-k accuracy, an offline fallback backbone, evaluation
figures and MLflow tracking from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medvision.config import DataConfig
from medvision.data import load_data
from medvision.data.sources import load_image_folder
from tests.conftest import write_image


def _kaggle_chest_archive(root: Path) -> Path:
    """Shaped like Kaggle's chest-xray-pneumonia download: chest_xray/{train,test,val} with a nested copy
    chest_xray/chest_xray/..., a __MACOSX shadow, .DS_Store files and a 4-image val/."""
    top = root / "chest_xray"
    for base in (top, top / "chest_xray", top / "__MACOSX"):
        for split, n in (("train", 12), ("test", 4), ("val", 2)):
            for cls, prefix in (("NORMAL", "IM-{:04d}-0001"), ("PNEUMONIA", "person{}_bacteria_1")):
                for i in range(n):
                    offset = {"train": 0, "test": 100, "val": 200}[split]
                    name = prefix.format(i // 2 if split == "train" else offset + i) + (f"-{i}" if split == "train"
                                                                                       else "")
                    write_image(base / split / cls / f"{'._' if '__MACOSX' in str(base) else ''}{name}.jpeg",
                                seed=i + len(name), size=(24, 24))
        (base / ".DS_Store").write_bytes(b"\x00\x01")
    return top


def test_the_kaggle_chest_archive_reads_as_its_official_split(tmp_path):
    top = _kaggle_chest_archive(tmp_path)
    table = load_image_folder(top)
    assert table.class_names == ("NORMAL", "PNEUMONIA")  # not __MACOSX, not the nested chest_xray
    assert set(table.splits) == {"train", "test", "val"} and len(table) == 2 * (12 + 4 + 2)
    assert not table.frame["path"].str.contains("__MACOSX|chest_xray/").any()
    assert "__MACOSX" in table.provenance["ignored"] and "nested copy" in table.provenance["ignored"]


def test_a_tiny_official_validation_is_replaced_by_one_carved_by_patient(tmp_path):
    top = _kaggle_chest_archive(tmp_path)
    cfg = DataConfig(source="folder", name=str(top), size=32, min_val=10, val_fraction=0.25,
                     group_pattern=r"^(NORMAL2-IM-\d+|IM-\d+|person\d+)")
    with pytest.warns(UserWarning, match="official validation split held 4 images"):
        table = load_data(cfg)
    assert "carved from train instead" in table.provenance["validation"]
    frame = table.frame
    assert set(frame.loc[frame["path"].str.contains("/val/"), "split"]) <= {"train", "val"}
    train_val = frame[frame["split"].isin(["train", "val"])]
    assert train_val.groupby("group")["split"].nunique().max() == 1  # one child never on both sides
    assert frame.loc[frame["path"].str.contains("IM-0001-0001-2"), "group"].item() == "IM-0001"
    with pytest.raises(ValueError, match="matches none of the"):
        load_data(DataConfig(source="folder", name=str(top), group_pattern=r"^patient\d+"))


def test_the_downloaded_archive_is_linked_at_its_real_folder(tmp_path):
    from medvision.train.systems import arrange_download, load_system

    download = tmp_path / "download"
    _kaggle_chest_archive(download)
    target = arrange_download(load_system("chest_xray_pneumonia"), download, tmp_path / "root")
    assert target.resolve() == (download / "chest_xray").resolve()  # not __MACOSX/..., not the nested copy


def test_class_renames_and_seed_recipes_from_yaml(tmp_path):
    from medvision.config.run import RunConfig

    for cls in ("Aom", "Chornic", "Earwax", "Normal", "Foreign"):
        for i in range(3):
            write_image(tmp_path / "eardrum" / cls / f"{i}.png", seed=i, size=(16, 16))
    config = RunConfig.load("eardrum", [{"data": {"data_root": str(tmp_path), "min_per_class": 0,
                                                   "ratios": [0.34, 0.33, 0.33]}}])
    table = load_data(config.data)
    assert table.class_names == ("Aom", "Chronic", "Earwax", "Normal")  # renamed, then selected
    ham = RunConfig.load("ham10000")
    aug = ham.experiment.augment_config()
    assert (aug.degrees, aug.vflip, aug.hue, aug.saturation) == (30, 0.5, 0.05, 0.2)
    custom = ham.override({"experiment": {"augment": {"degrees": 15, "hue": 0.1, "scale": [0.9, 1.0]}}})
    assert custom.experiment.augment_config().scale == (0.9, 1.0) and custom.experiment.augment_config().hue == 0.1
    with pytest.raises(ValueError, match=r"augment sets unknown field\(s\) \['rotation'\]"):
        ham.override({"experiment": {"augment": {"rotation": 15}}})
    with pytest.raises(ValueError, match="augment must be one of none, flip, default, medium"):
        ham.override({"experiment": {"augment": "strong"}})


def test_hue_jitter_keeps_luma_and_moves_chroma():
    from medvision.config import AugmentConfig
    from medvision.data.augment import augment_batch

    x = torch.rand(8, 3, 8, 8)
    cfg = AugmentConfig.none().__class__(hflip=0, degrees=0, scale=(1, 1), ratio=(1, 1), brightness=0,
                                         contrast=0, hue=0.2)
    y = augment_batch(x.clone(), cfg, torch.Generator().manual_seed(0))
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    inside = ((y > 0) & (y < 1)).all(1, keepdim=True)  # where no channel was clamped
    assert torch.allclose(((y * luma).sum(1, keepdim=True))[inside], ((x * luma).sum(1, keepdim=True))[inside],
                          atol=1e-5)
    assert (y - x).abs().max() > 0.01 and not cfg.is_flip_only


def test_an_mlp_head_of_several_widths_trains_exports_and_reloads(shared_data, tmp_path):
    from medvision.config import ExperimentConfig, TrainConfig
    from medvision.config.run import RunConfig
    from medvision.data import build_tensor_cache
    from medvision.data.splits import stratified_subsample
    from medvision.deploy.bundle import load_bundle
    from medvision.deploy.export import export_bundle
    from medvision.train.runner import run_strategy

    data = DataConfig(source="medmnist", name="breastmnist", data_root=str(shared_data))
    cache = build_tensor_cache(stratified_subsample(load_data(data), 60), 28, progress=False)
    config = RunConfig(data, ExperimentConfig(backbone="test_efficientnet", pretrained="none", image_size=32,
                                              head_hidden=(16, 8), augment="flip"),
                       TrainConfig(epochs=1, progress=False, top_k=(3,)))
    with pytest.warns(Warning):  # BreastMNIST's official split leaks a little
        summary = run_strategy(cache, "head_only", config, tmp_path / "runs")
    assert summary["cached_features"] and "top3_accuracy" not in summary["test"]  # 2 classes: no top-3
    bundle = load_bundle(export_bundle(tmp_path / "runs" / summary["run"], tmp_path / "bundle"))
    assert isinstance(bundle.model.get_classifier()[1], torch.nn.BatchNorm1d)


def test_top_k_accuracy_where_the_configuration_asks_for_it():
    from medvision.metrics.classification import classification_metrics

    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0], [0.0, 1.0, 3.0, 2.0], [0.0, 3.0, 2.0, 1.0]])
    targets = torch.tensor([1, 3, 0])
    out = classification_metrics(logits, targets, top_k=(2, 3, 5))
    assert out["accuracy"] == 0.0 and out["top2_accuracy"] == pytest.approx(2 / 3)
    assert out["top3_accuracy"] == pytest.approx(2 / 3) and "top5_accuracy" not in out


def test_the_second_phase_restarts_from_the_best_head_only_epoch(shared_data, tmp_path, monkeypatch):
    from medvision.config import StrategyConfig, TrainConfig
    from medvision.data import build_tensor_cache, load_medmnist
    from medvision.data.splits import stratified_subsample
    from medvision.train import loop as training
    from medvision.train.loop import fit
    from tests.train.test_loop import loaders, model_for

    cache = build_tensor_cache(stratified_subsample(load_medmnist("breastmnist", root=shared_data), 64), 28,
                               progress=False)
    loaded = []
    monkeypatch.setattr(training._Run, "load_best", lambda self, model: loaded.append(self.state.best_epoch))
    strategy = StrategyConfig("two_phase", phase1_epochs=2, restart_from_best=True, lr=1e-2)
    assert [p.restart for p in strategy.phases(3)] == [False, True]
    fit(model_for(), *loaders(cache), TrainConfig(epochs=3, progress=False), strategy, tmp_path / "a", ("m", "b"))
    assert len(loaded) == 1 and loaded[0] in (1, 2)  # once, at the switch, with a phase-1 best


def test_the_restart_loads_the_best_weights(shared_data, tmp_path):
    from medvision.config import TrainConfig
    from medvision.data import build_tensor_cache, load_medmnist
    from medvision.data.splits import stratified_subsample
    from medvision.models.checkpoints import load_checkpoint
    from medvision.train.loop import _Run
    from medvision.train.run_dir import RunDirectory
    from tests.train.test_loop import model_for

    cache = build_tensor_cache(stratified_subsample(load_medmnist("breastmnist", root=shared_data), 32), 28,
                               progress=False)
    model = model_for()
    rd = RunDirectory(tmp_path / "run")
    rd.ensure_writable()
    best = {k: torch.full_like(v, 0.5) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save({"model": best}, rd.checkpoint("best"))
    run = _Run.start(model, TrainConfig(epochs=1, progress=False), training_strategy(), rd, ("m", "b"),
                     cache.split("train")[1], {}, False, None)
    run.load_best(model)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in load_checkpoint(rd.checkpoint("best"))["model"]
               .items())


def training_strategy():
    from medvision.config import StrategyConfig

    return StrategyConfig("full")


def test_an_unreachable_hub_falls_back_to_the_offline_backbone(monkeypatch):
    from medvision.config import ExperimentConfig
    from medvision.models import backbones as models
    from medvision.train.runner import build_model

    monkeypatch.setattr(models, "hub_reachable", lambda *a, **k: False)
    monkeypatch.setenv("HF_HOME", "/nonexistent-hub-cache")
    exp = ExperimentConfig(backbone="tf_efficientnetv2_s", pretrained="auto", fallback="tf_efficientnet_lite0")
    model, used, note = build_model(exp, 3)
    assert used.backbone == "tf_efficientnet_lite0" and model.weights_source.source == "package"
    assert "asks for tf_efficientnetv2_s" in note and "tf_efficientnet_lite0 was trained instead" in note
    from medvision.core.errors import WeightsError

    with pytest.raises(WeightsError, match="hub is unreachable"):
        build_model(ExperimentConfig(backbone="tf_efficientnetv2_s", pretrained="auto"), 3)


def test_evaluate_writes_figures_and_train_tracks_with_mlflow(shared_data, tiny_run, tmp_path, fake_mlflow):
    from medvision.cli import main

    assert main(["evaluate", str(tiny_run), "--resamples", "20", "--figures", str(tmp_path / "figs")]) == 0
    pngs = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert pngs == ["confusion_matrix.png", "reliability.png", "roc.png"]
    assert all((tmp_path / "figs" / p).read_bytes()[:4] == b"\x89PNG" for p in pngs)

    calls = fake_mlflow
    yaml_file = tmp_path / "tiny.yaml"
    yaml_file.write_text(f"data: {{source: medmnist, name: breastmnist, data_root: {shared_data}}}\n"
                         "experiment: {backbone: test_efficientnet, pretrained: none, image_size: 32, augment: flip}\n"
                         "train: {epochs: 1}\nstrategies: [head_only, full]\n")
    assert main(["train", str(yaml_file), "--runs-dir", str(tmp_path / "runs"), "--limit", "60", "--quiet",
                 "--track", "mlflow", "--tracking-uri", str(tmp_path / "mlruns")]) == 0
    assert [c[1][0] for c in calls if c[0] == "set_experiment"] == ["medvision-tiny", "medvision-tiny"]
    assert [c[2].get("run_name") for c in calls if c[0] == "start_run"] == ["head_only", "full"]
    assert calls[0] == ("set_tracking_uri", (str(tmp_path / "mlruns"),), {})
    assert sum(c[0] == "end_run" for c in calls) == 2
    assert json.loads((tmp_path / "runs" / "full-scratch" / "summary.json").read_text())["run"] == "full-scratch"
    assert np.isfinite(json.loads((tmp_path / "runs" / "full-scratch" / "summary.json").read_text())["val"]
                       ["macro_f1"])


def test_a_class_cycle_starts_the_strategies_from_its_best_backbone(tmp_path):
    from medvision.config.run import RunConfig
    from medvision.train.systems import train_system

    for k, cls in enumerate(("Aom", "Chornic", "Earwax", "Normal", "Tympanoskleros", "Otitis externa")):
        for i in range(8):
            write_image(tmp_path / "eardrum" / cls / f"{i}.png", seed=10 * k + i, size=(20, 20))
    config = RunConfig.load("eardrum", [{"data": {"data_root": str(tmp_path), "min_per_class": 5, "size": 32},
                                         "experiment": {"backbone": "test_efficientnet", "pretrained": "none",
                                                        "fallback": "", "image_size": 32},
                                         "train": {"epochs": 1}}])
    assert config.cycles == ({"data": {"classes": []}, "strategies": ["full"]},)
    summaries = train_system(config, tmp_path / "runs", strategies=["last_k:1"], progress=False)
    cycle = json.loads((tmp_path / "runs" / "cycle1" / "full-scratch" / "classes.json").read_text())
    assert len(cycle) == 6 and "Chronic" in cycle  # the six-class cycle, with the folder renamed
    final = tmp_path / "runs" / summaries[0]["run"]
    assert json.loads((final / "classes.json").read_text()) == ["Aom", "Chronic", "Earwax", "Normal"]
    assert summaries[0]["weights_source"] == "run" and "cycle1" in summaries[0]["weights"]
    from medvision.models.checkpoints import load_checkpoint

    first = load_checkpoint(tmp_path / "runs" / "cycle1" / "full-scratch" / "best.pt")["model"]
    stem = next(k for k in first if k.startswith("conv_stem"))
    # the 4-class run started from the cycle's stem (last_k:1 leaves the stem frozen, so it is still equal)
    assert torch.equal(load_checkpoint(final / "best.pt")["model"][stem], first[stem])
