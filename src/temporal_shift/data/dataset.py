"""VideoDataset: list file + root + sampler + transform -> (clip, label).

Reproducibility: sample ``index`` in epoch ``e`` draws its frame indices and transform
parameters from a generator seeded with ``(seed, e, index)``, so results do not depend
on the number of DataLoader workers or their order, differ between epochs and repeat
for the same seed. Call ``set_epoch(e)`` before each epoch (like DistributedSampler);
with ``persistent_workers=True`` the workers keep the epoch they were started with.

Errors: every problem with a sample raises an error whose message starts with
``<list file>:<line>:``. At construction every entry's files are checked with stat calls
(a frame folder's last listed frame, a video file), so a missing folder or a short one
is reported before training starts, not when a batch first touches it; the error gives
the count and the first entries. With ``on_error="skip"`` the dataset instead leaves
those entries (and bad list lines) out, lists them in ``skipped_lines`` and logs one
warning, and a sample that fails later is returned as a ``SkippedSample``; use
``collate_skipping`` to drop those from batches and count them (nothing is ever replaced
by another sample).

A DataLoader re-raises a worker's exception as "Caught X in DataLoader worker process N"
with the original only inside a traceback text; `worker_error` recovers the original
message, so the user sees the same error with any number of workers.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate
from torchvision import tv_tensors

from temporal_shift.data.decode import DECODERS, Decoder, count_frame_files, frame_path
from temporal_shift.data.lists import (
    DEFAULT_TEMPLATE,
    FrameRecord,
    ListFileError,
    ListKind,
    Record,
    read_list,
)
from temporal_shift.data.sampling import Sampler
from temporal_shift.data.sources import FolderSource, VideoSource

log = logging.getLogger("temporal_shift.data")

SHOWN_PROBLEMS = 3  # how many unusable entries an error or warning names

ClipTransform = Callable[[tv_tensors.Video, int], tuple[torch.Tensor, int]]


@dataclass(frozen=True)
class SkippedSample:
    """Placeholder returned for an unreadable sample when ``on_error="skip"``."""

    index: int
    reason: str


class MissingFilesError(ListFileError, FileNotFoundError):
    """List entries whose frame folder, last listed frame or video file is not on disk (or is empty)."""


class ClipBatch(NamedTuple):
    """A batch from ``collate_skipping``: clips, labels and the reasons of skipped samples."""

    clips: torch.Tensor
    labels: torch.Tensor
    skipped: list[str]


def collate_skipping(samples: Sequence[tuple[torch.Tensor, int] | SkippedSample]) -> ClipBatch:
    """Collate, dropping ``SkippedSample`` entries; the batch may be smaller (even empty)."""
    good = [s for s in samples if not isinstance(s, SkippedSample)]
    skipped = [s.reason for s in samples if isinstance(s, SkippedSample)]
    if not good:
        return ClipBatch(torch.empty(0), torch.empty(0, dtype=torch.long), skipped)
    clips, labels = default_collate(good)
    return ClipBatch(clips, labels, skipped)


class VideoDataset(Dataset):
    """Clips from a list file of frame folders or videos (paths relative to ``root``).

    Returns ``(clip, label)``: with a transform, whatever it returns, typically float
    (T, C, H, W), or (views, T, C, H, W) for multi-view transforms or samplers giving
    several clips (clips x views are flattened into the first dimension); without one,
    the uint8 clip (T, C, H, W) or (clips, T, C, H, W). T counts ``frames_per_segment`` frames
    per segment.
    """

    def __init__(
        self,
        *,
        list_file: str | Path,
        root: str | Path,
        sampler: Sampler,
        transform: ClipTransform | None = None,
        kind: ListKind = "auto",
        template: str = DEFAULT_TEMPLATE,
        num_classes: int | None = None,
        seed: int = 0,
        on_error: Literal["raise", "skip"] = "raise",
        check_files: bool = True,
        decoder: Decoder = "pyav",
    ) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
        self.decoder = decoder
        self.list_file = Path(list_file)
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: data root not found")
        self.sampler = sampler
        self.transform = transform
        self.template = template
        self.seed = seed
        self.on_error = on_error
        self.epoch = 0
        errors: list[ListFileError] | None = [] if on_error == "skip" else None
        self.records: list[Record] = read_list(self.list_file, kind=kind, num_classes=num_classes, errors=errors)
        self.skipped_lines: list[str] = [str(e) for e in errors or []]
        for message in self.skipped_lines:
            log.warning("skipping %s", message)
        if check_files:
            self._drop_unusable(find_unusable(self.records, root=self.root, template=template))
        if not self.records:
            raise ListFileError(f"{self.list_file}: no usable samples")
        self._frame_counts: dict[str, int] = {}

    def _drop_unusable(self, problems: list[tuple[int, str]]) -> None:
        if not problems:
            return
        summary = summarize_problems(self.list_file, [m for _, m in problems], total=len(self.records))
        if self.on_error == "raise":
            raise MissingFilesError(f"{summary}; fix the list or leave such samples out (on_error: skip)")
        log.warning("skipping %s", summary)
        bad = {i for i, _ in problems}
        self.records = [r for i, r in enumerate(self.records) if i not in bad]
        self.skipped_lines.extend(m for _, m in problems)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random draws ``__getitem__`` uses."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def labels(self) -> list[int]:
        return [r.label for r in self.records]

    def generator(self, index: int) -> np.random.Generator:
        """The generator of sample ``index`` in the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, index])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int] | SkippedSample:
        record = self.records[index]
        try:
            return self._load(record, index)
        except (OSError, ValueError) as exc:
            message = str(exc)
            if not message.startswith(record.source):
                message = f"{record.source}: {message}"
            if self.on_error == "raise":
                raise _with_message(exc, message) from exc
            log.warning("skipping sample %d: %s", index, message)
            return SkippedSample(index=index, reason=message)

    def _load(self, record: Record, index: int) -> tuple[torch.Tensor, int]:
        rng = self.generator(index)
        source = self.frame_source(record)
        indices = self.sampler(source.num_frames, generator=rng, source=record.source)
        frames = source.read(indices.reshape(-1).tolist())
        clips = frames.reshape(indices.shape[0], indices.shape[1], *frames.shape[1:])
        label = record.label
        if self.transform is None:
            return (clips[0] if len(clips) == 1 else clips), label
        torch_seed = int(rng.integers(2**62))
        outputs = []
        with torch.random.fork_rng(devices=[]):
            # the CPU generator only: torch.manual_seed would also reseed every CUDA device's
            # generator (which fork_rng(devices=[]) does not restore) and costs 0.3 ms a call
            torch.default_generator.manual_seed(torch_seed)
            for clip in clips:
                out, label_out = self.transform(tv_tensors.Video(clip), label)
                outputs.append(out.as_subclass(torch.Tensor))
        if len(outputs) == 1:
            return outputs[0], int(label_out)
        stacked = torch.stack(outputs)
        if stacked.dim() == 6:  # clips x views
            stacked = stacked.flatten(0, 1)
        return stacked, int(label_out)

    def frame_source(self, record: Record) -> FolderSource | VideoSource:
        """The frames of ``record``: a `FolderSource` after checking the folder holds the frames
        the list says, or a `VideoSource` (its frame count read once per dataset copy)."""
        path = self.root / record.path
        if isinstance(record, FrameRecord):
            self._check_folder(path, record)
            return FolderSource(path, template=self.template, num_frames=record.num_frames, offset=record.offset)
        if not path.is_file():
            raise FileNotFoundError(f"video {path} not found")
        key = str(path)
        source = VideoSource(path, num_frames=self._frame_counts.get(key), decoder=self.decoder)
        self._frame_counts[key] = source.num_frames
        return source

    def _check_folder(self, folder: Path, record: FrameRecord) -> None:
        if not folder.is_dir():
            raise FileNotFoundError(f"frame folder {folder} not found")
        if not frame_path(folder, record.offset + record.num_frames - 1, template=self.template).is_file():
            raise ListFileError(_too_few(record, folder, self.template))


