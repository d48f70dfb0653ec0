"""Partial activation caching: exact for the views it holds, keyed so a stale entry is never read, atomic."""

import dataclasses
import errno

import numpy as np
import pytest
import torch

from medvision.config import AugmentConfig, StrategyConfig, TrainConfig
from medvision.core.errors import CacheError
from medvision.data import TensorLoader, build_tensor_cache, load_medmnist
from medvision.data.splits import stratified_subsample
from medvision.models.backbones import create_model
from medvision.train import stage_cache as sc
from medvision.train.loop import fit
from medvision.train.strategies import param_groups

FAST = TrainConfig(epochs=3, patience=0, progress=False, scheduler="cosine", seed=1)
FLIPS = AugmentConfig(hflip=0.5, degrees=0, scale=(1, 1), ratio=(1, 1), brightness=0, contrast=0)


@pytest.fixture(scope="module")
def small(shared_data):
    table = stratified_subsample(load_medmnist("breastmnist", root=shared_data), 96, seed=0)
    return build_tensor_cache(table, 28, progress=False)


def loaders(cache, augment=None, out_size=32):
    x, y = cache.split("train")
    vx, vy = cache.split("val")
    mean = std = (0.5, 0.5, 0.5)
    return (TensorLoader(x, y, mean, std, batch_size=32, shuffle=True, augment=augment, out_size=out_size, seed=3),
            TensorLoader(vx, vy, mean, std, batch_size=64, out_size=out_size))


def frozen(name="test_efficientnet", k=2, seed=0):
    torch.manual_seed(seed)
    model = create_model(name, 2, pretrained="none", drop_rate=0.1)
    param_groups(model, StrategyConfig("last_k", k=k))
    return model


@pytest.mark.parametrize("name", ["test_efficientnet", "mobilenetv2_035", "resnet10t"])
def test_prefix_then_suffix_is_the_model(name):
    """The stages compose to ``forward_features``; prefix + suffix give the model's logits exactly."""
    model = frozen(name).eval()
    seq = sc.stages(model)
    n = sc.frozen_stages(model)
    assert seq is not None and 0 < n < len(seq)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(sc.StageSuffix(model, n)(sc.StagePrefix(model, n)(x)), model(x), atol=1e-5)
        views = torch.stack([sc.StagePrefix(model, n)(x), sc.StagePrefix(model, n)(x.flip(3))], 1)
        both = sc.StageSuffix(model, n)(views)
        mean = (model(x).softmax(1) + model(x.flip(3)).softmax(1)) / 2
        assert torch.allclose(both.softmax(1), mean, atol=1e-5)


def test_unknown_architectures_and_head_only_are_not_stage_cached():
    assert sc.stages(torch.nn.Linear(2, 2)) is None and sc.frozen_stages(torch.nn.Linear(2, 2)) == 0
    model = create_model("test_efficientnet", 2, pretrained="none")
    param_groups(model, StrategyConfig("head_only"))
    assert sc.frozen_stages(model) == len(sc.stages(model))
    assert not sc.can_cache_stages(None, sc.frozen_stages(model), len(sc.stages(model)), True, 0.0, False)


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float16, 2e-2)])
def test_cached_activations_reproduce_the_model_logits(small, tmp_path, dtype, tol):
    """Exact up to the storage precision: float32 to 1e-5; fp16 (the default) within ``tol`` of the logits
    (relative rounding 2**-11 per activation, measured well under this bound)."""
    model = frozen().eval()
    n = sc.frozen_stages(model)
    train, val = loaders(small, FLIPS)
    spec = sc.training_views(train, cache_views=4)
    assert spec.count == 2 and spec.random == 0  # flips only: the image and its mirror, exactly
    cache = sc.stage_cache(model, n, train, spec, torch.device("cpu"), tmp_path, dtype=dtype)
    assert cache.built and cache.activations.dtype == dtype and cache.activations.shape[:2] == (2, len(train.images))
    plain = torch.cat(list(sc.view_batches(train, spec, 0)))
    with torch.no_grad():
        want = model(plain)
        got = sc.StageSuffix(model, n)(torch.from_numpy(np.array(cache.activations[0])).float())
        mirrored = sc.StageSuffix(model, n)(torch.from_numpy(np.array(cache.activations[1])).float())
        assert (got - want).abs().max() <= tol * max(1.0, want.abs().max())
        assert (mirrored - model(plain.flip(3))).abs().max() <= tol * max(1.0, want.abs().max())


