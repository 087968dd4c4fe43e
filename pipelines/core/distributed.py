"""One process or many: who this process is in a `torchrun` / `accelerate launch` job, and the
few collectives the pipeline needs around the HF Trainer's own DDP.

    torchrun --nproc_per_node 4 -m pipelines run RECIPE --stage distill
    accelerate launch --num_processes 4 -m pipelines run RECIPE --stage distill

Both launchers export RANK, LOCAL_RANK and WORLD_SIZE; nothing else is read. The rules:

- The training stages (teacher, distill: `Stage.every_rank`) run on every process; the Trainer
  shards each global batch across them and DDP averages the gradients.
- Rank 0 alone writes: manifests, log.txt, saved models, the teacher-logit cache, tables. The
  others wait (`main_first`, `share`) and then read what rank 0 wrote, so the runs folder must be
  one shared filesystem for a multi-node job.
- Which stage to skip is decided once, on rank 0, and broadcast (`share`), so no process reads a
  manifest while rank 0 replaces it.
- Stages after the last training stage (export, quantize, bench, report) run on rank 0 alone; the
  other processes return as soon as no training stage is left.

With WORLD_SIZE unset or 1 every function here is a no-op and `is_main()` is True.

Why not accelerate's `PartialState` for these: it is a process-wide singleton, and the HF Trainer
builds it from `TrainingArguments` (its backend, `use_cpu`, its timeout). Constructing it here,
before the Trainer's arguments exist, would fix those settings first, and for CPU jobs its
constructor picks among gloo, oneCCL and MPI by what is installed. The pipeline instead creates
the launcher's process group once with torch's own call (`init`); PartialState then finds the
group and uses it, and the four collectives here (`barrier`, `share`, `main_first`, `finish`) are
plain torch.distributed calls on that same group.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

# Long, because the other ranks wait at a barrier while rank 0 alone builds the teacher-logit
# cache or evaluates; on CPU that is minutes for a real split (torch's default is 30 minutes).
TIMEOUT = timedelta(hours=3)


@dataclass(frozen=True)
class World:
    rank: int  # global rank, 0..world_size-1
    local_rank: int  # rank on this node: the GPU index
    world_size: int  # processes in the job, all nodes

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def world() -> World:
    """This process's place in the job, from the launcher's environment (1 process if unset)."""

    def env(name: str, default: int) -> int:
        value = os.environ.get(name, "")
        return int(value) if value.strip().lstrip("-").isdigit() else default

    size = max(1, env("WORLD_SIZE", 1))
    rank = env("RANK", 0) if size > 1 else 0
    return World(rank=rank, local_rank=env("LOCAL_RANK", rank) if size > 1 else 0, world_size=size)


def is_main() -> bool:
    return world().is_main


def _initialized() -> bool:
    if not world().distributed:
        return False
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def backend_for(device: str) -> str:
    """NCCL between GPUs, gloo between CPU processes (the backend HF picks for `use_cpu`)."""
    return "nccl" if device == "cuda" else "gloo"


def init(device: str) -> str | None:
    """Join the launcher's process group (once); the backend, or None for one process.

    The Trainer's accelerate state finds the group already there and uses it, so the pipeline's
    own barriers and the Trainer's DDP share one group.
    """
    w = world()
    if not w.distributed:
        return None
    import torch
    import torch.distributed as dist

    backend = backend_for(device)
    if not dist.is_initialized():
        if backend == "nccl":
            torch.cuda.set_device(w.local_rank)
        dist.init_process_group(backend=backend, timeout=TIMEOUT)
        atexit.register(_destroy)  # NCCL warns (and may leak) when a group outlives the process
    return dist.get_backend()


def _destroy() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def finish(code: int) -> int:
    """Leave a multi-process job: `code` back for one process; under a launcher, end it here.

    On success every rank meets at a barrier and leaves the process group while the interpreter
    is whole; then the process ends with os._exit once logs and streams are flushed. Skipping
    interpreter teardown is deliberate: on CPU (gloo), 3 of 95 two-process launches on a loaded
    2-core machine died after their work was done, in C++ static destruction, with "terminate
    called without an active exception" (SIGABRT, no Python frame), even with the group
    destroyed first; the launcher then reported the whole job as failed. Everything the pipeline
    writes is closed (and manifests renamed into place) before this point, so nothing is lost by
    not tearing down.
    """
    if not world().distributed:
        return code
    import logging
    import sys

    if code == 0 and _initialized():
        barrier()
        _destroy()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def barrier() -> None:
    if not _initialized():
        return
    import torch
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def share(value: Any) -> Any:
    """Rank 0's `value` on every rank (a picklable object); `value` itself for one process."""
    if not _initialized():
        return value
    import torch.distributed as dist

    box = [value if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (and writes what it writes); the others run it after.

    Inside, test `is_main()` before writing: the others should find rank 0's files and only read.
    Call it on every rank, or on none: it is a barrier. If rank 0 raises, the launcher stops the
    rest.
    """
    if not _initialized():
        yield
        return
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()
