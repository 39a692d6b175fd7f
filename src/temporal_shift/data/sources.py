"""Frame sources: a JPEG frame folder, a video file or a camera behind one interface.

A `FrameSource` gives the frames of one video two ways:

- ``read(indices)``: random access, the frames a sampler picked for a clip, as uint8
  (len(indices), 3, H, W) RGB (datasets, prediction; a camera has none);
- ``frames()`` (or iterating the source): every frame in order as a `SourceFrame` with its
  presentation time in seconds (streaming).

``num_frames`` is the frame count (None for a camera) and ``fps`` the nominal frame rate.
`FolderSource` numbers a folder's frames by a template (``img_00001.jpg`` ...) or by its
JPEGs sorted by name, `VideoSource` reads a video file, `CameraSource` a camera.
`open_source` decides the kind of one path or camera index (``tsm stream``), `find_sources`
what a path holds for ``tsm predict`` (a video, a frame folder or a folder of videos); both
read a folder by the same rule (`open_folder`), so ``stream`` and ``predict`` see the same
frames of it.

Sources are thin: decoding is `data.decode`'s (simplejpeg, PyAV), and its errors (naming
the file) pass through unchanged.
"""

from __future__ import annotations

import abc
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import torch

from temporal_shift.data.decode import (
    VIDEO_EXTENSIONS,
    CorruptMediaError,
    Decoder,
    container_fps,
    count_frame_files,
    decode_jpeg_file,
    decode_video_frames,
    frame_path,
    open_camera,
    open_video,
    read_frame_files,
    read_frame_folder,
    read_video,
    video_fps,
    video_frame_count,
)
from temporal_shift.data.lists import DEFAULT_TEMPLATE

if TYPE_CHECKING:
    import av
    from typing_extensions import Self  # typing.Self from Python 3.11

IMAGE_EXTENSIONS = (".jpg", ".jpeg")
# optical flow images (tsm prepare flow, TSN's dense_flow, MMAction2) that share folders with frames
FLOW_IMAGE_PREFIXES = ("flow_x_", "flow_y_", "x_", "y_")
DEFAULT_FPS = 25.0  # frame folders have no frame rate of their own
SourceKind = Literal["frames", "video", "camera"]


@dataclass
class SourceFrame:
    """One decoded frame: its 0-based position in the source, time (s) and uint8 (3, H, W) RGB."""

    index: int
    time: float
    image: torch.Tensor


