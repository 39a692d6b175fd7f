"""A corpus of hard encodings, written by the tests (no stored binaries), and the reference
every reader is compared with: decoding the file from its start with PyAV.

Frames carry their number in a row of black/white blocks (`coded_frames`, `frame_numbers`),
on a background that moves a little each frame (so encoders predict frames from others).
Each file's ``check`` says what makes it hard, verified on the written file
(`check_corpus_file`): B-frames whose decoded timestamps come out of order, an edit list
that cuts the first frames, a timestamp jump, a display rotation, a 1x1 picture.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from temporal_shift.data.encode import write_video

HEIGHT, WIDTH = 48, 64
BLOCK = 8  # one bit of the frame number per 8x8 block in the top row: 8 bits
JUMP_PTS = [3000 * i + 90000 * (i >= 20) for i in range(40)]  # 30 frames/s in 1/90000, 1 s missing after frame 19


def coded_frames(num_frames: int, *, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """uint8 (T, H, W, 3) frames whose top row of blocks spells the frame number in binary."""
    y, x = np.mgrid[0:height, 0:width]
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for i in range(num_frames):
        frames[i, ..., 0] = (x * 3 + i * 2) % 200 + 30
        frames[i, ..., 1] = (y * 4 + i) % 200 + 30
        frames[i, ..., 2] = 128
        for bit in range(min(8, width // BLOCK)):
            frames[i, :BLOCK, bit * BLOCK : (bit + 1) * BLOCK] = 255 if (i >> bit) & 1 else 0
    return frames


def frame_numbers(clip: Any) -> list[int]:
    """The numbers spelled by frames (T, 3, H, W) or (T, H, W, 3) of `coded_frames`."""
    array = np.asarray(clip)
    if array.shape[1] == 3:
        array = array.transpose(0, 2, 3, 1)
    numbers = []
    for frame in array:
        bits = [frame[2:6, b * BLOCK + 2 : b * BLOCK + 6].mean() > 128 for b in range(min(8, frame.shape[1] // BLOCK))]
        numbers.append(sum(1 << b for b, on in enumerate(bits) if on))
    return numbers


@dataclass(frozen=True)
class CorpusFile:
    name: str
    frames: int  # frames written
    shown: list[int]  # the numbers of the frames decoding gives, in order
    writer: dict[str, Any]
    check: Callable[[Path], str | None] = field(compare=False)  # None, or what the file lacks
    upright_turns: int = 0  # np.rot90 turns that bring the decoded (stored) frames upright


def _decoded_pts(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        return [f.pts for f in container.decode(video=0)]


def _out_of_order(path: Path) -> str | None:
    pts = _decoded_pts(path)
    return None if any(b < a for a, b in itertools.pairwise(pts)) else f"decoded pts in order: {pts[:8]}"


def _bframes(path: Path) -> str | None:
    with av.open(str(path)) as container:
        types = {int(f.pict_type) for f in container.decode(video=0)}
    return None if 3 in types else f"picture types {sorted(types)}"  # AV_PICTURE_TYPE_B is 3


def _edit_list_cut(path: Path) -> str | None:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        discarded = sum(p.is_discard for p in container.demux(stream) if p.size)
        bframes = stream.codec_context.has_b_frames
    return None if discarded and bframes else f"discarded packets {discarded}, B-frames {bframes}"


def _timestamp_jump(path: Path) -> str | None:
    pts = _decoded_pts(path)
    steps = sorted({b - a for a, b in itertools.pairwise(pts)})
    return None if len(steps) == 2 and steps[1] > 10 * steps[0] else f"steps {steps}"


def _rotated(path: Path) -> str | None:
    with av.open(str(path)) as container:
        rotation = next(container.decode(video=0)).rotation
    return None if rotation == -90 else f"rotation {rotation}"


def _one_pixel(path: Path) -> str | None:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
    return None if (frame.width, frame.height) == (1, 1) else f"{frame.width}x{frame.height}"


def _packed(path: Path) -> str | None:
    with av.open(str(path)) as container:
        sizes = [p.size for p in container.demux(video=0) if p.size]
    placeholders = sum(s < 20 for s in sizes)  # N-VOPs, each after a packet holding two pictures
    return _out_of_order(path) or (None if placeholders >= len(sizes) // 3 else f"{placeholders} N-VOPs")


CORPUS = [
    # H.264 with B-frames, timestamps starting 3 frames before zero: the mp4's edit list cuts them
    CorpusFile(
        "h264_bframes_cut.mp4",
        40,
        list(range(3, 40)),
        dict(bframes=3, gop=12, crf=10, pts=[i - 3 for i in range(40)]),
        _edit_list_cut,
    ),
    # H.264 with B-frames in AVI: decoded timestamps are decode slots, out of display order
    CorpusFile("h264_bframes.avi", 40, list(range(40)), dict(bframes=2, gop=12, crf=10), _out_of_order),
    # MPEG-4 Part 2 (Xvid) with B-frames in AVI: the first decoded timestamp is 1, not the stream's start
    CorpusFile("mpeg4_bframes.avi", 40, list(range(40)), dict(codec="mpeg4", bframes=2, gop=12), _bframes),
    # DivX's packed B-frames (UCF101, HMDB51): decoded timestamps run 1, 3, 2, 5, 4, ...
    CorpusFile(
        "mpeg4_packed.avi",
        40,
        list(range(40)),
        dict(codec="mpeg4", bframes=1, gop=12, packed_bframes=True),
        _packed,
    ),
    # a phone-style variable rate: 30 frames/s in a 1/90000 time base, 1 s missing after frame 19
    CorpusFile(
        "vfr_jump.mp4",
        40,
        list(range(40)),
        dict(fps=30, gop=12, crf=10, time_base=Fraction(1, 90000), pts=JUMP_PTS),
        _timestamp_jump,
    ),
    # filmed upright on a phone: landscape frames and a display matrix turning them clockwise
    CorpusFile("rotated.mp4", 30, list(range(30)), dict(gop=12, crf=10, rotation=-90), _rotated, upright_turns=-1),
    # a 1x1 video
    CorpusFile("one_pixel.mp4", 6, list(range(6)), dict(pix_fmt="yuv444p", crf=0), _one_pixel),
]
BY_NAME = {c.name: c for c in CORPUS}


def write_corpus_file(root: Path, item: CorpusFile) -> Path:
    """Write ``item`` under ``root``; the rotated file stores upright portrait frames turned a
    quarter counter-clockwise, as a phone's sensor does."""
    if item.name == "one_pixel.mp4":
        frames = np.repeat(np.arange(item.frames, dtype=np.uint8)[:, None, None, None] * 40, 3, axis=3)
    elif item.upright_turns:
        frames = np.ascontiguousarray(np.rot90(coded_frames(item.frames, height=WIDTH, width=HEIGHT), 1, axes=(1, 2)))
    else:
        frames = coded_frames(item.frames)
    return write_video(root / item.name, frames, **item.writer)


def sequential_frames(path: Path, *, upright_turns: int = 0) -> np.ndarray:
    """Every frame of ``path`` decoding it from its start gives, (T, H, W, 3) RGB, turned upright
    by ``upright_turns`` quarter turns (what the file's display matrix says, known to the test)."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return np.stack([np.rot90(f, upright_turns) for f in frames])


def one_pixel_numbers(clip: Any) -> list[int]:
    """The frame numbers of one_pixel.mp4 (grey level 40 * number)."""
    array = np.asarray(clip).reshape(len(clip), -1)
    return [round(float(v) / 40) for v in array.mean(axis=1)]
