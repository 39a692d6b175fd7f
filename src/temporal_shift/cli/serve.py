"""`tsm serve`: live recognition in the browser (webcam or a local video file) with an online TSM."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from temporal_shift.cli import options


def register(sub: argparse._SubParsersAction) -> None:
    from temporal_shift.apps.serve.protocol import ServeLimits

    limits = ServeLimits()
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
        p, required=False, checkpoint_help="causal checkpoint (or --weights NAME, or --demo)",
        instead_of="--checkpoint (a causal model, e.g. online_tsm_mobilenetv2_jester)")
    model.add_argument("--demo", action="store_true",
                       help="train a small causal model on synthetic data once (about 2 minutes on a CPU) and "
                       "serve it; cached in --demo-cache, $TSM_SERVE_CACHE or ~/.cache/temporal-shift/serve-demo")
    p.add_argument("--demo-cache", type=Path, default=None, help="where --demo keeps its model")
    p.add_argument("--classes", type=Path, default=None,
                   help="class names, one per line (default: the checkpoint's, else indices)")
    options.add_segments(p)
    p.add_argument("--runtime", default="torch", choices=("torch", "onnxruntime"))
    p.add_argument("--onnx", type=Path, default=None,
                   help="streaming-step ONNX (tsm export --online), for onnxruntime (--demo exports its own)")
    p.add_argument("--smooth", type=int, default=1, help="average the scores of the last N steps")
    p.add_argument("--hysteresis", type=int, default=1, help="a label becomes current after M consecutive wins")
    p.add_argument("--topk", type=int, default=3)
    p.add_argument("--size", type=int, default=None, help="centre crop side (default: the checkpoint's, else 224)")
    p.add_argument("--short-side", type=int, default=None,
                   help="the page scales frames to this short side (default: the checkpoint's, else size*8/7)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--fps", type=float, default=25.0, help="the rate the page samples frames at first")
    p.add_argument("--max-fps", type=float, default=limits.max_fps, help="frames a second a page may send")
    p.add_argument("--max-connections", type=int, default=limits.max_connections)
    p.add_argument("--max-side", type=int, default=limits.max_side, help="largest frame side in pixels")
    p.add_argument("--max-message-bytes", type=int, default=limits.max_message_bytes)
    p.set_defaults(func=_cmd_serve)


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _cmd_serve(args: argparse.Namespace) -> int:
    from temporal_shift.apps.serve import run_serve
    from temporal_shift.apps.serve.protocol import ServeLimits

    checkpoint = options.checkpoint_or_weights(args, required=False)
    limits = ServeLimits(max_connections=args.max_connections, max_side=args.max_side,
                         max_message_bytes=args.max_message_bytes, max_fps=args.max_fps)
    run_serve(checkpoint=checkpoint, runtime=args.runtime, onnx=args.onnx, classes=args.classes,
              n_segment=args.segments, demo=args.demo, demo_cache=args.demo_cache, host=args.host, port=args.port,
              size=args.size, short_side=args.short_side, smooth=args.smooth, hysteresis=args.hysteresis,
              topk=args.topk, fps=args.fps, limits=limits, log=_log)
    return 0
