"""`tsm serve`: live recognition in the browser (webcam or a local video file) with an online TSM."""

from __future__ import annotations

import argparse
import sys
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
        "Binds to loopback unless --host says otherwise; frame size, message size, frame rate and connections "
        "are bounded.",
    )
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
    p.add_argument(
        "--max-fps", type=float, default=limits.max_fps, help="frames a second a page may send (default %(default)s)"
    )
    p.add_argument(
        "--max-connections", type=int, default=limits.max_connections, help="pages served at once (default %(default)s)"
    )
    p.add_argument(
        "--max-side", type=int, default=limits.max_side, help="largest frame side in pixels (default %(default)s)"
    )
    p.add_argument(
        "--max-message-bytes",
        type=int,
        default=limits.max_message_bytes,
        help="largest message a page may send (default %(default)s)",
    )
    p.set_defaults(func=_cmd_serve)


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _cmd_serve(args: argparse.Namespace) -> int:
    from temporal_shift.apps.serve import run_serve
    from temporal_shift.apps.serve.protocol import ServeLimits

    checkpoint = options.checkpoint_or_weights(args, required=False)
    limits = ServeLimits(
        max_connections=args.max_connections,
        max_side=args.max_side,
        max_message_bytes=args.max_message_bytes,
        max_fps=args.max_fps,
    )
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
