"""Frame extraction: videos -> JPEG frame folders, in parallel and resumable.

``extract_frames(video_root, out_root)`` decodes every video under ``video_root`` (or
the given list of videos) with PyAV from its start, turns the frames upright as the
video's display matrix says (`decode.frame_rgb`), resizes the short side to ``short_side``
(aspect kept) and writes ``out_root/<relative path without extension>/img_00001.jpg ...``:
frame i of the folder is frame i of `decode.read_video`.

- Naming: a video's folder is its path without the extension, so two videos that differ
  only in it (``clip.mp4``, ``clip.avi``) would share one; such a run is refused before
  anything is written, naming both.
- Parallel: one process per video at a time (``ProcessPoolExecutor``, ``workers``).
- Resumable: finished folders are recorded with their frame count in
  ``out_root/extract_done.txt`` (one ``<folder>\\t<count>`` per line), outside the frame
  folders, which hold frames only (``len(os.listdir(folder))`` is the frame count); those
  videos are skipped on the next run. An unrecorded folder is redone (its old frame files
  are removed first). A folder holding the ``.done`` marker of earlier versions counts as
  recorded (the marker moves to the record).
- Failures never stop the run: each failed video and the reason are collected, printed
  in the summary and written to ``failures_file`` (default
  ``out_root/extract_failures.txt``, one ``<video>\\t<reason>`` per line; empty when
  nothing failed). A failed video leaves no frames and no folder it made, so a rerun
  retries it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from tqdm import tqdm

from temporal_shift.data.decode import VIDEO_EXTENSIONS, check_video_container, frame_display_size, frame_rgb
from temporal_shift.data.encode import write_frame_folder
from temporal_shift.data.lists import DEFAULT_TEMPLATE

DONE_FILE = "extract_done.txt"
LEGACY_DONE_MARKER = ".done"  # earlier versions' marker inside each finished folder
FAILURES_FILE = "extract_failures.txt"
_CHUNK = 32  # frames encoded per batch (bounds memory for long videos)


@dataclass
class ExtractResult:
    """Counts of one extraction run; ``frames`` maps folders (relative to out_root) to
    their frame count, for finished and skipped videos alike."""

    extracted: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (video, reason)
    frames: dict[str, int] = field(default_factory=dict)
    failures_file: Path | None = None

    def summary(self) -> str:
        lines = [f"extracted {self.extracted}, skipped (already done) {self.skipped}, failed {len(self.failed)}"]
        lines += [f"  FAILED {video}: {reason}" for video, reason in self.failed]
        if self.failures_file is not None:
            lines.append(f"failure list: {self.failures_file}")
        return "\n".join(lines)


def find_videos(video_root: str | Path) -> list[Path]:
    """All video files under ``video_root`` (recursively, sorted)."""
    video_root = Path(video_root)
    if not video_root.is_dir():
        raise FileNotFoundError(f"{video_root}: video folder not found")
    return sorted(p for p in video_root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)


def resized_shape(height: int, width: int, short_side: int | None) -> tuple[int, int]:
    """(height, width) with the short side scaled to ``short_side`` (None: unchanged)."""
    if not short_side:
        return height, width
    if height <= width:
        return short_side, max(1, round(width * short_side / height))
    return max(1, round(height * short_side / width)), short_side


def read_done(path: str | Path) -> dict[str, int]:
    """Finished folders (relative paths) -> frame counts, from a record file (`record_done`);
    {} when there is none. A line cut short by an interrupted run is ignored."""
    done: dict[str, int] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return done
    for line in lines:
        folder, _, count = line.rpartition("\t")
        if folder and count.isdigit():
            done[folder] = int(count)
    return done


def record_done(path: str | Path, folder: str, count: int) -> None:
    """Append ``folder`` (relative) with ``count`` to the record file at ``path``."""
    with Path(path).open("a", encoding="utf-8") as f:
        f.write(f"{folder}\t{count}\n")


def legacy_done_count(folder: Path, marker: str) -> int | None:
    """The count in an earlier version's marker file inside ``folder``, or None."""
    try:
        return int((folder / marker).read_text().strip())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None


