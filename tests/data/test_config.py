import dataclasses

import pytest

from medvision.config import DataConfig
from medvision.data import DataError, load_data


def test_config_is_frozen_and_serialisable():
    cfg = DataConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.name = "x"  # type: ignore[misc]
    assert DataConfig(**{**cfg.to_dict(), "classes": tuple(cfg.classes), "ratios": tuple(cfg.ratios)}) == cfg


def test_folder_config_keeps_official_test_and_carves_val(shared_data):
    table = load_data(DataConfig(source="folder", name="chest_xray_224", data_root=str(shared_data)))
    assert table.splits == ("train", "val", "test")
    assert table.counts()["test"].sum() == 100


def test_csv_config_with_classes_and_min_per_class(shared_data):
    cfg = DataConfig(source="csv", name="ham10000/subset.csv", data_root=str(shared_data), path_col="file",
                     label_col="dx", group_col="lesion_id", classes=("nv", "mel", "bcc"))
    table = load_data(cfg)
    assert table.class_names == ("nv", "mel", "bcc")
    assert table.frame.groupby("group")["split"].nunique().max() == 1
    with pytest.raises(DataError, match="leaves 0 class"):
        load_data(dataclasses.replace(cfg, min_per_class=1000))


def test_unknown_source():
    with pytest.raises(DataError, match="unknown data source"):
        load_data(DataConfig(source="zip"))  # type: ignore[arg-type]