class FrameSource(abc.ABC):
    """The frames of one folder, video or camera (see the module docstring).

    A source holds no decoder between calls except what `open_source` opened to check the
    input (and what ``frames()`` is iterating); `close` releases those.
    """

    kind: ClassVar[SourceKind]
    label: str  # how errors and records name the source: its path, or "camera N"

    @property
    @abc.abstractmethod
    def num_frames(self) -> int | None:
        """Frames in the source (a video without any is an error); None for a camera."""

    @property
    @abc.abstractmethod
    def fps(self) -> float:
        """The nominal frame rate."""

    @abc.abstractmethod
    def read(self, indices: Sequence[int]) -> torch.Tensor:
        """Frames ``indices`` (0-based, duplicates allowed, any order) -> uint8 (N, 3, H, W) RGB."""

    @abc.abstractmethod
    def frames(self) -> Iterator[SourceFrame]:
        """Every frame in order with its presentation time."""

    def __iter__(self) -> Iterator[SourceFrame]:
        return self.frames()

    def close(self) -> None:  # noqa: B027 (a hook: sources that hold nothing open need no override)
        """Release what the source holds open (nothing for a frame folder)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.label!r})"


class FolderSource(FrameSource):
    """JPEG frames of a folder: ``template`` numbered from ``offset + 1`` (``img_00001.jpg``
    ...; an offset comes from MMAction2's lists), or the given ``files`` in their order
    (`open_folder` picks one). ``num_frames`` defaults to the template files present from 1
    on (`decode.count_frame_files`); frame i's time is ``i / fps``."""

    kind: ClassVar[Literal["frames"]] = "frames"

    def __init__(
        self,
        folder: str | Path,
        *,
        template: str = DEFAULT_TEMPLATE,
        files: Sequence[Path] | None = None,
        num_frames: int | None = None,
        fps: float = DEFAULT_FPS,
        offset: int = 0,
    ) -> None:
        if files is not None and num_frames is not None:
            raise ValueError("give a folder's files or its frame count, not both")
        if files is not None and offset:
            raise ValueError("a start offset numbers template files, not given files")
        self.path = Path(folder)
        self.label = str(self.path)
        self.template = template
        self.offset = offset
        self.files = list(files) if files is not None else None
        self._num_frames = len(self.files) if self.files is not None else num_frames
        self._fps = float(fps)

    @property
    def num_frames(self) -> int:
        if self._num_frames is None:
            self._num_frames = count_frame_files(self.path, template=self.template)
        return self._num_frames

    @property
    def fps(self) -> float:
        return self._fps

    def frame_path(self, index: int) -> Path:
        """The file of 0-based frame ``index``."""
        if self.files is not None:
            return self.files[index]
        return frame_path(self.path, index + self.offset, template=self.template)

    def read(self, indices: Sequence[int]) -> torch.Tensor:
        if self.files is not None:
            return read_frame_files(self.files, indices, label=self.label)
        return read_frame_folder(self.path, [int(i) + self.offset for i in indices], template=self.template)

    def frames(self) -> Iterator[SourceFrame]:
        for i in range(self.num_frames):
            yield SourceFrame(index=i, time=i / self._fps, image=decode_jpeg_file(self.frame_path(i)))


class _DecodedSource(FrameSource):
    """A source PyAV decodes in order: a video file or a camera. The container `open_source`
    opened is the one the first ``frames()`` reads; later calls open the input again."""

    def __init__(self) -> None:
        self._container: av.container.InputContainer | None = None
        self._reading: list[tuple[Generator[SourceFrame, None, None], av.container.InputContainer]] = []

    @abc.abstractmethod
    def _open(self) -> av.container.InputContainer: ...

    def frames(self) -> Iterator[SourceFrame]:
        container, self._container = self._container, None
        if container is None:
            container = self._open()
        iterator = self._decode(container)
        self._reading.append((iterator, container))
        return iterator

    def _decode(self, container: av.container.InputContainer) -> Generator[SourceFrame, None, None]:
        for i, (t, image) in enumerate(decode_video_frames(container, label=self.label)):
            yield SourceFrame(index=i, time=t, image=image)

    def close(self) -> None:
        for iterator, container in self._reading:
            iterator.close()
            container.close()  # also when the iterator was closed before its first frame
        self._reading.clear()
        if self._container is not None:
            self._container.close()
            self._container = None


class VideoSource(_DecodedSource):
    """A video file (anything PyAV opens). ``fps`` and ``num_frames`` default to the file's
    (`decode.video_fps`, `decode.video_frame_count`), read when first asked for; a video
    without decodable frames is a CorruptMediaError. `read` decodes with ``decoder``
    (`decode.read_video`); `frames` (in order) always with PyAV."""

    kind: ClassVar[Literal["video"]] = "video"

    def __init__(
        self, path: str | Path, *, fps: float | None = None, num_frames: int | None = None, decoder: Decoder = "pyav"
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.label = str(self.path)
        self.decoder = decoder
        self._fps = float(fps) if fps is not None else None
        self._num_frames = num_frames

    @classmethod
    def open(cls, path: str | Path, *, fps: float | None = None) -> VideoSource:
        """The source with its file opened now, so a file PyAV cannot open fails here."""
        container = open_video(path)
        source = cls(path, fps=fps or container_fps(container))
        source._container = container
        return source

    def _open(self) -> av.container.InputContainer:
        return open_video(self.path)

    @property
    def num_frames(self) -> int:
        if self._num_frames is None:
            count = video_frame_count(self.path)
            if count < 1:
                raise CorruptMediaError(f"{self.path}: no decodable frames")
            self._num_frames = count
        return self._num_frames

    @property
    def fps(self) -> float:
        if self._fps is None:
            self._fps = video_fps(self.path)
        return self._fps

    def read(self, indices: Sequence[int]) -> torch.Tensor:
        return read_video(self.path, indices, decoder=self.decoder)


class CameraSource(_DecodedSource):
    """Camera ``index`` (``/dev/video<index>`` through PyAV's v4l2 input), opened when made.
    Frames come in order only; ``fps`` defaults to what the driver states."""

    kind: ClassVar[Literal["camera"]] = "camera"

    def __init__(self, index: int, *, fps: float | None = None) -> None:
        super().__init__()
        self.index = int(index)
        self.label = f"camera {self.index}"
        self._container = open_camera(self.index)
        self._fps = float(fps or container_fps(self._container))

    def _open(self) -> av.container.InputContainer:
        return open_camera(self.index)

    @property
    def num_frames(self) -> None:
        return None

    @property
    def fps(self) -> float:
        return self._fps

    def read(self, indices: Sequence[int]) -> torch.Tensor:
        raise ValueError(f"{self.label}: a camera has no random access; read its frames in order (frames())")


def _jpegs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def open_folder(
    folder: str | Path, *, template: str | None = DEFAULT_TEMPLATE, fps: float = DEFAULT_FPS
) -> FolderSource:
    """A frame folder's source: its ``template`` files (numbered from 1) when the first one is
    there, else (or with ``template=None``) its ``*.jpg``/``*.jpeg`` files sorted by name.

    Sorted by name, flow images (``flow_x_``, ``flow_y_``, ``x_``, ``y_`` ...) would be read as
    frames: a folder holding them and no ``template`` files is refused, naming the template
    option to give."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: frame folder not found")
    if template is not None:
        count = count_frame_files(folder, template=template)
        if count > 0:
            return FolderSource(folder, template=template, num_frames=count, fps=fps)
    files = _jpegs(folder)
    if not files:
        raise ValueError(f"{folder}: no JPEG frames (*.jpg, *.jpeg) in this folder")
    flow = [p.name for p in files if p.name.lower().startswith(FLOW_IMAGE_PREFIXES)]
    if flow:
        found = f"no {template.format(1)} but " if template is not None else ""
        raise ValueError(
            f"{folder}: {found}{len(flow)} flow images ({flow[0]} ...) among its JPEGs; give the frame file "
            "names (--template, e.g. 'frame_{:04d}.jpg')"
        )
    return FolderSource(folder, files=files, fps=fps)


def parse_source(text: str | int | Path) -> int | Path:
    """A camera index for an int, or a string of digits that is not an existing path; else a path."""
    if isinstance(text, int):
        return text
    if isinstance(text, str) and text.isdigit() and not Path(text).exists():
        return int(text)
    return Path(text)


def open_source(
    source: str | int | Path, *, template: str | None = DEFAULT_TEMPLATE, fps: float | None = None
) -> FrameSource:
    """Open a video file, a frame folder or a camera index (`parse_source`) for streaming.

    A folder's frames are its ``template`` files, or its JPEGs sorted by name when it has
    none of those (`open_folder`, as ``predict`` reads a folder). ``fps`` overrides the
    frame rate (frame folders: default 25). A video file or camera is opened here, so a
    missing, empty or unreadable source raises FileNotFoundError / ValueError naming it
    before any frame is read.
    """
    if fps is not None and fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    parsed = parse_source(source)
    if isinstance(parsed, int):
        return CameraSource(parsed, fps=fps)
    path = parsed
    if path.is_dir():
        return open_folder(path, template=template, fps=fps or DEFAULT_FPS)
    if not path.exists():
        raise FileNotFoundError(f"{path}: source not found (a video file, a frame folder or a camera index)")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        raise ValueError(f"{path}: a single image is not a stream; give its folder instead")
    return VideoSource.open(path, fps=fps)


def find_sources(path: str | Path, *, template: str = DEFAULT_TEMPLATE) -> list[FolderSource | VideoSource]:
    """What ``path`` holds: one video file, one frame folder (`open_folder`), or the videos
    (``.mp4``, ``.webm``, ``.avi``, ``.mkv``, ``.mov``, ``.m4v``) of a folder, not searched
    recursively. Nothing is decoded; errors name the path and what to give instead."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found (expected a video file, a frame folder or a folder of videos)")
    if path.is_file():
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            raise ValueError(f"{path}: a single image is not a video; give the frame folder instead")
        return [VideoSource(path)]
    jpegs = _jpegs(path)
    videos = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
    if jpegs and videos:
        raise ValueError(f"{path}: holds both JPEG frames and videos; give a frame folder or a folder of videos")
    if jpegs:
        return [open_folder(path, template=template)]
    if videos:
        return [VideoSource(v) for v in videos]
    raise ValueError(f"{path}: no JPEG frames and no videos ({', '.join(VIDEO_EXTENSIONS)}) in this folder")