def clear_frames(folder: Path, template: str) -> None:
    """Remove the numbered files ``template`` 1, 2, ... of an interrupted folder."""
    i = 1
    while (path := folder / template.format(i)).exists():
        path.unlink()
        i += 1


def extract_video(
    video: str | Path,
    folder: str | Path,
    *,
    short_side: int | None = 256,
    quality: int = 90,
    template: str = DEFAULT_TEMPLATE,
) -> int:
    """Decode one video into a frame folder (upright, as `decode.frame_rgb`); returns the frame count.

    Raises FileNotFoundError / ValueError (with the video path) when the video cannot be
    opened or decoded or has no frames; then the frames written so far are removed, and so
    is the folder (and its parents) if this call made it.
    """
    video, folder = Path(video), Path(folder)
    if not video.is_file():
        raise FileNotFoundError(f"{video}: video file not found")
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    clear_frames(folder, template)
    try:
        count = _write_frames(video, folder, short_side=short_side, quality=quality, template=template)
    except BaseException:
        clear_frames(folder, template)
        for path in made:  # deepest first
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        raise
    return count


def _write_frames(video: Path, folder: Path, *, short_side: int | None, quality: int, template: str) -> int:
    count = 0
    try:
        with av.open(str(video)) as container:
            check_video_container(container, label=str(video))
            stream = container.streams.video[0]
            batch: list[np.ndarray] = []
            for frame in container.decode(stream):
                size = resized_shape(*frame_display_size(frame, label=str(video)), short_side)
                batch.append(frame_rgb(frame, label=str(video), size=size, interpolation="AREA"))
                if len(batch) == _CHUNK:
                    write_frame_folder(folder, np.stack(batch), template=template, quality=quality, start=count + 1)
                    count += len(batch)
                    batch = []
            if batch:
                write_frame_folder(folder, np.stack(batch), template=template, quality=quality, start=count + 1)
                count += len(batch)
    except av.FFmpegError as exc:
        raise ValueError(f"{video}: cannot decode video ({exc})") from None
    if count == 0:
        raise ValueError(f"{video}: no decodable frames")
    return count


def _extract_job(video: Path, folder: Path, *, short_side: int | None, quality: int, template: str) -> int:
    return extract_video(video, folder, short_side=short_side, quality=quality, template=template)


def extract_frames(
    video_root: str | Path,
    out_root: str | Path,
    *,
    videos: Sequence[str | Path] | None = None,
    short_side: int | None = 256,
    quality: int = 90,
    template: str = DEFAULT_TEMPLATE,
    workers: int | None = None,
    failures_file: str | Path | None = None,
    progress: bool = True,
) -> ExtractResult:
    """Extract frames of all videos under ``video_root`` (or of ``videos``, paths relative
    to ``video_root`` or absolute inside it) into ``out_root``; see the module docstring."""
    video_root, out_root = Path(video_root), Path(out_root)
    if short_side is not None and short_side < 1:
        raise ValueError(f"short_side must be positive, got {short_side}")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    if videos is None:
        paths = find_videos(video_root)
    else:
        paths = [p if Path(p).is_absolute() else video_root / p for p in map(Path, videos)]
    if not paths:
        raise ValueError(f"{video_root}: no video files ({', '.join(VIDEO_EXTENSIONS)}) found")
    jobs = []
    for path in paths:
        try:
            rel = path.relative_to(video_root).with_suffix("")
        except ValueError:
            raise ValueError(f"{path}: not inside the video folder {video_root}") from None
        jobs.append((path, out_root / rel))
    work = functools.partial(_extract_job, short_side=short_side, quality=quality, template=template)
    return run_resumable(
        jobs,
        work,
        out_root=out_root,
        done_file=out_root / DONE_FILE,
        legacy_marker=LEGACY_DONE_MARKER,
        failures_file=failures_file or out_root / FAILURES_FILE,
        workers=workers,
        progress=progress,
        desc="extract",
    )


