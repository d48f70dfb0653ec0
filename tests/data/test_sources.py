import shutil

import pandas as pd
import pytest

from medvision.data import DataError, load_csv, load_image_folder
from tests.conftest import write_image


def test_presplit_folder(shared_data):
    table = load_image_folder(shared_data / "chest_xray_224")
    assert table.class_names == ("NORMAL", "PNEUMONIA")
    assert table.splits == ("train", "test")
    counts = table.counts()
    assert counts.loc["NORMAL", "train"] == 150 and counts.loc["PNEUMONIA", "test"] == 50
    assert all(p.is_file() for p in table.absolute_paths()[:5])


def test_flat_folder(tmp_path):
    for cls in ("aom", "normal", "wax"):
        for i in range(3):
            write_image(tmp_path / cls / f"{i}.png", seed=i)
    table = load_image_folder(tmp_path)
    assert table.class_names == ("aom", "normal", "wax") and len(table) == 9 and not table.splits


def test_empty_class_folder_is_named(tmp_path):
    write_image(tmp_path / "a" / "0.png")
    (tmp_path / "b").mkdir()
    with pytest.raises(DataError, match=r"class folder .*b contains no images"):
        load_image_folder(tmp_path)


def test_single_class_folder(tmp_path):
    write_image(tmp_path / "only" / "0.png")
    with pytest.raises(DataError, match="single class"):
        load_image_folder(tmp_path)


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_image_folder(tmp_path / "nope")


def test_ham10000_csv_with_groups(shared_data):
    table = load_csv(shared_data / "ham10000" / "subset.csv", path_col="file", label_col="dx",
                     group_col="lesion_id")
    assert len(table) == 602 and table.num_classes == 7 and table.has_groups
    assert table.frame["group"].nunique() == 431
    assert table.counts()["all"].tolist() == [86] * 7


@pytest.fixture
def csv_tree(tmp_path):
    for i in range(4):
        write_image(tmp_path / "img" / f"{i}.png", seed=i)
    df = pd.DataFrame({"path": [f"img/{i}.png" for i in range(4)], "label": ["a", "b", "a", "b"],
                       "pid": ["p1", "p1", "p2", "p3"], "split": ["train", "train", "val", "TEST"]})
    return tmp_path, df


def _write(tmp_path, df):
    path = tmp_path / "m.csv"
    df.to_csv(path, index=False)
    return path


def test_csv_split_and_group_columns(csv_tree):
    root, df = csv_tree
    table = load_csv(_write(root, df), group_col="pid", split_col="split")
    assert table.splits == ("train", "val", "test")
    assert table.frame["group"].tolist() == ["p1", "p1", "p2", "p3"]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda df: df.assign(label=["a", "b", "zzz", "b"]), r"line 4: unknown label 'zzz'"),
        (lambda df: df.assign(path=["img/0.png", "img/9.png", "img/2.png", "img/3.png"]),
         r"line 3: file .*9.png does not exist"),
        (lambda df: df.assign(path=["img/0.png", "../../etc/passwd", "img/2.png", "img/3.png"]),
         "escapes the data root"),
        (lambda df: df.assign(label=["a"] * 4), "single class"),
        (lambda df: df.drop(columns=["label"]), r"lacks column\(s\) \['label'\]"),
        (lambda df: df.assign(label=["a", None, "a", "b"]), "line 3: empty label"),
        (lambda df: df.assign(split=["train", "dev", "val", "test"]), "line 3: unknown split 'dev'"),
    ],
)
def test_csv_bad_input(csv_tree, change, message):
    root, df = csv_tree
    with pytest.raises(DataError, match=message):
        load_csv(_write(root, change(df)), split_col="split" if "split" in df else None,
                 class_names=None if "single" in message else ["a", "b"])


def test_csv_known_class_list_and_integer_labels(csv_tree):
    root, df = csv_tree
    table = load_csv(_write(root, df), class_names=["b", "a"])
    assert table.labels.tolist() == [1, 0, 1, 0]
    table = load_csv(_write(root, df.assign(label=[0, 1, 2, 1])))
    assert table.class_names == ("0", "1", "2")


def test_csv_table_names(csv_tree):
    root, df = csv_tree
    assert load_csv(_write(root, df)).name == "m"  # the file's stem
    df.to_csv(root / "manifest.csv", index=False)
    assert load_csv(root / "manifest.csv").name == root.name  # a generic manifest: its folder's name
    assert load_csv(root / "manifest.csv", name="ears").name == "ears"


def test_csv_missing(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_csv(tmp_path / "none.csv")


def test_csv_root_argument(csv_tree, tmp_path_factory):
    root, df = csv_tree
    other = tmp_path_factory.mktemp("elsewhere")
    shutil.move(str(_write(root, df)), other / "m.csv")
    table = load_csv(other / "m.csv", root=root)
    assert table.root == root.resolve()
