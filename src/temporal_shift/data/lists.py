"""List files and class-name files.

The list formats of the TSN/TSM reference release and of MMAction2, one sample per line,
paths relative to a root given separately:

- frame folders: ``<frame folder> <num_frames> <label>`` (frames numbered from 1, file
  names from a template, default ``img_{:05d}.jpg``);
- frame folders with a start offset (MMAction2's rawframe lists ``with_offset``):
  ``<frame folder> <offset> <num_frames> <label>``: the sample's frames are the files
  numbered ``offset + 1`` to ``offset + num_frames``. A list is in this format when every
  frame-folder line ends in three integers;
- raw videos: ``<video file> <label>``.

Fields are split from the right, so folder and file names may contain spaces. One label
per line: MMAction2's multi-label lists (``multi_class``: several labels after the path)
are refused with an error that names the format. Blank lines and lines starting with
``#`` are ignored. A class-name file has one class name per line; line ``i`` (counting
from 0) names label ``i``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DEFAULT_TEMPLATE = "img_{:05d}.jpg"
VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".m4v")

ListKind = Literal["frames", "videos", "auto"]


class ListFileError(ValueError):
    """A list or class file that cannot be read or parsed; the message names file and line."""


@dataclass(frozen=True)
class FrameRecord:
    """One frame-folder sample: ``path`` relative to the root, the frame files numbered
    ``offset + 1`` to ``offset + num_frames``."""

    path: str
    num_frames: int
    label: int
    source: str  # "<list file>:<line>" for error messages
    offset: int = 0


@dataclass(frozen=True)
class VideoRecord:
    """One raw-video sample: ``path`` relative to the root."""

    path: str
    label: int
    source: str


Record = FrameRecord | VideoRecord


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _read_lines(path: Path) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ListFileError(f"{path}: not a UTF-8 text file ({exc.reason})") from exc


def _trailing_ints(text: str) -> int:
    fields = text.split()
    count = 0
    while count < len(fields) - 1 and _is_int(fields[-1 - count]):
        count += 1
    return count


def parse_list_line(line: str, *, kind: ListKind, source: str, offsets: bool | None = None) -> Record:
    """Parse one non-blank list line; ``source`` ("file:line") prefixes any error.

    With ``kind="auto"``: a path and two integers (three: with a start offset) is a
    frame-folder line unless the path has a video extension; anything else a video line.
    ``offsets``: whether the list is in the start-offset format (`read_list` decides it for
    the whole file; None: a line ending in three integers is).
    """
    text = line.strip()
    numbers = _trailing_ints(text)
    if kind == "auto":
        kind = "frames" if _frames_line(text, numbers) else "videos"
    if kind == "frames":
        if offsets is False and numbers == 3:
            numbers = 2  # the folder's name ends in a number
        if numbers > 3:
            raise _multi_label(source, text, "<frame folder> <num_frames> <label> [<label> ...]")
        if numbers not in (2, 3):
            raise ListFileError(
                f"{source}: malformed frame-list line {text!r}; expected '<frame folder> <num_frames> <label>' "
                "or MMAction2's '<frame folder> <offset> <num_frames> <label>'"
            )
        path, *fields = text.rsplit(maxsplit=numbers)
        offset, num_frames, label = (int(v) for v in fields) if numbers == 3 else (0, *(int(v) for v in fields))
        if num_frames < 1:
            raise ListFileError(f"{source}: {path!r} lists {num_frames} frames; need at least 1")
        if offset < 0:
            raise ListFileError(f"{source}: negative start offset {offset} for {path!r}")
        if label < 0:
            raise ListFileError(f"{source}: negative label {label} for {path!r}")
        return FrameRecord(path=path, num_frames=num_frames, label=label, source=source, offset=offset)
    if kind == "videos":
        if numbers > 1 and text.rsplit(maxsplit=numbers)[0].lower().endswith(VIDEO_EXTENSIONS):
            raise _multi_label(source, text, "<video file> <label> [<label> ...]")
        parts = text.rsplit(maxsplit=1)
        if len(parts) != 2 or not _is_int(parts[1]):
            raise ListFileError(f"{source}: malformed video-list line {text!r}; expected '<video file> <label>'")
        label = int(parts[1])
        if label < 0:
            raise ListFileError(f"{source}: negative label {label} for {parts[0]!r}")
        return VideoRecord(path=parts[0], label=label, source=source)
    raise ValueError(f"unknown list kind {kind!r}; use 'frames', 'videos' or 'auto'")


def _multi_label(source: str, text: str, form: str) -> ListFileError:
    return ListFileError(
        f"{source}: {text!r} has several labels: MMAction2's multi-label list format ('{form}', "
        "multi_class) is not supported; give one label per line"
    )


def read_list(
    path: str | Path,
    *,
    kind: ListKind = "auto",
    num_classes: int | None = None,
    errors: list[ListFileError] | None = None,
) -> list[Record]:
    """Read a list file. With ``kind="auto"`` each line's format is detected.

    Raises ListFileError naming file and line for a malformed line or a label outside
    ``[0, num_classes)``. If ``errors`` is a list, bad lines are appended to it and
    skipped instead of raising.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: list file not found")
    records: list[Record] = []
    lines = [
        (number, line)
        for number, line in enumerate(_read_lines(path), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    offsets = _offset_format([line for _, line in lines], kind=kind)
    for number, line in lines:
        source = f"{path}:{number}"
        try:
            record = parse_list_line(line, kind=kind, source=source, offsets=offsets)
            if num_classes is not None and record.label >= num_classes:
                raise ListFileError(f"{source}: label {record.label} out of range for {num_classes} classes")
        except ListFileError as exc:
            if errors is None:
                raise
            errors.append(exc)
            continue
        records.append(record)
    return records


def _offset_format(lines: Sequence[str], *, kind: ListKind) -> bool:
    """Whether a list's frame-folder lines are MMAction2's offset format: each ends in three integers."""
    if kind == "videos":
        return False
    counts = [_trailing_ints(line) for line in lines]
    frame_lines = [c for c, line in zip(counts, lines, strict=True) if kind == "frames" or _frames_line(line, c)]
    return bool(frame_lines) and all(c == 3 for c in frame_lines)


def _frames_line(line: str, numbers: int) -> bool:
    return numbers >= 2 and not line.strip().rsplit(maxsplit=numbers)[0].lower().endswith(VIDEO_EXTENSIONS)


def write_frame_list(path: str | Path, entries: Iterable[tuple[str, int, int]]) -> Path:
    """Write ``(folder, num_frames, label)`` entries as a frame list file."""
    lines = [f"{folder} {int(n)} {int(label)}" for folder, n, label in entries]
    return _write_lines(Path(path), lines)


def write_video_list(path: str | Path, entries: Iterable[tuple[str, int]]) -> Path:
    """Write ``(video, label)`` entries as a video list file."""
    lines = [f"{video} {int(label)}" for video, label in entries]
    return _write_lines(Path(path), lines)


def read_classes(path: str | Path) -> list[str]:
    """Read a class-name file (one name per line; label = line index from 0)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: class file not found")
    names = [line.strip() for line in _read_lines(path)]
    while names and not names[-1]:
        names.pop()
    for number, name in enumerate(names, start=1):
        if not name:
            raise ListFileError(f"{path}:{number}: empty class name")
    seen: dict[str, int] = {}
    for number, name in enumerate(names, start=1):
        if name in seen:
            raise ListFileError(f"{path}:{number}: duplicate class name {name!r} (also line {seen[name]})")
        seen[name] = number
    return names


def write_classes(path: str | Path, names: Sequence[str]) -> Path:
    """Write a class-name file."""
    for name in names:
        if not name.strip() or "\n" in name:
            raise ValueError(f"invalid class name {name!r} for {path}")
    return _write_lines(Path(path), list(names))


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    tmp.replace(path)
    return path
