"""DistributedDataParallel with gloo on CPU: two processes started by torchrun from the test."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from medvision.cli import main
from medvision.core.distributed import DistInfo, shard
from medvision.data import TensorLoader

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_args(shared_data: Path, runs: Path) -> list[str]:
    # Head-only, no dropout, no augmentation, 64 training images in global batches of 32: one process and two
    # DDP ranks (16 images each per step, gradients averaged) then compute the same updates.
    sets = ["data.name=chest_xray_224", "data.size=32", "experiment.backbone=test_efficientnet",
            "experiment.pretrained=none", "experiment.image_size=32", "experiment.augment=none",
            "experiment.drop_rate=0.0", "experiment.batch_size=32", "train.epochs=3", "train.cached_head=false",
            "train.scheduler=cosine"]
    args = ["train", "chest_xray_pneumonia", "--data-root", str(shared_data), "--runs-dir", str(runs),
            "--strategy", "head_only", "--limit", "64", "--quiet"]
    for s in sets:
        args += ["--set", s]
    return args


def _torchrun(script: list[str], args: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MEDVISION_DIST_TIMEOUT": "60", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{_free_port()}", "--max_restarts", "0",
           *script, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


def test_shard_covers_every_sample_once_and_pads_training_orders():
    order = np.arange(10)
    parts = [shard(order, DistInfo(r, 3), pad=False) for r in range(3)]
    assert sorted(np.concatenate(parts).tolist()) == list(range(10))
    padded = [shard(order, DistInfo(r, 3), pad=True) for r in range(3)]
    assert {len(p) for p in padded} == {4} and set(np.concatenate(padded)) == set(range(10))


def test_loader_splits_the_global_batch_across_ranks():
    images = np.zeros((64, 3, 8, 8), np.uint8)
    labels = np.arange(64) % 2
    one = TensorLoader(images, labels, (0.5,) * 3, (0.5,) * 3, batch_size=32, shuffle=True, seed=3)
    ranks = [TensorLoader(images, labels, (0.5,) * 3, (0.5,) * 3, batch_size=32, shuffle=True, seed=3,
                          rank=r, world_size=2) for r in range(2)]
    assert len(one) == 2 and [len(r) for r in ranks] == [2, 2] and ranks[0].local_batch_size() == 16
    evaluation = TensorLoader(images, labels, (0.5,) * 3, (0.5,) * 3, batch_size=32, rank=1, world_size=2)
    assert evaluation.positions().tolist() == list(range(1, 64, 2))


@pytest.fixture(scope="module")
def ddp_run(shared_data, tmp_path_factory):
    """One uninterrupted 2-process run of ``medvision train`` (and its stdout)."""
    ddp = tmp_path_factory.mktemp("ddp")
    proc = _torchrun(["-m", "medvision.cli"], _train_args(shared_data, ddp))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return ddp, proc.stdout


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_and_write_one_run_dir(shared_data, tmp_path, ddp_run):
    ddp, stdout = ddp_run
    single = tmp_path / "single"
    assert main(_train_args(shared_data, single)) == 0
    assert "DistributedDataParallel on 2 processes" in stdout
    assert [p.name for p in ddp.iterdir()] == ["head_only-scratch"]  # one run directory, written by rank 0
    run = ddp / "head_only-scratch"
    assert sorted(p.name for p in run.iterdir() if p.name.endswith(".tmp")) == []
    a = json.loads((single / "head_only-scratch" / "summary.json").read_text())
    b = json.loads((run / "summary.json").read_text())
    assert b["world_size"] == 2 and a["world_size"] == 1 and a["best_epoch"] == b["best_epoch"]
    for split in ("val", "test"):
        for metric, value in a[split].items():
            assert b[split][metric] == pytest.approx(value, abs=1e-4), (split, metric)
    # The gathered validation metrics are those of the saved weights evaluated in one process.
    from medvision.evaluate.evaluation import load_run
    from medvision.train.loop import evaluate

    loaded = load_run(run)
    again = evaluate(loaded.model, loaded.loaders["val"], torch.device("cpu"))
    assert again["accuracy"] == pytest.approx(b["val"]["accuracy"], abs=1e-6)


@pytest.mark.slow
def test_a_killed_ddp_job_resumes_to_the_uninterrupted_result(shared_data, tmp_path, ddp_run):
    import pandas as pd

    ddp, _ = ddp_run
    killed = _torchrun([str(REPO / "tests" / "core" / "ddp_faults.py"), "stop-epoch3"], _train_args(shared_data, tmp_path))
    assert killed.returncode != 0
    run = tmp_path / "head_only-scratch"
    assert len(pd.read_csv(run / "history.csv")) == 2 and not (run / "summary.json").exists()
    resumed = _torchrun(["-m", "medvision.cli"], _train_args(shared_data, tmp_path))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    drop = ["seconds"]
    pd.testing.assert_frame_equal(pd.read_csv(run / "history.csv").drop(columns=drop),
                                  pd.read_csv(ddp / "head_only-scratch" / "history.csv").drop(columns=drop))
    a = json.loads((run / "summary.json").read_text())
    b = json.loads((ddp / "head_only-scratch" / "summary.json").read_text())
    assert (a["val"], a["test"]) == (b["val"], b["test"])
    # Started again after it finished, the job changes nothing.
    history = (run / "history.csv").read_text()
    again = _torchrun(["-m", "medvision.cli"], _train_args(shared_data, tmp_path))
    assert again.returncode == 0 and (run / "history.csv").read_text() == history


@pytest.mark.slow
def test_a_crashing_rank_fails_the_job_instead_of_hanging(shared_data, tmp_path):
    proc = _torchrun([str(REPO / "tests" / "core" / "ddp_faults.py"), "crash-rank1"], _train_args(shared_data, tmp_path),
                     timeout=240)
    assert proc.returncode != 0
    assert "simulated crash on rank 1" in proc.stderr


def test_lr_finder_refuses_ddp(monkeypatch):
    from medvision.config import StrategyConfig
    from medvision.core import distributed
    from medvision.train import lr_finder

    monkeypatch.setattr(distributed, "info", lambda: DistInfo(0, 2))
    with pytest.raises(RuntimeError, match="does not support DistributedDataParallel"):
        lr_finder.lr_find(torch.nn.Linear(2, 2), [], StrategyConfig("full"))


def test_gather_leaves_out_a_rank_without_rows(monkeypatch):
    """A split smaller than the world size leaves a rank with no rows (an empty (0, 0) tensor)."""
    from medvision.core import distributed

    mine = (torch.tensor([[2.0, 2.5]]), np.array([1]))
    others = [(torch.tensor([[0.0, 0.5], [4.0, 4.5]]), np.array([0, 2])), (torch.empty(0, 0), np.array([]))]
    monkeypatch.setattr(distributed, "info", lambda: DistInfo(rank=1, world_size=3))
    monkeypatch.setattr(distributed.dist, "all_gather_object",
                        lambda parts, obj: parts.__setitem__(slice(None), [others[0], obj, others[1]]))
    out = distributed.gather_in_order(*mine)
    assert torch.equal(out, torch.tensor([[0.0, 0.5], [2.0, 2.5], [4.0, 4.5]]))
