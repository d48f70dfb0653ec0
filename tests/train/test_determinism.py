"""Same seed, same thread count, fresh processes: identical training, whether the process built the caches
(tensor cache, converted ImageNet weights) or read them back.

Issue 16 saw the process that built the caches train differently. The cause was the weights cache: converting
the packaged EfficientNet weights built a throw-away timm model, whose random init advanced the seeded global
generator, so the new head of that one run started from other weights.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

RUN = textwrap.dedent("""
    import hashlib, json, sys
    import torch
    from medvision.config import DataConfig
    from medvision.data import build_tensor_cache, load_data
    from medvision.data.splits import stratified_subsample
    from medvision.train.runner import ExperimentConfig, run_strategy
    from medvision.config.run import RunConfig
    from medvision.train.loop import TrainConfig

    torch.set_num_threads(int(sys.argv[2]))
    data_cfg = DataConfig(source="medmnist", name="pneumoniamnist")  # the copy the package ships
    cache = build_tensor_cache(stratified_subsample(load_data(data_cfg), 360), 28, progress=False)
    exp = ExperimentConfig(backbone="tf_efficientnet_lite0", pretrained="package", image_size=32, augment="default")
    summary = run_strategy(cache, "last_k:1", RunConfig(data_cfg, exp, TrainConfig(epochs=2, progress=False, seed=3)),
                           sys.argv[1], resume=False)
    weights = torch.load(f"{sys.argv[1]}/last_k-1/best.pt", weights_only=True)["model"]
    digest = hashlib.sha256(b"".join(v.numpy().tobytes() for v in weights.values())).hexdigest()
    history = open(f"{sys.argv[1]}/last_k-1/history.csv").read().splitlines()
    drop = history[0].split(",").index("seconds")
    rows = [",".join(c for i, c in enumerate(line.split(",")) if i != drop) for line in history]
    print(json.dumps({"val": summary["val"], "test": summary["test"], "weights": digest, "history": rows}))
""")


def _train(tmp_path, name: str, cache_dir, threads: int = 2) -> dict:
    env = {**os.environ, "MEDVISION_CACHE": str(cache_dir / "tensors"), "XDG_CACHE_HOME": str(cache_dir / "xdg")}
    done = subprocess.run([sys.executable, "-c", RUN, str(tmp_path / name), str(threads)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_building_or_reusing_the_tensor_cache_trains_identically(tmp_path):
    cache_dir = tmp_path / "cache"
    built = _train(tmp_path, "built", cache_dir)  # this process decodes the images and converts the weights
    assert any((cache_dir / "tensors").iterdir()) and any((cache_dir / "xdg" / "medvision" / "weights").iterdir())
    reused = _train(tmp_path, "reused", cache_dir)  # this one memory-maps and loads them
    assert built == reused  # weights bit for bit, every epoch's metrics, val and test scores


def test_converting_packaged_weights_leaves_the_global_generator_alone(tmp_path, monkeypatch):
    import torch

    from medvision.models.backbones import package_weights_file

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    path = package_weights_file("tf_efficientnet_lite0")  # converts: the cache is empty
    assert path.is_file() and path.is_relative_to(tmp_path)
    torch.testing.assert_close(torch.rand(3), expected, rtol=0, atol=0)