def test_a_changed_model_split_or_augmentation_rebuilds_and_the_same_one_is_reused(small, tmp_path):
    device = torch.device("cpu")
    model = frozen()
    n = sc.frozen_stages(model)
    train, _ = loaders(small, FLIPS)
    spec = sc.training_views(train, 4)
    first = sc.stage_cache(model, n, train, spec, device, tmp_path)
    again = sc.stage_cache(model, n, train, spec, device, tmp_path)
    assert first.built and not again.built and again.path == first.path
    with torch.no_grad():  # changed weights in a frozen stage
        next(sc.stages(model)[0].parameters()).add_(0.01)
    assert sc.stage_cache(model, n, train, spec, device, tmp_path).path != first.path
    deeper = frozen(k=1)  # another k: another split
    assert sc.frozen_stages(deeper) != n
    assert sc.stage_cache(deeper, sc.frozen_stages(deeper), train, spec, device, tmp_path).built
    heavy, _ = loaders(small, AugmentConfig())  # another augmentation: a pool of random views
    heavy_spec = sc.training_views(heavy, 4)
    assert heavy_spec.count == 4 and heavy_spec.random == 2
    model = frozen()
    assert sc.stage_cache(model, n, heavy, heavy_spec, device, tmp_path).path != first.path
    other = dataclasses.replace(train, images=np.ascontiguousarray(train.images[::-1]))  # other images
    assert sc.stage_cache(model, n, other, spec, device, tmp_path).path != first.path


def test_a_damaged_entry_is_rebuilt(small, tmp_path):
    model = frozen()
    n = sc.frozen_stages(model)
    train, _ = loaders(small, FLIPS)
    spec = sc.training_views(train, 4)
    first = sc.stage_cache(model, n, train, spec, torch.device("cpu"), tmp_path)
    (first.path / "meta.json").write_text("{not json")
    again = sc.stage_cache(model, n, train, spec, torch.device("cpu"), tmp_path)
    assert again.built and again.path == first.path


def test_random_views_are_fixed_draws_of_the_augmentation(small, tmp_path):
    train, _ = loaders(small, AugmentConfig())
    spec = sc.training_views(train, 4)
    a = torch.cat(list(sc.view_batches(train, spec, 2)))
    b = torch.cat(list(sc.view_batches(train, spec, 2)))
    c = torch.cat(list(sc.view_batches(train, spec, 3)))
    plain = torch.cat(list(sc.view_batches(train, spec, 0)))
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, plain)
    other_seed = dataclasses.replace(train, seed=train.seed + 1)  # another training seed shares the pool
    assert sc.training_views(other_seed, 4) == spec
    model = frozen()
    n = sc.frozen_stages(model)
    first = sc.stage_cache(model, n, train, spec, torch.device("cpu"), tmp_path)
    again = sc.stage_cache(model, n, other_seed, sc.training_views(other_seed, 4), torch.device("cpu"), tmp_path)
    assert first.built and not again.built and again.path == first.path


def test_a_full_disk_fails_in_one_line_naming_the_folder_and_leaves_no_entry(small, tmp_path, monkeypatch):
    model = frozen()
    n = sc.frozen_stages(model)
    train, _ = loaders(small, FLIPS)
    spec = sc.training_views(train, 4)
    root = tmp_path / "acts"
    monkeypatch.setattr(sc.shutil, "disk_usage", lambda _: type("U", (), {"free": 10})())
    with pytest.raises(CacheError) as err:
        sc.stage_cache(model, n, train, spec, torch.device("cpu"), root)
    assert str(root) in str(err.value) and "\n" not in str(err.value) and "no space" in str(err.value)
    assert list(root.iterdir()) == []
    monkeypatch.undo()

    calls = {"n": 0}
    real = sc.StagePrefix.forward

    def fills_up(self, x):  # the disk fills while the views are written
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, x)

    monkeypatch.setattr(sc.StagePrefix, "forward", fills_up)
    with pytest.raises(CacheError, match="no space left in .*acts"):
        sc.stage_cache(model, n, train, spec, torch.device("cpu"), root)
    assert list(root.iterdir()) == []
    monkeypatch.undo()
    assert sc.stage_cache(model, n, train, spec, torch.device("cpu"), root).built


