import numpy as np
import pytest
import torch

from medvision.config import AugmentConfig
from medvision.data import TensorLoader, augment_batch, normalize
from medvision.data.loader import normalization_from_model


def _images(n=20, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8), rng.integers(0, 3, n)


def test_batches_shapes_and_normalisation():
    images, labels = _images()
    loader = TensorLoader(images, labels, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), batch_size=8)
    batches = list(loader)
    assert len(batches) == len(loader) == 3
    x, y = batches[0]
    expected = (torch.from_numpy(images[:8]).float() / 255 - 0.5) / 0.25
    assert torch.allclose(x, expected) and y.tolist() == labels[:8].tolist()


def test_shuffle_and_augmentation_are_seeded_per_epoch():
    images, labels = _images()
    kw = dict(mean=(0.5,) * 3, std=(0.5,) * 3, batch_size=8, shuffle=True, augment=AugmentConfig(), seed=3)
    a, b = TensorLoader(images, labels, **kw), TensorLoader(images, labels, **kw)
    xa, ya = next(iter(a))
    xb, yb = next(iter(b))
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    b.set_epoch(1)
    assert not torch.equal(next(iter(b))[0], xa)


def test_out_size_and_drop_last():
    images, labels = _images(n=10)
    loader = TensorLoader(images, labels, mean=(0,) * 3, std=(1,) * 3, batch_size=4, out_size=24,
                          augment=AugmentConfig(), drop_last=True)
    shapes = [x.shape for x, _ in loader]
    assert shapes == [(4, 3, 24, 24)] * 2


def test_balanced_sampling():
    images = np.zeros((1000, 3, 4, 4), np.uint8)
    labels = np.array([0] * 900 + [1] * 100)
    loader = TensorLoader(images, labels, mean=(0,) * 3, std=(1,) * 3, batch_size=500, balanced=True)
    drawn = torch.cat([y for _, y in loader]).float()
    assert 0.4 < drawn.mean().item() < 0.6


def test_horizontal_flip_is_exact():
    x = torch.rand(2, 3, 8, 8)
    cfg = AugmentConfig(hflip=1.0, degrees=0, scale=(1, 1), ratio=(1, 1), brightness=0, contrast=0)
    out = augment_batch(x.clone(), cfg, torch.Generator().manual_seed(0))
    assert torch.allclose(out, torch.flip(x, dims=[3]), atol=1e-5)


def test_identity_config_and_value_range():
    assert AugmentConfig.none().is_identity and not AugmentConfig().is_identity
    x = torch.rand(4, 3, 16, 16)
    out = augment_batch(x, AugmentConfig(brightness=0.5, contrast=0.5, saturation=0.5, degrees=30),
                        torch.Generator().manual_seed(1))
    assert out.min() >= 0 and out.max() <= 1


def test_bad_inputs():
    with pytest.raises(ValueError, match="uint8"):
        TensorLoader(np.zeros((2, 3, 4, 4), np.float32), np.zeros(2), mean=(0,) * 3, std=(1,) * 3)
    with pytest.raises(ValueError, match="labels"):
        TensorLoader(np.zeros((2, 3, 4, 4), np.uint8), np.zeros(3), mean=(0,) * 3, std=(1,) * 3)


def test_normalisation_comes_from_timm_config():
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=2)
    cfg = normalization_from_model(model)
    assert tuple(cfg["mean"]) == (0.5, 0.5, 0.5) and cfg["input_size"] == (3, 224, 224)
    x = normalize(torch.ones(1, 3, 2, 2), cfg["mean"], cfg["std"])
    assert torch.allclose(x, torch.ones_like(x))
