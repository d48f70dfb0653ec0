"""Device and precision paths: the CUDA code paths (autocast, gradient scaling, channels-last) run here with the
CPU backends; the CUDA test runs where a GPU is present."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medvision.core.devices import autocast_dtype, resolve_device
from medvision.train.loop import train_one_epoch

CPU = torch.device("cpu")


def test_autocast_dtype_rules():
    assert autocast_dtype("auto", CPU) is None and autocast_dtype("off", CPU) is None
    assert autocast_dtype("bf16", CPU) == torch.bfloat16
    with pytest.raises(ValueError, match="fp16' needs a CUDA device"):
        autocast_dtype("fp16", CPU)
    with pytest.raises(ValueError, match="unknown amp"):
        autocast_dtype("half", CPU)
    assert resolve_device("cpu") == CPU
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 2))


def _batches(device, n=4):
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(8, 3, 16, 16, generator=g).to(device), torch.randint(0, 2, (8,), generator=g).to(device))
            for _ in range(n)]


@pytest.mark.parametrize(("dtype", "scaled"), [(torch.bfloat16, False), (torch.float16, True)])
def test_mixed_precision_step_with_cpu_backends(dtype, scaled):
    """The autocast (and, for fp16, GradScaler) path of ``train_one_epoch``, on the CPU backend."""
    net = _net().to(memory_format=torch.channels_last)
    before = [p.detach().clone() for p in net.parameters()]
    scaler = torch.amp.GradScaler("cpu") if scaled else None
    stats = train_one_epoch(net, _batches(CPU), nn.CrossEntropyLoss(), torch.optim.AdamW(net.parameters(), 1e-2),
                            CPU, amp_dtype=dtype, scaler=scaler, channels_last=True, progress=False)
    assert torch.isfinite(torch.tensor(stats["loss"])) and stats["lr"] == 1e-2
    assert all(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    if scaled:
        assert scaler.get_scale() > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("amp", ["auto", "fp16"])
def test_cuda_training_and_evaluation_with_amp_and_channels_last(amp, tmp_path):
    from medvision.config import TrainConfig, parse_strategy
    from medvision.data import TensorLoader
    from medvision.train.loop import evaluate, fit

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 16, 16), generator=g, dtype=torch.uint8).numpy()
    labels = (torch.arange(64) % 2).numpy()
    loader = TensorLoader(images, labels, (0.5,) * 3, (0.25,) * 3, batch_size=16, shuffle=True, out_size=32)
    val = TensorLoader(images, labels, (0.5,) * 3, (0.25,) * 3, batch_size=32, out_size=32)
    net = _net()
    cfg = TrainConfig(epochs=2, amp=amp, device="cuda", progress=False, patience=0)
    result = fit(net, loader, val, cfg, parse_strategy("full"), tmp_path, ("a", "b"))
    assert len(result.history) == 2 and next(net.parameters()).is_cuda
    metrics = evaluate(net, val, torch.device("cuda"), autocast_dtype(amp, torch.device("cuda")))
    assert 0 <= metrics["accuracy"] <= 1


def test_allocator_tuning_is_once_per_process_and_can_be_declined():
    import os
    import subprocess
    import sys

    code = ("import medvision.core.devices as d; first = d.tune_allocator(); print(first, d.tune_allocator() == first, "
            "d._allocator_tuned)")
    tuned = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    if sys.platform.startswith("linux"):
        assert tuned == ["True", "True", "True"]  # glibc here: the thresholds are set
    declined = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={**os.environ, "MEDVISION_MALLOC_TUNING": "0"}).stdout.split()
    assert declined == ["False", "True", "False"]
    own = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}).stdout.split()
    assert own[0] == "False"  # the user's own glibc setting wins
