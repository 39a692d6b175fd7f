"""Decoding frames from frame folders, video files and cameras: the one module that reads
video with PyAV (`data.sources` says which frames, this module decodes them).

The clip readers (`read_frame_folder`, `read_frame_files`, `read_video`) take 0-based frame
indices (duplicates allowed, any order) and return a uint8 tensor ``(len(indices), 3, H, W)``
in RGB. Only the frames needed are read: JPEG files are decoded one by one with simplejpeg
(libjpeg-turbo; torchvision's image decoding is deprecated since torchvision 0.29);
videos with PyAV (or, with ``decoder="torchcodec"``, TorchCodec: `decode_torchcodec`).

Frame ``i`` of a video is the i-th frame that decoding the file from its start gives, in
presentation order, whatever the container (`video_index`: B-frames, timestamps that start
anywhere or jump, AVI); `video_frame_count` counts exactly those. Every decoded frame is
turned upright as its display matrix says (`frame_rgb`: the rotation and mirroring a
phone records; players apply it too). `decode_video_frames` decodes an opened video or
camera (`open_video`, `open_camera`) sequentially, each frame with its presentation time.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
import numpy as np
import simplejpeg
import torch
from av.sidedata.sidedata import SideDataContainer

from temporal_shift.data import video_index
from temporal_shift.data.lists import DEFAULT_TEMPLATE, VIDEO_EXTENSIONS  # noqa: F401 (re-exported: extract, prepare, sources)
from temporal_shift.data.video_index import DTS_ONLY_FORMATS, CorruptMediaError

Decoder = Literal["pyav", "torchcodec"]
DECODERS: tuple[str, ...] = ("pyav", "torchcodec")

# libjpeg's warning for a file that ends before its last scan: a truncated frame.
_TRUNCATED = "Premature end of JPEG file"
# libjpeg's warning for image data that stops before the scan is complete, a marker following:
# a file cut short with an end marker appended (it would decode with grey rows)
_CUT_SHORT = "premature end of data segment"
# FFmpeg's text-art demuxers (ANSI/ASCII art, BinText, XBin, iCEDraw, Artworx) and their
# decoders: they open any text file (notes.txt, a log) as a "video" of rendered text.
TEXT_ART_FORMATS = frozenset({"tty", "bin", "xbin", "idf", "adf"})
TEXT_ART_CODECS = frozenset({"ansi", "bintext", "xbin", "idf"})


def frame_path(folder: Path, index: int, *, template: str = DEFAULT_TEMPLATE) -> Path:
    """Path of 0-based frame ``index`` in ``folder`` (files are numbered from 1)."""
    return folder / template.format(index + 1)


def decode_jpeg_file(path: Path) -> torch.Tensor:
    """Decode one JPEG file to a uint8 (3, H, W) RGB tensor (grayscale and CMYK converted)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: frame file not found") from None
    if not data:
        raise CorruptMediaError(f"{path}: empty JPEG file")
    return torch.from_numpy(decode_jpeg_bytes(data, source=path)).permute(2, 0, 1)


@dataclass(frozen=True)
class JpegInfo:
    """What a JPEG's marker segments declare, read without decoding (`jpeg_info`)."""

    frame: int  # the SOFn marker's code: 0xC0 baseline, 0xC1 extended, 0xC2 progressive, ...
    width: int
    height: int
    components: int
    scans: int  # SOS segments: 1 for an interleaved baseline file, ~10 for a typical progressive one

    @property
    def coding(self) -> str:
        """The coding process in words (ITU T.81 table B.1)."""
        return _SOF_NAMES.get(self.frame, f"SOF marker 0x{self.frame:02X}")


