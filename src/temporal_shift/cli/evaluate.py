"""`tsm test` (test protocols, ensembles, metrics over a list file) and `tsm predict` (top-k classes
of videos and frame folders)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from temporal_shift.cli import options

if TYPE_CHECKING:
    from temporal_shift.hub.weights import PublishedWeights


class _AppendMember(argparse.Action):
    """``--checkpoint FILE`` / ``--weights NAME``: ensemble members in command-line order."""

    def __call__(self, parser, namespace, values, option_string=None):
        members = list(getattr(namespace, self.dest, None) or [])
        members.append((self.const, values))
        setattr(namespace, self.dest, members)


def register(sub: argparse._SubParsersAction) -> None:
    _register_test(sub)
    _register_predict(sub)


def _register_test(sub: argparse._SubParsersAction) -> None:
    from temporal_shift.engine.evaluate import evaluate

    p = sub.add_parser(
        "test",
        help="evaluate checkpoints (or an ensemble) with the paper's test protocols",
        description="Score every video of a list file with the views of a test protocol (clips x crops), "
        "average the views (softmax probabilities or logits), fuse ensemble members with weights, and "
        "print top-1, top-5 and mean class accuracy. With --out, also writes metrics.json, "
        "per_class.csv, predictions.csv, confusion.npy and confusion.png.",
    )
    _add_members(p)
    _add_test_data(p)
    _add_protocol(p)
    p.add_argument("--classes", type=Path, default=None, help="class names, one per line (default: the checkpoint's)")
    p.add_argument(
        "--batch-size",
        type=int,
        default=options.default(evaluate, "batch_size"),
        help="videos per batch (x views clips per forward; default %(default)s)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=options.default(evaluate, "workers"),
        help="DataLoader worker processes (default %(default)s)",
    )
    options.add_device(p, default=options.default(evaluate, "device"))
    p.add_argument(
        "--on-error",
        default=options.default(evaluate, "on_error"),
        choices=("raise", "skip"),
        help="unreadable videos: fail, or leave them out and report them",
    )
    p.add_argument("--out", type=Path, default=None, help="write metrics, predictions and the confusion matrix here")
    options.add_no_progress(p)
    p.set_defaults(func=_cmd_test)


def _add_members(p: argparse.ArgumentParser) -> None:
    """`tsm test`'s ensemble: --checkpoint/--weights members, their weights and T."""
    p.add_argument(
        "--checkpoint",
        dest="members",
        action=_AppendMember,
        const="file",
        type=Path,
        metavar="CKPT",
        help="checkpoint to test; repeat for an ensemble (e.g. an 8-frame and a 16-frame model)",
    )
    p.add_argument(
        "--weights",
        dest="members",
        action=_AppendMember,
        const="name",
        metavar="NAME",
        help="published weights to test (`tsm weights list`); repeatable, mixes with --checkpoint",
    )
    p.add_argument(
        "--ensemble-weights",
        type=float,
        nargs="+",
        default=None,
        metavar="W",
        help="ensemble weights, one per member (--checkpoint/--weights, in order; normalised; default equal)",
    )
    p.add_argument(
        "--segments",
        type=int,
        nargs="+",
        default=None,
        metavar="T",
        help="T of foreign (reference/MMAction2) checkpoints: one value, or one per member",
    )


def _add_test_data(p: argparse.ArgumentParser) -> None:
    """`tsm test`'s videos: the data root and list, the flow list of two-stream testing, the list's kind."""
    from temporal_shift.data.lists import DEFAULT_TEMPLATE
    from temporal_shift.engine.evaluate import evaluate

    p.add_argument("--data", type=Path, required=True, help="data root (list paths are relative to it)")
    p.add_argument("--list", type=Path, required=True, help="list file, relative to --data or absolute")
    p.add_argument(
        "--flow-list",
        type=Path,
        default=None,
        help="two-stream: the flow list (tsm prepare flow) that flow checkpoints read, relative to "
        "--flow-data; its entries pair with --list's videos by path (video extension dropped)",
    )
    p.add_argument("--flow-data", type=Path, default=None, help="root of the flow list's folders (default --data)")
    p.add_argument(
        "--flow-template",
        default="flow_x_{:05d}.jpg",
        help="the flow list's x files (default %(default)s; the y files: the same with the x turned y, "
        "e.g. x_{:05d}.jpg and y_{:05d}.jpg)",
    )
    p.add_argument(
        "--decoder",
        default="pyav",
        choices=("pyav", "torchcodec"),
        help="video decoder (default %(default)s; torchcodec is an optional extra, docs/data.md)",
    )
    p.add_argument("--kind", default=options.default(evaluate, "kind"), choices=("auto", "frames", "videos"))
    p.add_argument("--template", default=DEFAULT_TEMPLATE, help="frame file names (default %(default)s)")


