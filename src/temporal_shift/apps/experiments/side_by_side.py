"""Independent training runs side by side on a CPU: a process per run, the cores split
between them.

A small model (the demo's ResNet-18 on 32x32 clips: 8x8 maps after the stem, 1x1 in the
last stage) keeps two cores poorly busy from one process. Measured on a quiet 2-core CPU
(TSM ResNet-18, T=4, batch 16, in memory): one process with 2 threads took 0.71 s a step;
two processes with 1 thread each took 1.04 s a step each, 0.52 s a step together, 1.4x the
throughput. `tsm demo` (TSN and TSM) and `tsm reproduce` (its arms) train this way on a
CPU; on a GPU runs go one after another in this process.

Every run is a call of a module-level function with keyword arguments; results come back
in the order of the calls, whatever order the runs finish in. The first run that raises
(or a Ctrl-C: the trainer stops a run under way after its step, saving last.pt, and raises
KeyboardInterrupt) stops the rest: no run starts after it, not even one the pool had already
handed to a worker, and its exception is raised once the running ones end. Idle workers
ignore SIGINT and SIGTERM: a Ctrl-C in the terminal reaches every process of the group, and
only a training loop (its own handler) acts on it. A SIGTERM sent to this process alone (``kill
PID``, a job scheduler) is passed on to the workers, so the runs under way stop as on a Ctrl-C
(each saves its last.pt) instead of training on without a parent.
The processes are spawned (a fresh interpreter each, no fork of a process holding torch's
threads), so a script that calls `run_demo` or `reproduce` at its top level must do so under
``if __name__ == "__main__":``, as with any spawned multiprocessing; ``jobs=1`` avoids it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

MAX_SLOTS = 8  # each process holds its own model, optimizer and torch runtime (~0.5-1 GB)
MAX_LOADER_WORKERS = 8


@dataclass(frozen=True)
class Slots:
    """How many runs train at once (``runs``) and the torch threads each gets (``threads``)."""

    runs: int
    threads: int

    def describe(self) -> str:
        if self.runs == 1:
            return "one run at a time"
        return f"{self.runs} runs side by side, {self.threads} thread{'s' if self.threads > 1 else ''} each"


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def loader_workers(device: str, *, cores: int | None = None) -> int:
    """DataLoader worker processes for one small-model run on ``device`` (a resolved torch
    device string): none on a CPU, where the training keeps every core busy (runs side by
    side, see `plan_slots`) and a worker would only take turns with it; on a GPU one per core
    but one, at most `MAX_LOADER_WORKERS`: there a step of the demo's model takes milliseconds,
    and reading, augmenting and collating its batch in the training process (~25 ms for 16
    clips of 4 32x32 JPEG frames on this 2-core CPU) would leave the GPU waiting."""
    if str(device).startswith("cpu"):
        return 0
    cores = cores or available_cores()
    return max(1, min(MAX_LOADER_WORKERS, cores - 1))


def plan_slots(device: str, runs: int, *, jobs: int | None = None, cores: int | None = None) -> Slots:
    """Runs at once for ``runs`` runs on ``device`` (a resolved torch device string): one on a
    GPU; on a CPU ``jobs`` if given, else one per core (at most `MAX_SLOTS`) and never more
    than there are runs. The cores are split evenly between the runs at once."""
    if jobs is not None and jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}")
    cores = cores or available_cores()
    if not device.startswith("cpu") or runs <= 1:
        return Slots(runs=1, threads=cores)
    at_once = min(runs, jobs if jobs is not None else min(cores, MAX_SLOTS))
    return Slots(runs=at_once, threads=max(1, cores // at_once))


class _NotRun:
    """What a worker returns for a call it did not start because an earlier run raised."""


# A worker process's stop event, set once by `_start_worker` (the pool's initializer): a
# multiprocessing Event reaches a spawned process only at its start, not as a call argument.
_worker_stop: list[Any] = []


def _start_worker(threads: int, stop: Any) -> None:
    import torch

    torch.set_num_threads(threads)
    for signum in (signal.SIGINT, signal.SIGTERM):  # the training loop installs its own handler
        signal.signal(signum, signal.SIG_IGN)
    _worker_stop.append(stop)


def _unless_stopped(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """``fn(**kwargs)`` in a worker, unless a run has already raised (then `_NotRun`); a call
    that raises sets the stop event before its exception goes back, so the call this worker
    takes next, already queued, does not start."""
    stop = _worker_stop[0]
    if stop.is_set():
        return _NotRun()
    try:
        return fn(**kwargs)
    except BaseException:
        stop.set()
        raise


@contextlib.contextmanager
def _pass_on_sigterm(stop: Any) -> Iterator[None]:
    """While the workers run: a SIGTERM to this process sets ``stop``, is sent on to every worker
    (a training loop stops after its step and saves; an idle worker ignores it and starts nothing
    more) and raises KeyboardInterrupt here, the path of a Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers live there only
        yield
        return

    def pass_on(signum: int, frame: Any) -> None:
        stop.set()
        for child in multiprocessing.active_children():
            if child.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGTERM)
        raise KeyboardInterrupt("terminated")

    previous = signal.signal(signal.SIGTERM, pass_on)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_side_by_side(
    fn: Callable[..., Any],
    calls: Sequence[dict[str, Any]],
    slots: Slots,
    *,
    on_done: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """``[fn(**kwargs) for kwargs in calls]``, ``slots.runs`` at a time, each in its own
    (spawned) process with ``slots.threads`` torch threads; in this process when
    ``slots.runs`` is 1. ``on_done(index, result)`` is called as each run finishes."""
    results: list[Any] = [None] * len(calls)
    if slots.runs == 1:
        for i, kwargs in enumerate(calls):
            results[i] = fn(**kwargs)
            if on_done is not None:
                on_done(i, results[i])
        return results
    context = multiprocessing.get_context("spawn")  # no fork of a process that has started torch threads
    stop = context.Event()  # set by the first run that raises, or by this process on Ctrl-C or SIGTERM
    with (
        _pass_on_sigterm(stop),
        concurrent.futures.ProcessPoolExecutor(
            max_workers=slots.runs, mp_context=context, initializer=_start_worker, initargs=(slots.threads, stop)
        ) as pool,
    ):
        futures = {pool.submit(_unless_stopped, fn, kwargs): i for i, kwargs in enumerate(calls)}
        try:
            for future in concurrent.futures.as_completed(futures):
                result = future.result()
                if isinstance(result, _NotRun):  # after a failure, whose exception its own future raises
                    continue
                i = futures[future]
                results[i] = result
                if on_done is not None:
                    on_done(i, results[i])
        except BaseException:
            stop.set()
            for future in futures:
                future.cancel()
            raise
    return results
