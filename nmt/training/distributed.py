"""Data-parallel training under torchrun: which process is which, and how an epoch is shared.

`torchrun --nproc_per_node=N $(which nmt-train) ...` starts N copies of the same command with RANK,
WORLD_SIZE and LOCAL_RANK set; `init_world` turns those into a process group (NCCL for CUDA
tensors, gloo for CPU ones). Without them (WORLD_SIZE unset or 1) nothing here touches torch.distributed.

How an epoch is shared (`updates`): every rank builds the same seeded batch order. Each update takes
the next `world_size * accumulate` batches of that order (a "group"); rank r trains on batches
r, r + world_size, r + 2 * world_size, ... of the group. The last group of an epoch may be short: a
rank left without a batch runs a stand-in batch with weight 0 (so that DDP's gradient all-reduce
still sees every rank) which adds nothing to the gradient. No batch is dropped or used twice, and
the loss of an update is normalised by the target tokens of the whole group, which every rank knows
without communicating (all ranks hold the same lengths), so the gradient is that of the union batch:
one process with `accumulate=K` gives the same update as K processes.
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from nmt.training.runtime import resolve_device


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (rank 0 of 1 without torchrun)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes logs, TensorBoard events and checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over ranks (a no-op in one process); `values` stays on its device."""
        if self.distributed:
            values = values.clone()
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values

    def any(self, flag: bool) -> bool:
        """True on every rank when `flag` is true on at least one (a stop signal reaching one rank)."""
        if not self.distributed:
            return flag
        return bool(self.sum(torch.tensor([int(flag)])).item() > 0)

    def from_main(self, obj):
        """Rank 0's `obj` on every rank (a picklable value such as a validation result)."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj) -> list:
        """Every rank's `obj`, in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        out = [None] * self.size
        dist.all_gather_object(out, obj)
        return out


ONE_PROCESS = World()


def is_main_process(environ=os.environ) -> bool:
    """Rank 0 of a run torchrun started, or a process that runs alone: the one that speaks for the run."""
    return int(environ.get("RANK", "0")) == 0


def init_world(device_name: str) -> tuple[World, torch.device]:
    """The World torchrun describes (environment variables) and this process's device.

    Under torchrun a CUDA run uses GPU LOCAL_RANK whatever `device` names, and the process group
    (created here unless the caller made one) uses NCCL, with gloo beside it for CPU tensors; a CPU run
    uses gloo.
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_name)
    if size <= 1:
        return World(), device
    world = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        # NCCL for GPU tensors, gloo for CPU ones: a CUDA run needs both, since `any` reduces a CPU
        # flag after every update and NCCL alone has no backend for CPU tensors. NCCL needs the
        # current device set first (done above).
        dist.init_process_group("cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo")
    return world, device


def close_world(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


@dataclass
class Update:
    """One optimizer update's share of the epoch for this rank."""

    batches: list[list[int]]   # this rank's batches (example indices); never empty
    weights: list[float]       # 1.0, or 0.0 for the stand-in of a rank left without a batch
    group: list[list[int]]     # every rank's batches of this update
    end: int                   # batches of the epoch consumed once this update is done


def updates(epoch_batches: list[list[int]], start: int, world: World, accumulate: int) -> Iterator[Update]:
    """This rank's updates over `epoch_batches[start:]` (the rule is in the module docstring)."""
    per_update = world.size * accumulate
    for first in range(start, len(epoch_batches), per_update):
        group = epoch_batches[first:first + per_update]
        mine = group[world.rank::world.size]
        weights = [1.0] * len(mine)
        if not mine:  # a short last group: a zero-weight stand-in keeps this rank in the all-reduce
            mine, weights = [group[0]], [0.0]
        yield Update(mine, weights, group, first + len(group))


def updates_per_epoch(n_batches: int, world: World, accumulate: int) -> int:
    return -(-n_batches // (world.size * accumulate))