def run_resumable(
    jobs: Sequence[tuple[Path, Path]],
    work: Callable[[Path, Path], int],
    *,
    out_root: Path,
    done_file: Path,
    failures_file: str | Path,
    legacy_marker: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    desc: str = "extract",
) -> ExtractResult:
    """Run ``work(source, folder) -> count`` for every ``(source, folder)`` job whose folder
    ``done_file`` does not record as finished, in ``workers`` processes; the loop behind
    frame and flow extraction.

    Two jobs with one folder are refused (ValueError naming both sources) before any work.
    ``work`` must be picklable (a module-level function or a ``functools.partial`` of one).
    Each finished folder is appended to ``done_file`` (`record_done`) as it comes back; a
    folder holding ``legacy_marker`` (earlier versions' in-folder marker) counts as finished
    and its marker moves to ``done_file``. Failures are collected, never raised: they go to
    the result and to ``failures_file`` (one ``<source>\t<reason>`` per line, empty when
    nothing failed).
    """
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    check_distinct_folders(jobs)
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    failures = Path(failures_file)
    result = ExtractResult(failures_file=failures)
    done = read_done(done_file)
    todo = []
    for source, folder in jobs:
        name = folder.relative_to(out_root).as_posix()
        count = done.get(name) if folder.is_dir() else None
        if count is None and legacy_marker is not None and (count := legacy_done_count(folder, legacy_marker)):
            record_done(done_file, name, count)
            (folder / legacy_marker).unlink()
        if count is not None:
            result.skipped += 1
            result.frames[name] = count
        else:
            todo.append((source, folder))
    bar = tqdm(total=len(jobs), initial=result.skipped, desc=desc, unit="video", disable=not progress)

    def record(job: tuple[Path, Path], outcome: int | BaseException) -> None:
        _record(result, job, outcome, out_root=out_root)
        if not isinstance(outcome, BaseException):
            record_done(done_file, job[1].relative_to(out_root).as_posix(), outcome)
        bar.update()

    _run_jobs(todo, work, workers=workers or min(os.cpu_count() or 1, 8), on_outcome=record)
    bar.close()
    result.failed.sort()
    failures.parent.mkdir(parents=True, exist_ok=True)
    failures.write_text("".join(f"{v}\t{r}\n" for v, r in result.failed), encoding="utf-8")
    return result


def check_distinct_folders(jobs: Sequence[tuple[Path, Path]]) -> None:
    """Refuse jobs that would write one folder twice (``clip.mp4`` and ``clip.avi``), naming both sources."""
    seen: dict[Path, Path] = {}
    for source, folder in jobs:
        if folder in seen:
            raise ValueError(
                f"{seen[folder]} and {source} would both go to {folder} (a folder is named by the path "
                "without its extension); rename one of them, or extract them in separate runs to separate outputs"
            )
        seen[folder] = source


def _record(result: ExtractResult, job: tuple[Path, Path], outcome: int | BaseException, *, out_root: Path) -> None:
    """Add one job's outcome to ``result``: its frame count, or its failure's first line (without
    a leading ``<source>: ``, which the failure list states anyway)."""
    source, folder = job
    if isinstance(outcome, BaseException):
        reason = str(outcome).splitlines()[0] if str(outcome) else type(outcome).__name__
        prefix = f"{source}: "
        result.failed.append((str(source), reason[len(prefix) :] if reason.startswith(prefix) else reason))
    else:
        result.extracted += 1
        result.frames[folder.relative_to(out_root).as_posix()] = outcome


def _run_jobs(
    todo: Sequence[tuple[Path, Path]],
    work: Callable[[Path, Path], int],
    *,
    workers: int,
    on_outcome: Callable[[tuple[Path, Path], int | BaseException], None],
) -> None:
    """``work(*job)`` for every job, in this process or in ``workers`` processes; each job's count
    or exception goes to ``on_outcome`` as it finishes (an exception never stops the others)."""
    if workers == 1 or len(todo) <= 1:
        for job in todo:
            try:
                on_outcome(job, work(*job))
            except Exception as exc:  # any failure goes to the failure list, the run goes on
                on_outcome(job, exc)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(work, *job): job for job in todo}
        for future in as_completed(futures):
            try:
                on_outcome(futures[future], future.result())
            except Exception as exc:
                on_outcome(futures[future], exc)
