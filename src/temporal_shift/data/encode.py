"""Writing clips: JPEG frame folders (simplejpeg, libjpeg-turbo) and videos (PyAV).

`write_video` also writes what cameras and encoders write, so the readers can be tested on
it: B-frames (H.264, or MPEG-4 Part 2 in AVI as Xvid/DivX do, optionally with DivX's
"packed" B-frames, the encoding of UCF101 and HMDB51), explicit timestamps (an offset, a
jump, timestamps before zero that an edit list cuts, as a copy-trimmed video has) and a
display rotation (as phones write for a video filmed upright).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import simplejpeg
import torch

from temporal_shift.data.lists import DEFAULT_TEMPLATE

_VOP = b"\x00\x00\x01\xb6"  # MPEG-4 Part 2 picture (VOP) start code
_USER_DATA = b"\x00\x00\x01\xb2"
_DIVX_PACKED = b"DivX503b1393p"  # the user data by which DivX 5 marks packed B-frames


def write_frame_folder(
    folder: str | Path,
    frames: np.ndarray | torch.Tensor,
    *,
    template: str = DEFAULT_TEMPLATE,
    quality: int = 90,
    start: int = 1,
) -> Path:
    """Write uint8 RGB frames (T, H, W, 3) as JPEG files numbered from ``start`` (1).

    Baseline JPEG with 4:2:0 chroma subsampling (libjpeg's default, as before).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    array = np.asarray(frames)
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[3] != 3:
        raise ValueError(f"{folder}: frames must be uint8 (T, H, W, 3), got {tuple(array.shape)}")
    if not 1 <= quality <= 100:
        raise ValueError(f"{folder}: JPEG quality must be in 1..100, got {quality}")
    for i, frame in enumerate(array, start=start):
        data = simplejpeg.encode_jpeg(
            np.ascontiguousarray(frame), quality=quality, colorspace="RGB", colorsubsampling="420"
        )
        (folder / template.format(i)).write_bytes(data)
    return folder


def write_video(
    path: str | Path,
    frames: np.ndarray,
    *,
    fps: int = 25,
    codec: str = "libx264",
    crf: int = 18,
    gop: int = 16,
    bframes: int = 0,
    pix_fmt: str = "yuv420p",
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
    rotation: int = 0,
    packed_bframes: bool = False,
) -> Path:
    """Encode uint8 RGB frames (T, H, W, 3) to a video file; the container follows the suffix.

    Single-threaded and deterministic: the same frames give the same bytes.

    - ``codec``: ``libx264`` (quality ``crf``) or any FFmpeg encoder, e.g. ``mpeg4``
      (MPEG-4 Part 2, at its best quality); a keyframe every ``gop`` frames.
    - ``bframes``: B-frames between reference frames (0: none).
    - ``pix_fmt``: yuv420p needs even height and width; ``yuv444p`` (libx264) takes any size.
    - ``pts``: each frame's presentation timestamp in ``time_base`` units (default
      ``1/fps``, frames 0, 1, 2, ...): an offset, a jump, a variable rate; timestamps below
      zero are cut on reading by the container's edit list (mp4, mov), as in a video
      trimmed without re-encoding.
    - ``rotation``: the display matrix's rotation in degrees counter-clockwise (FFmpeg's and
      PyAV's sign): a player turns the stored frames by it; a phone filming upright stores
      landscape frames with ``-90`` (turn clockwise).
    - ``packed_bframes``: DivX's packed B-frames (MPEG-4 Part 2 in AVI, ``bframes=1``): each
      B-frame travels in the packet of the reference frame before it, followed by an empty
      placeholder packet (N-VOP), as in UCF101's and HMDB51's Xvid/DivX files.
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
        raise ValueError(f"{path}: frames must be uint8 (T, H, W, 3), got {frames.shape}")
    height, width = frames.shape[1:3]
    if pix_fmt == "yuv420p" and (height % 2 or width % 2):
        raise ValueError(f"{path}: yuv420p video needs even height and width, got {height}x{width}")
    if pts is not None and len(pts) != len(frames):
        raise ValueError(f"{path}: {len(pts)} timestamps for {len(frames)} frames")
    if packed_bframes and (codec != "mpeg4" or bframes != 1 or path.suffix.lower() != ".avi"):
        raise ValueError(f"{path}: packed B-frames are MPEG-4 Part 2 in AVI with bframes=1")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    explicit_time_base = time_base is not None
    time_base = time_base or Fraction(1, fps)
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if explicit_time_base:
            stream.time_base = stream.codec_context.time_base = time_base
        stream.codec_context.thread_count = 1
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "crf": str(crf), "g": str(gop)}
            if bframes:  # a fixed pattern: a keyframe every gop frames, bframes between references
                params = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}:b-adapt=0"
                stream.options = {"preset": "fast", "crf": str(crf), "x264-params": params}
        else:  # best quality, no scene-cut keyframes: every gop-th frame is one
            stream.codec_context.gop_size = gop
            stream.codec_context.max_b_frames = bframes
            stream.options = {"qscale": "2", "sc_threshold": "1000000000"}
        if rotation:
            stream.set_display_rotation(rotation)
        for i, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            if pts is not None or explicit_time_base:
                picture.pts = pts[i] if pts is not None else i * int(1 / (time_base * fps))
                picture.time_base = time_base
            for packet in stream.encode(picture):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    if packed_bframes:
        _pack_bframes(tmp, path, time_base=time_base)
        tmp.unlink()
    else:
        tmp.replace(path)
    return path


def _pack_bframes(source: Path, path: Path, *, time_base: Fraction) -> None:
    """Rewrite an MPEG-4 Part 2 AVI with one B-frame between references in DivX's packed form."""
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        packets = [(bytes(p), p.is_keyframe) for p in container.demux(stream) if p.size]
        increment_bits = max(1, (time_base.denominator - 1).bit_length())  # the VOL's time resolution
        packed: list[tuple[bytes, bool]] = []
        for data, key in packets:
            vop = data.index(_VOP)
            if data[vop + 4] >> 6 == 2:  # a B-VOP joins the packet before it; an N-VOP takes its place
                packed[-1] = (packed[-1][0] + data[vop:], packed[-1][1])
                packed.append((_not_coded_vop(data[vop:], increment_bits), False))
            else:
                packed.append((data, key))
        first, key = packed[0]
        vop = first.index(_VOP)
        packed[0] = (first[:vop] + _USER_DATA + _DIVX_PACKED + first[vop:], key)
        with av.open(str(path), "w") as out:
            out_stream = out.add_stream_from_template(stream)
            for k, (data, key) in enumerate(packed):
                packet = av.Packet(data)
                packet.stream, packet.pts, packet.dts, packet.time_base = out_stream, k, k, time_base
                packet.is_keyframe = key
                out.mux(packet)


def _not_coded_vop(vop: bytes, increment_bits: int) -> bytes:
    """An N-VOP (vop_coded = 0) with the time fields of the VOP ``vop``."""
    bits = "".join(f"{b:08b}" for b in vop[4:12])
    end = 2
    while bits[end] == "1":  # modulo_time_base: ones ended by a zero
        end += 1
    end += 1 + 1 + increment_bits + 1  # its zero, a marker, vop_time_increment, a marker
    header = "01" + bits[2:end] + "0"  # a P-VOP header, vop_coded = 0
    header += "0" + "1" * (7 - len(header) % 8)  # stuffing to the byte boundary
    return _VOP + int(header, 2).to_bytes(len(header) // 8, "big")
