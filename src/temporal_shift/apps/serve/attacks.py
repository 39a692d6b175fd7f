"""Hostile clients of ``tsm serve``: what the tests and ``benchmarks/serve_attacks.py`` throw at it.

Each helper is one attack a program on this machine (or a web page in a browser here) can
mount against a server on loopback, written with plain sockets so that it can send what a
well-behaved client library would refuse to (forged ``Host`` headers, invalid UTF-8 text
frames, unfinished request heads):

- `progressive_jpeg`: a small progressive JPEG with very many scans (each costs the decoder
  a pass over every block); `truncated_jpeg`: a JPEG cut short with an end marker appended;
- `half_open`: sockets that send part of a request head and never finish it;
- `RawWebSocket`: a minimal WebSocket client (handshake with any headers, masked frames of
  any opcode and payload, close frames read back).
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import struct
from dataclasses import dataclass

from temporal_shift.apps.serve.protocol import encode_frame

__all__ = ["Closed", "RawWebSocket", "half_open", "progressive_jpeg", "truncated_jpeg"]


def progressive_jpeg(scans: int, *, side: int = 640) -> bytes:
    """A grey ``side`` x ``side`` progressive JPEG of ``scans`` scans, 12 bytes each past the first.

    The first scan is a real DC scan of the three components; the others are DC refinement
    scans of one component each with two bytes of data: libjpeg warns (the progression is
    bogus, the data short) but, like every tolerant decoder, walks all blocks once per scan.
    30,000 scans at 640x640 make a 363 KB file, inside every size limit of ``tsm serve``.
    """
    if scans < 1 or side < 8 or side % 8:
        raise ValueError(f"need scans >= 1 and a side that is a multiple of 8, got {scans}, {side}")
    blocks = (side // 8) ** 2 * 3
    out = bytearray(b"\xff\xd8")
    out += b"\xff\xdb\x00\x43\x00" + bytes([1] * 64)  # one quantisation table of ones
    out += b"\xff\xc2\x00\x11\x08" + struct.pack(">HH", side, side) + b"\x03\x01\x11\x00\x02\x11\x00\x03\x11\x00"
    out += b"\xff\xc4\x00\x14\x00\x01" + bytes(15) + b"\x00"  # DC table 0: one 1-bit code, difference 0
    # DC first scan, interleaved, successive approximation Al=1: one 0 bit per block
    out += b"\xff\xda\x00\x0c\x03\x01\x00\x02\x00\x03\x00\x00\x00\x01" + bytes(-(-blocks // 8))
    for i in range(scans - 1):  # DC refinement scans of one component each: header + 2 bytes
        out += b"\xff\xda\x00\x08\x01" + bytes([1 + i % 3]) + b"\x00\x00\x00\x10" + b"\x00\x00"
    out += b"\xff\xd9"
    return bytes(out)


def truncated_jpeg(jpeg: bytes, *, keep: float = 0.5) -> bytes:
    """``jpeg`` cut after ``keep`` of its bytes, with an end-of-image marker appended."""
    return jpeg[: int(len(jpeg) * keep)] + b"\xff\xd9"


def half_open(
    host: str, port: int, count: int, *, head: bytes = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
) -> list[socket.socket]:
    """``count`` connections that each send ``head`` (a request head without its blank line)
    and nothing more; close them to end the attack."""
    sockets = []
    for _ in range(count):
        s = socket.create_connection((host, port), timeout=5)
        s.sendall(head)
        sockets.append(s)
    return sockets


@dataclass
class Closed:
    """How the server ended a WebSocket: its close frame (code, reason), or None when the
    connection dropped without one."""

    code: int | None
    reason: str


class RawWebSocket:
    """A WebSocket client on a plain socket: ``RawWebSocket(host, port, headers={...})``.

    The handshake sends exactly ``headers`` (``Host`` included: forge it at will) and keeps
    the server's status; frames are sent masked, as a browser does, with any opcode and
    payload (`send_text` takes bytes, so invalid UTF-8 goes out as is).
    """

    def __init__(
        self, host: str, port: int, *, path: str = "/ws", headers: dict[str, str] | None = None, timeout: float = 10.0
    ) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        fields = {
            "Host": f"{host}:{port}",
            **(headers or {}),
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": key,
            "Sec-WebSocket-Version": "13",
        }
        head = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
        self.sock.sendall(head.encode("latin-1"))
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            response += chunk
        head_bytes, _, self.buffer = response.partition(b"\r\n\r\n")
        status_line = head_bytes.split(b"\r\n", 1)[0].split()
        self.status = int(status_line[1]) if len(status_line) > 1 else 0

    @property
    def open(self) -> bool:
        return self.status == 101

    def send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        header = bytes([0x80 | opcode])
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if n < 4096 else _mask(payload, mask)
        self.sock.sendall(header + mask + masked)

    def send_text(self, payload: bytes | str) -> None:
        self.send_frame(0x1, payload.encode("utf-8") if isinstance(payload, str) else payload)

    def send_frame_message(self, time: float, jpeg: bytes) -> None:
        self.send_frame(0x2, encode_frame(time, jpeg))

    def _read_exact(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def recv_frame(self) -> tuple[int, bytes]:
        """The next frame from the server: (opcode, payload)."""
        first, second = self._read_exact(2)
        n = second & 0x7F
        if n == 126:
            n = struct.unpack(">H", self._read_exact(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._read_exact(8))[0]
        return first & 0x0F, self._read_exact(n)

    def until_closed(self, *, max_frames: int = 100_000) -> tuple[list[bytes], Closed]:
        """Read until the server closes: the data frames' payloads, and how it closed."""
        payloads: list[bytes] = []
        try:
            for _ in range(max_frames):
                opcode, payload = self.recv_frame()
                if opcode == 0x8:
                    code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
                    return payloads, Closed(code, payload[2:].decode("utf-8", errors="replace"))
                if opcode in (0x1, 0x2):
                    payloads.append(payload)
        except (ConnectionError, OSError):
            pass
        return payloads, Closed(None, "")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> RawWebSocket:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _mask(payload: bytes, mask: bytes) -> bytes:
    import numpy as np

    data = np.frombuffer(payload, dtype=np.uint8)
    key = np.resize(np.frombuffer(mask, dtype=np.uint8), data.shape)
    return (data ^ key).tobytes()
