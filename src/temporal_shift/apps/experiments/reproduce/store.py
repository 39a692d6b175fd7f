"""The run store of `tsm reproduce`: every finished run kept on disk by its resolved settings.

A run is one arm of one experiment with one seed. What makes it *that* run (`run_settings`)
is everything that goes into its training and test: the model config with defaults filled
in, the data, optimizer and run sections of its `TrainConfig` (the data folder and the
loader's worker count left out), the generator settings and seed of its synthetic data
(from the data's meta.json), the device kind (cpu, cuda) and the test protocol. Its key
(`run_key`) is a hash of them, so any experiment, in this invocation or a later one, that
needs the same run finds it: ``tsm reproduce all`` can be spread over several sittings.

Layout under the store's root (``<out>/runs``)::

    <key>/              the run folder: `tsm train`'s files (last.pt, log.csv, tb/), settings.json
    <key>.json          the finished run's record (metrics, params, GMACs, time, checkpoint),
                        written atomically after the test: present = finished
    <key>.lock          held while a process trains the run (two invocations never train one run twice)

A run folder without a record is an interrupted run: its last.pt (written every epoch and on
Ctrl-C/SIGTERM) is resumed; one that cannot be resumed (damaged, cut short) is trained again
from scratch, and the run's line says why. A record is written by a rename, so never half: one
that is not as this store writes it (unreadable, another key's, a metric missing, settings that
do not hash to its key, its checkpoint gone) is an error naming the file, never used and never
silently replaced (``--fresh`` replaces it). A changed recipe, data or model gives another key,
so the old record is simply not found.
``fresh`` ignores the records and folders of earlier invocations (they are trained again;
a run trained earlier in the same invocation is still reused).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from temporal_shift.apps.experiments.recipe import Arm, TrainingBudget, arm_config

STORE_VERSION = 1  # bump when a record's meaning changes: every run is then trained again
# how a run is tested (`recipe.train_and_test`); part of the key, so a change retrains
TEST_PROTOCOL = "val split, one centre clip of T segments, centre crop, last.pt"
SETTINGS_FILE = "settings.json"


def dataset_settings(data_root: Path) -> dict[str, Any]:
    """The generator settings and seed of the synthetic dataset in ``data_root`` (its
    meta.json), or the folder's resolved path for other data."""
    from temporal_shift.data.synthetic import META_FILE

    meta = Path(data_root) / META_FILE
    try:
        return {"synthetic": json.loads(meta.read_text())["settings"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {"folder": str(Path(data_root).resolve())}


def run_settings(arm: Arm, *, data_root: Path, budget: TrainingBudget, seed: int, device: str) -> dict[str, Any]:
    """What makes a run that run (module docstring): two runs with equal settings are the same run."""
    from temporal_shift.ops.runtime import resolve_device

    config = arm_config(arm, data_root=Path(data_root), out_dir=Path("."), budget=budget, seed=seed, device="cpu")
    data = dataclasses.asdict(config.data)
    for where in ("root", "workers"):  # where the files are and how many processes read them
        data.pop(where)
    return {
        "store_version": STORE_VERSION,
        "model": dataclasses.asdict(config.model),
        "data": data,
        "optim": dataclasses.asdict(config.optim),
        "run": {"seed": config.run.seed, "amp": config.run.amp, "eval_every": config.run.eval_every},
        "dataset": dataset_settings(data_root),
        "device": resolve_device(device).type,
        "test": TEST_PROTOCOL,
    }


def settings_key(settings: dict[str, Any]) -> str:
    """The key of `run_settings`: 16 hex digits of their hash."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_key(arm: Arm, *, data_root: Path, budget: TrainingBudget, seed: int, device: str) -> str:
    """What makes two runs the same run, as a key: a hash of `run_settings`."""
    return settings_key(run_settings(arm, data_root=data_root, budget=budget, seed=seed, device=device))


@dataclasses.dataclass(frozen=True)
class RunStore:
    """Finished runs under ``root`` by key (module docstring). ``since``: records and run folders
    older than this time (seconds since the epoch) are ignored and replaced (``--fresh``)."""

    root: Path
    since: float | None = None

    @classmethod
    def at(cls, root: str | Path, *, fresh: bool = False) -> RunStore:
        return cls(Path(root), since=time.time() if fresh else None)

    def run_dir(self, key: str) -> Path:
        return self.root / key

    def record_path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def finished(self, key: str) -> dict[str, Any] | None:
        """The record of the finished run ``key`` (its checkpoint as a path under this store), or
        None: not run, interrupted, or older than ``since``. A record that is not one this store
        wrote (unreadable, another key's, fields missing, its checkpoint gone) is a ValueError that
        names the file: it is never used, and never silently replaced."""
        path = self.record_path(key)
        if not path.exists() or self._stale(path.stat().st_mtime):
            return None
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable run record ({exc}); {_REMEDY}") from None
        problem = record_problem(record, key)
        if problem is None and not (self.root / record["checkpoint"]).is_file():
            problem = f"its checkpoint {self.root / record['checkpoint']} is missing"
        if problem is not None:
            raise ValueError(f"{path}: {problem}; {_REMEDY}")
        return {**record, "checkpoint": str(self.root / record["checkpoint"])}

    def _stale(self, when: float) -> bool:
        return self.since is not None and when < self.since

    def start(self, key: str, settings: dict[str, Any]) -> bool:
        """Make the run folder of ``key`` ready to train; whether it holds a last.pt to resume.
        A folder from before ``since`` is emptied first."""
        folder = self.run_dir(key)
        marker = folder / SETTINGS_FILE
        if folder.exists() and (not marker.is_file() or self._stale(marker.stat().st_mtime)):
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if not marker.is_file():
            write_atomic(marker, settings)
        return (folder / "last.pt").is_file()

    def restart(self, key: str, settings: dict[str, Any]) -> None:
        """Empty the run folder of ``key`` (its last.pt could not be resumed) for a run from scratch."""
        shutil.rmtree(self.run_dir(key), ignore_errors=True)
        self.start(key, settings)

    def save(self, key: str, record: dict[str, Any]) -> dict[str, Any]:
        """Write the finished run's record atomically (its checkpoint relative to the store); the
        record as `finished` returns it."""
        checkpoint = Path(record["checkpoint"]).resolve().relative_to(self.root.resolve())
        stored = {**record, "key": key, "finished_at": time.time(), "checkpoint": str(checkpoint)}
        write_atomic(self.record_path(key), stored)
        return {**stored, "checkpoint": str(self.root / checkpoint)}

    def add_fields(self, key: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Add ``fields`` to the finished run ``key``'s record, everything else (its finish time
        too) as it was; the record as `finished` returns it."""
        stored = {**json.loads(self.record_path(key).read_text()), **fields}
        write_atomic(self.record_path(key), stored)
        return {**stored, "checkpoint": str(self.root / stored["checkpoint"])}

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Hold ``key``'s lock file: another process that trains the same run waits here (POSIX;
        elsewhere no lock is taken)."""
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # Windows: one invocation at a time is the user's to keep
            yield
            return
        with open(self.root / f"{key}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


_REMEDY = "delete it (and its run folder) to train the run again"
# what every finished run's record holds (`common.train_arm` and `common.obtain_run`), by type
_RECORD_NUMBERS = ("top1", "temporal_top1", "order_acc", "params_m", "gmacs", "train_seconds", "finished_at")


def record_problem(record: Any, key: str) -> str | None:
    """What makes ``record`` not the finished run ``key`` as this store writes it, or None."""
    if not isinstance(record, dict):
        return f"a run record is a JSON object, got {type(record).__name__}"
    if record.get("key") != key:
        return f"it is the record of run {record.get('key')!r}, not {key!r}"
    for field in _RECORD_NUMBERS:
        value = record.get(field)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return f"{field} is {value!r}, not a number"
    if not isinstance(record.get("checkpoint"), str) or not isinstance(record.get("settings"), dict):
        return "its checkpoint or settings are missing"
    if settings_key(record["settings"]) != key:
        return "its settings are not those of its key (edited, or from another version)"
    return None


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    """``data`` as JSON at ``path``, through a temporary file and a rename: never half written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def when(record: dict[str, Any]) -> str:
    """When a record's run finished, local time to the minute."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(record.get("finished_at", 0.0)))