def find_unusable(
    records: Sequence[Record], *, root: str | Path, template: str = DEFAULT_TEMPLATE
) -> list[tuple[int, str]]:
    """(index, message) of each record whose files are missing, with one stat call per record.

    A frame folder is usable when its last listed frame (``template`` numbered from 1)
    is a file, a video when it is a non-empty file. Frames are not decoded and a video's
    frame count is not read here (both need decoding); those errors come when a sample is
    loaded. Messages start with the record's ``<list file>:<line>``.
    """
    root = os.fspath(root)
    problems: list[tuple[int, str]] = []
    for i, record in enumerate(records):
        path = os.path.join(root, record.path)
        if isinstance(record, FrameRecord):
            target = os.path.join(path, template.format(record.offset + record.num_frames))
        else:
            target = path
        try:
            st = os.stat(target)
        except OSError:
            st = None
        if st is not None and stat.S_ISREG(st.st_mode) and (st.st_size > 0 or isinstance(record, FrameRecord)):
            continue
        problems.append((i, f"{record.source}: {_describe_unusable(record, Path(path), template, st)}"))
    return problems


def _describe_unusable(record: Record, path: Path, template: str, st: os.stat_result | None) -> str:
    if isinstance(record, FrameRecord):
        if not path.is_dir():
            return f"frame folder {path} not found"
        return _too_few(record, path, template)
    if st is None:
        return f"video {path} not found"
    return f"video {path} is empty" if stat.S_ISREG(st.st_mode) else f"video {path} is not a file"


