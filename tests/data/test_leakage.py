import numpy as np
import pandas as pd
from PIL import Image

from medvision.data import leakage_report, load_csv, load_image_folder, summarize_leakage
from medvision.data.leakage import near_duplicate_pairs


def _photo(seed):
    """A smooth random image (perceptual hashes need structure, not white noise)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((64, 64), Image.Resampling.BICUBIC))


def test_exact_and_near_duplicates_across_splits(tmp_path):
    base = _photo(0)
    for split, cls, name, arr in [
        ("train", "a", "orig.png", base),
        ("test", "a", "copy.png", base),  # exact duplicate, cross split
        ("train", "b", "bright.png", np.clip(base.astype(int) + 6, 0, 255).astype(np.uint8)),  # near
        ("train", "b", "other.png", _photo(1)),
        ("test", "b", "third.png", _photo(2)),
    ]:
        path = tmp_path / split / cls / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(path)
    table = load_image_folder(tmp_path)
    report = leakage_report(table)
    exact = report[report["kind"] == "exact"]
    assert len(exact) == 1 and set(exact[["sample_a", "sample_b"]].iloc[0]) == {
        "train/a/orig.png", "test/a/copy.png"} and exact["cross_split"].iloc[0]
    near = report[report["kind"] == "near"]
    assert {"train/b/bright.png"} <= set(near["sample_a"]) | set(near["sample_b"])
    assert not (set(report["sample_a"]) | set(report["sample_b"])) & {"train/b/other.png",
                                                                      "test/b/third.png"}
    summary = summarize_leakage(report)
    assert summary.loc["exact", "cross_split"] == 1


def test_group_leakage_is_reported(shared_data):
    table = load_csv(shared_data / "ham10000" / "subset.csv", path_col="file", label_col="dx",
                     group_col="lesion_id")
    lesion = table.frame["group"].value_counts().index[0]  # a lesion with several images
    split = np.where(table.frame["group"] == lesion, "train", "val").astype(object)
    split[np.flatnonzero(table.frame["group"] == lesion)[0]] = "test"
    report = leakage_report(table.with_frame(table.frame.assign(split=split)))
    groups = report[report["kind"] == "group"]
    assert groups["group"].tolist() == [lesion]


def test_near_duplicate_pairs_hamming():
    hashes = np.array([0b0, 0b111, 0b1, 0b11110000], dtype=np.uint64)
    i, j, d = near_duplicate_pairs(hashes, max_distance=1)
    assert sorted(zip(i.tolist(), j.tolist(), d.tolist(), strict=True)) == [(0, 2, 1)]
    i, _, _ = near_duplicate_pairs(hashes, max_distance=3, chunk=1)
    assert len(i) == 3


def test_empty_report_summary():
    assert summarize_leakage(pd.DataFrame(columns=["kind", "cross_split"])).to_numpy().sum() == 0
