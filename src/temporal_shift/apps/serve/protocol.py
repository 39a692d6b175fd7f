"""The WebSocket protocol between the page and `tsm serve`, and its bounds.

One WebSocket (``/ws``) per page. The server speaks first:

- ``{"type": "hello", "classes": [...], "size": S, "short_side": SS, "fps": F, "max_fps": ...,
  "max_side": ..., "max_bytes": ..., "topk": K, "runtime": ...}``: what the model takes and
  the bounds of this server.

The page then sends

- text ``{"type": "source", "kind": "camera" | "file", "fps": F}``: a new source whose frames
  it samples every ``1/F`` seconds. The stream (shift buffers, smoothing window, current
  label) is reset (``reset: "start"`` on the next result). Frames before the first source
  message are a protocol error.
- text ``{"type": "reset"}``: reset before the next frame (``reset: "request"``).
- binary frames: 8 bytes little-endian float64, the frame's time in seconds on the page's
  sampling clock (``k / F`` for the k-th tick of the source), then a JPEG image (RGB or
  greyscale, at most ``max_side`` pixels on either side; the page scales it so that its
  short side is ``short_side``). Times drive the gap rule of ``tsm stream``: a tick the page
  skipped (the model was busy), a pause or a time going back resets the stream
  (``reset: "gap"``).

and gets one result per frame, in order:
``{"type": "result", "frame", "time", "topk": [{"label", "index", "score"}], "label",
"score", "reset", "latency_ms" (the model step), "server_ms" (message received to result
sent, decoding and preprocessing included)}``.

Bounds (`ServeLimits`); breaking one closes only that connection, with a reason:
a message over ``max_message_bytes`` (close code 1009), a frame over ``max_side`` pixels,
more than ``max_fps`` frames a second sustained (1 s of burst allowed; 1008), a malformed
message (not JSON, unknown type, bad fps, a frame that is not a JPEG; 1003), and a
connection beyond ``max_connections`` (1013, try again later).
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from temporal_shift.data.decode import decode_jpeg_bytes

CLOSE_UNSUPPORTED = 1003  # malformed message
CLOSE_POLICY = 1008  # a bound was broken (frame size, rate, origin)
CLOSE_TOO_BIG = 1009  # message over max_message_bytes
CLOSE_TRY_LATER = 1013  # too many connections
HEADER = struct.Struct("<d")
MAX_TEXT_BYTES = 1024  # control messages are tiny
MAX_REASON_BYTES = 123  # what a WebSocket close frame can carry


@dataclass(frozen=True)
class ServeLimits:
    """The bounds of a server (see the module docstring)."""

    max_connections: int = 4
    max_side: int = 640
    max_message_bytes: int = 512 * 1024
    max_fps: float = 60.0

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_side", "max_message_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.max_fps > 0:
            raise ValueError(f"max_fps must be positive, got {self.max_fps}")


class ProtocolError(Exception):
    """A message that breaks the protocol or a bound: close the connection with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason

    def close_reason(self) -> str:
        data = self.reason.encode("utf-8")[:MAX_REASON_BYTES]
        return data.decode("utf-8", errors="ignore")


@dataclass(frozen=True)
class SourceMessage:
    kind: str
    fps: float


@dataclass(frozen=True)
class ResetMessage:
    pass


def parse_text(text: str, *, limits: ServeLimits) -> SourceMessage | ResetMessage:
    """A control message, or `ProtocolError` naming what is wrong with it."""
    if len(text.encode("utf-8")) > MAX_TEXT_BYTES:
        raise ProtocolError(CLOSE_TOO_BIG, f"control message over {MAX_TEXT_BYTES} bytes")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError(CLOSE_UNSUPPORTED, f"control message is not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ProtocolError(CLOSE_UNSUPPORTED, "control message must be a JSON object")
    kind = data.get("type")
    if kind == "reset":
        return ResetMessage()
    if kind == "source":
        fps = data.get("fps")
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
            raise ProtocolError(CLOSE_UNSUPPORTED, f"source message: fps must be a positive number, got {fps!r}")
        if fps > limits.max_fps:
            raise ProtocolError(CLOSE_POLICY, f"source message: fps {fps} over this server's limit of {limits.max_fps}")
        source = data.get("kind", "camera")
        if source not in ("camera", "file"):
            raise ProtocolError(CLOSE_UNSUPPORTED, f"source message: kind must be 'camera' or 'file', got {source!r}")
        return SourceMessage(kind=source, fps=float(fps))
    raise ProtocolError(CLOSE_UNSUPPORTED, f"unknown message type {kind!r} (expected 'source' or 'reset')")


def decode_frame(data: bytes, *, limits: ServeLimits) -> tuple[float, np.ndarray]:
    """(time in seconds, uint8 (H, W, 3) RGB) of a binary frame message, or `ProtocolError`."""
    import simplejpeg

    if len(data) > limits.max_message_bytes:
        raise ProtocolError(CLOSE_TOO_BIG, f"message of {len(data)} bytes over the limit of {limits.max_message_bytes}")
    if len(data) <= HEADER.size:
        raise ProtocolError(CLOSE_UNSUPPORTED, f"frame message of {len(data)} bytes: expected an 8-byte time + a JPEG")
    (t,) = HEADER.unpack_from(data)
    if not math.isfinite(t):
        raise ProtocolError(CLOSE_UNSUPPORTED, f"frame time must be a finite number of seconds, got {t}")
    jpeg = data[HEADER.size :]
    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(jpeg)
    except ValueError as exc:
        raise ProtocolError(CLOSE_UNSUPPORTED, f"frame is not a JPEG image ({exc})") from None
    if height > limits.max_side or width > limits.max_side:
        raise ProtocolError(
            CLOSE_POLICY, f"frame of {width}x{height} over the limit of {limits.max_side} pixels a side"
        )
    if height < 8 or width < 8:
        raise ProtocolError(CLOSE_POLICY, f"frame of {width}x{height} is too small (at least 8 pixels a side)")
    try:  # the decoder of `tsm stream`'s frame folders: the same pixels from the same bytes
        image = decode_jpeg_bytes(jpeg, source="frame")
    except ValueError as exc:
        raise ProtocolError(CLOSE_UNSUPPORTED, str(exc)) from None
    return float(t), image


def encode_frame(time: float, jpeg: bytes) -> bytes:
    """A binary frame message (what the page sends): the time header and the JPEG."""
    return HEADER.pack(time) + jpeg


class RateLimiter:
    """A token bucket: ``rate`` frames a second sustained, bursts of up to ``rate`` frames."""

    def __init__(self, rate: float, *, now: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.last = now

    def allow(self, now: float) -> bool:
        self.tokens = min(self.rate, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def hello(
    *, classes: list[str], size: int, short_side: int, fps: float, topk: int, runtime: str, limits: ServeLimits
) -> dict[str, Any]:
    return {
        "type": "hello",
        "classes": classes,
        "size": size,
        "short_side": short_side,
        "fps": fps,
        "max_fps": limits.max_fps,
        "max_side": limits.max_side,
        "max_bytes": limits.max_message_bytes,
        "topk": topk,
        "runtime": runtime,
    }
