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
a JPEG of more than ``max_scans`` scans (progressive files cost a pass over the image per
scan; the page's canvas encoder writes baseline JPEGs, one scan) or of another coding than
baseline or progressive Huffman, more than ``decode_share`` of a CPU spent decoding one
connection's frames (1 s of burst), more than ``max_fps`` frames or ``max_control_rate``
control messages a second sustained (1 s of burst; 1008), a malformed message (not JSON,
unknown type, bad fps, a frame that is not a JPEG or is truncated; 1003), no frame for
``idle_timeout`` seconds (4408; the page reconnects when it has frames to send again), and
a connection beyond ``max_connections`` (1013, try again later). ``header_timeout`` and
``max_sockets`` bound the HTTP connections before they become WebSockets (`guard`).
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from temporal_shift.data.decode import CorruptMediaError, decode_jpeg_bytes, jpeg_info

CLOSE_UNSUPPORTED = 1003  # malformed message
CLOSE_POLICY = 1008  # a bound was broken (frame size, rate, origin)
CLOSE_TOO_BIG = 1009  # message over max_message_bytes
CLOSE_TRY_LATER = 1013  # too many connections
CLOSE_IDLE = 4408  # no frame for idle_timeout seconds (4000-4999: the application's codes; 408 as in HTTP)
ACCEPTED_CODINGS = (0xC0, 0xC1, 0xC2)  # SOF0-2: baseline, extended sequential, progressive (Huffman)
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
    max_scans: int = 16  # libjpeg's progressive files have 10 (colour) or 6 (grey)
    max_control_rate: float = 10.0  # source/reset messages a second
    decode_share: float = 0.5  # CPU seconds of JPEG decoding per second of one connection
    idle_timeout: float = 30.0  # seconds without a frame
    header_timeout: float = 5.0  # seconds to finish an HTTP request head
    max_sockets: int = 64  # open HTTP/WebSocket connections

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_side", "max_message_bytes", "max_scans", "max_sockets"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("max_fps", "max_control_rate", "decode_share", "idle_timeout", "header_timeout"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value}")
        if self.max_sockets < self.max_connections:
            raise ValueError(
                f"max_sockets ({self.max_sockets}) must be at least max_connections ({self.max_connections})"
            )


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
    if len(data) > limits.max_message_bytes:
        raise ProtocolError(CLOSE_TOO_BIG, f"message of {len(data)} bytes over the limit of {limits.max_message_bytes}")
    if len(data) <= HEADER.size:
        raise ProtocolError(CLOSE_UNSUPPORTED, f"frame message of {len(data)} bytes: expected an 8-byte time + a JPEG")
    (t,) = HEADER.unpack_from(data)
    if not math.isfinite(t):
        raise ProtocolError(CLOSE_UNSUPPORTED, f"frame time must be a finite number of seconds, got {t}")
    jpeg = data[HEADER.size :]
    try:  # what the file declares, read from its markers before anything is decoded
        info = jpeg_info(jpeg, source="frame", stop_after_scans=limits.max_scans)
    except CorruptMediaError as exc:
        raise ProtocolError(CLOSE_UNSUPPORTED, str(exc)) from None
    if info.frame not in ACCEPTED_CODINGS:
        raise ProtocolError(
            CLOSE_UNSUPPORTED, f"frame is a {info.coding} JPEG: only baseline and progressive JPEGs are decoded"
        )
    width, height = info.width, info.height
    if height > limits.max_side or width > limits.max_side:
        raise ProtocolError(
            CLOSE_POLICY, f"frame of {width}x{height} over the limit of {limits.max_side} pixels a side"
        )
    if height < 8 or width < 8:
        raise ProtocolError(CLOSE_POLICY, f"frame of {width}x{height} is too small (at least 8 pixels a side)")
    if info.scans > limits.max_scans:
        raise ProtocolError(
            CLOSE_POLICY, f"frame of more than {limits.max_scans} scans: too costly to decode (send baseline JPEGs)"
        )
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


class DecodeBudget:
    """A budget of decoding time: ``share`` CPU seconds a second sustained, one second's worth
    of burst. `charge` takes what a frame cost after the fact; it returns False once the
    connection has spent more than its budget."""

    def __init__(self, share: float, *, now: float) -> None:
        self.share = share
        self.seconds = share
        self.last = now

    def charge(self, cost: float, *, now: float) -> bool:
        self.seconds = min(self.share, self.seconds + (now - self.last) * self.share) - cost
        self.last = now
        return self.seconds >= 0


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