def _too_few(record: FrameRecord, folder: Path, template: str) -> str:
    on_disk = count_frame_files(folder, template=template)
    listed = f"{record.num_frames} frames"
    if record.offset:
        listed += f" from number {record.offset + 1}"
    return f"{folder} lists {listed} but only {on_disk} ('{template}' from 1) are on disk"


def summarize_problems(list_file: Path | str, messages: Sequence[str], *, total: int) -> str:
    """``LIST: N of M entries cannot be used: first; second; third; ... (K more)``, one line."""
    shown = "; ".join(messages[:SHOWN_PROBLEMS])
    more = f"; ... ({len(messages) - SHOWN_PROBLEMS} more)" if len(messages) > SHOWN_PROBLEMS else ""
    return f"{list_file}: {len(messages)} of {total} entries cannot be used: {shown}{more}"


_WORKER_PREFIX = re.compile(r"^Caught (\w+) in DataLoader worker process \d+\.\nOriginal Traceback")


def worker_error(exc: BaseException) -> BaseException | None:
    """The exception a DataLoader worker raised, rebuilt from ``exc``, or None.

    ``exc`` is what a DataLoader raises in the main process: the worker's exception type
    with the message "Caught T in DataLoader worker process N. Original Traceback ...",
    the original message on the last lines of that traceback. Returns an exception of the
    same type with the original message, or None when ``exc`` is not such a wrapper.
    """
    text = str(exc)
    match = _WORKER_PREFIX.match(text)
    if not match:
        return None
    name = match.group(1)
    lines = text.splitlines()
    final = re.compile(rf"^(?:[\w.]+\.)?{re.escape(name)}(?:: (.*))?$")
    for k in range(len(lines) - 1, 0, -1):  # the last exception of the chain ends the text
        found = final.match(lines[k])
        if found:
            message = "\n".join([found.group(1) or "", *lines[k + 1 :]]).strip()
            break
    else:
        return None
    try:
        return type(exc)(message)
    except Exception:  # exception types with other constructors
        return RuntimeError(message)


def _with_message(exc: Exception, message: str) -> Exception:
    try:
        return type(exc)(message)
    except TypeError:  # exception types with other constructors
        return (OSError if isinstance(exc, OSError) else ValueError)(message)


def describe(dataset: VideoDataset) -> dict[str, Any]:
    """Short summary of a dataset (for logs)."""
    return {
        "list_file": str(dataset.list_file),
        "root": str(dataset.root),
        "samples": len(dataset),
        "sampler": repr(dataset.sampler),
        "skipped_lines": len(dataset.skipped_lines),
    }
