"""Helpers for runs under ``torch.distributed`` (launched with ``torchrun``).

Each rank takes a disjoint, non-empty shard of the work; results are combined with sums
(statistics) or gathered objects (rows), and rank 0 reports. Outside ``torchrun`` every
helper degrades to a single process, so callers need no special case.
"""

from __future__ import annotations

import atexit
import os
import sys
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from iqa.errors import IQAError

__all__ = ["DistContext", "init", "shard"]


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size`` (0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    #: The ``torch.distributed`` process group the collectives run in (None: the default one).
    group: Any = None

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce_sum(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Element-wise sums across ranks, in float64 (returned on every rank)."""
        if not self.active:
            return [np.asarray(a, dtype=np.float64) for a in arrays]
        import torch
        import torch.distributed as dist

        out = []
        for a in arrays:
            t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))
            dist.all_reduce(t, op=dist.ReduceOp.SUM, group=self.group)
            out.append(t.numpy())
        return out

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order (on every rank)."""
        if not self.active:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj, group=self.group)
        return out

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier(group=self.group)


def init(backend: str | None = None, group: Any = None) -> DistContext:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1), or use the
    default group the program already initialised (``torch.distributed.init_process_group``),
    or ``group`` (a process group of an initialised ``torch.distributed``).

    The backend is gloo on the CPU and NCCL when CUDA is available, unless given.
    Returns a single-process context otherwise.
    """
    if group is not None:
        import torch.distributed as dist

        return DistContext(rank=dist.get_rank(group), world_size=dist.get_world_size(group), group=group)
    if "torch.distributed" in sys.modules:  # a group the program made itself, however launched
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size())
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        dist.init_process_group(backend=backend)
        # A process group still alive at interpreter exit can abort the process from C++
        # ("terminate called without an active exception"): close the one iqa opened.
        atexit.register(_destroy_process_group)
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size())


def _destroy_process_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def shard(items: Sequence[Any], ctx: DistContext) -> list[Any]:
    """This rank's share of ``items``: every ``world_size``-th item from ``rank`` on.

    Raises:
        IQAError: fewer items than ranks (some shard would be empty).
    """
    if ctx.world_size > len(items):
        raise IQAError(
            f"{len(items)} item(s) cannot be split over {ctx.world_size} ranks without an "
            "empty shard; use fewer processes"
        )
    return list(items[ctx.rank :: ctx.world_size])
