"""The reference storage layout of optical flow (TSN's ``dense_flow`` tool) and its value encoding.

For frames t and t+1 of a video, ``flow_x_{t:05d}.jpg`` and ``flow_y_{t:05d}.jpg`` (t from
1) are grayscale JPEGs whose value ``v = round(255 (f + bound) / (2 bound))`` encodes the
displacement ``f`` in pixels clipped to +-bound (20 px by default): 128 is no motion, x > 0
is motion to the right, y > 0 downwards. A video of N frames has N-1 flow fields. A
video's flow folder is its list path with the video extension dropped (`flow_folder_name`),
so a flow list pairs with the RGB list; finished folders are recorded in ``flow_done.txt``
at the output root (`compute.prepare_flow`).
This module writes and reads those files; `compute` makes the flow, `dataset` samples it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import simplejpeg
import torch

from temporal_shift.data.decode import VIDEO_EXTENSIONS, CorruptMediaError

FLOW_X_TEMPLATE = "flow_x_{:05d}.jpg"
FLOW_Y_TEMPLATE = "flow_y_{:05d}.jpg"
DEFAULT_BOUND = 20.0
FLOW_DONE_FILE = "flow_done.txt"
LEGACY_FLOW_DONE_MARKER = ".flow_done"  # earlier versions' marker inside each finished folder
FLOW_FAILURES_FILE = "flow_failures.txt"


def flow_templates(x_template: str) -> tuple[str, str]:
    """(x, y) file-name templates of flow frames from the x one: the y files are named with the
    last ``x`` before the frame number turned into ``y`` (``flow_x_{:05d}.jpg`` -> ``flow_y_``,
    MMAction2's ``x_{:05d}.jpg`` -> ``y_{:05d}.jpg``). ValueError when it names no x."""
    head, brace, tail = x_template.partition("{")
    if not brace or "x" not in head:
        raise ValueError(
            f"flow template {x_template!r} must name the x files with an 'x' before the frame number, "
            "e.g. 'flow_x_{:05d}.jpg' or 'x_{:05d}.jpg' (the y files: the same with 'y')"
        )
    at = head.rindex("x")
    return x_template, f"{head[:at]}y{head[at + 1 :]}{brace}{tail}"


def quantize_flow(flow: np.ndarray | torch.Tensor, *, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """Flow in pixels -> uint8 ``round(255 (f + bound) / (2 bound))``, clipped to +-bound."""
    if bound <= 0:
        raise ValueError(f"flow bound must be positive, got {bound}")
    f = np.clip(np.asarray(flow, dtype=np.float32), -bound, bound)
    return np.rint((f + bound) * (255.0 / (2.0 * bound))).astype(np.uint8)


def dequantize_flow(values: np.ndarray | torch.Tensor, *, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """uint8 flow images -> pixels (the inverse of `quantize_flow`, within half a level)."""
    return np.asarray(values, dtype=np.float32) * (2.0 * bound / 255.0) - bound


def write_flow_image(path: Path, values: np.ndarray, *, quality: int = 95) -> None:
    data = simplejpeg.encode_jpeg(np.ascontiguousarray(values[..., None]), quality=quality, colorspace="GRAY")
    path.write_bytes(data)


def flow_folder_name(path: str) -> str:
    """The flow folder (relative) of a list entry: its path with a video extension dropped."""
    p = Path(path)
    return (p.with_suffix("") if p.suffix.lower() in VIDEO_EXTENSIONS else p).as_posix()


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
            decoded[index] = np.stack(
                [decode_flow_file(folder / t.format(index + 1)) for t in (x_template, y_template)]
            )
    shapes = {a.shape for a in decoded.values()}
    if len(shapes) > 1:
        raise CorruptMediaError(f"{folder}: flow images have different sizes {sorted(shapes)}")
    return torch.from_numpy(np.stack([decoded[int(i)] for i in indices]))
