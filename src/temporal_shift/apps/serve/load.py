"""Load on a ``tsm serve`` server: clients that stream frames as a page does (the load test,
``benchmarks/serve_load.py``).

`run_clients(url, frames, clients=8, seconds=3)` opens that many WebSocket connections, each
sends a source message and then frames stop-and-wait (the next frame when the previous
result is back, as the page does when the model is the bottleneck), and returns per-client
frames/s, round-trip times and the server's own times. Needs ``websockets``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from temporal_shift.apps.serve.protocol import encode_frame


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


@dataclass
class ClientResult:
    """One client's run: round trips (send to result, ms), the server's step and total times."""

    frames: int = 0
    seconds: float = 0.0
    rtt_ms: list[float] = field(default_factory=list)
    step_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, float | int | str | None]:
        added = [r - s for r, s in zip(self.rtt_ms, self.step_ms, strict=True)]
        return {
            "frames": self.frames,
            "fps": round(self.fps, 2),
            "rtt_ms_median": round(statistics.median(self.rtt_ms), 3) if self.rtt_ms else None,
            "rtt_ms_p95": round(percentile(self.rtt_ms, 95), 3) if self.rtt_ms else None,
            "step_ms_median": round(statistics.median(self.step_ms), 3) if self.step_ms else None,
            "added_ms_median": round(statistics.median(added), 3) if added else None,
            "error": self.error,
        }


async def stream_client(
    url: str, frames: Sequence[bytes], *, seconds: float, fps: float = 25.0, origin: str | None = None
) -> ClientResult:
    """One page-like client: frames (JPEG bytes, cycled) stop-and-wait for ``seconds``; frame
    times tick at ``fps`` per frame sent, so the server sees no gaps."""
    from websockets.asyncio.client import connect
    from websockets.typing import Origin

    result = ClientResult()
    try:
        async with connect(url, origin=None if origin is None else Origin(origin), max_size=None) as ws:
            hello = json.loads(await ws.recv())
            if hello.get("type") != "hello":
                raise RuntimeError(f"expected the server's hello, got {hello}")
            await ws.send(json.dumps({"type": "source", "kind": "camera", "fps": fps}))
            started = time.perf_counter()
            i = 0
            while time.perf_counter() - started < seconds:
                t0 = time.perf_counter()
                await ws.send(encode_frame(i / fps, frames[i % len(frames)]))
                message = json.loads(await ws.recv())
                result.rtt_ms.append((time.perf_counter() - t0) * 1e3)
                if message.get("type") != "result" or message.get("frame") != i:
                    raise RuntimeError(f"frame {i}: unexpected message {str(message)[:200]}")
                result.step_ms.append(message["latency_ms"])
                result.server_ms.append(message["server_ms"])
                i += 1
            result.seconds = time.perf_counter() - started
            result.frames = i
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    return result


async def run_clients(
    url: str, frames: Sequence[bytes], *, clients: int = 8, seconds: float = 3.0, fps: float = 25.0
) -> list[ClientResult]:
    """``clients`` concurrent `stream_client`s; their results."""
    return list(await asyncio.gather(*(stream_client(url, frames, seconds=seconds, fps=fps) for _ in range(clients))))


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process (Linux ``/proc``), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")
