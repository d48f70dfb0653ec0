import numpy as np
import pytest
import torch

from medvision.baselines import CLASSIFIERS, cached_features, fit_feature_baselines
from medvision.data import TensorLoader


def _features(seed=0, n=(120, 40, 40), d=16, shift=1.5):
    rng = np.random.default_rng(seed)
    out = {}
    for split, m in zip(("train", "val", "test"), n, strict=True):
        y = rng.integers(0, 3, m)
        x = rng.normal(size=(m, d)) + shift * np.eye(3, d)[y]
        out[split] = (torch.from_numpy(x).float(), y)
    return out


def test_every_classifier_is_tuned_on_validation_and_learns():
    table = fit_feature_baselines(_features(), 3)
    assert list(table.index) == list(CLASSIFIERS)
    assert (table["test_balanced_accuracy"] > 0.6).all()  # chance is 1/3
    assert table["chosen_on_val"].str.contains("=").all()


def test_choice_depends_on_validation_not_test():
    feats = _features()
    a = fit_feature_baselines(feats, 3)
    shuffled = dict(feats)
    x, y = feats["test"]
    shuffled["test"] = (x, np.random.default_rng(1).permutation(y))  # destroy test labels
    b = fit_feature_baselines(shuffled, 3)
    assert a["chosen_on_val"].equals(b["chosen_on_val"])
    assert (b["test_balanced_accuracy"] < a["test_balanced_accuracy"]).all()


def test_features_are_cached_once(tmp_path, monkeypatch):
    from medvision import feature_cache
    from medvision.models import create_model

    model = create_model("test_resnet", 2, pretrained="none")
    images = np.random.default_rng(0).integers(0, 256, (10, 3, 16, 16), dtype=np.uint8)
    loaders = {s: TensorLoader(images, np.arange(10) % 2, (0.5,) * 3, (0.5,) * 3) for s in ("train", "val", "test")}
    first = cached_features(model, loaders, tmp_path, "k")
    assert first["train"][0].shape == (10, model.num_features)
    monkeypatch.setattr(feature_cache, "extract_features", lambda *a, **k: pytest.fail("features recomputed"))
    again = cached_features(model, loaders, tmp_path, "k")
    assert torch.equal(again["val"][0], first["val"][0])