_SOF_NAMES = {
    0xC0: "baseline",
    0xC1: "extended sequential",
    0xC2: "progressive",
    0xC3: "lossless",
    0xC5: "hierarchical sequential",
    0xC6: "hierarchical progressive",
    0xC7: "hierarchical lossless",
    0xC9: "arithmetic-coded sequential",
    0xCA: "arithmetic-coded progressive",
    0xCB: "arithmetic-coded lossless",
    0xCD: "hierarchical arithmetic-coded sequential",
    0xCE: "hierarchical arithmetic-coded progressive",
    0xCF: "hierarchical arithmetic-coded lossless",
}
# a marker: 0xFF then a code that is not a stuffed zero, a restart marker or a fill byte (0xFF:
# a run of them matches at its last one; one byte of look-ahead keeps the search linear)
_MARKER = re.compile(rb"\xff([^\x00\xd0-\xd7\xff])")
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM and RSTn: no length field


def jpeg_info(data: bytes, *, source: str | Path = "JPEG data", stop_after_scans: int | None = None) -> JpegInfo:
    """The frame header and the number of scans of a JPEG, from its marker segments alone.

    Walks the segments from SOI to EOI (skipping each scan's entropy-coded data) without
    decoding anything: the cost is one pass over the bytes in C (a regular expression),
    whatever the file declares. A file without SOI, frame header, scan or EOI, or whose
    segment lengths overrun it, raises CorruptMediaError naming ``source``; a file that
    ends before its EOI marker is reported as truncated. With ``stop_after_scans``, the walk
    stops at the scan after that many (``scans`` is then ``stop_after_scans + 1``): a caller
    with a limit learns that it is broken without walking the rest.
    """
    if not data.startswith(b"\xff\xd8"):
        raise CorruptMediaError(f"{source}: corrupt JPEG (not a JPEG file: starts with {data[:2].hex(' ')})")
    frame: tuple[int, int, int, int] | None = None
    scans = 0
    pos, end = 2, len(data)
    while True:
        marker = _MARKER.search(data, pos)  # bytes before a marker are skipped, as libjpeg does
        if marker is None:
            raise CorruptMediaError(f"{source}: corrupt JPEG (truncated: the file ends before its end-of-image marker)")
        code, pos = marker.group(1)[0], marker.end()
        if code == 0xD9:  # EOI
            break
        if code in _STANDALONE:
            continue
        if code == 0xD8:
            raise CorruptMediaError(f"{source}: corrupt JPEG (a second start-of-image marker at byte {marker.start()})")
        if pos + 2 > end:
            raise CorruptMediaError(f"{source}: corrupt JPEG (truncated: the file ends inside a marker segment)")
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2 or pos + length > end:
            raise CorruptMediaError(
                f"{source}: corrupt JPEG (truncated: a segment of {length} bytes at byte "
                f"{marker.start()} runs past the end of the file)"
            )
        if code in _SOF_NAMES:
            if frame is not None:
                raise CorruptMediaError(f"{source}: corrupt JPEG (more than one frame header)")
            if length < 8:
                raise CorruptMediaError(f"{source}: corrupt JPEG (frame header of {length} bytes)")
            height, width = (
                int.from_bytes(data[pos + 3 : pos + 5], "big"),
                int.from_bytes(data[pos + 5 : pos + 7], "big"),
            )
            frame = (code, width, height, data[pos + 7])
        pos += length
        if code == 0xDA:  # SOS: its entropy-coded data runs to the next marker
            scans += 1
            if frame is not None and stop_after_scans is not None and scans > stop_after_scans:
                break
            after = _MARKER.search(data, pos)
            pos = after.start() if after is not None else end
    if frame is None or scans == 0:
        raise CorruptMediaError(f"{source}: corrupt JPEG (no {'frame header' if frame is None else 'scan'})")
    return JpegInfo(frame=frame[0], width=frame[1], height=frame[2], components=frame[3], scans=scans)