def _add_protocol(p: argparse.ArgumentParser) -> None:
    """`tsm test`'s protocol: clips, crops, fusion and the crop's sizes (`EvalProtocol`)."""
    from temporal_shift.engine.evaluate import CLIP_PROTOCOLS, CROPS, FUSIONS, EvalProtocol

    p.add_argument(
        "--clips",
        default=options.default(EvalProtocol, "clips"),
        choices=CLIP_PROTOCOLS,
        help="single: 1 centre clip; twice: 2 clips (twice_sample); dense: --dense-clips windows",
    )
    p.add_argument(
        "--dense-clips",
        type=int,
        default=options.default(EvalProtocol, "dense_clips"),
        help="windows of --clips dense (default %(default)s)",
    )
    p.add_argument(
        "--dense-window",
        type=int,
        default=options.default(EvalProtocol, "dense_window"),
        help="frames per dense window (default %(default)s)",
    )
    p.add_argument(
        "--crops",
        type=int,
        default=options.default(EvalProtocol, "crops"),
        choices=CROPS,
        help="1 centre crop, 3 full-resolution crops, 5 (corners + centre) or 10 (and mirrors)",
    )
    p.add_argument(
        "--fusion",
        default=options.default(EvalProtocol, "fusion"),
        choices=FUSIONS,
        help="average softmax probabilities or logits over views and members",
    )
    p.add_argument("--size", type=int, default=None, help="crop side (default: as trained, else 224)")
    p.add_argument(
        "--scale-size", type=int, default=None, help="short side before cropping (default: as trained, else 256)"
    )


def _register_predict(sub: argparse._SubParsersAction) -> None:
    from temporal_shift.data.lists import DEFAULT_TEMPLATE
    from temporal_shift.engine.predict import predict

    p = sub.add_parser(
        "predict",
        help="top-k classes of a video, a frame folder or a folder of videos; --window: over a long video",
        description="Classify each input with one centre clip (the checkpoint's T frames, sampled as it was "
        "trained) and one centre crop; print the top-k class names with softmax probabilities. With --window, "
        "score sliding clips of a long video (decoded once) and merge them into segments: writes "
        "<video>.timeline.json, <video>.windows.csv and <video>.segments.csv (and --plot <video>.timeline.png) "
        "to --out.",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="VIDEO_OR_FOLDER",
        help="video file, JPEG frame folder, or folder of videos",
    )
    options.add_checkpoint_or_weights(p, required=True)
    p.add_argument(
        "--topk",
        type=int,
        default=options.default(predict, "topk"),
        help="classes printed per input (default %(default)s)",
    )
    p.add_argument("--classes", type=Path, default=None, help="class names, one per line (default: the checkpoint's)")
    options.add_segments(p)
    p.add_argument("--size", type=int, default=None, help="crop side (default: as trained, else 224)")
    p.add_argument(
        "--scale-size", type=int, default=None, help="short side before cropping (default: as trained, else 256)"
    )
    p.add_argument("--template", default=DEFAULT_TEMPLATE, help="frame file names (default %(default)s)")
    options.add_device(p, default=options.default(predict, "device"))
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    options.add_compile(
        p,
        help="torch.compile the model first (CUDA graphs on CUDA): faster per clip, "
        "slower to start (compilation takes seconds to minutes)",
        auto="reduce-overhead on CUDA, default elsewhere",
    )
    _add_timeline(p)
    p.set_defaults(func=_cmd_predict)


def _add_timeline(p: argparse.ArgumentParser) -> None:
    """`tsm predict VIDEO --window S`: sliding clips over a long video, merged into segments."""
    from temporal_shift.engine.timeline import predict_timeline

    g = p.add_argument_group("long videos (--window)")
    g.add_argument("--window", type=float, default=None, metavar="SECONDS", help="clip length of the sliding windows")
    g.add_argument(
        "--stride", type=float, default=None, metavar="SECONDS", help="step between windows (default: window / 4)"
    )
    g.add_argument(
        "--smooth",
        type=float,
        default=None,
        metavar="SECONDS",
        help="average the scores over this span before merging "
        f"(default {options.default(predict_timeline, 'smooth')}: off)",
    )
    g.add_argument(
        "--min-length",
        type=float,
        default=None,
        metavar="SECONDS",
        help="segments shorter than this join a neighbour "
        f"(default {options.default(predict_timeline, 'min_length')}: keep all)",
    )
    g.add_argument("--fps", type=float, default=None, help="frame rate of a frame folder (default 25; videos: theirs)")
    g.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help=f"windows per forward pass (default {options.default(predict_timeline, 'batch_size')})",
    )
    g.add_argument("--out", type=Path, default=None, help="folder for the JSON, CSV and PNG (default: here)")
    g.add_argument("--plot", action="store_true", help="also draw the timeline as a PNG")


_WINDOW_ONLY = ("stride", "smooth", "min_length", "fps", "batch_size", "out", "plot")


