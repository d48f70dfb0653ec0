import dataclasses
import sys
import types

import pandas as pd
import pytest

from medvision.config import available_systems
from medvision.data import build_tensor_cache, load_data
from medvision.data.splits import stratified_subsample
from medvision.train.runner import run_strategy
from medvision.train.systems import arrange_download, fetch_system, load_system
from tests.conftest import write_image


def test_the_five_seed_systems_load():
    assert available_systems() == ["chest_xray_pneumonia", "cxr_normal_pneumonia_tb", "eardrum", "ham10000",
                                   "kvasir"]
    ham = load_system("ham10000")
    assert ham.data.group_col == "lesion_id" and ham.train.loss == "focal"
    assert ham.experiment.balanced_sampler and ham.experiment.head_hidden == (512, 256)  # the seed's head
    assert ham.experiment.augment == "medium" and ham.strategy.lr == 1e-4 and ham.train.scheduler == "cosine_restarts"
    assert ham.data.name == "ham10000/manifest.csv"  # what `medvision data fetch ham10000` writes
    ear = load_system("eardrum")
    assert ear.data.classes == ("Aom", "Chronic", "Earwax", "Normal") and ear.data.min_per_class == 20
    assert ear.data.rename == {"Chornic": "Chronic"}  # the data set's own spelling of the folder
    assert load_system("kvasir").data.ratios == (0.8, 0.1, 0.1)


def test_unknown_field_and_missing_config(tmp_path):
    bad = tmp_path / "x.yaml"
    bad.write_text("data: {source: folder, name: x, colour: red}\n")
    with pytest.raises(ValueError, match=r"unknown DataConfig field\(s\) \['colour'\]"):
        load_system(bad)
    with pytest.raises(FileNotFoundError, match="available"):
        load_system("nope")


@pytest.mark.parametrize("name, data_name", [("chest_xray_pneumonia", "chest_xray_224"),
                                             ("ham10000", "ham10000/subset.csv")])
def test_system_end_to_end_smoke(shared_data, tmp_path, name, data_name):
    system = load_system(name, data_root=str(shared_data))
    data_cfg = dataclasses.replace(system.data, name=data_name, size=32)
    table = stratified_subsample(load_data(data_cfg), 60)
    if system.data.group_col:
        assert table.frame.groupby("group")["split"].nunique().max() == 1
    cache = build_tensor_cache(table, 32, progress=False)
    exp = dataclasses.replace(system.experiment, backbone="test_efficientnet", pretrained="none", image_size=32)
    train = dataclasses.replace(system.train, epochs=1, progress=False)
    summary = run_strategy(cache, "full", dataclasses.replace(system, data=data_cfg, experiment=exp, train=train), tmp_path)
    assert summary["test"]["accuracy"] >= 0 and (tmp_path / summary["run"] / "best.pt").is_file()


def test_fetch_without_handle_says_where_to_put_files():
    with pytest.raises(RuntimeError, match="no public Kaggle handle; put the files as"):
        fetch_system(load_system("kvasir"))


def test_fetch_with_kagglehub_arranges_folder_and_ham_manifest(tmp_path, monkeypatch):
    download = tmp_path / "download"
    for split in ("train", "test"):
        for cls in ("NORMAL", "PNEUMONIA"):
            write_image(download / "chest_xray" / split / cls / "a.jpeg", fmt="JPEG")
    fake = types.ModuleType("kagglehub")
    fake.dataset_download = lambda handle: str(download)
    monkeypatch.setitem(sys.modules, "kagglehub", fake)
    target = fetch_system(load_system("chest_xray_pneumonia", data_root=str(tmp_path / "root")))
    assert (target / "train" / "NORMAL" / "a.jpeg").is_file()

    ham_dl = tmp_path / "ham"
    for part, image_id in (("HAM10000_images_part_1", "ISIC_1"), ("HAM10000_images_part_2", "ISIC_2")):
        write_image(ham_dl / part / f"{image_id}.jpg", fmt="JPEG")
    pd.DataFrame({"lesion_id": ["L1", "L2"], "image_id": ["ISIC_1", "ISIC_2"], "dx": ["nv", "mel"]}).to_csv(
        ham_dl / "HAM10000_metadata.csv", index=False)
    manifest = arrange_download(load_system("ham10000"), ham_dl, tmp_path / "root")
    frame = pd.read_csv(manifest)
    assert frame["file"].tolist() == ["images-full/HAM10000_images_part_1/ISIC_1.jpg",
                                      "images-full/HAM10000_images_part_2/ISIC_2.jpg"]
    assert all((manifest.parent / f).is_file() for f in frame["file"])


def test_fetch_offline_is_a_clear_error(monkeypatch):
    fake = types.ModuleType("kagglehub")

    def offline(handle):
        raise ConnectionError("no network")

    fake.dataset_download = offline
    monkeypatch.setitem(sys.modules, "kagglehub", fake)
    with pytest.raises(RuntimeError, match="downloading paultimothymooney/chest-xray-pneumonia .* failed"):
        fetch_system(load_system("chest_xray_pneumonia"))
