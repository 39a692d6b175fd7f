"""Where the commands run: device choice and the distributed (torchrun) helpers they share.

- `resolve_device`: the one device resolver (``auto``, ``cpu``, ``cuda``, ``cuda:N``);
- `Distributed` / `distributed()`: this process's rank in a torchrun job (one process
  without torchrun), sums and gathers over processes;
- `unwrap`: the model inside DDP / DataParallel / ``torch.compile`` wrappers;
- `ignore_sigint`: a DataLoader ``worker_init_fn`` that leaves Ctrl-C to the main process;
- `keep_freed_memory`: glibc keeps freed blocks for reuse (CPU training: no page faults a step).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


def resolve_device(name: str | None = "auto", *, local_rank: int | None = None) -> torch.device:
    """The device ``name`` asks for: ``auto`` (or None) is CUDA when available, else the CPU;
    ``cpu``, ``cuda``, ``cuda:N`` (or another torch device string) as given.

    Asking for CUDA where there is none is an error, as is an unknown name. Under torchrun,
    pass the process's ``local_rank``: a bare ``cuda`` (or ``auto``) is then that GPU.
    """
    name = name or "auto"
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name} asked for but CUDA is not available; use cpu or auto")
    if name == "cuda" and local_rank is not None:
        name = f"cuda:{local_rank}"
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None


@dataclasses.dataclass(frozen=True)
class Distributed:
    """This process's place in the job: rank ``rank`` of ``world`` (1 without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The process that writes files and prints (rank 0)."""
        return self.rank == 0

    def all_sum(self, values: list[float], device: torch.device) -> list[float]:
        """``values`` summed over every process (float64)."""
        t = torch.tensor(values, dtype=torch.float64, device=device)
        if self.world > 1:
            dist.all_reduce(t)
        return t.tolist()

    def any(self, flag: bool, device: torch.device) -> bool:
        """Whether ``flag`` is set in any process (every process must call it)."""
        if self.world == 1:
            return flag
        return self.all_sum([1.0 if flag else 0.0], device)[0] > 0

    def gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj`` (picklable), in rank order."""
        if self.world == 1:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out


@contextmanager
def distributed(device_name: str = "auto") -> Iterator[Distributed]:
    """This process's `Distributed`: from torchrun's ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``,
    joining the process group (nccl for CUDA, else gloo) if no one has yet, and leaving
    the group it joined on exit."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        yield Distributed()
        return
    owns = False
    if not dist.is_initialized():
        use_cuda = device_name != "cpu" and torch.cuda.is_available()
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        owns = True
    try:
        yield Distributed(
            rank=dist.get_rank(), world=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", "0"))
        )
    finally:
        if owns:
            dist.destroy_process_group()


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DDP/DataParallel/compiled wrappers."""
    while hasattr(model, "module") and isinstance(model.module, nn.Module):
        model = model.module
    return getattr(model, "_orig_mod", model)


def ignore_sigint(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: Ctrl-C reaches the whole process group; workers leave
    it to the main process (the trainer then finishes the step and saves a resumable
    checkpoint)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# glibc's mallopt parameters (malloc.h) and the largest M_MMAP_THRESHOLD it accepts on 64-bit
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 << 20
_NEVER_TRIM = 2**31 - 1


def keep_freed_memory() -> bool:
    """Make this process's glibc malloc keep freed memory for reuse instead of handing it back
    to the OS; returns whether it could (False off glibc, where nothing changes).

    A CPU training step allocates and frees the same large tensors (activations, gradients)
    every time. By default glibc serves blocks over its mmap threshold with fresh ``mmap``s
    and trims the heap when they are freed, so each step faults its memory in again: ResNet-18
    TSM at 32x32, batch 16x4 frames, took 15,000-16,000 minor page faults (60 MB) a step. With
    blocks up to 32 MB served from the heap and the heap never trimmed, the faults go (0-300 a
    step), the step takes 0.89x the time and peak memory stays the same, as the same blocks are
    reused (`benchmarks/cpu_allocator.py`). The process keeps its peak
    heap until it exits: `train` calls this for CPU runs, a process of its own or the job's.
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM))
