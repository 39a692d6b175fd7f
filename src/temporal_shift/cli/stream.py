"""`tsm stream`: classify a video, frame folder or camera frame by frame with an online TSM."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from temporal_shift.cli import options


def register(sub: argparse._SubParsersAction) -> None:
    from temporal_shift.apps.stream import RUNTIMES, load_stream, run_stream

    p = sub.add_parser(
        "stream",
        help="classify a video, frame folder or camera frame by frame with an online TSM",
        description="Run a causal TSM frame by frame over SOURCE (a video file, a folder of JPEG "
        "frames, or a camera index); print one JSON line per processed frame and a summary "
        "(frames/s, model-step latency) on stderr. The shift buffers are reset at the start, on "
        "a gap in the timestamps (dropped frames, seeks) and never otherwise.",
    )
    p.add_argument("source", help="video file, JPEG frame folder, or camera index (0, 1, ...)")
    options.add_checkpoint_or_weights(
        p,
        required=False,
        checkpoint_help="causal checkpoint (or --weights NAME; one is required for --runtime torch)",
        instead_of="--checkpoint (a causal model, e.g. online_tsm_mobilenetv2_jester)",
    )
    p.add_argument("--classes", type=Path, default=None, help="class names, one per line (default: indices)")
    options.add_segments(p)
    _add_runtime(p, default=options.default(load_stream, "runtime"), choices=RUNTIMES)
    p.add_argument(
        "--every",
        type=int,
        default=options.default(run_stream, "every"),
        help="process every K-th frame (default %(default)s)",
    )
    options.add_stream_labels(p, library=run_stream)
    p.add_argument(
        "--size", type=int, default=options.default(run_stream, "size"), help="centre crop side (default %(default)s)"
    )
    p.add_argument(
        "--short-side",
        type=int,
        default=options.default(run_stream, "short_side"),
        help="resize the short side to this (default: size*8/7)",
    )
    p.add_argument(
        "--fps",
        type=float,
        default=options.default(run_stream, "fps"),
        help="frame rate for frame folders (default 25) or override",
    )
    p.add_argument(
        "--template",
        default=options.default(run_stream, "template"),
        help="frame file names of a frame folder, as tsm predict reads them (default %(default)s; a folder "
        "without them: its JPEGs by name)",
    )
    p.add_argument("--out-video", type=Path, default=None, help="write an mp4 with the current label drawn on")
    p.add_argument("--json-summary", type=Path, default=None, help="write the summary as JSON here")
    p.set_defaults(func=_cmd_stream)


def _add_runtime(p: argparse.ArgumentParser, *, default: str, choices: tuple[str, ...]) -> None:
    """What runs the step: PyTorch on a checkpoint, or a runtime on an exported step."""
    p.add_argument(
        "--runtime",
        default=default,
        choices=choices,
        help="torch (a checkpoint), or the runtime of a step exported with tsm export --online",
    )
    p.add_argument(
        "--exported",
        type=Path,
        default=None,
        metavar="FILE",
        help="the exported streaming step (.onnx, .pte, .xml) for onnxruntime, executorch or openvino",
    )
    p.add_argument("--onnx", type=Path, default=None, help="streaming-step ONNX, for onnxruntime (= --exported)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads of an exported step's runtime")


def _cmd_stream(args: argparse.Namespace) -> int:
    import json

    from temporal_shift.apps.stream import load_stream, run_stream

    checkpoint = options.checkpoint_or_weights(args, required=False)
    model = load_stream(
        runtime=args.runtime,
        checkpoint=checkpoint,
        onnx=args.onnx,
        exported=args.exported,
        n_segment=args.segments,
        classes=args.classes,
        threads=args.threads,
    )
    summary = run_stream(
        args.source,
        model.stream,
        classes=model.classes,
        out=sys.stdout,
        out_video=args.out_video,
        size=args.size,
        short_side=args.short_side,
        every=args.every,
        smooth=args.smooth,
        hysteresis=args.hysteresis,
        topk=args.topk,
        fps=args.fps,
        template=args.template,
    )
    print(f"tsm stream: {summary.line()}", file=sys.stderr)
    if args.out_video is not None:
        print(f"tsm stream: wrote {args.out_video}", file=sys.stderr)
    if args.json_summary is not None:
        args.json_summary.parent.mkdir(parents=True, exist_ok=True)
        args.json_summary.write_text(json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8")
    return 0
