"""``torchrun ... tests/ddp_crash.py train ...``: the medvision CLI, except that rank 1 crashes in its first
epoch (for the test that a dead rank fails the whole job instead of hanging it)."""

import os
import sys

from medvision import training
from medvision.cli import main

if os.environ.get("RANK") == "1":
    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash on rank 1")

    training.train_one_epoch = crash

sys.exit(main(sys.argv[1:]))
