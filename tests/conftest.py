"""Shared fixtures: the real data in ../shared/data, and a private tensor cache per test session."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MEDVISION_TEST_DATA", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or ``$MEDVISION_TEST_DATA``): real MedMNIST, chest X-ray and HAM10000 files."""
    if not (SHARED_DATA / "medmnist").is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA} (set MEDVISION_TEST_DATA)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep tensor caches and downloads of the tests out of the user's ~/.cache."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("MEDVISION_CACHE", str(base / "tensor-cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(base / "xdg-cache"))
    monkeypatch.delenv("MEDVISION_DATA", raising=False)


def write_image(path: Path, size: tuple[int, int] = (32, 24), seed: int = 0, mode: str = "RGB",
                fmt: str | None = None) -> Path:
    """Write a small random image (for building bad-input trees)."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    img = Image.fromarray(arr).convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt)
    return path


@pytest.fixture(scope="session")
def tiny_run(shared_data, tmp_path_factory) -> Path:
    """One finished run (random-init test model, BreastMNIST subset, 2 epochs): for export and inference."""
    from medvision.config import DataConfig, ExperimentConfig, StrategyConfig, TrainConfig
    from medvision.config.run import RunConfig
    from medvision.data import build_tensor_cache, load_data
    from medvision.data.splits import stratified_subsample
    from medvision.train.runner import run_strategy

    base = tmp_path_factory.mktemp("tiny-run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDVISION_CACHE", str(tmp_path_factory.getbasetemp() / "tensor-cache"))
        data_cfg = DataConfig(source="medmnist", name="breastmnist", data_root=str(shared_data))
        cache = build_tensor_cache(stratified_subsample(load_data(data_cfg), 120), 28, progress=False)
        exp = ExperimentConfig(backbone="test_efficientnet", pretrained="none", image_size=32, augment="flip")
        config = RunConfig(data_cfg, exp, TrainConfig(epochs=2, progress=False), StrategyConfig(lr=1e-2))
        run_strategy(cache, "full", config, base)
    return base / "full-scratch"


@pytest.fixture(scope="session")
def tiny_bundle(tiny_run, tmp_path_factory) -> Path:
    """``tiny_run`` exported with descriptions and a checked ``torch.export`` file."""
    from medvision.deploy.export import export_bundle

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDVISION_CACHE", str(tmp_path_factory.getbasetemp() / "tensor-cache"))
        return export_bundle(tiny_run, tmp_path_factory.mktemp("bundles") / "breast",
                             descriptions={"malignant": "Suspicious for malignancy: biopsy decides."},
                             formats=("pt2",))


@pytest.fixture
def fake_mlflow(monkeypatch):
    """An ``mlflow`` module that records every call (the ``[track]`` extra is not a test dependency)."""
    import sys
    import types

    calls = []
    mod = types.ModuleType("mlflow")
    for name in ("set_tracking_uri", "set_experiment", "start_run", "end_run", "log_params", "log_metrics",
                 "log_artifact"):
        setattr(mod, name, lambda *a, _n=name, **k: calls.append((_n, a, k)))
    monkeypatch.setitem(sys.modules, "mlflow", mod)
    return calls
