"""Computing optical flow with OpenCV and extracting it for a whole list (``tsm prepare flow``).

`prepare_flow` computes the flow of every consecutive frame pair of a list's frame folders
or videos: TV-L1 (``method="tvl1"``, the contrib build's ``cv2.optflow.DualTVL1OpticalFlow``,
what TSN and the TSM release used) or Farneback (``"farneback"``, in every OpenCV build, much
faster). It needs the optional extra ``flow`` (``pip install 'temporal-shift[flow]'``:
opencv-contrib-python-headless). Frames are read through `data.sources`; the files written
follow `layout`. The run writes a list file ``<folder> <N-1> <label>`` per video in the
input list's order, is parallel over videos, resumable (finished folders are recorded in
``flow_done.txt`` at the output root, outside the folders; flow may share its folders with
``img_*.jpg`` frames) and keeps going past failures, which it lists in
``flow_failures.txt`` as frame extraction does (`extract.run_resumable`); a failed video
leaves no flow files and no folder it made.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from temporal_shift.data.decode import CorruptMediaError
from temporal_shift.data.extract import (
    ExtractResult,
    clear_frames,
    resized_shape,
    run_resumable,
)
from temporal_shift.data.flow.layout import (
    DEFAULT_BOUND,
    FLOW_DONE_FILE,
    FLOW_FAILURES_FILE,
    FLOW_X_TEMPLATE,
    FLOW_Y_TEMPLATE,
    LEGACY_FLOW_DONE_MARKER,
    flow_folder_name,
    quantize_flow,
    write_flow_image,
)
from temporal_shift.data.lists import DEFAULT_TEMPLATE, ListKind, read_list, write_frame_list
from temporal_shift.data.sources import FolderSource, FrameSource, VideoSource

FlowMethod = Literal["tvl1", "farneback"]
METHODS: tuple[FlowMethod, ...] = ("tvl1", "farneback")
OPENCV_EXTRA = "pip install 'temporal-shift[flow]' (opencv-contrib-python-headless>=4.5)"


class FlowDependencyError(ModuleNotFoundError):
    """OpenCV (or its contrib build, for TV-L1) is not installed."""


def require_opencv(*, contrib: bool = False) -> Any:
    try:
        import cv2
    except ImportError:
        raise FlowDependencyError(f"optical flow needs OpenCV, which is not installed: {OPENCV_EXTRA}") from None
    if contrib and not hasattr(cv2, "optflow"):
        raise FlowDependencyError(
            f"TV-L1 flow needs OpenCV's contrib build (cv2.optflow), this OpenCV has none: {OPENCV_EXTRA}, "
            "or use method 'farneback'"
        )
    return cv2


def check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown flow method {method!r}; choose from {', '.join(METHODS)}")


class FlowComputer:
    """Dense optical flow between two grayscale uint8 frames -> float32 (H, W, 2) pixels.

    ``flow[y, x] = (dx, dy)``: the pixel at (x, y) in the first frame moves to
    (x + dx, y + dy) in the second. TV-L1 uses OpenCV's defaults (as TSN's dense_flow
    tool); Farneback uses pyramid 0.5, 3 levels, window 15, 3 iterations, poly_n 5,
    sigma 1.2 (OpenCV's documented example settings).
    """

    def __init__(self, method: FlowMethod = "tvl1") -> None:
        check_method(method)
        self.method = method
        self._cv2 = require_opencv(contrib=method == "tvl1")
        self._tvl1 = self._cv2.optflow.DualTVL1OpticalFlow_create() if method == "tvl1" else None

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        if prev.shape != nxt.shape or prev.ndim != 2 or prev.dtype != np.uint8:
            raise ValueError(f"flow needs two grayscale uint8 frames of one size, got {prev.shape} and {nxt.shape}")
        if self._tvl1 is not None:
            return self._tvl1.calc(prev, nxt, None)
        return self._cv2.calcOpticalFlowFarneback(prev, nxt, None, 0.5, 3, 15, 3, 5, 1.2, 0)


def _gray(rgb: np.ndarray) -> np.ndarray:
    return require_opencv().cvtColor(np.ascontiguousarray(rgb), require_opencv().COLOR_RGB2GRAY)


def _resize(gray: np.ndarray, short_side: int | None) -> np.ndarray:
    height, width = resized_shape(gray.shape[0], gray.shape[1], short_side)
    if (height, width) == gray.shape:
        return gray
    return require_opencv().resize(gray, (width, height), interpolation=require_opencv().INTER_AREA)


def source_frames(source: str | Path, *, template: str = DEFAULT_TEMPLATE) -> Iterator[np.ndarray]:
    """Grayscale uint8 frames of a frame folder (``template`` from 1) or a video file, in order."""
    source = Path(source)
    frames: FrameSource
    if source.is_dir():
        frames = FolderSource(source, template=template)
        if frames.num_frames == 0:
            raise ValueError(f"{source}: no frames ({template.format(1)} not found)")
    elif source.is_file():
        frames = VideoSource(source)
    else:
        raise FileNotFoundError(f"{source}: no such frame folder or video file")
    return (_gray(frame.image.permute(1, 2, 0).numpy()) for frame in frames.frames())


def extract_flow(
    source: str | Path,
    folder: str | Path,
    *,
    method: FlowMethod = "tvl1",
    bound: float = DEFAULT_BOUND,
    short_side: int | None = None,
    quality: int = 95,
    template: str = DEFAULT_TEMPLATE,
) -> int:
    """Flow of every consecutive frame pair of one frame folder or video into ``folder``
    (``flow_x_00001.jpg``, ``flow_y_00001.jpg`` ...); returns the number of flow fields.

    ``short_side`` resizes the frames first (None: as they are). Errors name the source.
    """
    source, folder = Path(source), Path(folder)
    computer = FlowComputer(method)
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    clear_frames(folder, FLOW_X_TEMPLATE)
    clear_frames(folder, FLOW_Y_TEMPLATE)
    try:
        return _write_flow(
            source, folder, computer, bound=bound, short_side=short_side, quality=quality, template=template
        )
    except BaseException:
        clear_frames(folder, FLOW_X_TEMPLATE)
        clear_frames(folder, FLOW_Y_TEMPLATE)
        for path in made:  # deepest first
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        raise


def _write_flow(
    source: Path,
    folder: Path,
    computer: FlowComputer,
    *,
    bound: float,
    short_side: int | None,
    quality: int,
    template: str,
) -> int:
    count = 0
    prev = None
    for frame in source_frames(source, template=template):
        frame = _resize(frame, short_side)
        if prev is not None:
            if frame.shape != prev.shape:
                raise CorruptMediaError(f"{source}: frame {count + 2} is {frame.shape}, frame 1 was {prev.shape}")
            values = quantize_flow(computer(prev, frame), bound=bound)
            count += 1
            write_flow_image(folder / FLOW_X_TEMPLATE.format(count), values[..., 0], quality=quality)
            write_flow_image(folder / FLOW_Y_TEMPLATE.format(count), values[..., 1], quality=quality)
        prev = frame
    if prev is None:
        raise ValueError(f"{source}: no frames")
    if count == 0:
        raise ValueError(f"{source}: one frame only; flow needs at least 2")
    return count


@dataclass
class FlowResult:
    """What `prepare_flow` did: the extraction counts and the flow list it wrote."""

    extraction: ExtractResult
    list_file: Path
    videos: int  # lines in the flow list

    def summary(self) -> str:
        return f"{self.extraction.summary()}\nflow list: {self.list_file} ({self.videos} videos)"


def prepare_flow(
    list_file: str | Path,
    *,
    root: str | Path,
    out_root: str | Path,
    out_list: str | Path | None = None,
    method: FlowMethod = "tvl1",
    bound: float = DEFAULT_BOUND,
    short_side: int | None = None,
    quality: int = 95,
    kind: ListKind = "auto",
    template: str = DEFAULT_TEMPLATE,
    workers: int | None = None,
    failures_file: str | Path | None = None,
    progress: bool = True,
) -> FlowResult:
    """Flow of every video of ``list_file`` (frame folders or videos, relative to ``root``)
    into ``out_root/<entry without video extension>/``, and the flow list ``out_list``
    (default ``out_root/<list name>_flow.txt``; lines ``<folder> <flow fields> <label>``
    relative to ``out_root``, failed videos left out and listed in ``failures_file``,
    default ``out_root/flow_failures.txt``). ``out_root`` may be ``root``: flow files then
    sit next to the frames, as in the reference layout. See the module docstring.
    """
    check_method(method)
    if bound <= 0:
        raise ValueError(f"flow bound must be positive, got {bound}")
    if short_side is not None and short_side < 1:
        raise ValueError(f"short_side must be positive, got {short_side}")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    require_opencv(contrib=method == "tvl1")  # fail before any work when OpenCV is missing
    list_file, root, out_root = Path(list_file), Path(root), Path(out_root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: data root not found")
    records = read_list(list_file, kind=kind)
    if not records:
        raise ValueError(f"{list_file}: no videos listed")
    jobs = [(root / r.path, out_root / flow_folder_name(r.path)) for r in records]
    work = functools.partial(
        extract_flow, method=method, bound=bound, short_side=short_side, quality=quality, template=template
    )
    result = run_resumable(
        jobs,
        work,
        out_root=out_root,
        done_file=out_root / FLOW_DONE_FILE,
        legacy_marker=LEGACY_FLOW_DONE_MARKER,
        failures_file=failures_file or out_root / FLOW_FAILURES_FILE,
        workers=workers,
        progress=progress,
        desc=f"flow ({method})",
    )
    out_list = Path(out_list) if out_list else out_root / f"{list_file.stem}_flow.txt"
    entries = []
    for record in records:
        name = flow_folder_name(record.path)
        if name in result.frames:
            entries.append((name, result.frames[name], record.label))
    write_frame_list(out_list, entries)
    return FlowResult(extraction=result, list_file=out_list, videos=len(entries))
