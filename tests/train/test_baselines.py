import numpy as np
import pytest
import torch

from medvision.data import TensorLoader
from medvision.train.baselines import CLASSIFIERS, cached_features, fit_feature_baselines


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
    from medvision.models.backbones import create_model
    from medvision.train import baselines

    model = create_model("test_resnet", 2, pretrained="none")
    images = np.random.default_rng(0).integers(0, 256, (10, 3, 16, 16), dtype=np.uint8)
    loaders = {s: TensorLoader(images, np.arange(10) % 2, (0.5,) * 3, (0.5,) * 3) for s in ("train", "val", "test")}
    first = cached_features(model, loaders, tmp_path, "k")
    assert first["train"][0].shape == (10, model.num_features)
    monkeypatch.setattr(baselines, "extract_features", lambda *a, **k: pytest.fail("features recomputed"))
    again = cached_features(model, loaders, tmp_path, "k")
    assert torch.equal(again["val"][0], first["val"][0])


def test_frozen_features_share_one_key_scheme(shared_data, tmp_path):
    from medvision.config import DataConfig, ExperimentConfig
    from medvision.data.pipeline import load_cached_split
    from medvision.train.baselines import feature_key, frozen_features

    cache = load_cached_split(DataConfig(source="medmnist", name="breastmnist", data_root=str(shared_data)), 40)
    exp = ExperimentConfig(backbone="test_resnet", pretrained="none", image_size=32)
    features, model, used = frozen_features(cache, exp, tmp_path)
    assert used == exp and features["train"][0].shape == (cache.table.split_sizes()["train"], model.num_features)
    assert len(list(tmp_path.glob("features-*.pt"))) == 1
    frozen_features(cache, exp, tmp_path)  # the same data and model: the same file
    assert len(list(tmp_path.glob("features-*.pt"))) == 1
    frozen_features(cache, ExperimentConfig(backbone="test_resnet", pretrained="none", image_size=24), tmp_path)
    assert len(list(tmp_path.glob("features-*.pt"))) == 2  # another input size: another key
    assert feature_key(cache, exp, model.weights_source) != feature_key(cache.subset(range(10)), exp,
                                                                         model.weights_source)
