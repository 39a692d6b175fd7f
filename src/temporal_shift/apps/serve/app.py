"""The ASGI app of ``tsm serve``: one page, one WebSocket per viewer, one online stream each.

`create_app(model, ...)` builds a Starlette app with four routes: ``/`` (the page),
``/ws`` (the protocol of `serve.protocol`), ``/health`` (connection counts) and an empty
``/favicon.ico``. Nothing else is served: the
page is one file read from the package, no route takes a path, and no request reads or
writes any other file.

Each connection owns a `stream.StreamPredictor` around its own stream
(`stream.StreamModel.new_stream`: its own shift buffers over the shared model), with the
``tsm stream`` semantics: smoothing and hysteresis, a reset at the start of every source
(the page's ``source`` message), on a gap in the frame times and on the page's request.
Model steps of all connections run one at a time on one worker thread (the model is
shared; a 2-core CPU gains nothing from running two at once), so connections queue
for it fairly; the event loop only moves messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import torch

from temporal_shift.apps.serve.protocol import (
    CLOSE_POLICY,
    CLOSE_TRY_LATER,
    ProtocolError,
    RateLimiter,
    ResetMessage,
    ServeLimits,
    SourceMessage,
    decode_frame,
    hello,
    parse_text,
)
from temporal_shift.apps.stream import SourceFrame, StreamModel, StreamPredictor, StreamSummary

PAGE = "index.html"
LATENCY_WINDOW = 256  # per-connection step latencies kept (bounded memory)


@dataclass(frozen=True)
class ServeSettings:
    """What every connection's stream uses: the ``tsm stream`` options, and the page's default rate."""

    size: int = 224
    short_side: int = 256
    smooth: int = 1
    hysteresis: int = 1
    topk: int = 3
    fps: float = 25.0
    runtime: str = "torch"

    def __post_init__(self) -> None:
        if self.short_side < self.size:
            raise ValueError(f"short_side ({self.short_side}) must be at least size ({self.size})")
        if not self.fps > 0:
            raise ValueError(f"fps must be positive, got {self.fps}")


class Connection:
    """One viewer: its predictor (stream, smoothing, gap rule) and its bounds' state."""

    def __init__(self, model: StreamModel, settings: ServeSettings, limits: ServeLimits) -> None:
        self.limits = limits
        self.predictor = StreamPredictor(
            model.new_stream(),
            classes=model.classes,
            size=settings.size,
            short_side=settings.short_side,
            every=1,
            smooth=settings.smooth,
            hysteresis=settings.hysteresis,
            topk=settings.topk,
        )
        self.predictor.summary = StreamSummary(latencies_ms=deque(maxlen=LATENCY_WINDOW))
        self.rate = RateLimiter(limits.max_fps, now=time.monotonic())
        self.source: SourceMessage | None = None
        self.frames = 0

    def control(self, message: SourceMessage | ResetMessage) -> None:
        if isinstance(message, SourceMessage):
            self.source = message
            self.frames = 0
            self.predictor.start(fps=message.fps)  # a new source: reset (reason "start")
        else:
            self.predictor.request_reset()

    def frame(self, data: bytes) -> dict[str, Any]:
        """Decode, step, and the result message (runs on the worker thread)."""
        received = time.perf_counter()
        t, image = decode_frame(data, limits=self.limits)
        record = self.predictor.step(
            SourceFrame(index=self.frames, time=t, image=torch.from_numpy(image).permute(2, 0, 1))
        )
        self.frames += 1
        assert record is not None  # every=1: every frame is processed
        result = {"type": "result", **asdict(record)}
        result["server_ms"] = round((time.perf_counter() - received) * 1e3, 3)
        return result


def _page() -> bytes:
    return resources.files("temporal_shift.apps.serve").joinpath(PAGE).read_bytes()


def _origin_allowed(origin: str | None, host: str | None) -> bool:
    """Browsers send Origin on WebSocket handshakes: only the page's own origin may connect
    (another site open in the same browser must not drive this server). No Origin: a
    non-browser client, allowed."""
    if origin is None:
        return True
    parts = urlsplit(origin)
    return bool(host) and parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()


