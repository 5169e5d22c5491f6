"""One process or ``torchrun``: process-group set-up from the environment and small collectives.

``torchrun`` (``python -m torch.distributed.run``) sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_distributed` reads them. Without them (or with
``WORLD_SIZE=1``) everything runs in this process and every helper here is a no-op.
Training and evaluation (``eval/runner.py``) share this module.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from .errors import ILRMInputError

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: rank / world_size / local_rank, its device, and whether
    :func:`init_distributed` created the process group (then :func:`shutdown` destroys it)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes shared files and logs."""
        return self.rank == 0


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` → ``cuda:<local_rank>`` when CUDA is available, else CPU; ``"cuda"`` gets the local rank."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ILRMInputError("device 'cuda' was asked for but CUDA is not available; use --device cpu")
        if dev.index is None:
            dev = torch.device("cuda", local_rank)
    return dev


def init_distributed(device: str = "auto", timeout_s: float = 1800.0) -> DistInfo:
    """Join the ``torchrun`` process group if the environment describes one (nccl on CUDA, gloo on CPU).

    Reuses a process group that already exists. Under ``torchrun`` a CUDA device is always
    ``cuda:<LOCAL_RANK>`` (an explicit index would put every rank on one GPU, which NCCL refuses),
    and it becomes the current CUDA device. ``timeout_s`` bounds every collective, barriers
    included: evaluation passes hours, since ranks finish their shards at different times.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world > 1 and dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world <= 1:
        return DistInfo(0, 1, 0, dev, None, False)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    owns = False
    if not dist.is_initialized():
        kwargs: dict[str, Any] = {"backend": backend, "timeout": timedelta(seconds=timeout_s)}
        if dev.type == "cuda":
            kwargs["device_id"] = dev  # binds NCCL to this GPU (eager init, no device guessing in barrier)
        dist.init_process_group(**kwargs)
        owns = True
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dev, dist.get_backend(), owns)


def shutdown(info: DistInfo) -> None:
    """Destroy the process group if :func:`init_distributed` created it."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op in one process); NCCL is told this rank's GPU."""
    if info.distributed:
        if info.device.type == "cuda":
            dist.barrier(device_ids=[info.device.index])
        else:
            dist.barrier()


def all_reduce_mean(info: DistInfo, x: torch.Tensor) -> torch.Tensor:
    """Mean over ranks of a tensor (same shape on every rank); returns a new tensor."""
    x = x.detach().clone()
    if info.distributed:
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        x /= info.world_size
    return x


def all_reduce_sum(info: DistInfo, x: torch.Tensor) -> torch.Tensor:
    """Sum over ranks of a tensor (same shape on every rank); returns a new tensor."""
    x = x.detach().clone()
    if info.distributed:
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def any_rank(info: DistInfo, flag: bool) -> bool:
    """True on every rank if ``flag`` is true on any rank (one tiny all-reduce)."""
    if not info.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def gather_objects(info: DistInfo, obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(info: DistInfo, obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not info.distributed:
        return obj
    box = [obj if info.rank == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def shard(info: DistInfo, items: Sequence[T]) -> list[T]:
    """This rank's share of ``items``: item ``i`` goes to rank ``i % world_size`` (order kept).

    Round-robin rather than contiguous blocks, so ranks get similar mixes when the cost of an item
    drifts along the sequence.
    """
    return [x for i, x in enumerate(items) if i % info.world_size == info.rank]
