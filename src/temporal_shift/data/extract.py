"""Frame extraction: videos -> JPEG frame folders, in parallel and resumable.

``extract_frames(video_root, out_root)`` decodes every video under ``video_root`` (or
the given list of videos) with PyAV, resizes the short side to ``short_side`` (aspect
kept) and writes ``out_root/<relative path without extension>/img_00001.jpg ...``.

- Parallel: one process per video at a time (``ProcessPoolExecutor``, ``workers``).
- Resumable: a finished folder gets a ``.done`` marker holding its frame count; such
  videos are skipped on the next run. An interrupted folder has no marker and is redone
  (its old frame files are removed first).
- Failures never stop the run: each failed video and the reason are collected, printed
  in the summary and written to ``failures_file`` (default
  ``out_root/extract_failures.txt``, one ``<video>\\t<reason>`` per line; empty when
  nothing failed). A failed video leaves no ``.done`` marker, so a rerun retries it.
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

from temporal_shift.data.decode import VIDEO_EXTENSIONS, check_video_container
from temporal_shift.data.encode import write_frame_folder
from temporal_shift.data.lists import DEFAULT_TEMPLATE

DONE_MARKER = ".done"
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


def done_count(folder: str | Path, *, marker: str = DONE_MARKER) -> int | None:
    """Count recorded in a finished folder's ``marker``, or None if not finished."""
    try:
        return int((Path(folder) / marker).read_text().strip())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None


def mark_done(folder: str | Path, count: int, *, marker: str = DONE_MARKER) -> None:
    """Record that ``folder`` is finished with ``count`` frames (what `done_count` reads)."""
    (Path(folder) / marker).write_text(f"{count}\n")


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
    """Decode one video into a frame folder; returns the frame count.

    Raises FileNotFoundError / ValueError (with the video path) when the video cannot be
    opened or decoded or has no frames.
    """
    video, folder = Path(video), Path(folder)
    if not video.is_file():
        raise FileNotFoundError(f"{video}: video file not found")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DONE_MARKER).unlink(missing_ok=True)
    clear_frames(folder, template)
    count = 0
    try:
        with av.open(str(video)) as container:
            check_video_container(container, label=str(video))
            stream = container.streams.video[0]
            batch: list[np.ndarray] = []
            for frame in container.decode(stream):
                height, width = resized_shape(frame.height, frame.width, short_side)
                batch.append(frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA"))
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
    mark_done(folder, count)
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
        marker=DONE_MARKER,
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
    marker: str,
    failures_file: str | Path,
    workers: int | None = None,
    progress: bool = True,
    desc: str = "extract",
) -> ExtractResult:
    """Run ``work(source, folder) -> count`` for every ``(source, folder)`` job whose folder
    has no finished ``marker`` yet, in ``workers`` processes; the loop behind frame and
    flow extraction.

    ``work`` must be picklable (a module-level function or a ``functools.partial`` of one)
    and write ``marker`` (`mark_done`) into the folder when it finishes. Failures are
    collected, never raised: they go to the result and to ``failures_file`` (one
    ``<source>\t<reason>`` per line, empty when nothing failed).
    """
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    failures = Path(failures_file)
    result = ExtractResult(failures_file=failures)
    todo = []
    for source, folder in jobs:
        count = done_count(folder, marker=marker)
        if count is not None:
            result.skipped += 1
            result.frames[folder.relative_to(out_root).as_posix()] = count
        else:
            todo.append((source, folder))
    bar = tqdm(total=len(jobs), initial=result.skipped, desc=desc, unit="video", disable=not progress)

    def record(job: tuple[Path, Path], outcome: int | BaseException) -> None:
        _record(result, job, outcome, out_root=out_root)
        bar.update()

    _run_jobs(todo, work, workers=workers or min(os.cpu_count() or 1, 8), on_outcome=record)
    bar.close()
    result.failed.sort()
    failures.parent.mkdir(parents=True, exist_ok=True)
    failures.write_text("".join(f"{v}\t{r}\n" for v, r in result.failed), encoding="utf-8")
    return result


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
