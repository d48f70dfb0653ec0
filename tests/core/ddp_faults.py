"""``torchrun ... tests/core/ddp_faults.py FAULT train ...``: the medvision CLI with a fault injected, for the DDP tests.

FAULT is ``crash-rank1`` (rank 1 raises in its first epoch: the job must fail, not hang) or ``stop-epoch3``
(rank 0 dies at the start of epoch 3, after checkpointing epoch 2, and torchrun stops the other rank: a
killed job to resume).
"""

import os
import sys

from medvision.cli import main
from medvision.train import loop as training

fault, args = sys.argv[1], sys.argv[2:]
real = training.train_one_epoch
calls = {"n": 0}


def faulty(*a, **kw):
    if fault == "crash-rank1" and os.environ.get("RANK") == "1":
        raise RuntimeError("simulated crash on rank 1")
    if fault == "stop-epoch3" and os.environ.get("RANK") == "0" and calls["n"] == 2:
        os._exit(137)  # as if killed, after checkpointing epoch 2; torchrun then stops rank 1
    calls["n"] += 1
    return real(*a, **kw)


training.train_one_epoch = faulty
sys.exit(main(args))