def create_app(model: StreamModel, *, settings: ServeSettings = ServeSettings(), limits: ServeLimits = ServeLimits()):
    """The Starlette app of ``tsm serve`` for ``model`` (see the module docstring)."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    page = _page()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tsm-serve-model")
    state = {"connections": 0, "served": 0, "closed_with_reason": 0}
    lock = threading.Lock()
    # the options every connection's predictor takes, checked now (a bad --smooth is a start-up
    # error, not a failure of each page), and the first model step, which pays for allocations
    StreamPredictor(
        model.new_stream(),
        classes=model.classes,
        size=settings.size,
        short_side=settings.short_side,
        smooth=settings.smooth,
        hysteresis=settings.hysteresis,
        topk=settings.topk,
    )
    warm = model.new_stream()
    warm.update(torch.zeros(3, settings.size, settings.size))

    async def index(request) -> Response:
        return Response(
            page,
            media_type="text/html; charset=utf-8",
            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
        )

    async def health(request) -> Response:
        with lock:
            return JSONResponse(
                {
                    "connections": state["connections"],
                    "served": state["served"],
                    "max_connections": limits.max_connections,
                    "classes": len(model.classes),
                }
            )

    async def ws_endpoint(websocket: WebSocket) -> None:
        if not _origin_allowed(websocket.headers.get("origin"), websocket.headers.get("host")):
            await websocket.close(code=CLOSE_POLICY, reason="cross-origin connection refused")
            return
        await websocket.accept()
        with lock:
            admitted = state["connections"] < limits.max_connections
            if admitted:
                state["connections"] += 1
                state["served"] += 1
        if not admitted:
            await websocket.close(
                code=CLOSE_TRY_LATER, reason=f"server busy: {limits.max_connections} connections is the limit"
            )
            return
        loop = asyncio.get_running_loop()
        try:
            connection = Connection(model, settings, limits)
            await websocket.send_json(
                hello(
                    classes=list(model.classes),
                    size=settings.size,
                    short_side=settings.short_side,
                    fps=settings.fps,
                    topk=settings.topk,
                    runtime=settings.runtime,
                    limits=limits,
                )
            )
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                try:
                    data, text = message.get("bytes"), message.get("text")
                    if data is not None:
                        if len(data) > limits.max_message_bytes:
                            decode_frame(data, limits=limits)  # raises the size error
                        if not connection.rate.allow(time.monotonic()):
                            raise ProtocolError(CLOSE_POLICY, f"more than {limits.max_fps:g} frames a second")
                        if connection.source is None:
                            raise ProtocolError(CLOSE_POLICY, "frame before a source message")
                        result = await loop.run_in_executor(executor, connection.frame, data)
                        await websocket.send_json(result)
                    elif text is not None:
                        parsed = parse_text(text, limits=limits)
                        await loop.run_in_executor(executor, connection.control, parsed)
                except ProtocolError as exc:
                    with lock:
                        state["closed_with_reason"] += 1
                    await websocket.close(code=exc.code, reason=exc.close_reason())
                    return
        except WebSocketDisconnect:
            return
        finally:
            with lock:
                state["connections"] -= 1

    @contextlib.asynccontextmanager
    async def lifespan(app) -> AsyncIterator[None]:
        yield
        executor.shutdown(wait=False, cancel_futures=True)

    async def no_icon(request) -> Response:
        return Response(status_code=204)

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/health", health),
            Route("/favicon.ico", no_icon),
            WebSocketRoute("/ws", ws_endpoint),
        ],
        lifespan=lifespan,
    )
    app.state.counters = state
    return app


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def uvicorn_config(app, *, host: str, port: int, limits: ServeLimits, log_level: str = "warning"):
    """The uvicorn config of a ``tsm serve`` app: the WebSocket frame cap is a hard backstop
    (twice the message limit: the app closes oversized messages itself, with its reason),
    and connections beyond the limit are refused at the HTTP level too."""
    import uvicorn
    from uvicorn.config import WS_PROTOCOLS

    ws = "websockets-sansio" if "websockets-sansio" in WS_PROTOCOLS else "websockets"  # the former: uvicorn >= 0.35
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        ws=ws,
        ws_max_size=2 * limits.max_message_bytes + 1024,
        limit_concurrency=4 * limits.max_connections + 8,
        lifespan="on",
    )


class BackgroundServer:
    """A ``tsm serve`` app on uvicorn in a thread (tests, benchmarks): ``with BackgroundServer(app) as s:
    s.url``. ``port=0`` picks a free port."""

    def __init__(self, app, *, host: str = "127.0.0.1", port: int = 0, limits: ServeLimits = ServeLimits()) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn_config(app, host=host, port=port, limits=limits))
        self.server.install_signal_handlers = lambda: None  # not the main thread
        self.thread = threading.Thread(target=self.server.run, name="tsm-serve", daemon=True)
        self.host = host

    def __enter__(self) -> "BackgroundServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("tsm serve did not start")
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
