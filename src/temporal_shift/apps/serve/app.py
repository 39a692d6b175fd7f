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
for it fairly; the event loop only moves messages. JPEG decoding runs beside it, on a pool
of one thread per connection, against each connection's budget of decoding time: a client
whose frames are costly to decode slows only itself, then is closed.

What is refused before any route runs (hosts other than the allowed ones, unfinished
request heads, sockets past the cap) is in `guard`; the bounds of the messages in `protocol`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import torch

from temporal_shift.apps.serve.guard import (
    WILDCARD_HOSTS,
    HostGuard,
    OneLineClientErrors,
    allowed_hosts,
    guarded_http_protocol,
)
from temporal_shift.apps.serve.protocol import (
    CLOSE_IDLE,
    CLOSE_POLICY,
    CLOSE_TRY_LATER,
    DecodeBudget,
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
CLOSE_WAIT = 2.0  # seconds a close frame may wait for a client that does not read
log = logging.getLogger("uvicorn.error")


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
        now = time.monotonic()
        self.rate = RateLimiter(limits.max_fps, now=now)
        self.control_rate = RateLimiter(limits.max_control_rate, now=now)
        self.decoding = DecodeBudget(limits.decode_share, now=now)
        self.source: SourceMessage | None = None
        self.frames = 0

    def control(self, message: SourceMessage | ResetMessage) -> None:
        if isinstance(message, SourceMessage):
            self.source = message
            self.frames = 0
            self.predictor.start(fps=message.fps)  # a new source: reset (reason "start")
        else:
            self.predictor.request_reset()

    def decode(self, data: bytes) -> tuple[float, Any, float]:
        """(time, image, CPU seconds it took) of a frame message (runs on a decoding thread)."""
        started = time.thread_time()
        t, image = decode_frame(data, limits=self.limits)
        return t, image, time.thread_time() - started

    def step(self, t: float, image) -> dict[str, Any]:
        """The model step on a decoded frame, and its result message (runs on the model thread)."""
        record = self.predictor.step(
            SourceFrame(index=self.frames, time=t, image=torch.from_numpy(image).permute(2, 0, 1))
        )
        self.frames += 1
        assert record is not None  # every=1: every frame is processed
        return {"type": "result", **asdict(record)}


def _page() -> bytes:
    return resources.files("temporal_shift.apps.serve").joinpath(PAGE).read_bytes()


def _origin_allowed(origin: str | None, host: str | None) -> bool:
    """Browsers send Origin on WebSocket handshakes: only the page's own origin may connect
    (another site open in the same browser must not drive this server). No Origin: a
    non-browser client, allowed."""
    if origin is None:
        return True
    if not host:
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()


def _client(websocket) -> str:
    client = websocket.client
    return f"{client.host}:{client.port}" if client else "?"


def create_app(
    model: StreamModel,
    *,
    settings: ServeSettings = ServeSettings(),
    limits: ServeLimits = ServeLimits(),
    host: str = "127.0.0.1",
    allowed_host: Sequence[str] = (),
):
    """The ASGI app of ``tsm serve`` for ``model`` (see the module docstring): Starlette behind
    `guard.HostGuard`, which answers the loopback names, ``host`` (the address it listens on)
    and the ``allowed_host`` names."""
    from starlette.applications import Starlette
    from starlette.routing import Route, WebSocketRoute

    endpoints = _Endpoints(model, settings=settings, limits=limits)
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
    app = Starlette(
        routes=[
            Route("/", endpoints.index),
            Route("/health", endpoints.health),
            Route("/favicon.ico", endpoints.no_icon),
            WebSocketRoute("/ws", endpoints.websocket),
        ],
        lifespan=endpoints.lifespan,
    )
    app.state.counters = endpoints.state
    guarded = HostGuard(app, allowed=allowed_hosts(host, allowed_host), any_ip=host in WILDCARD_HOSTS)
    guarded.state = app.state  # type: ignore[attr-defined]
    return guarded


class _Endpoints:
    """The routes of one app and what they share: the model's one worker thread, the JPEG decoder
    threads (one per connection at most, beside the model's) and the connection counters
    (``connections`` open, ``served`` in all, ``closed_with_reason``)."""

    def __init__(self, model: StreamModel, *, settings: ServeSettings, limits: ServeLimits) -> None:
        self.model, self.settings, self.limits = model, settings, limits
        self.page = _page()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tsm-serve-model")
        self.decoders = ThreadPoolExecutor(max_workers=limits.max_connections, thread_name_prefix="tsm-serve-decode")
        self.state = {"connections": 0, "served": 0, "closed_with_reason": 0}
        self.lock = threading.Lock()
        self.one_line = OneLineClientErrors()

    async def index(self, request):
        from starlette.responses import Response

        return Response(
            self.page,
            media_type="text/html; charset=utf-8",
            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
        )

    async def health(self, request):
        from starlette.responses import JSONResponse

        with self.lock:
            return JSONResponse(
                {
                    "connections": self.state["connections"],
                    "served": self.state["served"],
                    "max_connections": self.limits.max_connections,
                    "classes": len(self.model.classes),
                }
            )

    async def no_icon(self, request):
        from starlette.responses import Response

        return Response(status_code=204)

    @contextlib.asynccontextmanager
    async def lifespan(self, app) -> AsyncIterator[None]:
        log.addFilter(self.one_line)
        try:
            yield
        finally:
            log.removeFilter(self.one_line)
            self.executor.shutdown(wait=False, cancel_futures=True)
            self.decoders.shutdown(wait=False, cancel_futures=True)

    async def websocket(self, websocket) -> None:
        """One viewer: the origin check, a place under the connection limit, then its messages."""
        from starlette.websockets import WebSocketDisconnect

        if not _origin_allowed(websocket.headers.get("origin"), websocket.headers.get("host")):
            await websocket.close(code=CLOSE_POLICY, reason="cross-origin connection refused")
            return
        await websocket.accept()
        with self.lock:
            admitted = self.state["connections"] < self.limits.max_connections
            if admitted:
                self.state["connections"] += 1
                self.state["served"] += 1
        if not admitted:
            await websocket.close(
                code=CLOSE_TRY_LATER, reason=f"server busy: {self.limits.max_connections} connections is the limit"
            )
            return
        try:
            await self._converse(websocket, Connection(self.model, self.settings, self.limits))
        except ProtocolError as exc:
            with self.lock:
                self.state["closed_with_reason"] += 1
            log.log(
                logging.INFO if exc.code == CLOSE_IDLE else logging.WARNING,
                '%s - "WebSocket /ws" closed (%d): %s',
                _client(websocket),
                exc.code,
                exc.reason,
            )
            with contextlib.suppress(asyncio.TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
                await asyncio.wait_for(websocket.close(code=exc.code, reason=exc.close_reason()), CLOSE_WAIT)
        except WebSocketDisconnect:
            return
        finally:
            with self.lock:
                self.state["connections"] -= 1

    async def _send(self, websocket, message: dict[str, Any]) -> None:
        """Send one message; a client that stops reading fills its socket and is dropped like an idle one."""
        try:
            await asyncio.wait_for(websocket.send_json(message), self.limits.idle_timeout)
        except asyncio.TimeoutError:
            raise ProtocolError(CLOSE_IDLE, f"idle: results not read for {self.limits.idle_timeout:g} s") from None

    async def _converse(self, websocket, connection: Connection) -> None:
        """Greet, then answer messages until the viewer leaves (returns) or breaks a bound (`ProtocolError`)."""
        settings, limits = self.settings, self.limits
        await self._send(
            websocket,
            hello(
                classes=list(self.model.classes),
                size=settings.size,
                short_side=settings.short_side,
                fps=settings.fps,
                topk=settings.topk,
                runtime=settings.runtime,
                limits=limits,
            ),
        )
        last_frame = time.monotonic()
        while True:
            try:  # only frames count as activity: control messages alone do not hold a connection
                message = await asyncio.wait_for(
                    websocket.receive(), max(0.0, last_frame + limits.idle_timeout - time.monotonic())
                )
            except asyncio.TimeoutError:
                raise ProtocolError(CLOSE_IDLE, f"idle: no frame for {limits.idle_timeout:g} s") from None
            if message["type"] == "websocket.disconnect":
                return
            if await self._answer(websocket, connection, message):
                last_frame = time.monotonic()

    async def _answer(self, websocket, connection: Connection, message: dict[str, Any]) -> bool:
        """A frame (bytes): decoded on a decoder thread within the connection's decode budget, stepped on the
        model thread, its result sent (returns True); a control message (text): applied, within its rate."""
        loop = asyncio.get_running_loop()
        limits = self.limits
        received = time.perf_counter()
        data, text = message.get("bytes"), message.get("text")
        if data is not None:
            if len(data) > limits.max_message_bytes:
                decode_frame(data, limits=limits)  # raises the size error
            if not connection.rate.allow(time.monotonic()):
                raise ProtocolError(CLOSE_POLICY, f"more than {limits.max_fps:g} frames a second")
            if connection.source is None:
                raise ProtocolError(CLOSE_POLICY, "frame before a source message")
            t, image, cost = await loop.run_in_executor(self.decoders, connection.decode, data)
            if not connection.decoding.charge(cost, now=time.monotonic()):
                raise ProtocolError(
                    CLOSE_POLICY,
                    f"frames cost more than {limits.decode_share:g} s of "
                    "decoding a second (send smaller or baseline JPEGs)",
                )
            result = await loop.run_in_executor(self.executor, connection.step, t, image)
            result["server_ms"] = round((time.perf_counter() - received) * 1e3, 3)
            await self._send(websocket, result)
            return True
        if text is not None:
            if not connection.control_rate.allow(time.monotonic()):
                raise ProtocolError(CLOSE_POLICY, f"more than {limits.max_control_rate:g} control messages a second")
            parsed = parse_text(text, limits=limits)
            await loop.run_in_executor(self.executor, connection.control, parsed)
        return False


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def uvicorn_config(app, *, host: str, port: int, limits: ServeLimits, log_level: str = "warning"):
    """The uvicorn config of a ``tsm serve`` app: HTTP/1.1 on h11 with a request-head timeout
    and a cap on open sockets (`guard.guarded_http_protocol`), the WebSocket frame cap as a
    hard backstop (twice the message limit: the app closes oversized messages itself, with
    its reason), and uvicorn's own concurrency limit behind both."""
    import uvicorn
    from uvicorn.config import WS_PROTOCOLS

    ws = "websockets-sansio" if "websockets-sansio" in WS_PROTOCOLS else "websockets"  # the former: uvicorn >= 0.35
    http = guarded_http_protocol(header_timeout=limits.header_timeout, max_sockets=limits.max_sockets)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        ws=ws,
        http=http,
        ws_max_size=2 * limits.max_message_bytes + 1024,
        limit_concurrency=2 * limits.max_sockets,
        lifespan="on",
    )


class BackgroundServer:
    """A ``tsm serve`` app on uvicorn in a thread (tests, benchmarks): ``with BackgroundServer(app) as s:
    s.url``. ``port=0`` picks a free port."""

    def __init__(self, app, *, host: str = "127.0.0.1", port: int = 0, limits: ServeLimits = ServeLimits()) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn_config(app, host=host, port=port, limits=limits))
        self.thread = threading.Thread(target=self.server.run, name="tsm-serve", daemon=True)
        self.host = host

    def __enter__(self) -> BackgroundServer:
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