def decode_jpeg_bytes(data: bytes, *, source: str | Path = "JPEG data") -> np.ndarray:
    """Decode JPEG bytes to a uint8 (H, W, 3) RGB array; CorruptMediaError names ``source``.

    Like libjpeg (and torchvision's decoder before it), recoverable defects such as
    extraneous bytes before a marker are tolerated, but a file that ends early is refused
    as truncated rather than returned with grey rows: whether it stops before its
    end-of-image marker or its image data stops early and a marker follows (a file cut
    short with an end marker appended).
    """
    if not data.startswith(b"\xff\xd8"):
        raise CorruptMediaError(f"{source}: corrupt JPEG (not a JPEG file: starts with {data[:2].hex(' ')})")
    try:
        return simplejpeg.decode_jpeg(data, colorspace="RGB", strict=True)
    except ValueError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else "decode failed"
    if _TRUNCATED in reason or not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise CorruptMediaError(f"{source}: corrupt JPEG (truncated: the file ends before its end-of-image marker)")
    if _CUT_SHORT in reason:
        raise CorruptMediaError(f"{source}: corrupt JPEG (truncated: its image data ends early, {reason})")
    try:  # only a libjpeg warning (strict mode raises on those): decode as libjpeg does
        return simplejpeg.decode_jpeg(data, colorspace="RGB", strict=False)
    except ValueError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else reason
    raise CorruptMediaError(f"{source}: corrupt JPEG ({reason})")


def read_frame_folder(folder: str | Path, indices: Sequence[int], *, template: str = DEFAULT_TEMPLATE) -> torch.Tensor:
    """Read frames ``indices`` (0-based) of a frame folder -> uint8 (N, 3, H, W)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: frame folder not found")
    return _read_jpegs(lambda index: frame_path(folder, index, template=template), indices, label=str(folder))


def read_frame_files(files: Sequence[Path], indices: Sequence[int], *, label: str) -> torch.Tensor:
    """Read frames ``indices`` (0-based positions in ``files``) -> uint8 (N, 3, H, W); ``label``
    (e.g. their folder) names them in the error for frames of different sizes."""
    return _read_jpegs(lambda index: files[index], indices, label=label)


def _read_jpegs(path_of: Callable[[int], Path], indices: Sequence[int], *, label: str) -> torch.Tensor:
    decoded: dict[int, torch.Tensor] = {}
    for index in indices:
        index = int(index)
        if index not in decoded:
            decoded[index] = decode_jpeg_file(path_of(index))
    frames = [decoded[int(i)] for i in indices]
    shapes = {tuple(f.shape) for f in frames}
    if len(shapes) > 1:
        raise CorruptMediaError(f"{label}: frames have different sizes {sorted(shapes)}")
    return torch.stack(frames)


def count_frame_files(folder: str | Path, *, template: str = DEFAULT_TEMPLATE) -> int:
    """Number of consecutive frame files 1, 2, ... present in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: frame folder not found")
    names = {p.name for p in folder.iterdir()}
    count = 0
    while template.format(count + 1) in names:
        count += 1
    return count


