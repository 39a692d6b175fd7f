"""Decoding frames from frame folders, video files and cameras: the one module that reads
video with PyAV (`data.sources` says which frames, this module decodes them).

The clip readers (`read_frame_folder`, `read_frame_files`, `read_video`) take 0-based frame
indices (duplicates allowed, any order) and return a uint8 tensor ``(len(indices), 3, H, W)``
in RGB. Only the frames needed are read: JPEG files are decoded one by one with simplejpeg
(libjpeg-turbo; torchvision's image decoding is deprecated since torchvision 0.29, and its
successor, TorchCodec, needs torch >= 2.11); videos are decoded with PyAV, seeking over long
gaps and stopping after the last needed frame. `decode_video_frames` decodes an opened video
or camera (`open_video`, `open_camera`) sequentially, each frame with its presentation time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import simplejpeg
import torch

from temporal_shift.data.lists import DEFAULT_TEMPLATE

VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".m4v")
# Containers whose stored frame count (nb_frames) we trust; others are counted by decoding.
_RELIABLE_COUNT_FORMATS = ("mov", "mp4", "m4a", "3gp", "avi")
# libjpeg's warning for a file that ends before its last scan: a truncated frame.
_TRUNCATED = "Premature end of JPEG file"
# libjpeg's warning for image data that stops before the scan is complete, a marker following:
# a file cut short with an end marker appended (it would decode with grey rows)
_CUT_SHORT = "premature end of data segment"
# FFmpeg's text-art demuxers (ANSI/ASCII art, BinText, XBin, iCEDraw, Artworx) and their
# decoders: they open any text file (notes.txt, a log) as a "video" of rendered text.
TEXT_ART_FORMATS = frozenset({"tty", "bin", "xbin", "idf", "adf"})
TEXT_ART_CODECS = frozenset({"ansi", "bintext", "xbin", "idf"})


class CorruptMediaError(ValueError):
    """A frame or video that exists but cannot be decoded; the message names the file."""


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
    """Every frame of an opened video or camera in decoding order: (time in s, uint8 (3, H, W) RGB).

    Times come from the frames' timestamps relative to the stream's start (dropped frames
    and seeks show as gaps), else from the frame number and the nominal frame rate. The
    container is closed when the frames end or the iterator is closed; decoding errors raise
    CorruptMediaError naming ``label``.
    """
    stream = container.streams.video[0]
    rate = Fraction(container_fps(container)).limit_denominator(1001)
    time_base = stream.time_base
    start = stream.start_time or 0
    try:
        for i, frame in enumerate(container.decode(stream)):
            if frame.pts is not None and time_base is not None:
                t = float((frame.pts - start) * time_base)
            else:
                t = float(i / rate)
            yield t, torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1)
    except av.FFmpegError as exc:
        raise CorruptMediaError(f"{label}: corrupt video ({exc})") from None
    finally:
        container.close()


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
    """Frames in a video: from the container when reliable (mp4/mov/avi), else by decoding."""
    path = Path(path)
    container = open_video(path)
    try:
        stream = container.streams.video[0]
        names = (container.format.name or "").split(",")
        if stream.frames and stream.frames > 0 and any(n in _RELIABLE_COUNT_FORMATS for n in names):
            return int(stream.frames)
        count = 0
        for _ in container.decode(stream):
            count += 1
        return count
    except av.FFmpegError as exc:
        raise CorruptMediaError(f"{path}: corrupt video ({exc})") from None
    finally:
        container.close()


def read_video(path: str | Path, indices: Sequence[int], *, seek_threshold: int = 32) -> torch.Tensor:
    """Decode frames ``indices`` (0-based, presentation order) of a video -> uint8 (N, 3, H, W).

    Frame positions come from timestamps (``pts * time_base * frame_rate``) when the stream
    has a frame rate, which makes seeking exact for constant-frame-rate video; a gap of
    more than ``seek_threshold`` frames to the next needed frame is crossed by seeking to
    the preceding keyframe. Decoding stops after the last needed frame. Requesting a frame
    past the end raises CorruptMediaError.
    """
    path = Path(path)
    wanted = sorted({int(i) for i in indices})
    if not wanted:
        raise ValueError(f"{path}: no frame indices requested")
    if wanted[0] < 0:
        raise ValueError(f"{path}: negative frame index {wanted[0]}")
    container = open_video(path)
    try:
        got = _decode_wanted(container, wanted, seek_threshold=seek_threshold)
    except av.FFmpegError as exc:
        raise CorruptMediaError(f"{path}: corrupt video ({exc})") from None
    finally:
        container.close()
    if len(got) < len(wanted):
        missing = [i for i in wanted if i not in got]
        raise CorruptMediaError(
            f"{path}: could not decode frame {missing[0]} (0-based); the video ends earlier or is truncated"
        )
    frames = {i: torch.from_numpy(a).permute(2, 0, 1) for i, a in got.items()}
    return torch.stack([frames[int(i)] for i in indices])


def _frame_clock(stream: av.VideoStream) -> tuple[Callable[[int], int], Callable[[int], int]] | None:
    """(pts -> frame index, frame index -> pts) from the stream's frame rate and time base, or
    None where it lacks either (frames are then counted as decoded)."""
    rate = stream.average_rate or stream.guessed_rate
    time_base = stream.time_base
    if not rate or time_base is None:
        return None
    start = stream.start_time or 0
    return (
        lambda pts: round(float((pts - start) * time_base * Fraction(rate))),
        lambda index: start + int(Fraction(index) / Fraction(rate) / time_base),
    )


def _decode_wanted(
    container: av.container.InputContainer, wanted: list[int], *, seek_threshold: int
) -> dict[int, np.ndarray]:
    stream = container.streams.video[0]
    clock = _frame_clock(stream)
    timed = clock is not None
    to_index = clock[0] if clock is not None else None

    got: dict[int, np.ndarray] = {}
    k = 0
    last = -1  # index of the last decoded frame
    frames_iter = None
    sequential = -1
    while k < len(wanted):
        target = wanted[k]
        if frames_iter is None or (timed and target - last > seek_threshold):
            if clock is not None and target > seek_threshold:
                pts = clock[1](target)
                container.seek(pts, stream=stream, backward=True, any_frame=False)
            frames_iter = container.decode(stream)
        found = False
        for frame in frames_iter:
            sequential += 1
            index = to_index(frame.pts) if (to_index and frame.pts is not None) else sequential
            last = index
            if index < target:
                continue
            array = frame.to_ndarray(format="rgb24")
            while k < len(wanted) and wanted[k] <= index:
                got[wanted[k]] = array
                k += 1
            found = True
            break
        if not found:
            break
    return got
