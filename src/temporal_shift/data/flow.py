"""Optical flow for the two-stream baseline: extraction, storage, flow clips.

Extraction (``tsm prepare flow``, `prepare_flow`) computes the flow of every consecutive
frame pair of a list's frame folders or videos with OpenCV: TV-L1 (``method="tvl1"``,
the contrib build's ``cv2.optflow.DualTVL1OpticalFlow``, what TSN and the TSM release
used) or Farneback (``"farneback"``, in every OpenCV build, much faster). It needs the
optional extra ``flow`` (``pip install 'temporal-shift[flow]'``: opencv-contrib-python-headless).

Storage is the reference layout (TSN's ``dense_flow`` tool): for frames t and t+1 of a
video, ``flow_x_{t:05d}.jpg`` and ``flow_y_{t:05d}.jpg`` (t from 1), grayscale JPEGs whose
value ``v = round(255 (f + bound) / (2 bound))`` encodes the displacement ``f`` in pixels
clipped to +-bound (20 px by default): 128 is no motion, x > 0 is motion to the right,
y > 0 downwards. A video of N frames has N-1 flow fields. The run writes a list file
``<folder> <N-1> <label>`` per video in the input list's order (same folder names with
the video extension dropped, so `evaluate` can pair it with the RGB list), is parallel
over videos, resumable (a finished folder holds a ``.flow_done`` marker; flow may share
its folders with ``img_*.jpg`` frames) and keeps going past failures, which it lists in
``flow_failures.txt`` as frame extraction does (`extract.run_resumable`).

A flow clip (`FlowDataset`) is TSN sampling of ``L`` consecutive flow fields per
segment: uint8 (T*L, 2, H, W) -> the flow transforms (`flow_train_transform`,
`flow_test_transform`: the same crops as RGB; a horizontal flip mirrors the field and
negates x, i.e. ``255 - x``; the reference release's normalisation ``(v/255 - 0.5) /
0.226``) -> float (T, 2L, H, W), channels x1, y1, x2, y2, ... per segment.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np
import simplejpeg
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from temporal_shift.data.dataset import VideoDataset
from temporal_shift.data.decode import (
    VIDEO_EXTENSIONS,
    CorruptMediaError,
    check_video_container,
    count_frame_files,
    decode_jpeg_file,
)
from temporal_shift.data.extract import (
    ExtractResult,
    clear_frames,
    mark_done,
    resized_shape,
    run_resumable,
)
from temporal_shift.data.lists import DEFAULT_TEMPLATE, FrameRecord, ListKind, Record, read_list, write_frame_list
from temporal_shift.data.sampling import Sampler
from temporal_shift.data.sources import FolderSource, SourceFrame
from temporal_shift.data.transforms import (
    IMAGENET_STD,
    PAPER_SCALES,
    ClipHorizontalFlip,
    MultiScaleCrop,
    StackViews,
    ThreeCrop,
    ToFloatNormalize,
)

FlowMethod = Literal["tvl1", "farneback"]
METHODS: tuple[str, ...] = ("tvl1", "farneback")
FLOW_X_TEMPLATE = "flow_x_{:05d}.jpg"
FLOW_Y_TEMPLATE = "flow_y_{:05d}.jpg"
DEFAULT_BOUND = 20.0
DEFAULT_FLOW_LENGTH = 5  # L: flow fields per segment (TSN, the TSM release)
FLOW_DONE_MARKER = ".flow_done"
FLOW_FAILURES_FILE = "flow_failures.txt"
# The reference release's flow normalisation: mean 0.5, std the mean of ImageNet's stds.
FLOW_MEAN = 0.5
FLOW_STD = float(np.mean(IMAGENET_STD))
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


# --- computing and quantising flow ------------------------------------------------------


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


def quantize_flow(flow: np.ndarray | torch.Tensor, *, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """Flow in pixels -> uint8 ``round(255 (f + bound) / (2 bound))``, clipped to +-bound."""
    if bound <= 0:
        raise ValueError(f"flow bound must be positive, got {bound}")
    f = np.clip(np.asarray(flow, dtype=np.float32), -bound, bound)
    return np.rint((f + bound) * (255.0 / (2.0 * bound))).astype(np.uint8)


def dequantize_flow(values: np.ndarray | torch.Tensor, *, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """uint8 flow images -> pixels (the inverse of `quantize_flow`, within half a level)."""
    return np.asarray(values, dtype=np.float32) * (2.0 * bound / 255.0) - bound


def _gray(rgb: np.ndarray) -> np.ndarray:
    return require_opencv().cvtColor(np.ascontiguousarray(rgb), require_opencv().COLOR_RGB2GRAY)


def _resize(gray: np.ndarray, short_side: int | None) -> np.ndarray:
    height, width = resized_shape(*gray.shape, short_side)
    if (height, width) == gray.shape:
        return gray
    return require_opencv().resize(gray, (width, height), interpolation=require_opencv().INTER_AREA)


def _frames_of_folder(folder: Path, template: str) -> Iterator[np.ndarray]:
    count = count_frame_files(folder, template=template)
    if count == 0:
        raise ValueError(f"{folder}: no frames ({template.format(1)} not found)")
    for i in range(1, count + 1):
        yield _gray(decode_jpeg_file(folder / template.format(i)).permute(1, 2, 0).numpy())


def _frames_of_video(video: Path) -> Iterator[np.ndarray]:
    try:
        with av.open(str(video)) as container:
            check_video_container(container, label=str(video))
            for frame in container.decode(container.streams.video[0]):
                yield _gray(frame.to_ndarray(format="rgb24"))
    except av.FFmpegError as exc:
        raise CorruptMediaError(f"{video}: cannot decode video ({exc})") from None


def source_frames(source: str | Path, *, template: str = DEFAULT_TEMPLATE) -> Iterator[np.ndarray]:
    """Grayscale uint8 frames of a frame folder (``template`` from 1) or a video file, in order."""
    source = Path(source)
    if source.is_dir():
        return _frames_of_folder(source, template)
    if source.is_file():
        return _frames_of_video(source)
    raise FileNotFoundError(f"{source}: no such frame folder or video file")


def write_flow_image(path: Path, values: np.ndarray, *, quality: int = 95) -> None:
    data = simplejpeg.encode_jpeg(np.ascontiguousarray(values[..., None]), quality=quality, colorspace="GRAY")
    path.write_bytes(data)


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
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FLOW_DONE_MARKER).unlink(missing_ok=True)
    clear_frames(folder, FLOW_X_TEMPLATE)
    clear_frames(folder, FLOW_Y_TEMPLATE)
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
    mark_done(folder, count, marker=FLOW_DONE_MARKER)
    return count


@dataclass
class FlowResult:
    """What `prepare_flow` did: the extraction counts and the flow list it wrote."""

    extraction: ExtractResult
    list_file: Path
    videos: int  # lines in the flow list

    def summary(self) -> str:
        return f"{self.extraction.summary()}\nflow list: {self.list_file} ({self.videos} videos)"


def flow_folder_name(path: str) -> str:
    """The flow folder (relative) of a list entry: its path with a video extension dropped."""
    p = Path(path)
    return (p.with_suffix("") if p.suffix.lower() in VIDEO_EXTENSIONS else p).as_posix()


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
    work = functools.partial(extract_flow, method=method, bound=bound, short_side=short_side,
                             quality=quality, template=template)
    result = run_resumable(jobs, work, out_root=out_root, marker=FLOW_DONE_MARKER,
                           failures_file=failures_file or out_root / FLOW_FAILURES_FILE,
                           workers=workers, progress=progress, desc=f"flow ({method})")
    out_list = Path(out_list) if out_list else out_root / f"{list_file.stem}_flow.txt"
    entries = []
    for record in records:
        name = flow_folder_name(record.path)
        if name in result.frames:
            entries.append((name, result.frames[name], record.label))
    write_frame_list(out_list, entries)
    return FlowResult(extraction=result, list_file=out_list, videos=len(entries))


# --- reading flow clips -----------------------------------------------------------------


def decode_flow_file(path: Path) -> np.ndarray:
    """One grayscale flow JPEG -> uint8 (H, W); errors name the file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: flow file not found") from None
    if not data.startswith(b"\xff\xd8") or not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise CorruptMediaError(f"{path}: corrupt flow JPEG (not a complete JPEG file)")
    try:
        return simplejpeg.decode_jpeg(data, colorspace="GRAY", strict=True)[..., 0]
    except ValueError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else "decode failed"
        raise CorruptMediaError(f"{path}: corrupt flow JPEG ({reason})") from None


