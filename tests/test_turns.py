"""Timing measurements and heavy runs take turns on the machine (`apps.bench.turns`)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from temporal_shift.apps.bench.turns import HEAVY_LOCK, MEASURING_LOCK, heavy_run, measuring

fcntl = pytest.importorskip("fcntl")


def test_a_heavy_run_waits_for_a_measurement_under_way(tmp_path: Path) -> None:
    fd = os.open(tmp_path / MEASURING_LOCK, os.O_RDONLY | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a benchmark times, in another process
    threading.Timer(0.5, os.close, args=(fd,)).start()  # ... and ends
    lines: list[str] = []
    started = time.perf_counter()
    with heavy_run("run A", folder=tmp_path, log=lines.append):
        waited = time.perf_counter() - started
    assert waited >= 0.4 and lines == ["run A: waiting for a timing measurement on this machine to end"]
    with heavy_run("run B", folder=tmp_path, log=lines.append):  # nothing timing: no wait
        pass
    assert len(lines) == 1


def test_a_measurement_says_when_heavy_runs_train_meanwhile(tmp_path: Path) -> None:
    lines: list[str] = []
    with measuring("x", folder=tmp_path, log=lines.append) as quiet:
        assert quiet
    with (
        heavy_run("run", folder=tmp_path, log=lines.append),
        measuring("the latency of TSM", folder=tmp_path, log=lines.append) as quiet,
    ):
        assert not quiet
        with heavy_run("nested", folder=tmp_path, log=lines.append):  # in the same process: no self-wait
            pass
    assert lines == ["note: heavy runs (tsm reproduce) are training on this machine while the latency of TSM is timed"]
    assert (tmp_path / HEAVY_LOCK).is_file()
