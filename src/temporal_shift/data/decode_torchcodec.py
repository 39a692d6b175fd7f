"""TorchCodec, PyTorch's video decoder, as a second decoder for `decode.read_video`
(``decoder="torchcodec"``, ``data.decoder: torchcodec``; PyAV stays the default).

TorchCodec's "exact" mode numbers frames as `video_index` does (the container's packets in
presentation order, an edit list's cut left out) and turns frames upright by their display
matrix, so for such files both decoders give the same frames. Files that only decoding can
order (AVI with B-frames, as UCF101's and HMDB51's) are refused with an error naming the
file: TorchCodec 0.17 returns other frames after seeking in them and cannot decode their
last frame. It is an optional extra: ``pip install 'temporal-shift[torchcodec]'``, and it
needs FFmpeg's shared libraries (4 to 8) on the system, unlike PyAV, whose wheel carries them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import av
import torch

from temporal_shift.data import video_index
from temporal_shift.data.video_index import CorruptMediaError

INSTALL = "pip install 'temporal-shift[torchcodec]'"


def torchcodec_decoder(path: str | Path) -> Any:
    """A TorchCodec ``VideoDecoder`` of ``path`` (exact seeking, one thread, (N, 3, H, W)
    frames), or a ValueError that says what is missing: the package or FFmpeg's libraries."""
    try:
        from torchcodec.decoders import VideoDecoder
    except ImportError:
        raise ValueError(f"decoder torchcodec needs the torchcodec package: {INSTALL}; or use decoder pyav") from None
    try:
        return VideoDecoder(str(path), seek_mode="exact", dimension_order="NCHW", num_ffmpeg_threads=1)
    except RuntimeError as exc:
        if "libtorchcodec" in str(exc) or "Could not load" in str(exc):
            raise ValueError(
                "decoder torchcodec cannot load FFmpeg: TorchCodec needs FFmpeg's shared libraries "
                "(versions 4 to 8: libavutil.so.56 to .60) on the library path, e.g. apt install ffmpeg "
                "or conda install ffmpeg; or use decoder pyav (its wheel carries FFmpeg)"
            ) from None
        raise CorruptMediaError(f"{path}: TorchCodec cannot open it ({str(exc).splitlines()[0]})") from None


def read_video_torchcodec(
    path: Path, indices: Sequence[int], *, open_video: Callable[[Path], av.container.InputContainer]
) -> torch.Tensor:
    """Frames ``indices`` of the video at ``path`` decoded by TorchCodec -> uint8 (N, 3, H, W)."""
    index = video_index.video_index(path, open_video=open_video)
    if index.method == "decoding":
        raise ValueError(
            f"{path}: TorchCodec cannot read this file frame-exactly (its frame order is the decoder's, "
            "as in AVI with B-frames: TorchCodec 0.17 returns other frames after a seek); use decoder pyav"
        )
    wanted = [int(i) for i in indices]
    if wanted and max(wanted) >= index.num_frames:
        raise CorruptMediaError(
            f"{path}: could not decode frame {max(wanted)} (0-based): the video has {index.num_frames} frames"
        )
    decoder = torchcodec_decoder(path)
    if decoder.metadata.num_frames != index.num_frames:
        raise ValueError(
            f"{path}: TorchCodec counts {decoder.metadata.num_frames} frames where decoding gives "
            f"{index.num_frames}; use decoder pyav"
        )
    try:
        return decoder.get_frames_at(wanted).data
    except RuntimeError as exc:
        raise CorruptMediaError(f"{path}: corrupt video ({str(exc).splitlines()[0]})") from None
