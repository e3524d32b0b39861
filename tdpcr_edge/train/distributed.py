"""Training on several processes through torch.distributed, launched by torchrun.

torchrun starts one process per GPU (or per CPU share) and hands each its place in the
environment (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR/PORT); this module reads it, opens
the process group (NCCL on CUDA, gloo on the CPU) and does the few collective steps the
trainer needs beside DDP's gradient averaging. Elastic restarts (torchrun --max-restarts)
need nothing here: every process of a restarted job resumes from the run's checkpoint.
"""

from __future__ import annotations

import contextlib
import datetime
import inspect
import os
import signal
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..errors import ConfigError, PeerLost, TdpcrError

# DDP keeps buffers rank-local during the step (batch-norm statistics follow each rank's
# micro-batches; they are averaged before checkpoints and validation). torch 2.13 renamed
# broadcast_buffers.
LOCAL_BUFFERS = (
    {"forward_sync_buffers": False}
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
    else {"broadcast_buffers": False}
)


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def from_env() -> World:
    """This process's place in a torchrun job; one process when not launched by torchrun."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError as exc:
        raise ConfigError(
            f"torchrun's environment is malformed ({exc}); launch with torchrun --nproc_per_node=N --no-python tdpcr-edge train ..."
        ) from None
    return World(rank, size, local)


@contextlib.contextmanager
def process_group(world: World, device: torch.device):
    """The job's process group for the duration of a run (nothing on one process)."""
    if not world.distributed or dist.is_initialized():
        yield
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    # A lost peer surfaces as an error of the next collective; a generous timeout covers
    # validation on rank shards of different sizes and checkpoint writes.
    dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30), device_id=device if device.type == "cuda" else None)

    def stopped(signum, frame):
        # torchrun stops the other processes of a job when one fails: one line, not a traceback.
        raise PeerLost(
            f"rank {world.rank} of {world.size}: stopped by the launcher ({signal.Signals(signum).name}), as another process "
            "of the job failed or the job was cancelled; rerun the same command to resume from the last checkpoint"
        )

    previous = signal.signal(signal.SIGTERM, stopped)
    try:
        yield
    except BaseException:
        # Failing: the launcher's SIGTERM, when it comes now, must not cut the error line short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise
    else:
        signal.signal(signal.SIGTERM, previous)
    finally:
        dist.destroy_process_group()


def guarded(world: World, what: str):
    """Turn a collective's failure (a process of the job died or was killed) into one line."""

    @contextlib.contextmanager
    def guard():
        try:
            yield
        except (RuntimeError, dist.DistError) as exc:
            if not world.distributed or isinstance(exc, TdpcrError):
                raise
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            raise PeerLost(
                f"rank {world.rank} of {world.size}: another process of the job was lost {what} ({first}); "
                "rerun the same command to resume from the last checkpoint"
            ) from None

    return guard()


def mean_(tensors: list[torch.Tensor], world: World) -> None:
    """Average ``tensors`` over the ranks, in place, with one collective."""
    if not world.distributed or not tensors:
        return
    flat = torch.cat([t.detach().reshape(-1).to(torch.float64) for t in tensors])
    dist.all_reduce(flat)
    flat /= world.size
    offset = 0
    for t in tensors:
        n = t.numel()
        t.data.copy_(flat[offset : offset + n].view_as(t))
        offset += n


def average_batch_norm(model: nn.Module, world: World) -> None:
    """Average the batch-norm running statistics over the ranks before a checkpoint or a
    validation: DDP does not broadcast buffers here (broadcast_buffers=False), so each rank's
    statistics follow its own micro-batches; the checkpoint takes the mean of all of them."""
    buffers = [
        b
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
        for b in (m.running_mean, m.running_var)
        if b is not None
    ]
    mean_(buffers, world)


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def gather(obj, world: World) -> list | None:
    """Every rank's ``obj`` on rank 0 (None elsewhere)."""
    if not world.distributed:
        return [obj]
    out = [None] * world.size if world.main else None
    dist.gather_object(obj, out, dst=0)
    return out


def broadcast(obj, world: World):
    """Rank 0's ``obj`` on every rank."""
    if not world.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
