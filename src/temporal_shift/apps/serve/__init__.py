"""``tsm serve``: live recognition in the browser with online TSM on the server.

The page (``index.html``) opens the webcam or plays a local video file, sends downscaled
JPEG frames over a WebSocket at the rate the model keeps up with, and draws the current
label, the top-k probabilities, frames/s and the model latency over the video. The server
(`app.create_app`, Starlette on uvicorn) keeps one online stream per connection with the
``tsm stream`` semantics (`temporal_shift.apps.stream`); the messages and bounds are in
`protocol`; ``--demo`` trains a small causal model once (`demo_model`).

Extra dependencies: ``pip install 'temporal-shift[serve]'`` (starlette, uvicorn, websockets).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from temporal_shift.apps.serve.protocol import ServeLimits

NO_MODEL_MESSAGE = (
    "tsm serve needs a causal (online) model: --checkpoint CAUSAL.pt (train one with model.mode: causal, "
    "or `tsm online convert`), --weights online_tsm_mobilenetv2_jester, or --demo to train a small one "
    "on synthetic data once (about 2 minutes on a CPU, cached)"
)


def check_serve_dependencies() -> None:
    """A one-line error naming the extra when starlette/uvicorn/websockets are missing."""
    missing = []
    for module in ("starlette", "uvicorn", "websockets"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ValueError(f"tsm serve needs {', '.join(missing)}: pip install 'temporal-shift[serve]'")


def run_serve(
    *,
    checkpoint=None,
    runtime: Literal["torch", "onnxruntime"] = "torch",
    onnx: str | Path | None = None,
    classes: str | Path | None = None,
    n_segment: int | None = None,
    demo: bool = False,
    demo_cache: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    allowed_host: Sequence[str] = (),
    size: int | None = None,
    short_side: int | None = None,
    smooth: int = 1,
    hysteresis: int = 1,
    topk: int = 3,
    fps: float = 25.0,
    limits: ServeLimits = ServeLimits(),
    log=print,
) -> None:
    """``tsm serve``: load the model (or the ``--demo`` one), build the app and serve it until
    interrupted (Ctrl-C or SIGTERM). ``size`` / ``short_side`` default to what the checkpoint
    was trained with. Requests must name this machine by a loopback name, ``host`` or one of
    ``allowed_host`` (docs/security.md)."""
    from temporal_shift.apps.serve.app import ServeSettings, create_app, is_loopback, uvicorn_config
    from temporal_shift.apps.serve.guard import allowed_hosts

    check_serve_dependencies()
    model = _load_model(
        checkpoint=checkpoint,
        runtime=runtime,
        onnx=onnx,
        classes=classes,
        n_segment=n_segment,
        demo=demo,
        demo_cache=demo_cache,
        log=log,
    )
    size = size or model.input_size or 224
    short_side = (
        short_side
        or (model.scale_size if model.input_size == size and model.scale_size else None)
        or round(size * 8 / 7)
    )
    settings = ServeSettings(
        size=size, short_side=short_side, smooth=smooth, hysteresis=hysteresis, topk=topk, fps=fps, runtime=runtime
    )
    if fps > limits.max_fps:
        raise ValueError(f"--fps {fps} is over --max-fps {limits.max_fps}")
    app = create_app(model, settings=settings, limits=limits, host=host, allowed_host=allowed_host)
    if not is_loopback(host):
        log(
            f"tsm serve: warning: listening on {host}: reachable from other machines (no authentication); "
            f"pages must name it {'by an IP address, ' if host in ('0.0.0.0', '::') else ''}"
            f"as {', '.join(allowed_hosts(host, allowed_host))}"
        )
    log(
        f"tsm serve: {len(model.classes)} classes, {size}x{size} crops of a {short_side} short side, {runtime}; "
        f"open http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/ (Ctrl-C stops)"
    )
    import uvicorn

    sock = _bind(host, port)  # first: a port in use is a one-line error, not a log message
    uvicorn.Server(uvicorn_config(app, host=host, port=port, limits=limits, log_level="info")).run(sockets=[sock])


def _load_model(
    *,
    checkpoint,
    runtime: Literal["torch", "onnxruntime"],
    onnx: str | Path | None,
    classes: str | Path | None,
    n_segment: int | None,
    demo: bool,
    demo_cache: str | Path | None,
    log,
):
    """The served model: the given checkpoint (or ONNX step), or with ``demo`` the cached demo model
    (trained first if absent)."""
    from temporal_shift.apps.stream import load_stream

    if demo and (checkpoint is not None or onnx is not None):
        raise ValueError("--demo serves its own model: give --demo or --checkpoint/--weights/--onnx, not both")
    if demo:
        from temporal_shift.apps.serve.demo_model import ensure_demo_model

        cached = ensure_demo_model(cache_dir=demo_cache, log=log)
        checkpoint, classes = cached.checkpoint, classes or cached.classes
        if runtime == "onnxruntime":
            onnx = cached.onnx()
    elif checkpoint is None:
        raise ValueError(NO_MODEL_MESSAGE)
    return load_stream(runtime=runtime, checkpoint=checkpoint, onnx=onnx, n_segment=n_segment, classes=classes)


def _bind(host: str, port: int):
    """A socket bound to ``host:port`` (IPv6 for a host with a colon); a clear OSError when it cannot be."""
    import socket

    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        raise OSError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port") from None
    return sock


__all__ = ["NO_MODEL_MESSAGE", "ServeLimits", "run_serve"]
