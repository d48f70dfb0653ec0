import shutil
import urllib.error

import medmnist
import numpy as np
import pytest

from medvision.data import DataError, DataNotFoundError, load_medmnist
from medvision.data import medmnist_files as mf


def test_url_and_md5_come_from_medmnist_metadata():
    assert mf.url_and_md5("pneumoniamnist") == (medmnist.INFO["pneumoniamnist"]["url"],
                                                medmnist.INFO["pneumoniamnist"]["MD5"])
    assert mf.url_and_md5("dermamnist", 64) == (medmnist.INFO["dermamnist"]["url_64"],
                                                medmnist.INFO["dermamnist"]["MD5_64"])
    assert mf.file_name("breastmnist", 128) == "breastmnist_128.npz"


def test_unknown_and_3d_sets_are_refused():
    with pytest.raises(DataError, match="unknown MedMNIST"):
        mf.medmnist_info("nosuchmnist")
    with pytest.raises(DataError, match="3D"):
        mf.medmnist_info("organmnist3d")
    with pytest.raises(DataError, match="size"):
        mf.file_name("pneumoniamnist", 32)


def test_load_official_pneumoniamnist(shared_data):
    table = load_medmnist("pneumoniamnist", root=shared_data)
    assert table.class_names == ("normal", "pneumonia")
    counts = table.counts()
    assert counts.loc["normal", "train"] == 1214 and counts.loc["pneumonia", "train"] == 3494
    assert counts.loc["normal", "test"] == 234 and counts.loc["pneumonia", "val"] == 389
    assert table.images.shape == (5856, 28, 28)
    assert table.provenance["md5"] == "28209eda62fecd6e6a2d98b1501bb15f"


def test_load_rgb_retinamnist(shared_data):
    table = load_medmnist("retinamnist", root=shared_data)
    assert table.num_classes == 5 and table.images.shape == (1600, 28, 28, 3)


def test_md5_mismatch_is_a_clear_error(shared_data, tmp_path):
    bad = tmp_path / "medmnist" / "breastmnist.npz"
    bad.parent.mkdir()
    data = bytearray((shared_data / "medmnist" / "breastmnist.npz").read_bytes())
    data[-10] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(DataError, match="md5"):
        load_medmnist("breastmnist", root=tmp_path)


def test_offline_download_says_where_to_put_the_file(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(mf.urllib.request, "urlopen", offline)
    with pytest.raises(DataNotFoundError) as err:
        load_medmnist("dermamnist", root=tmp_path)
    msg = str(err.value)
    assert "zenodo.org" in msg and str(tmp_path / "medmnist" / "dermamnist.npz") in msg
    assert not list((tmp_path / "medmnist").glob("*")), "a failed download must leave no partial file"


def test_download_verifies_md5_and_saves(shared_data, tmp_path, monkeypatch):
    src = shared_data / "medmnist" / "breastmnist.npz"
    monkeypatch.setattr(mf, "url_and_md5", lambda name, size=28: (src.as_uri(), mf.md5sum(src)))
    # dermamnist is neither bundled nor in the data root, so it must be downloaded (here: the local copy)
    table = load_medmnist("dermamnist", root=tmp_path / "root")
    assert (tmp_path / "root" / "medmnist" / "dermamnist.npz").is_file()
    assert len(table) == 780

    monkeypatch.setattr(mf, "url_and_md5", lambda name, size=28: (src.as_uri(), "0" * 32))
    with pytest.raises(DataError, match="expected"):
        mf.download("dermamnist", 28, tmp_path / "other")
    assert not list((tmp_path / "other" / "medmnist").iterdir())


def test_not_an_npz(tmp_path, monkeypatch):
    path = tmp_path / "medmnist" / "breastmnist.npz"
    path.parent.mkdir()
    shutil.copy(__file__, path)
    with pytest.raises(DataError, match="not a MedMNIST npz"):
        load_medmnist("breastmnist", root=tmp_path, verify=False)


def test_bundled_files_are_found_without_a_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDVISION_DATA", str(tmp_path))  # empty root: falls back to the repo's data/
    table = load_medmnist("breastmnist", download_missing=False)
    assert np.bincount(table.labels).tolist() == [210, 570]
