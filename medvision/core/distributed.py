"""Distributed data-parallel training with PyTorch's own engine (``torchrun`` + ``torch.distributed``).

Under ``torchrun --nproc_per_node N`` the environment holds ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``;
:func:`setup` then joins the process group (NCCL on CUDA, gloo on CPU) with a timeout, so a rank that dies
makes the others fail instead of hanging. Without those variables everything here is a no-op and
training runs in one process.

What medvision does under DDP (see :func:`medvision.train.loop.fit`):

* every rank builds the same model and the same global sample order (shuffle or class-balanced draws);
  each rank takes every ``WORLD_SIZE``-th sample, so the *global* batch equals ``batch_size`` as in one
  process and DDP's gradient averaging gives the single-process gradient (up to BatchNorm statistics,
  which stay per rank, and augmentation draws);
* validation and test logits are gathered from all ranks and put back in sample order, so metrics,
  checkpoint selection and early stopping are identical on every rank and equal the single-process values
  for the same weights;
* only rank 0 writes the run directory, checkpoints, history and tracking; resume reads ``last.pt`` on
  every rank (multi-node jobs need the run directory on a shared filesystem).

Not distributed: the head-only cached-feature path (under DDP head-only training runs the frozen backbone
on every rank instead) and the LR finder (it refuses to run under DDP).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def info() -> DistInfo:
    """The current process group (or a single process)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return DistInfo()


def launched() -> bool:
    """True when started by ``torchrun`` with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(timeout_s: float | None = None) -> DistInfo:
    """Join the process group described by torchrun's environment (idempotent; a no-op without torchrun).

    The backend is NCCL when CUDA is available, else gloo. ``timeout_s`` (default
    ``$MEDVISION_DIST_TIMEOUT`` or 600 s) bounds every collective, so a dead rank fails the job.
    """
    if not launched() or dist.is_initialized():
        return info()
    timeout = dt.timedelta(seconds=float(timeout_s or os.environ.get("MEDVISION_DIST_TIMEOUT", 600)))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl", timeout=timeout)
    else:
        dist.init_process_group("gloo", timeout=timeout)
    return info()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if info().enabled:
        dist.barrier()


@contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. builds a cache); the others run it after, reusing its result."""
    d = info()
    if d.enabled and not d.is_main:
        dist.barrier()
    yield
    if d.enabled and d.is_main:
        dist.barrier()


def shard(order: np.ndarray, d: DistInfo, pad: bool) -> np.ndarray:
    """This rank's share of a global sample order: every ``world_size``-th sample from ``rank``.

    With ``pad`` (training) the order is first padded by repeating its start, as ``DistributedSampler``
    does, so every rank runs the same number of steps.
    """
    if not d.enabled:
        return order
    if pad and len(order) % d.world_size:
        extra = d.world_size - len(order) % d.world_size
        order = np.concatenate([order, np.resize(order, extra)])
    return order[d.rank::d.world_size]


def gather_in_order(values: torch.Tensor, positions: np.ndarray) -> torch.Tensor:
    """Concatenate every rank's rows and put them back in sample order (``positions`` are this rank's).

    A rank may hold no rows (a split smaller than the number of processes): its empty part is left out.
    """
    d = info()
    if not d.enabled:
        return values
    parts: list = [None] * d.world_size
    dist.all_gather_object(parts, (values.cpu(), np.asarray(positions)))
    parts = [p for p in parts if len(p[1])]
    if not parts:
        return values
    tensors = torch.cat([p[0] for p in parts])
    pos = np.concatenate([p[1] for p in parts])
    out = torch.empty_like(tensors)
    out[torch.from_numpy(pos)] = tensors
    return out
