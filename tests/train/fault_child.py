"""Train a tiny run in a process of its own, for the SIGKILL test in ``test_faults.py``.

``python tests/train/fault_child.py RUN_DIR DATA_ROOT [STALL_EPOCH]``: with ``STALL_EPOCH``, the run stops in the
middle of that epoch (after two batches), writes ``RUN_DIR.stalled`` and waits to be killed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from medvision.config import StrategyConfig
from medvision.data import build_tensor_cache, load_medmnist
from medvision.data.splits import stratified_subsample
from medvision.train import loop as training
from tests.train.test_loop import FAST, loaders, model_for


class Stalling:
    """The loader's batches, but the third one never comes: the marker is written and the process waits."""

    def __init__(self, loader, marker: Path):
        self.loader, self.marker = loader, marker

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for i, batch in enumerate(self.loader):
            if i == 2:
                self.marker.touch()
                time.sleep(600)  # killed here, mid-epoch
            yield batch


def stall_in_epoch(epoch: int, marker: Path) -> None:
    real, calls = training.train_one_epoch, {"n": 0}

    def stalling(model, loader, *args, **kwargs):
        if calls["n"] == epoch:
            calls["n"] += 1
            return real(model, Stalling(loader, marker), *args, **kwargs)
        calls["n"] += 1
        return real(model, loader, *args, **kwargs)

    training.train_one_epoch = stalling


def main(run_dir: Path, data_root: str, stall: int | None) -> None:
    # The same data, loaders, model and settings as the in-process resume test in test_training.py.
    table = stratified_subsample(load_medmnist("breastmnist", root=data_root), 96, seed=0)
    train, val = loaders(build_tensor_cache(table, 28, progress=False))
    if stall is not None:
        stall_in_epoch(stall, run_dir.with_name(run_dir.name + ".stalled"))
    result = training.fit(model_for(), train, val, FAST, StrategyConfig("full", lr=1e-3), run_dir, ("m", "b"),
                          resume=True)
    print(json.dumps(result.best_metrics))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else None)
