"""Writing clips: JPEG frame folders (simplejpeg, libjpeg-turbo) and videos (PyAV)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import simplejpeg
import torch

from temporal_shift.data.lists import DEFAULT_TEMPLATE


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
) -> Path:
    """Encode uint8 RGB frames (T, H, W, 3) to a video file (yuv420p, even H and W).

    Single-threaded and deterministic: the same frames give the same bytes.
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
        raise ValueError(f"{path}: frames must be uint8 (T, H, W, 3), got {frames.shape}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"{path}: yuv420p video needs even height and width, got {height}x{width}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.thread_count = 1
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "crf": str(crf), "g": str(gop)}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)
    return path
