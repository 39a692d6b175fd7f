"""Timing measurements and heavy runs take turns on one machine.

A benchmark times code; a training run on the same machine (its cores, memory bandwidth, GPU)
would skew the figures. Every timing loop of `apps.bench` runs under `measuring`: an exclusive
lock on a file in the system's temporary folder, held while it times. A heavy run (each run
of ``tsm reproduce``) starts under `heavy_run`: it waits, saying so, while a measurement is
under way, then holds a shared lock on a second file until it ends, so that a measurement that
starts meanwhile knows the machine is busy (`measuring` yields False and says so). Heavy runs
do not stop a measurement from starting; they never start inside one.

POSIX only (``fcntl.flock``); elsewhere, or where the lock files cannot be opened, nothing waits.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

MEASURING_LOCK = "temporal-shift-measuring.lock"
HEAVY_LOCK = "temporal-shift-heavy.lock"
_measuring_here = 0  # measurements under way in this process: a heavy run inside one must not wait for itself


def lock_folder() -> Path:
    """Where the lock files are: the system's temporary folder, shared by every user of the machine."""
    return Path(tempfile.gettempdir())


@contextlib.contextmanager
def _locked(path: Path, *, shared: bool, wait: bool) -> Iterator[bool | None]:
    """Hold ``path``'s flock (shared or exclusive); yields True, False when it is taken elsewhere
    and ``wait`` is off, or None when locking is not possible here."""
    try:
        import fcntl

        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
    except (ImportError, OSError):
        yield None
        return
    try:
        mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(fd, mode)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def measuring(what: str, *, folder: Path | None = None, log: Callable[[str], None] = print) -> Iterator[bool]:
    """Time ``what`` in this block: no heavy run starts meanwhile (another measurement first ends).
    Yields whether the machine was free of heavy runs when it started; if not, says so."""
    global _measuring_here
    where = folder or lock_folder()
    with _locked(where / MEASURING_LOCK, shared=False, wait=True):
        with _locked(where / HEAVY_LOCK, shared=False, wait=False) as quiet:
            pass
        if quiet is False:
            log(f"note: heavy runs (tsm reproduce) are training on this machine while {what} is timed")
        _measuring_here += 1
        try:
            yield quiet is not False
        finally:
            _measuring_here -= 1


@contextlib.contextmanager
def heavy_run(what: str, *, folder: Path | None = None, log: Callable[[str], None] = print) -> Iterator[None]:
    """Run ``what`` (a training run) in this block once no measurement is under way on the machine;
    a measurement that starts meanwhile is told the machine is busy."""
    where = folder or lock_folder()
    if not _measuring_here:
        with _locked(where / MEASURING_LOCK, shared=True, wait=False) as free:
            pass
        if free is False:
            log(f"{what}: waiting for a timing measurement on this machine to end")
            with _locked(where / MEASURING_LOCK, shared=True, wait=True):
                pass
    with _locked(where / HEAVY_LOCK, shared=True, wait=True):
        yield
