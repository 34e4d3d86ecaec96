"""Multi-process training with ``torch.distributed`` (DDP), as launched by ``torchrun``.

``torchrun --nproc_per_node=N -m htaf run EXPERIMENT ...`` sets ``WORLD_SIZE``,
``RANK`` and ``LOCAL_RANK``; :func:`setup` then joins the process group (NCCL
on CUDA, gloo on CPU). Without those variables everything here is a no-op for
a single process.

>>> ctx = setup(torch.device("cpu"))  # no torchrun: one process
>>> ctx.world_size, ctx.is_main
(1, True)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that prints progress and writes files."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def from_env() -> DistContext:
    """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` as set by torchrun (defaults: one process)."""
    return DistContext(
        rank=int(os.environ.get("RANK", 0)),
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
    )


def setup(device: torch.device) -> DistContext:
    """Join the process group once when launched with ``WORLD_SIZE > 1``."""
    ctx = from_env()
    if ctx.active and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device if device.index is not None else ctx.local_rank)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return ctx


def shutdown() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """``model`` wrapped in DDP when several processes train it, else unchanged."""
    if not ctx.active:
        return model
    device_ids = [torch.cuda.current_device()] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def sum_across_ranks(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Element-wise sum of ``values`` over all ranks (identity for one process)."""
    if ctx.active:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op for one process)."""
    if ctx.active:
        dist.barrier()
