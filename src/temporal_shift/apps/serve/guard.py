"""What stands between ``tsm serve`` and the other programs and web pages on the machine.

- `HostGuard` (ASGI): every request and WebSocket handshake must name an allowed host in its
  ``Host`` header: the loopback names, the address given with ``--host``, and the names
  given with ``--allowed-host`` (`allowed_hosts`). A web page elsewhere that makes its own
  name resolve to 127.0.0.1 (DNS rebinding) reaches the server under *its* name, and is
  refused here before any route runs (400; a WebSocket handshake gets 403). When the
  server listens on every interface (``--host 0.0.0.0``), a Host that is an IP address is
  allowed too: a browser sends one only when the user typed that address.
- `guarded_http_protocol` (uvicorn's HTTP/1.1 protocol, h11): a connection must finish its
  request head within ``header_timeout`` seconds of opening (or of asking for its next
  request), and the server holds at most ``max_sockets`` connections: a newcomer past it
  closes the connection that has waited longest without a request in progress (a half-open
  or idle one), so unfinished requests can delay a page by at most the time it takes to
  open a socket, never shut it out.
- `OneLineClientErrors` (logging): a client's malformed WebSocket message (a text frame
  that is not UTF-8) is logged as one line, not a traceback.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Sequence
from typing import Any

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
log = logging.getLogger("uvicorn.error")


def allowed_hosts(host: str, extra: Sequence[str] = ()) -> tuple[str, ...]:
    """The Host names a server listening on ``host`` answers: the loopback names, ``host``
    itself (unless it is a wildcard address) and ``extra`` (``--allowed-host``; ``*``
    allows any)."""
    names = [*LOOPBACK_NAMES]
    if host not in WILDCARD_HOSTS:
        names.append(host)
    names.extend(extra)
    return tuple(dict.fromkeys(_normal(name) for name in names))


def _normal(name: str) -> str:
    return name.strip().strip("[]").rstrip(".").lower()


def host_name(header: str | None) -> str | None:
    """The host of a ``Host`` header (``name``, ``name:port``, ``[v6]:port``), lower case;
    None when there is none or it cannot be parsed."""
    if not header:
        return None
    header = header.strip()
    if header.startswith("["):
        name, bracket, rest = header[1:].partition("]")
        if not bracket or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
    else:
        name, colon, port = header.rpartition(":") if header.count(":") == 1 else (header, "", "")
        if colon and not port.isdigit():
            return None
    name = _normal(name)
    return name or None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


class HostGuard:
    """ASGI middleware: refuse requests whose ``Host`` is not in ``allowed`` (see the module
    docstring); ``any_ip`` also allows IP addresses (a server on every interface)."""

    def __init__(self, app, *, allowed: Sequence[str], any_ip: bool = False) -> None:
        self.app = app
        self.allowed = frozenset(_normal(name) for name in allowed)
        self.any_ip = any_ip

    def allows(self, header: str | None) -> bool:
        if "*" in self.allowed:
            return True
        name = host_name(header)
        return name is not None and (name in self.allowed or (self.any_ip and _is_ip(name)))

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"), None)
        if self.allows(header):
            await self.app(scope, receive, send)
            return
        client = scope.get("client") or ("?", 0)
        log.warning(
            "%s:%s - refused a request for host %r: not an allowed host (DNS rebinding?); "
            "--allowed-host NAME allows one",
            client[0],
            client[1],
            header,
        )
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # before the handshake: HTTP 403
            return
        body = (
            f"host {header!r} is not allowed: tsm serve answers {', '.join(sorted(self.allowed))}; "
            "--allowed-host NAME allows another\n"
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def guarded_http_protocol(*, header_timeout: float, max_sockets: int) -> type:
    """uvicorn's h11 protocol with a request-head timeout and a cap on open connections
    that evicts the longest-waiting idle one (see the module docstring). One class per
    server: the waiting connections are shared by its instances."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    waiting: dict[Any, float] = {}  # connections without a request in progress, oldest first

    class GuardedH11Protocol(H11Protocol):
        _head_timer = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            if len(self.connections) > max_sockets:
                victim = next((c for c in waiting if c is not self and not c.transport.is_closing()), None)
                if victim is None:  # every connection is busy: this one waits for nothing
                    transport.abort()
                    return
                victim._close(f"evicted: the server holds at most {max_sockets} connections")
            self._wait()

        def _wait(self) -> None:
            """No request in progress: the next head must come within the timeout."""
            waiting.pop(self, None)
            waiting[self] = time.monotonic()
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(header_timeout, self._head_timeout)

        def _busy(self) -> None:
            waiting.pop(self, None)
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            self._close(f"no complete request head in {header_timeout:g} s")

        def _close(self, why: str) -> None:
            self._busy()
            if not self.transport.is_closing():
                if self.logger.isEnabledFor(logging.DEBUG):
                    client = "{}:{} - ".format(*self.client) if self.client else ""
                    self.logger.debug("%sclosed an HTTP connection: %s", client, why)
                self.transport.abort()

        def data_received(self, data: bytes) -> None:
            idle = self.cycle is None or self.cycle.response_complete
            if idle and self._head_timer is None:  # a kept-alive connection starts its next request
                self._wait()
            before = self.cycle
            super().data_received(data)
            if self.cycle is not before or self.transport.get_protocol() is not self:
                self._busy()  # a request head arrived (or the connection became a WebSocket)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
                waiting.pop(self, None)
                waiting[self] = time.monotonic()  # idle until its next request (uvicorn's keep-alive timeout)

        def connection_lost(self, exc: Exception | None) -> None:
            self._busy()
            super().connection_lost(exc)

    return GuardedH11Protocol


class OneLineClientErrors(logging.Filter):
    """Turns uvicorn's traceback for a client's invalid UTF-8 text frame into one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], UnicodeDecodeError):
            record.msg = f"{record.getMessage().rstrip('.')}: closed the connection (1007)"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True