def read_flow_folder(
    folder: str | Path,
    indices: Sequence[int],
    *,
    x_template: str = FLOW_X_TEMPLATE,
    y_template: str = FLOW_Y_TEMPLATE,
) -> torch.Tensor:
    """Flow fields ``indices`` (0-based) of a flow folder -> uint8 (N, 2, H, W), x then y."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: flow folder not found")
    decoded: dict[int, np.ndarray] = {}
    for index in map(int, indices):
        if index not in decoded:
            decoded[index] = np.stack([decode_flow_file(folder / t.format(index + 1)) for t in (x_template, y_template)])
    shapes = {a.shape for a in decoded.values()}
    if len(shapes) > 1:
        raise CorruptMediaError(f"{folder}: flow images have different sizes {sorted(shapes)}")
    return torch.from_numpy(np.stack([decoded[int(i)] for i in indices]))


class FlowFolderSource(FolderSource):
    """The flow fields of a flow folder as a frame source: ``read(indices)`` -> uint8 (N, 2, H, W),
    x then y (`read_flow_folder`); ``frames()`` gives each (2, H, W) field in order."""

    def __init__(
        self,
        folder: str | Path,
        *,
        num_frames: int | None = None,
        x_template: str = FLOW_X_TEMPLATE,
        y_template: str = FLOW_Y_TEMPLATE,
    ) -> None:
        super().__init__(folder, template=x_template, num_frames=num_frames)
        self.y_template = y_template

    def read(self, indices: Sequence[int]) -> torch.Tensor:
        return read_flow_folder(self.path, indices, x_template=self.template, y_template=self.y_template)

    def frames(self) -> Iterator[SourceFrame]:
        for i in range(self.num_frames):
            yield SourceFrame(index=i, time=i / self.fps, image=self.read([i])[0])


class FlowDataset(VideoDataset):
    """Flow stacks from a flow list (``<flow folder> <flow fields> <label>``, `prepare_flow`).

    The ``sampler``'s ``new_length`` is L, the flow fields per segment; the uint8 clip is
    (T*L, 2, H, W) and the flow transforms turn it into (T, 2L, H, W). Errors (a missing
    or corrupt flow file) name the list line and the file, as `VideoDataset`'s do.
    """

    def __init__(
        self,
        *,
        list_file: str | Path,
        root: str | Path,
        sampler: Sampler,
        transform: Any = None,
        num_classes: int | None = None,
        seed: int = 0,
        on_error: Literal["raise", "skip"] = "raise",
        check_files: bool = True,
        x_template: str = FLOW_X_TEMPLATE,
        y_template: str = FLOW_Y_TEMPLATE,
    ) -> None:
        self.y_template = y_template
        super().__init__(list_file=list_file, root=root, sampler=sampler, transform=transform, kind="frames",
                         template=x_template, num_classes=num_classes, seed=seed, on_error=on_error,
                         check_files=check_files)

    def frame_source(self, record: Record) -> FlowFolderSource:
        assert isinstance(record, FrameRecord)  # the list is read as a frame list (kind "frames")
        path = self.root / record.path
        self._check_folder(path, record.num_frames)
        return FlowFolderSource(path, num_frames=record.num_frames, x_template=self.template,
                                y_template=self.y_template)


# --- flow transforms --------------------------------------------------------------------


def flip_flow(video: torch.Tensor) -> torch.Tensor:
    """Mirror (..., 2, H, W) uint8 flow horizontally: mirror the images and negate x (255 - x)."""
    out = F.horizontal_flip(video)
    if out.shape[-3] != 2:
        raise ValueError(f"expected flow with 2 channels (x, y), got shape {tuple(out.shape)}")
    out = out.clone()
    out[..., 0, :, :] = 255 - out[..., 0, :, :]
    return tv_tensors.wrap(out, like=video) if isinstance(video, tv_tensors.TVTensor) else out


class FlowHorizontalFlip(ClipHorizontalFlip):
    """`ClipHorizontalFlip` for flow clips: the mirrored field has its x component negated."""

    def flip(self, video: Any) -> Any:
        return flip_flow(video)


class FlowTenCrop(v2.Transform):
    """Four corners + centre of side ``size`` and their mirrors (x negated): 10 flow views."""

    def __init__(self, *, size: int) -> None:
        super().__init__()
        self.size = size

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        views = tuple(self._call_kernel(F.five_crop, inpt, [self.size, self.size]))
        return views + tuple(flip_flow(v) for v in views)


class StackFlow(v2.Transform):
    """(..., T*L, 2, H, W) -> (..., T, 2L, H, W): each segment's L fields as 2L channels x1, y1, x2, ..."""

    _transformed_types = (torch.Tensor,)

    def __init__(self, *, flow_length: int) -> None:
        super().__init__()
        self.flow_length = flow_length

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        x = inpt.as_subclass(torch.Tensor)
        *lead, frames, channels, h, w = x.shape
        if channels != 2 or frames % self.flow_length:
            raise ValueError(f"expected (T*{self.flow_length}, 2, H, W) flow, got {tuple(x.shape)}")
        out = x.reshape(*lead, frames // self.flow_length, self.flow_length * 2, h, w)
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out


def _flow_to_float(normalize: bool) -> ToFloatNormalize:
    return ToFloatNormalize(mean=(FLOW_MEAN, FLOW_MEAN), std=(FLOW_STD, FLOW_STD), normalize=normalize)


def flow_train_transform(
    *,
    flow_length: int = DEFAULT_FLOW_LENGTH,
    size: int = 224,
    scales: Sequence[float] = PAPER_SCALES,
    max_distort: int = 1,
    flip: bool = True,
    flip_labels: Mapping[int, int | None] | None = None,
    normalize: bool = True,
) -> v2.Compose:
    """The RGB training augmentation for flow: multi-scale crop, flip negating x, the flow
    normalisation, then (T*L, 2, H, W) -> (T, 2L, H, W)."""
    steps: list[v2.Transform] = [MultiScaleCrop(size=size, scales=scales, max_distort=max_distort)]
    if flip:
        steps.append(FlowHorizontalFlip(p=0.5, label_map=flip_labels))
    return v2.Compose(steps + [_flow_to_float(normalize), StackFlow(flow_length=flow_length)])


def flow_test_transform(
    *, flow_length: int = DEFAULT_FLOW_LENGTH, size: int = 224, scale_size: int = 256, views: int = 1,
    normalize: bool = True,
) -> v2.Compose:
    """`transforms.test_transform`'s views for flow (the 10-crop mirrors negate x) -> (T, 2L, H, W)
    or (views, T, 2L, H, W)."""
    steps: list[v2.Transform] = [v2.Resize(scale_size, antialias=True)]
    if views == 1:
        steps.append(v2.CenterCrop(size))
    elif views == 3:
        steps.append(ThreeCrop(size=scale_size))
    elif views == 5:
        steps.append(v2.FiveCrop(size))
    elif views == 10:
        steps.append(FlowTenCrop(size=size))
    else:
        raise ValueError(f"views must be 1, 3, 5 or 10, got {views}")
    steps.append(_flow_to_float(normalize))
    if views > 1:
        steps.append(StackViews())
    return v2.Compose(steps + [StackFlow(flow_length=flow_length)])