def open_video(path: str | Path) -> av.container.InputContainer:
    """Open a video file and check it has a real video stream; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: video file not found")
    return _open_container(str(path), label=str(path))


def open_camera(index: int) -> av.container.InputContainer:
    """Open camera ``index`` (``/dev/video<index>``, PyAV's v4l2 input); errors say ``camera <index>``."""
    label = f"camera {index}"
    if "v4l2" not in av.formats_available:
        raise ValueError(f"{label}: this PyAV build has no v4l2 input format; stream a video file or frame folder")
    device = Path(f"/dev/video{index}")
    if not device.exists():
        raise FileNotFoundError(f"{label}: {device} not found (no camera attached?)")
    return _open_container(str(device), label=label, format="v4l2")


def _open_container(target: str, *, label: str, format: str | None = None) -> av.container.InputContainer:
    try:
        container = av.open(target, format=format)
    except av.FFmpegError as exc:
        raise CorruptMediaError(f"{label}: cannot open video ({exc})") from None
    try:
        check_video_container(container, label=label)
    except CorruptMediaError:
        container.close()
        raise
    return container


def container_fps(container: av.container.InputContainer) -> float:
    """The nominal frame rate of an opened video's first video stream (25 when it states none)."""
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate else 25.0


def video_fps(path: str | Path) -> float:
    """The nominal frame rate of a video file (`container_fps`)."""
    container = open_video(path)
    try:
        return container_fps(container)
    finally:
        container.close()


def decode_video_frames(container: av.container.InputContainer, *, label: str) -> Iterator[tuple[float, torch.Tensor]]:
    """Every frame of an opened video or camera in presentation order: (time in s since the
    first frame, uint8 (3, H, W) RGB, upright: `frame_rgb`).

    A frame's time is its presentation timestamp: the k-th frame decoded gets the k-th
    smallest timestamp of the packets fed to the decoder (their display times; AVI's decode
    slots), so B-frames, whose timestamps some containers hand out in decoding order, never
    make time run backwards, while a jump in the timestamps (dropped frames) shows. Without
    timestamps, times are frame number / nominal rate. The container is closed when the
    frames end or the iterator is closed; decoding errors raise CorruptMediaError naming ``label``.
    """
    stream = container.streams.video[0]
    rate = container_fps(container)
    time_base = stream.time_base
    dts_only = bool(set((container.format.name or "").split(",")) & DTS_ONLY_FORMATS)
    pending: list[int] = []  # timestamps of packets whose frames are not out yet
    first: int | None = None
    count = 0
    try:
        for packet in container.demux(stream):
            timestamp = packet.dts if dts_only else packet.pts
            if packet.size and not packet.is_discard and timestamp is not None:
                heapq.heappush(pending, timestamp)
            for frame in packet.decode():
                if pending and time_base is not None:
                    timestamp = heapq.heappop(pending)
                    first = timestamp if first is None else first
                    t = float((timestamp - first) * time_base)
                else:
                    t = count / rate
                count += 1
                yield t, torch.from_numpy(frame_rgb(frame, label=label)).permute(2, 0, 1)
    except av.FFmpegError as exc:
        raise CorruptMediaError(f"{label}: corrupt video ({exc})") from None
    finally:
        container.close()


def frame_rgb(
    frame: av.VideoFrame, *, label: str = "video", size: tuple[int, int] | None = None, interpolation: str | None = None
) -> np.ndarray:
    """A decoded frame as uint8 (H, W, 3) RGB, turned as its display matrix says; ``size``:
    (height, width) as shown, to resize to (with ``interpolation``, e.g. ``"AREA"``).

    Phones store a video filmed upright as landscape frames plus a display matrix that tells
    players to turn them (front cameras sometimes to mirror them too); this applies it, so
    frames come out as every player shows them. Only quarter turns and mirrors exist in
    practice; any other matrix is a CorruptMediaError naming ``label``.
    """
    matrix = _display_matrix(frame)
    turn = (False, False, False) if matrix is None else _display_transform(matrix, label=label)
    transpose, flip_rows, flip_cols = turn
    if size is None:
        array = frame.to_ndarray(format="rgb24")
    else:
        height, width = size[::-1] if transpose else size
        array = frame.to_ndarray(format="rgb24", width=width, height=height, interpolation=interpolation)
    if not (transpose or flip_rows or flip_cols):
        return array
    if transpose:
        array = array.transpose(1, 0, 2)
    if flip_rows:
        array = array[::-1]
    if flip_cols:
        array = array[:, ::-1]
    return np.ascontiguousarray(array)


def frame_display_size(frame: av.VideoFrame, *, label: str = "video") -> tuple[int, int]:
    """(height, width) of a decoded frame as shown (`frame_rgb`: a quarter turn swaps them)."""
    matrix = _display_matrix(frame)
    if matrix is not None and _display_transform(matrix, label=label)[0]:
        return frame.width, frame.height
    return frame.height, frame.width


def _display_matrix(frame: av.VideoFrame) -> np.ndarray | None:
    """The frame's display matrix, or None where it shows no turn.

    ``frame.side_data`` makes a reference cycle (the frame caches a container of its side
    data, which refers back to it), so the frame and its decoder's buffers would outlive it
    until the garbage collector runs: if that is in a forked DataLoader worker, freeing
    buffers of a threaded decoder there deadlocks. A container made here and dropped after
    use refers to the frame without the frame referring to it: no cycle. It is read only for
    frames ``frame.rotation`` says are turned (a phone's rotated tracks; a matrix that only
    flips rows reads as 0 and is not applied)."""
    if not frame.rotation:
        return None
    for side_data in SideDataContainer(frame):  # type: ignore[call-arg]  # PyAV's stub omits the frame argument
        if side_data.type.name == "DISPLAYMATRIX":
            return np.frombuffer(memoryview(side_data), dtype=np.int32).copy()
    return None


def _display_transform(matrix: np.ndarray, *, label: str) -> tuple[bool, bool, bool]:
    """(transpose, flip rows, flip columns) that bring a frame upright (libavutil/display.h:
    a stored pixel (x, y) is shown at (a x + c y, b x + d y))."""
    a, b, c, d = (int(v) for v in matrix[[0, 1, 3, 4]])
    if b == c == 0 and a and d:
        return False, d < 0, a < 0
    if a == d == 0 and b and c:
        return True, b < 0, c < 0
    raise CorruptMediaError(
        f"{label}: its display matrix turns frames by {frame_rotation(matrix):.0f} degrees; "
        "only quarter turns and mirrors are supported"
    )


def frame_rotation(matrix: np.ndarray) -> float:
    """The counter-clockwise rotation (degrees) of a display matrix (FFmpeg's, PyAV's sign)."""
    a, b, c, d = (float(v) / 65536 for v in matrix[[0, 1, 3, 4]])
    return float(np.degrees(np.arctan2(b, a))) if (a or b) else float(np.degrees(np.arctan2(-c, d)))


def check_video_container(container: av.container.InputContainer, *, label: str) -> None:
    """Refuse a container without a real video stream (CorruptMediaError naming ``label``).

    Besides files without a video stream, this refuses what FFmpeg's text-art demuxers
    make of a text file: a "video" of rendered characters.
    """
    if not container.streams.video:
        raise CorruptMediaError(f"{label}: no video stream")
    formats = set((container.format.name or "").split(","))
    codec = container.streams.video[0].codec_context.name
    if formats & TEXT_ART_FORMATS or codec in TEXT_ART_CODECS:
        raise CorruptMediaError(
            f"{label}: not a video: FFmpeg reads it as text art ({container.format.name} format, "
            f"{codec} codec); give a video file"
        )


def video_frame_count(path: str | Path) -> int:
    """Frames in a video: how many decoding it from its start gives (`video_index`), which is
    also what `read_video` numbers (header counts are not: they include an edit list's cut,
    AVI's drop slots, and are missing from some containers)."""
    return video_index.video_index(Path(path), open_video=open_video).num_frames


def read_video(
    path: str | Path, indices: Sequence[int], *, seek_threshold: int = 32, decoder: Decoder = "pyav"
) -> torch.Tensor:
    """Decode frames ``indices`` (0-based, presentation order, any order and repeats) of a
    video -> uint8 (N, 3, H, W), upright (`frame_rgb`).

    Frame ``i`` is the i-th frame that decoding the file from its start gives
    (`video_index`): with PyAV, a keyframe more than ``seek_threshold`` frames ahead is
    reached by seeking, and decoding stops after the last needed frame;
    ``decoder="torchcodec"`` decodes with TorchCodec (`decode_torchcodec`). A frame past
    the end raises CorruptMediaError naming the file and its frame count.
    """
    path = Path(path)
    wanted = sorted({int(i) for i in indices})
    if not wanted:
        raise ValueError(f"{path}: no frame indices requested")
    if wanted[0] < 0:
        raise ValueError(f"{path}: negative frame index {wanted[0]}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: video file not found")
    if decoder == "torchcodec":
        from temporal_shift.data.decode_torchcodec import read_video_torchcodec

        return read_video_torchcodec(path, indices, open_video=open_video)
    if decoder != "pyav":
        raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
    got = video_index.read_frames(
        path,
        wanted,
        convert=lambda frame: frame_rgb(frame, label=str(path)),
        open_video=open_video,
        seek_threshold=seek_threshold,
    )
    shapes = {a.shape for a in got.values()}
    if len(shapes) > 1:
        raise CorruptMediaError(f"{path}: frames have different sizes {sorted(shapes)}")
    frames = {i: torch.from_numpy(a).permute(2, 0, 1) for i, a in got.items()}
    return torch.stack([frames[int(i)] for i in indices])
