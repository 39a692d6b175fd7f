"""`tsm serve`: live recognition in the browser (webcam or a local video file) with an online TSM."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from temporal_shift.cli import options


def register(sub: argparse._SubParsersAction) -> None:
    from temporal_shift.apps.serve import run_serve

    limits = options.default(run_serve, "limits")
    p = sub.add_parser(
        "serve",
        help="live recognition in the browser (webcam or a local video file) with an online TSM",
        description="Serve a page that sends webcam or video-file frames over a WebSocket to a causal TSM "
        "running here, one online stream per page (the tsm stream semantics: smoothing, hysteresis, resets at "
        "a new source, on a gap and on request), and draws the label, top-k probabilities, frames/s and latency. "
        "Binds to loopback unless --host says otherwise and answers only requests that name an allowed host; "
        "frame size and decoding cost, message size and rate, idle time and connections are bounded "
        "(docs/security.md).",
    )
    _add_model(p, run_serve)
    options.add_stream_labels(p, library=run_serve)
    p.add_argument(
        "--size",
        type=int,
        default=options.default(run_serve, "size"),
        help="centre crop side (default: the checkpoint's, else 224)",
    )
    p.add_argument(
        "--short-side",
        type=int,
        default=options.default(run_serve, "short_side"),
        help="the page scales frames to this short side (default: the checkpoint's, else size*8/7)",
    )
    p.add_argument(
        "--host",
        default=options.default(run_serve, "host"),
        help="address to listen on (default %(default)s: loopback only)",
    )
    p.add_argument(
        "--port", type=int, default=options.default(run_serve, "port"), help="port to listen on (default %(default)s)"
    )
    p.add_argument(
        "--fps",
        type=float,
        default=options.default(run_serve, "fps"),
        help="the rate the page samples frames at first (default %(default)s)",
    )
    _add_limits(p.add_argument_group("limits (docs/security.md)"), limits)
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a name the server answers to besides localhost, 127.0.0.1, ::1 and --host "
        "(repeatable; for --host 0.0.0.0 reached by name; '*' allows any, which lets "
        "other web sites' pages in through DNS rebinding)",
    )
    p.set_defaults(func=_cmd_serve)


def _add_model(p: argparse.ArgumentParser, run_serve: Callable[..., object]) -> None:
    """What runs: a causal checkpoint, published weights or the demo model, and its runtime."""
    model = options.add_checkpoint_or_weights(
        p,
        required=False,
        checkpoint_help="causal checkpoint (or --weights NAME, or --demo)",
        instead_of="--checkpoint (a causal model, e.g. online_tsm_mobilenetv2_jester)",
    )
    model.add_argument(
        "--demo",
        action="store_true",
        help="train a small causal model on synthetic data once (about 2 minutes on a CPU) and "
        "serve it; cached in --demo-cache, $TSM_SERVE_CACHE or ~/.cache/temporal-shift/serve-demo",
    )
    p.add_argument("--demo-cache", type=Path, default=None, help="where --demo keeps its model")
    p.add_argument(
        "--classes", type=Path, default=None, help="class names, one per line (default: the checkpoint's, else indices)"
    )
    options.add_segments(p)
    p.add_argument("--runtime", default=options.default(run_serve, "runtime"), choices=("torch", "onnxruntime"))
    p.add_argument(
        "--onnx",
        type=Path,
        default=None,
        help="streaming-step ONNX (tsm export --online), for onnxruntime (--demo exports its own)",
    )


# flag, ServeLimits field, type, help (each help ends with the default)
_LIMITS: tuple[tuple[str, str, type, str], ...] = (
    ("--max-fps", "max_fps", float, "frames a second a page may send"),
    ("--max-connections", "max_connections", int, "pages served at once"),
    ("--max-side", "max_side", int, "largest frame side in pixels"),
    ("--max-message-bytes", "max_message_bytes", int, "largest message a page may send"),
    ("--max-scans", "max_scans", int, "most scans of a frame's JPEG (progressive files have ~10)"),
    ("--max-control-rate", "max_control_rate", float, "source/reset messages a second a page may send"),
    ("--decode-share", "decode_share", float, "CPU seconds a second a page's frames may take to decode"),
    (
        "--idle-timeout",
        "idle_timeout",
        float,
        "seconds without a frame before a page is disconnected; it reconnects when it has frames again",
    ),
    ("--header-timeout", "header_timeout", float, "seconds a connection has to send its request head"),
    ("--max-sockets", "max_sockets", int, "open connections; past it the longest-idle one is closed"),
)


def _add_limits(group: argparse._ArgumentGroup, limits: object) -> None:
    """One option per `ServeLimits` field, its default the library's."""
    for flag, field, kind, text in _LIMITS:
        group.add_argument(flag, type=kind, default=getattr(limits, field), help=f"{text} (default %(default)s)")


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _cmd_serve(args: argparse.Namespace) -> int:
    """SIGTERM stops ``tsm serve`` as Ctrl-C does (one line, exit status 130), whatever it is
    doing: training the demo model, loading, or serving (uvicorn's own handlers shut the
    server down first, then hand the signal back)."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _serve(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _serve(args: argparse.Namespace) -> int:
    from temporal_shift.apps.serve import run_serve
    from temporal_shift.apps.serve.protocol import ServeLimits

    checkpoint = options.checkpoint_or_weights(args, required=False)
    limits = ServeLimits(**{field: getattr(args, field) for _, field, _, _ in _LIMITS})
    run_serve(
        checkpoint=checkpoint,
        runtime=args.runtime,
        onnx=args.onnx,
        classes=args.classes,
        n_segment=args.segments,
        demo=args.demo,
        demo_cache=args.demo_cache,
        host=args.host,
        port=args.port,
        allowed_host=args.allowed_host,
        size=args.size,
        short_side=args.short_side,
        smooth=args.smooth,
        hysteresis=args.hysteresis,
        topk=args.topk,
        fps=args.fps,
        limits=limits,
        log=_log,
    )
    return 0
