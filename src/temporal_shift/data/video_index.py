"""Frame-exact random access to video files: which decoded frame is frame ``i``.

Frame ``i`` of a video is the i-th frame that decoding the file from its start gives
(presentation order, what ``tsm prepare extract`` writes), whatever the container and
encoding: B-frames, timestamps that start anywhere or jump, an edit list that cuts the first
frames, AVI files whose timestamps are decode slots. A `VideoIndex` records, for each
frame, the file position of the packet that codes it (FFmpeg hands a packet's ``opaque`` on
to the frame it decodes, so a decoded frame says which one it is), and the keyframes
decoding can start from. Reading frames (`read_frames`) seeks to the keyframe before each
wanted frame and takes the frames whose packets are the wanted ones: nothing is computed
from ``pts * frame_rate``.

The index is built in one of two ways, and kept per process (`video_index`, keyed by path,
size and modification time, so a changed file is indexed again):

- from the packets alone (no decoding, milliseconds): containers that carry presentation
  timestamps (mp4, mov, mkv, webm, ...) give the frames as their packets in timestamp
  order, without the packets an edit list discards; an AVI whose codec does not reorder
  frames gives them in file order;
- by decoding the file once: AVI (and other containers without presentation timestamps)
  with B-frames, where only the decoder knows the order (DivX's "packed" B-frames of
  UCF101 and HMDB51 included). A first read does its work during that pass.

Reads check what they get: every decoded frame must be a frame of the index, in increasing
order, and no wanted frame may be passed over. When a packet-built index disagrees with
the decoder, the file is indexed by decoding instead; when seeking in a file does not give
the frames that decoding from the start gives, that file is read from its start from then
on. Either way the frames returned are those of sequential decoding.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import av
import numpy as np

# Containers whose packet timestamps are decode slots (AVI) or made up by a parser (raw
# elementary streams): their presentation order is the decoder's.
DTS_ONLY_FORMATS = frozenset({"avi", "h264", "hevc", "m4v", "mpegvideo", "h263", "cavsvideo", "vc1"})
CACHE_SIZE = 1024  # videos whose index a process keeps


class CorruptMediaError(ValueError):
    """A frame or video that exists but cannot be decoded; the message names the file."""


class _Mismatch(Exception):
    """The decoder did not give the frames the index says (internal: the read is redone)."""


@dataclass(frozen=True, eq=False)
class VideoIndex:
    """Where the frames of one video are (see the module docstring).

    ``packets[i]`` is the file position of the packet that codes frame ``i``;
    ``seek_frames`` the frames decoding can start from (keyframes, ascending, always
    starting with 0) and ``seek_timestamps`` the timestamp to seek to for each (in the
    stream's time base; None for frame 0: read from the start). ``seekable`` is False when
    seeking in this file does not give the frames sequential decoding gives (reads then
    decode from the start).
    """

    path: str
    packets: np.ndarray
    seek_frames: np.ndarray
    seek_timestamps: tuple[int | None, ...]
    method: Literal["packets", "decoding"]
    seekable: bool = True

    @property
    def num_frames(self) -> int:
        return len(self.packets)

    @functools.cached_property
    def position(self) -> dict[int, int]:
        """Packet file position -> frame number."""
        return {int(p): i for i, p in enumerate(self.packets)}

    def seek_point(self, frame: int) -> int:
        """The entry of ``seek_frames`` to start from for ``frame``: the last keyframe at or before it."""
        return int(np.searchsorted(self.seek_frames, frame, side="right")) - 1


# --- the per-process cache ---------------------------------------------------------------

_cache: OrderedDict[tuple[str, int, int], VideoIndex] = OrderedDict()
_lock = threading.Lock()


def _cache_key(path: Path) -> tuple[str, int, int]:
    st = os.stat(path)
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def cached_index(path: str | Path) -> VideoIndex | None:
    """The index this process holds for ``path`` if the file is unchanged since, else None."""
    with _lock:
        index = _cache.get(_cache_key(Path(path)))
        if index is not None:
            _cache.move_to_end(_cache_key(Path(path)))
        return index


def _remember(path: Path, index: VideoIndex) -> VideoIndex:
    with _lock:
        _cache[_cache_key(path)] = index
        _cache.move_to_end(_cache_key(path))
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return index


def clear_cache() -> None:
    """Forget every index this process holds."""
    with _lock:
        _cache.clear()


# --- building an index -------------------------------------------------------------------

Convert = Callable[[av.VideoFrame], np.ndarray]


def video_index(path: str | Path, *, open_video: Callable[[Path], av.container.InputContainer]) -> VideoIndex:
    """The index of the video at ``path`` (from the cache, else built and cached)."""
    path = Path(path)
    index = cached_index(path)
    if index is None:
        index = _build(path, open_video=open_video, wanted=(), convert=None)[0]
    return index


def _build(
    path: Path,
    *,
    open_video: Callable[[Path], av.container.InputContainer],
    wanted: Sequence[int],
    convert: Convert | None,
    force_decoding: bool = False,
) -> tuple[VideoIndex, dict[int, np.ndarray]]:
    """Index ``path`` (and cache it); when that needs decoding, also return frames ``wanted``."""
    if not force_decoding:
        container = open_video(path)
        try:
            index = _index_from_packets(container, label=str(path))
        except av.FFmpegError as exc:
            raise CorruptMediaError(f"{path}: corrupt video ({exc})") from None
        finally:
            container.close()
        if index is not None:
            return _remember(path, index), {}
    container = open_video(path)
    try:
        index, frames = _index_by_decoding(container, label=str(path), wanted=set(wanted), convert=convert)
    except av.FFmpegError as exc:
        raise CorruptMediaError(f"{path}: corrupt video ({exc})") from None
    finally:
        container.close()
    return _remember(path, index), frames


def _index_from_packets(container: av.container.InputContainer, *, label: str) -> VideoIndex | None:
    """The index from the packets alone, or None when only decoding can tell the order."""
    stream = container.streams.video[0]
    positions, pts, dts, keys = [], [], [], []
    for packet in container.demux(stream):
        if packet.size == 0 or packet.is_discard:  # the end, an AVI drop slot, an edit list's cut
            continue
        positions.append(packet.pos)
        pts.append(packet.pts)
        dts.append(packet.dts)
        keys.append(packet.is_keyframe)
    formats = set((container.format.name or "").split(","))
    if formats & DTS_ONLY_FORMATS:
        if stream.codec_context.has_b_frames:
            return None  # decode slots, not display order
        order = np.arange(len(positions))
        timestamps = dts
    else:
        if any(t is None for t in pts) or len(set(pts)) != len(pts):
            return None
        order = np.argsort(np.asarray(pts, dtype=np.int64), kind="stable")
        timestamps = pts
    packets = np.asarray(positions, dtype=np.int64)[order]
    seekable = bool(len(packets)) and packets.min() >= 0 and len(set(packets.tolist())) == len(packets)
    seek = [(0, None)] + [(i, timestamps[j]) for i, j in enumerate(order.tolist()) if keys[j] and i > 0]
    return VideoIndex(
        path=label,
        packets=packets,
        seek_frames=np.asarray([f for f, _ in seek], dtype=np.int64),
        seek_timestamps=tuple(t for _, t in seek),
        method="packets",
        seekable=seekable and all(t is not None for _, t in seek[1:]),
    )


def _index_by_decoding(
    container: av.container.InputContainer, *, label: str, wanted: set[int], convert: Convert | None
) -> tuple[VideoIndex, dict[int, np.ndarray]]:
    """The index from decoding the whole file once, and frames ``wanted`` on the way."""
    stream = container.streams.video[0]
    stream.codec_context.copy_opaque = True
    packet_info: dict[int, tuple[bool, int | None]] = {}  # position -> (keyframe, seek timestamp)
    packets: list[int] = []
    frames: dict[int, np.ndarray] = {}
    for packet in container.demux(stream):
        if packet.size and packet.pos is not None:
            packet_info[packet.pos] = (packet.is_keyframe, packet.dts if packet.dts is not None else packet.pts)
        packet.opaque = packet.pos
        for frame in packet.decode():
            if convert is not None and len(packets) in wanted:
                frames[len(packets)] = convert(frame)
            packets.append(frame.opaque if isinstance(frame.opaque, int) else -1)
    positions = np.asarray(packets, dtype=np.int64)
    seekable = bool(len(positions)) and positions.min() >= 0 and len(set(packets)) == len(packets)
    seek: list[tuple[int, int | None]] = [(0, None)]
    if seekable:
        for i, p in enumerate(packets):
            key, timestamp = packet_info.get(p, (False, None))
            if key and i > 0 and timestamp is not None:
                seek.append((i, timestamp))
    index = VideoIndex(
        path=label,
        packets=positions,
        seek_frames=np.asarray([f for f, _ in seek], dtype=np.int64),
        seek_timestamps=tuple(t for _, t in seek),
        method="decoding",
        seekable=seekable,
    )
    return index, frames


# --- reading -----------------------------------------------------------------------------


def read_frames(
    path: str | Path,
    wanted: Sequence[int],
    *,
    convert: Convert,
    open_video: Callable[[Path], av.container.InputContainer],
    seek_threshold: int = 32,
) -> dict[int, np.ndarray]:
    """Frames ``wanted`` (distinct, ascending, 0-based) of the video at ``path``, each through
    ``convert``; a frame past the end is a CorruptMediaError naming the file and its count.

    A keyframe more than ``seek_threshold`` frames past the current position is reached by
    seeking; decoding stops after the last wanted frame.
    """
    path = Path(path)
    index = cached_index(path)
    if index is None:
        index, frames = _build(path, open_video=open_video, wanted=wanted, convert=convert)
        if index.method == "decoding":
            _check_range(index, wanted)
            return frames
    _check_range(index, wanted)
    try:
        return _read(path, index, wanted, convert=convert, open_video=open_video, seek_threshold=seek_threshold)
    except _Mismatch:
        pass
    if index.method == "packets":  # the decoder's order is not the packets': ask the decoder
        index, frames = _build(path, open_video=open_video, wanted=wanted, convert=convert, force_decoding=True)
        _check_range(index, wanted)
        return frames
    if index.seekable:  # seeking in this file misleads the decoder: read it from the start
        index = _remember(path, replace(index, seekable=False))
        try:
            return _read(path, index, wanted, convert=convert, open_video=open_video, seek_threshold=seek_threshold)
        except _Mismatch:
            pass
    clear_cache()
    raise CorruptMediaError(f"{path}: decoding does not give the same frames twice (was the file changed while read?)")


def _check_range(index: VideoIndex, wanted: Sequence[int]) -> None:
    if wanted and wanted[-1] >= index.num_frames:
        raise CorruptMediaError(
            f"{index.path}: could not decode frame {wanted[-1]} (0-based): the video has {index.num_frames} frames"
        )


def _read(
    path: Path,
    index: VideoIndex,
    wanted: Sequence[int],
    *,
    convert: Convert,
    open_video: Callable[[Path], av.container.InputContainer],
    seek_threshold: int,
) -> dict[int, np.ndarray]:
    container = open_video(path)
    reader = _Reader(container, index, convert=convert, seek_threshold=seek_threshold)
    try:
        return reader.read(wanted)
    except av.FFmpegError as exc:
        raise CorruptMediaError(f"{path}: corrupt video ({exc})") from None
    finally:
        reader.close()


class _Reader:
    """One read of one opened video (see `read_frames`)."""

    def __init__(
        self, container: av.container.InputContainer, index: VideoIndex, *, convert: Convert, seek_threshold: int
    ) -> None:
        self.container = container
        self.stream = container.streams.video[0]
        self.stream.codec_context.copy_opaque = True
        self.index = index
        self.convert = convert
        self.seek_threshold = seek_threshold
        self.frames: Generator[tuple[int, av.VideoFrame], None, None] | None = None
        self.decoded = False  # has this container decoded a packet yet

    def close(self) -> None:
        """Close the decoding generator and the container now: left to the garbage collector,
        a codec context with decoder threads may be freed in a forked DataLoader worker, where
        those threads do not exist (a deadlock)."""
        if self.frames is not None:
            self.frames.close()
            self.frames = None
        self.container.close()

    def read(self, wanted: Sequence[int]) -> dict[int, np.ndarray]:
        got: dict[int, np.ndarray] = {}
        current = -1  # the last frame decoded
        for target in wanted:
            point = self.index.seek_point(target) if self.index.seekable else 0
            if self.frames is None or self.index.seek_frames[point] > current + self.seek_threshold:
                current = self._decode_to(target, self._start(point), got, started=point)
            else:
                current = self._decode_to(target, current, got, started=None)
        return got

    def _start(self, point: int) -> int:
        """Position the decoder at seek point ``point``; returns the frame before it."""
        if self.frames is not None:
            self.frames.close()
        if point == 0:
            if self.frames is not None or self.decoded:
                self.container.seek(0, stream=self.stream, backward=True)
            self.frames = self._decode(sequential=not self.index.seekable)
            return -1
        if not self.decoded and self.index.method == "decoding":
            # a stream's headers may say how to decode it (DivX's packed B-frames): see them first
            headers = self._decode(sequential=False)
            next(headers, None)
            headers.close()
        timestamp = self.index.seek_timestamps[point]
        assert timestamp is not None  # only seek point 0 (the start) has none
        self.container.seek(timestamp, stream=self.stream, backward=True, any_frame=False)
        self.frames = self._decode(sequential=False)
        return int(self.index.seek_frames[point]) - 1

    def _decode(self, *, sequential: bool) -> Generator[tuple[int, av.VideoFrame], None, None]:
        """(frame number, frame) from the decoder's current place: by packet, or by count from the start."""
        position = self.index.position
        count = -1
        last = -1
        for packet in self.container.demux(self.stream):
            packet.opaque = packet.pos
            self.decoded = True
            for frame in packet.decode():
                count += 1
                number = count if sequential else position.get(frame.opaque if isinstance(frame.opaque, int) else -1)
                if number is None or number <= last:
                    raise _Mismatch()
                last = number
                yield number, frame

    def _decode_to(self, target: int, current: int, got: dict[int, np.ndarray], *, started: int | None) -> int:
        """Decode on to frame ``target``; ``started``: the seek point just started from, if any."""
        assert self.frames is not None
        first = True
        for number, frame in self.frames:
            if number == target:
                got[target] = self.convert(frame)
                return number
            if number > target:
                if started and first:  # the seek landed past its keyframe: start one keyframe earlier, once
                    return self._decode_to(target, self._start(started - 1), got, started=None)
                raise _Mismatch()
            first = False
        raise _Mismatch()  # the frames ended before the target
