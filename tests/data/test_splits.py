import numpy as np
import pandas as pd
import pytest

from medvision.config import DataConfig
from medvision.data import (
    DataError,
    apply_manifest,
    carve_validation,
    load_csv,
    load_data,
    load_image_folder,
    load_medmnist,
    save_manifest,
    split_table,
)


def _proportions(table, split):
    labels = table.labels[(table.frame["split"] == split).to_numpy()]
    return np.bincount(labels, minlength=table.num_classes) / len(labels)


def test_stratified_split_ratios_and_proportions(shared_data):
    table = load_medmnist("pneumoniamnist", root=shared_data)
    split = split_table(table.with_frame(table.frame.drop(columns="split")), seed=3)
    sizes = split.frame["split"].value_counts(normalize=True)
    assert sizes["train"] == pytest.approx(0.70, abs=0.01)
    assert sizes["val"] == pytest.approx(0.15, abs=0.01)
    assert sizes["test"] == pytest.approx(0.15, abs=0.01)
    overall = np.bincount(split.labels) / len(split)
    for s in ("train", "val", "test"):
        assert np.abs(_proportions(split, s) - overall).max() < 0.01


def test_split_is_reproducible_and_seeded(shared_data):
    table = load_image_folder(shared_data / "chest_xray_224")
    flat = table.with_frame(table.frame.drop(columns="split"))
    a, b, c = split_table(flat, seed=1), split_table(flat, seed=1), split_table(flat, seed=2)
    assert a.frame["split"].tolist() == b.frame["split"].tolist()
    assert a.frame["split"].tolist() != c.frame["split"].tolist()


def test_group_split_keeps_lesions_whole_and_stratifies(shared_data):
    table = load_csv(shared_data / "ham10000" / "subset.csv", path_col="file", label_col="dx",
                     group_col="lesion_id")
    split = split_table(table, seed=0)
    assert split.frame.groupby("group")["split"].nunique().max() == 1
    sizes = split.frame["split"].value_counts(normalize=True)
    assert 0.10 < sizes["test"] < 0.20 and 0.10 < sizes["val"] < 0.20
    overall = np.bincount(split.labels) / len(split)
    for s in ("train", "val", "test"):
        assert np.abs(_proportions(split, s) - overall).max() < 0.05


def test_ungrouped_split_of_ham_leaks_lesions(shared_data):
    """The reason group splits exist: ignoring lesion_id puts one lesion on both sides."""
    table = load_csv(shared_data / "ham10000" / "subset.csv", path_col="file", label_col="dx",
                     group_col="lesion_id")
    split = split_table(table, seed=0, by_group=False)
    assert split.frame.groupby("group")["split"].nunique().max() > 1


def test_carve_validation_from_train_only(shared_data):
    table = load_image_folder(shared_data / "chest_xray_224")
    carved = carve_validation(table, 0.15, seed=0)
    counts = carved.counts()
    assert counts["test"].tolist() == [50, 50]  # official test untouched
    assert counts["val"].sum() == 45 and abs(counts.loc["NORMAL", "val"] - 22.5) <= 1


def test_manifest_round_trip(shared_data, tmp_path):
    cfg = DataConfig(source="csv", name="ham10000/subset.csv", data_root=str(shared_data),
                     path_col="file", label_col="dx", group_col="lesion_id", seed=4)
    table = load_data(cfg)
    path = save_manifest(table, tmp_path / "split.csv")
    again = load_data(DataConfig(**{**cfg.__dict__, "seed": 99, "manifest": str(path)}))
    assert again.frame[["sample_id", "split", "label", "group"]].equals(
        table.frame[["sample_id", "split", "label", "group"]])


def test_manifest_mismatch_is_refused(shared_data, tmp_path):
    table = load_medmnist("breastmnist", root=shared_data)
    path = save_manifest(table, tmp_path / "split.csv")
    manifest = pd.read_csv(path)
    manifest.loc[0, "label"] = 1 - manifest.loc[0, "label"]
    manifest.to_csv(path, index=False)
    with pytest.raises(DataError, match="label"):
        apply_manifest(table, path)


def test_bad_ratios(shared_data):
    table = load_medmnist("breastmnist", root=shared_data)
    with pytest.raises(DataError, match="ratios"):
        split_table(table, ratios=(0, 0.5, 0.5))