def test_last_k_trains_on_cached_stages_as_it_would_on_images(small, tmp_path, monkeypatch):
    """Without augmentation the batches are the same with and without the cache, so (in float32 storage)
    training ends at the same weights; in fp16 at nearly the same."""
    monkeypatch.setattr(sc, "STORAGE_DTYPE", np.float32)
    strategy = StrategyConfig("last_k", k=2, lr=1e-2)
    cached = fit(frozen(), *loaders(small), FAST, strategy, tmp_path / "cached", ())
    plain = fit(frozen(), *loaders(small), dataclasses.replace(FAST, cached_stages=False), strategy,
                tmp_path / "plain", ())
    assert cached.extra["cached"] == ["stages"] and plain.extra["cached"] == []
    assert cached.extra["stage_cache"]["views"] == 1 and cached.trainable_params == plain.trainable_params
    for a, b in zip(cached.history["val_loss"], plain.history["val_loss"], strict=True):
        assert a == pytest.approx(b, abs=1e-4)


def test_two_phase_caches_each_phase_it_can(small, tmp_path):
    strategy = StrategyConfig("two_phase", k=2, lr=1e-2, phase1_epochs=1)
    result = fit(frozen(), *loaders(small, FLIPS), dataclasses.replace(FAST, tta="hflip"), strategy,
                 tmp_path / "run", ())
    assert result.extra["cached"] == ["features", "stages"] and result.extra["stage_cache"]["views"] == 2
    assert len(result.history) == 3 and result.history["val_macro_f1"].notna().all()
    heavy = fit(frozen(), *loaders(small, AugmentConfig()), dataclasses.replace(FAST, cache_views=3),
                StrategyConfig("last_k", k=2, lr=1e-2), tmp_path / "heavy", ())
    assert heavy.extra["stage_cache"]["views"] == 3
    mixed = fit(frozen(), *loaders(small, FLIPS), dataclasses.replace(FAST, mixup=0.2, epochs=1),
                StrategyConfig("last_k", k=2, lr=1e-2), tmp_path / "mixup", ())
    assert mixed.extra["cached"] == []  # mixup blends images: no cache


def test_orphans_of_dead_writers_are_removed_and_an_unwritable_folder_is_one_clear_error(small, tmp_path,
                                                                                          monkeypatch):
    model = frozen()
    n = sc.frozen_stages(model)
    train, _ = loaders(small, FLIPS)
    spec = sc.training_views(train, 4)
    root = tmp_path / "acts"
    orphan = root / ".abc.partial-999999999-deadbeef"  # no such process
    orphan.mkdir(parents=True)
    (orphan / "activations.npy").write_bytes(b"half")
    sc.stage_cache(model, n, train, spec, torch.device("cpu"), root)
    assert not orphan.exists()

    def refused(self, x):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(sc.StagePrefix, "forward", refused)
    with pytest.raises(CacheError, match="cannot write the stage-activation cache in .*acts: Permission denied"):
        sc.stage_cache(frozen(seed=1), n, train, spec, torch.device("cpu"), root)
    assert not list(root.glob(".*.partial-*"))


def test_the_key_tells_architectures_with_same_shaped_weights_apart(small):
    train, _ = loaders(small, FLIPS)
    spec = sc.training_views(train, 4)
    a = frozen()
    torch.manual_seed(0)
    b = create_model("test_efficientnet", 2, pretrained="none", drop_rate=0.1, pad_type="same")  # TF padding
    param_groups(b, StrategyConfig("last_k", k=2))
    b.load_state_dict(a.state_dict())
    n = sc.frozen_stages(a)
    assert sc.cache_key(a, n, train, spec) != sc.cache_key(b, n, train, spec)