def _members(args: argparse.Namespace) -> list[Path | PublishedWeights]:
    """The checkpoint files and published weights of --checkpoint/--weights, in command-line order."""
    from temporal_shift.hub.weights import get_weights

    if not args.members:
        raise ValueError("give --checkpoint FILE or --weights NAME (repeat either for an ensemble)")
    checkpoints: list[Path | PublishedWeights] = []
    for kind, value in args.members:
        if kind == "file":
            checkpoints.append(value)
            continue
        try:
            float(value)
        except ValueError:
            checkpoints.append(get_weights(value))
            continue
        raise ValueError(
            f"--weights takes names of published weights, got {value!r}; ensemble weights are --ensemble-weights W ..."
        )
    return checkpoints


def _cmd_test(args: argparse.Namespace) -> int:
    from temporal_shift.engine.evaluate import EvalProtocol, Member, evaluate

    checkpoints = _members(args)
    n = len(checkpoints)
    weights = args.ensemble_weights or [1.0] * n
    if len(weights) != n:
        raise ValueError(f"--ensemble-weights: {len(weights)} values for {n} checkpoints")
    segments = args.segments or [None]
    if len(segments) == 1:
        segments = segments * n
    if len(segments) != n:
        raise ValueError(f"--segments: {len(segments)} values for {n} checkpoints (give one, or one per checkpoint)")
    protocol = EvalProtocol(
        clips=args.clips,
        crops=args.crops,
        fusion=args.fusion,
        dense_clips=args.dense_clips,
        dense_window=args.dense_window,
        size=args.size,
        scale_size=args.scale_size,
    )
    result = evaluate(
        [Member(checkpoint=c, weight=w, n_segment=t) for c, w, t in zip(checkpoints, weights, segments, strict=True)],
        list_file=args.list,
        root=args.data,
        protocol=protocol,
        kind=args.kind,
        template=args.template,
        classes=args.classes,
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
        on_error=args.on_error,
        out_dir=args.out,
        progress=not args.no_progress,
        flow_list=args.flow_list,
        flow_root=args.flow_data,
        flow_template=args.flow_template,
        decoder=args.decoder,
    )
    print(result.summary())
    for reason in result.skipped:
        print(f"skipped: {reason}", file=sys.stderr)
    for path in result.files.values():
        print(f"wrote {path}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    import json

    from temporal_shift.engine.predict import predict

    if args.window is not None:
        return _cmd_timeline(args)
    for name in _WINDOW_ONLY:
        if getattr(args, name) not in (None, False):
            raise ValueError(f"--{name.replace('_', '-')} goes with --window SECONDS (prediction over a long video)")
    compile_mode = options.compile_mode(args)
    checkpoint = options.checkpoint_or_weights(args)
    predictions = predict(
        args.inputs,
        checkpoint=checkpoint,
        topk=args.topk,
        n_segment=args.segments,
        classes=args.classes,
        size=args.size,
        scale_size=args.scale_size,
        device=args.device,
        template=args.template,
        compile=compile_mode,
    )
    if args.json:
        print(json.dumps({"checkpoint": str(checkpoint), "predictions": [p.to_dict() for p in predictions]}, indent=2))
        return 0
    for prediction in predictions:
        if len(predictions) > 1:
            print(f"{prediction.input}:")
        for line in prediction.lines():
            print(f"  {line}" if len(predictions) > 1 else line)
    return 0


def _cmd_timeline(args: argparse.Namespace) -> int:
    import json

    from temporal_shift.engine.predict import Predictor
    from temporal_shift.engine.timeline import predict_timeline

    if len(args.inputs) != 1:
        raise ValueError(f"--window takes one video, got {len(args.inputs)} inputs")
    if args.compile:
        raise ValueError("--compile does not go with --window (windows are scored in batches)")
    predictor = Predictor(
        options.checkpoint_or_weights(args),
        n_segment=args.segments,
        classes=args.classes,
        size=args.size,
        scale_size=args.scale_size,
        device=args.device,
        template=args.template,
    )
    given = {
        name: getattr(args, name) for name in ("smooth", "min_length", "batch_size") if getattr(args, name) is not None
    }
    timeline = predict_timeline(
        args.inputs[0],
        predictor=predictor,
        window=args.window,
        stride=args.window / 4 if args.stride is None else args.stride,
        fps=args.fps,
        template=args.template,
        progress=True,
        **given,
    )
    files = timeline.write(args.out or Path("."), topk=args.topk, plot=args.plot)
    if args.json:
        print(json.dumps(timeline.to_dict(args.topk), indent=2))
    else:
        t = timeline
        print(f"{t.video}: {t.duration:.2f} s, {len(t.starts)} windows, {len(t.segments)} segments")
        for line in timeline.lines():
            print(line)
    for path in files.values():
        print(f"wrote {path}", file=sys.stderr if args.json else sys.stdout)
    return 0
