import numpy as np
import pytest
import torch

from medvision.data import (
    DataError,
    class_weights,
    drop_rare_classes,
    load_csv,
    remap_labels,
    select_classes,
    weighted_sampler,
)


@pytest.fixture
def ham(shared_data):
    return load_csv(shared_data / "ham10000" / "subset.csv", path_col="file", label_col="dx",
                    group_col="lesion_id")


def test_select_classes_relabels_in_given_order(ham):
    four = select_classes(ham, ["nv", "mel", "bcc", "akiec"])
    assert four.class_names == ("nv", "mel", "bcc", "akiec") and len(four) == 4 * 86
    assert set(four.labels) == {0, 1, 2, 3}
    with pytest.raises(DataError, match="no class"):
        select_classes(ham, ["nv", "melanoma"])


def test_drop_rare_classes_is_reported(ham):
    frame = ham.frame[~((ham.frame["label"] == 3) & (ham.frame.index % 10 != 0))]
    table = ham.with_frame(frame)
    with pytest.warns(UserWarning, match=r"dropped 1 class\(es\).*df"):
        kept, report = drop_rare_classes(table, 20)
    assert report["class"].tolist() == ["df"] and "df" not in kept.class_names
    same, empty = drop_rare_classes(ham, 20)
    assert same is ham and empty.empty


def test_remap_merges_classes(ham):
    merged = remap_labels(ham, {"mel": "malignant", "bcc": "malignant", "akiec": "malignant"})
    assert "malignant" in merged.class_names and merged.num_classes == 5
    assert (merged.labels == merged.class_names.index("malignant")).sum() == 3 * 86


def test_class_weights_balance():
    labels = np.array([0] * 90 + [1] * 10)
    w = class_weights(labels, 3)
    assert torch.allclose(w[:2], torch.tensor([100 / 180, 100 / 20]))
    assert w[2] == 0


def test_weighted_sampler_balances_classes():
    labels = np.array([0] * 900 + [1] * 100)
    drawn = labels[list(weighted_sampler(labels, 2, num_samples=4000, seed=0))]
    assert 0.45 < drawn.mean() < 0.55
