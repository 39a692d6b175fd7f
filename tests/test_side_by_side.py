"""`side_by_side`: how runs share the machine, and that spawned runs come back in order,
with their share of the threads, and that a failing run stops the rest."""

from __future__ import annotations

import os

import pytest

from temporal_shift.apps.experiments.side_by_side import (
    MAX_LOADER_WORKERS,
    MAX_SLOTS,
    Slots,
    loader_workers,
    plan_slots,
    run_side_by_side,
)


def test_plan_splits_the_cpu_and_keeps_a_gpu_to_one_run() -> None:
    assert plan_slots("cpu", 2, cores=2) == Slots(runs=2, threads=1)
    assert plan_slots("cpu", 6, cores=2) == Slots(runs=2, threads=1)
    assert plan_slots("cpu", 6, cores=16) == Slots(runs=6, threads=2)
    assert plan_slots("cpu", 40, cores=64) == Slots(runs=MAX_SLOTS, threads=8)
    assert plan_slots("cpu", 2, cores=1) == Slots(runs=1, threads=1)
    assert plan_slots("cpu", 1, cores=8) == Slots(runs=1, threads=8)
    assert plan_slots("cpu", 6, jobs=1, cores=4) == Slots(runs=1, threads=4)
    assert plan_slots("cpu", 6, jobs=3, cores=4) == Slots(runs=3, threads=1)
    assert plan_slots("cuda:0", 6, cores=16).runs == 1
    assert plan_slots("cpu", 2, cores=2).describe() == "2 runs side by side, 1 thread each"
    assert plan_slots("cpu", 2, jobs=1, cores=2).describe() == "one run at a time"
    with pytest.raises(ValueError, match="--jobs must be at least 1, got 0"):
        plan_slots("cpu", 2, jobs=0)


def test_batches_load_in_the_run_on_a_cpu_and_in_workers_on_a_gpu() -> None:
    assert loader_workers("cpu", cores=16) == 0
    assert loader_workers("cuda:0", cores=4) == 3  # one core stays with the training process
    assert loader_workers("cuda", cores=64) == MAX_LOADER_WORKERS
    assert loader_workers("cuda", cores=1) == 1
    assert loader_workers("cpu") == 0  # this machine's cores


def report(*, tag: str, fail: bool = False) -> tuple[str, int, int]:
    """A run: its tag, its process and its torch threads; raises if ``fail``."""
    import torch

    if fail:
        raise ValueError(f"run {tag} failed")
    return tag, os.getpid(), torch.get_num_threads()


def test_spawned_runs_come_back_in_call_order_with_their_threads() -> None:
    seen: list[int] = []
    calls = [{"tag": t} for t in "abc"]
    results = run_side_by_side(report, calls, Slots(runs=2, threads=1), on_done=lambda i, r: seen.append(i))
    assert [r[0] for r in results] == ["a", "b", "c"]
    assert all(pid != os.getpid() for _, pid, _ in results)  # each in a worker process
    assert {threads for _, _, threads in results} == {1}
    assert sorted(seen) == [0, 1, 2]


def test_one_slot_runs_in_this_process() -> None:
    results = run_side_by_side(report, [{"tag": "a"}, {"tag": "b"}], Slots(runs=1, threads=2))
    assert [(tag, pid) for tag, pid, _ in results] == [("a", os.getpid()), ("b", os.getpid())]


@pytest.mark.parametrize("runs", [1, 2])
def test_a_failing_run_raises_its_error(runs: int) -> None:
    calls = [{"tag": "a"}, {"tag": "b", "fail": True}, {"tag": "c"}]
    with pytest.raises(ValueError, match="run b failed"):
        run_side_by_side(report, calls, Slots(runs=runs, threads=1))


def mark(*, tag: str, folder: str, interrupt: bool = False, seconds: float = 0.0) -> str:
    """A run that notes its start in ``folder`` and then raises KeyboardInterrupt if
    ``interrupt`` (as the trainer does after a Ctrl-C), else sleeps ``seconds``."""
    import time
    from pathlib import Path

    (Path(folder) / tag).touch()
    if interrupt:
        raise KeyboardInterrupt(f"run {tag} interrupted")
    time.sleep(seconds)
    return tag


def test_an_interrupted_run_starts_no_further_run(tmp_path) -> None:
    # The pool hands queued calls to a worker before their turn; after the first run raises,
    # none of them may start (before, a Ctrl-C of `tsm reproduce` stopped the runs under way
    # and the pool went on with the next two).
    calls = [{"tag": "first", "folder": str(tmp_path), "interrupt": True}]
    calls += [{"tag": tag, "folder": str(tmp_path), "seconds": 1.0} for tag in ("a", "b", "c", "d", "e")]
    with pytest.raises(KeyboardInterrupt, match="run first interrupted"):
        run_side_by_side(mark, calls, Slots(runs=2, threads=1))
    started = sorted(p.name for p in tmp_path.iterdir())
    # "first" ran; "a" may have started on the other worker before "first" raised; no other
    assert started in (["first"], ["a", "first"])


def test_idle_workers_ignore_sigint() -> None:
    import signal as signals

    results = run_side_by_side(handler_of_sigint, [{"tag": "a"}, {"tag": "b"}], Slots(runs=2, threads=1))
    assert results == [signals.SIG_IGN, signals.SIG_IGN]


def handler_of_sigint(*, tag: str) -> object:
    import signal as signals

    return signals.getsignal(signals.SIGINT)


def until_sigterm(*, tag: str, folder: str, send: bool = False) -> str:
    """A run that notes its start, and, as the trainer does, stops on SIGTERM: notes it (the trainer
    saves last.pt) and raises KeyboardInterrupt. ``send``: first SIGTERM its parent alone, once
    the other run has started. Without a SIGTERM it gives up after 20 s and returns."""
    import signal as signals
    import time
    from pathlib import Path

    stopped = []
    signals.signal(signals.SIGTERM, lambda signum, frame: stopped.append(signum))
    (Path(folder) / tag).touch()
    deadline = time.monotonic() + 20
    if send:
        while len(list(Path(folder).iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getppid(), signals.SIGTERM)
    while not stopped and time.monotonic() < deadline:
        time.sleep(0.02)
    if stopped:
        (Path(folder) / f"{tag}-saved").touch()
        raise KeyboardInterrupt(f"run {tag} stopped")
    return tag


def test_a_sigterm_to_the_parent_alone_stops_the_runs_under_way_and_starts_none(tmp_path) -> None:
    # before, the parent died and its workers trained on, an orphan each, to the end of their run
    import multiprocessing
    import signal as signals

    before = signals.getsignal(signals.SIGTERM)
    calls = [{"tag": "sender", "folder": str(tmp_path), "send": True}, {"tag": "other", "folder": str(tmp_path)}]
    calls += [{"tag": tag, "folder": str(tmp_path)} for tag in ("c", "d")]
    with pytest.raises(KeyboardInterrupt):
        run_side_by_side(until_sigterm, calls, Slots(runs=2, threads=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "other-saved", "sender", "sender-saved"]
    assert multiprocessing.active_children() == []
    assert signals.getsignal(signals.SIGTERM) == before
