"""The `tsm` command: a thin argparse layer over the library.

Every sub-command parses its arguments and calls one library function. Errors a user can
cause (ValueError, OSError and their subclasses) are printed as one line and exit with
status 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tsm",
        description="Temporal Shift Module: video action recognition with TSN/TSM.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in _REGISTRARS:
        register(sub)
    return parser


def _add_weights_option(parser: argparse.ArgumentParser | argparse._MutuallyExclusiveGroup, what: str) -> None:
    parser.add_argument("--weights", dest="published", default=None, metavar="NAME",
                        help=f"published weights by name instead of {what} (`tsm weights list`; downloaded "
                        "into the torch hub cache on first use)")


def _checkpoint_or_weights(args: argparse.Namespace, *, what: str = "--checkpoint") -> object:
    """The checkpoint file or the published weights (`weights.PublishedWeights`) the user gave."""
    given = [x for x in (getattr(args, "checkpoint", None), args.published) if x is not None]
    if len(given) != 1:
        raise ValueError(f"give {what} or --weights NAME" + (" (not both)" if given else ""))
    if args.published is not None:
        from temporal_shift.hub.weights import get_weights

        return get_weights(args.published)
    return given[0]


# Each area has one `_register_*` function that adds its sub-commands, storing the
# handler as `func`; `_REGISTRARS` at the end of the file lists them in help order.

# --- model commands (models/, checkpoints.py, export.py, bench.py) -----------------


def _register_model_commands(sub: argparse._SubParsersAction) -> None:
    from temporal_shift.models.backbones import BACKBONES

    p = sub.add_parser(
        "bench",
        help="TSM vs TSN overhead: params, FLOPs, interleaved latency ratio (or training steps, "
        "or the comparison models' efficiency table)",
        description="Measure params, FLOPs and latency of TSN and TSM with identical weights, "
        "timed in interleaved pairs; prints a table and optionally writes JSON and a PNG. "
        "With --train, time training steps (forward, backward, SGD step) instead, with peak memory. "
        "With --compare, the paper's efficiency table: params, GMACs, batch-1 latency and throughput "
        "of the named models (tsm, tsm16, tsn, single_frame, late_fusion, early_fusion, slow_fusion, "
        "c3d, i3d_r50, i3d_r50_8f, eco, eco_8f, eco_lite, eco_lite_8f, or all) side by side, "
        "next to the published figures.",
    )
    p.add_argument("--compare", default=None, metavar="NAMES",
                   help="comma-separated models for the efficiency table (e.g. tsm,tsm16,i3d_r50,eco,c3d), or all")
    p.add_argument("--arch", default=None, choices=sorted(BACKBONES), help="backbone (default resnet50)")
    p.add_argument("--segments", type=int, default=None, help="frames per clip (T, default 8)")
    p.add_argument("--size", type=int, default=None,
                   help="input height and width (default 224; with --compare each model's published size)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="clips per batch (default 1; 8 with --train; with --compare the throughput batch, "
                   "default 16 on CUDA, 4 on the CPU)")
    p.add_argument("--repeats", type=int, default=None,
                   help="interleaved TSN/TSM pairs (default 30; 20 with --train; 10 rounds with --compare)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed calls (steps) of each model first (default 3; 1 with --compare)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: auto)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--contiguous", action="store_true", help="NCHW instead of channels_last")
    p.add_argument("--train", action="store_true",
                   help="time training steps: forward, cross-entropy, backward, SGD momentum step")
    p.add_argument("--amp", default=None, metavar="{off,bf16,fp16}",
                   help="with --train: autocast dtype (fp16 with a GradScaler); default off")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile both models first (inference: CUDA graphs on CUDA)")
    p.add_argument("--compile-mode", default="auto",
                   metavar="{auto,default,reduce-overhead,max-autotune,max-autotune-no-cudagraphs}",
                   help="torch.compile mode with --compile (auto: inference reduce-overhead on CUDA, "
                   "otherwise default)")
    p.add_argument("--two-stream", action="store_true",
                   help="per-clip cost of the two-stream baseline (TSN RGB + TSN flow, flow extraction with TV-L1 "
                   "and Farneback on one core) next to TSM, in interleaved rounds (needs the 'flow' extra)")
    p.add_argument("--flow-length", type=int, default=5, help="with --two-stream: flow fields per segment (L)")
    p.add_argument("--json", type=Path, default=None, help="write the result as JSON here")
    p.add_argument("--plot", type=Path, default=None, help="write a box plot (PNG) here")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser(
        "export",
        help="export a checkpoint to ONNX, TorchScript or a torch.export program",
        description="Export a checkpoint; the exported model takes (N, T, C, H, W) clips with "
        "a dynamic batch size N. ONNX exports are verified in onnxruntime.",
    )
    p.add_argument("checkpoint", type=Path, nargs="?", default=None, help="checkpoint file (or --weights NAME)")
    _add_weights_option(p, "a checkpoint file")
    p.add_argument("--format", default="onnx", choices=("onnx", "torchscript", "exported"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--size", type=int, default=None,
                   help="input height and width for tracing (default: the model's published size, 224; C3D 112)")
    p.add_argument("--segments", type=int, default=None, help="T, for checkpoints of other releases")
    p.add_argument("--no-verify", action="store_true", help="skip the comparison with PyTorch")
    p.add_argument(
        "--online",
        action="store_true",
        help="export the streaming step (frame, *buffers) -> (logits, *new_buffers) of a causal model (ONNX)",
    )
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser(
        "import",
        help="convert a reference-release or MMAction2 checkpoint into our format",
        description="Read a checkpoint of the paper's reference release or of MMAction2's TSM, "
        "infer arch, classes and shift place from its keys, and save it in our format.",
    )
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--segments", type=int, default=None, help="T the checkpoint was trained with")
    p.add_argument("--fold-div", type=int, default=None, help="shift 1/fold_div each way (default 8)")
    p.set_defaults(func=_cmd_import)


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.compare is not None and args.two_stream:
        raise ValueError("--compare and --two-stream are two different tables: give one")
    if args.compare is not None:
        return _bench_compare(args)
    if args.two_stream:
        return _cmd_bench_two_stream(args)
    if args.compile_mode != "auto" and not args.compile:
        raise ValueError("--compile-mode goes with --compile")
    compile_mode = args.compile_mode if args.compile else None
    common = dict(arch=args.arch or "resnet50", n_segment=args.segments or 8, size=args.size or 224,
                  warmup=3 if args.warmup is None else args.warmup,
                  device=args.device, threads=args.threads, channels_last=not args.contiguous,
                  compile=compile_mode)
    if args.train:
        from temporal_shift.apps.bench.train import benchmark_training, plot_steps

        result = benchmark_training(
            **common, amp=args.amp or "off",
            batch_size=8 if args.batch_size is None else args.batch_size,
            repeats=20 if args.repeats is None else args.repeats,
        )
        plot = plot_steps
    else:
        from temporal_shift.apps.bench.overhead import benchmark_overhead, plot_latencies

        if args.amp is not None:
            raise ValueError("--amp goes with --train (inference is timed in float32)")
        result = benchmark_overhead(
            **common,
            batch_size=1 if args.batch_size is None else args.batch_size,
            repeats=30 if args.repeats is None else args.repeats,
        )
        plot = plot_latencies
    print(result.table())
    if args.json:
        args.json.write_text(result.to_json())
        print(f"wrote {args.json}")
    if args.plot:
        print(f"wrote {plot(result, args.plot)}")
    return 0


def _cmd_bench_two_stream(args: argparse.Namespace) -> int:
    from temporal_shift.apps.bench.two_stream import benchmark_two_stream

    others = [flag for flag, used in (("--train", args.train), ("--compile", args.compile), ("--plot", args.plot),
                                      ("--batch-size", args.batch_size is not None)) if used]
    if others:
        raise ValueError(f"--two-stream times batch-1 eager inference; it does not take {', '.join(others)}")
    result = benchmark_two_stream(arch=args.arch or "resnet50", n_segment=args.segments or 8, size=args.size or 224,
                                  flow_length=args.flow_length, repeats=5 if args.repeats is None else args.repeats,
                                  warmup=1 if args.warmup is None else args.warmup, device=args.device,
                                  threads=args.threads)
    print(result.table())
    if args.json:
        args.json.write_text(result.to_json())
        print(f"wrote {args.json}")
    return 0


def _bench_compare(args: argparse.Namespace) -> int:
    from temporal_shift.apps.bench.compare import benchmark_compare, parse_names, plot_compare

    for flag, given in (("--train", args.train), ("--compile", args.compile), ("--amp", args.amp is not None),
                        ("--arch", args.arch is not None), ("--segments", args.segments is not None),
                        ("--contiguous", args.contiguous)):
        if given:
            raise ValueError(f"{flag} does not go with --compare (each named model has its own backbone, "
                             "T and input; the table is eager float32 inference)")
    result = benchmark_compare(
        parse_names(args.compare), batch_size=args.batch_size, size=args.size,
        repeats=10 if args.repeats is None else args.repeats, warmup=1 if args.warmup is None else args.warmup,
        device=args.device, threads=args.threads,
    )
    print(result.table())
    if args.json:
        args.json.write_text(result.to_json())
        print(f"wrote {args.json}")
    if args.plot:
        print(f"wrote {plot_compare(result, args.plot)}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from temporal_shift.engine.export import export_model, verify_export
    from temporal_shift.checkpoint.loading import load_checkpoint

    checkpoint = _checkpoint_or_weights(args, what="CHECKPOINT")
    if args.online:
        return _export_online(args, checkpoint)
    model = load_checkpoint(checkpoint, n_segment=args.segments).model
    out = export_model(model, args.out, format=args.format, size=args.size)
    print(f"wrote {out}")
    if not args.no_verify:
        error = verify_export(model, out, format=args.format, size=args.size)
        print(f"max relative difference to PyTorch on random input: {error:.2e}")
        if error > 1e-4:
            raise ValueError(f"{out}: exported model differs from PyTorch by {error:.2e} (> 1e-4)")
    return 0


def _export_online(args: argparse.Namespace, checkpoint: object) -> int:
    from temporal_shift.engine.export import export_online, verify_online_export
    from temporal_shift.checkpoint.loading import load_online

    if args.format != "onnx":
        raise ValueError(f"--online exports ONNX only, not {args.format}")
    online = load_online(checkpoint, n_segment=args.segments)
    size = 224 if args.size is None else args.size
    out = export_online(online, args.out, size=size)
    print(f"wrote {out} (inputs: frame, buffer_0..{online.num_buffers - 1})")
    if not args.no_verify:
        error = verify_online_export(online, out, size=size)
        print(f"max relative difference to PyTorch over a 30-frame stream: {error:.2e}")
        if error > 1e-4:
            raise ValueError(f"{out}: exported step differs from PyTorch by {error:.2e} (> 1e-4)")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from temporal_shift.checkpoint.importers import import_checkpoint

    imported = import_checkpoint(args.checkpoint, args.out, n_segment=args.segments, fold_div=args.fold_div)
    print(imported.summary())
    return 0


# --- published weights (weights.py) -------------------------------------------------


def _register_weights_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "weights",
        help="published checkpoints by name: list them, download one",
        description="The reference release's published checkpoints, by name. `tsm weights list` shows "
        "them; `tsm weights get NAME` downloads one into the torch hub cache ($TORCH_HOME/hub/checkpoints) "
        "and verifies it. Commands that take --checkpoint also take --weights NAME.",
    )
    weights_sub = p.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    w = weights_sub.add_parser("list", help="name, dataset, frames, GMACs and published top-1 of each")
    w.add_argument("--json", action="store_true", help="print every entry's fields as JSON")
    w.set_defaults(func=_cmd_weights_list)
    w = weights_sub.add_parser("get", help="download (or find in the cache) and verify published weights")
    w.add_argument("name", help="a name from `tsm weights list`")
    w.add_argument("--cache-dir", type=Path, default=None,
                   help="download here instead of the torch hub cache ($TORCH_HOME/hub/checkpoints)")
    w.add_argument("--no-progress", action="store_true", help="no progress bar")
    w.set_defaults(func=_cmd_weights_get)


def _cmd_weights_list(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from temporal_shift.hub.weights import registry, weights_table

    if args.json:
        entries = [dict(dataclasses.asdict(w), file_name=w.file_name, num_classes=w.num_classes,
                        sources=dict(w.sources)) for w in registry().values()]
        print(json.dumps(entries, indent=2))
    else:
        print(weights_table())
    return 0


def _cmd_weights_get(args: argparse.Namespace) -> int:
    from temporal_shift.hub.download import sha256_file
    from temporal_shift.hub.weights import download_weights, get_weights

    entry = get_weights(args.name)
    path = download_weights(entry, cache_dir=args.cache_dir, progress=not args.no_progress)
    print(f"{entry.name}: {path} (sha256 {sha256_file(path)})")
    return 0


# --- online commands (models/online.py) ------------------------------------------


def _register_online_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "online",
        help="online (streaming) TSM: convert a causal checkpoint",
        description="Streaming TSM. `tsm online convert` checks that a checkpoint (ours, the "
        "reference release's online demo, ...) is causal and streamable and saves it in our format.",
    )
    online_sub = p.add_subparsers(dest="online_command", metavar="ACTION", required=True)
    c = online_sub.add_parser("convert", help="causal checkpoint -> streamable checkpoint in our format")
    c.add_argument("checkpoint", type=Path)
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--segments", type=int, default=None, help="T of the offline model (foreign formats)")
    c.set_defaults(func=_cmd_online_convert)


def _cmd_online_convert(args: argparse.Namespace) -> int:
    from temporal_shift.checkpoint.format import save_checkpoint
    from temporal_shift.checkpoint.loading import load_checkpoint
    from temporal_shift.models.online import OnlineRecognizer

    model = load_checkpoint(args.checkpoint, n_segment=args.segments).model
    try:
        online = OnlineRecognizer(model)
    except ValueError as exc:
        raise ValueError(f"{args.checkpoint}: {exc}") from exc
    out = save_checkpoint(model, args.out)
    print(f"wrote {out}: {model.config.arch}, {online.num_buffers} shift buffers, streamable")
    return 0


# --- data commands (data/) ---------------------------------------------------------


def _register_data_commands(sub: argparse._SubParsersAction) -> None:
    from temporal_shift.data import synthetic
    from temporal_shift.data.lists import DEFAULT_TEMPLATE
    from temporal_shift.data.prepare import DATASETS

    p = sub.add_parser(
        "synth",
        help="write the built-in synthetic temporal dataset (frame folders, mp4, lists)",
        description="Write synthetic clips whose classes come in pairs that only frame order "
        "tells apart (plus a still red/blue control pair), as JPEG frame folders and mp4, "
        "with train/val list files and classes.txt. Deterministic by seed; resumable.",
    )
    p.add_argument("--out", type=Path, required=True, help="output directory (the data root)")
    p.add_argument("--num-videos", type=int, default=synthetic.DEFAULT_NUM_VIDEOS)
    p.add_argument("--size", type=int, default=synthetic.DEFAULT_SIZE, help="frame height and width (even)")
    p.add_argument("--frames", type=int, default=synthetic.DEFAULT_FRAMES, help="frames per clip")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-fraction", type=float, default=synthetic.DEFAULT_VAL_FRACTION)
    p.add_argument("--plain", action="store_true",
                   help="plain backgrounds, no distractor objects (learned in fewer steps; tsm demo uses it)")
    p.add_argument("--motion", type=float, default=1.0,
                   help="speed factor of the moving classes (default 1)")
    p.add_argument("--object-scale", type=float, default=1.0,
                   help="size factor of the main object (default 1)")
    p.add_argument("--spin", type=float, default=1.0,
                   help="rotation speed factor of the rotating classes (default 1: a triangle or bar turning 8-20 degrees "
                   "a frame; any other value draws a two-tone sail, which has one direction up to half a turn)")
    p.add_argument("--pair-hues", action="store_true",
                   help="each pair's object has its own hue, so one frame tells the pair (an order-blind model's "
                   "ceiling is then exactly 50%% per temporal pair)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: CPU count, max 8)")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser(
        "prepare",
        help="build class and list files from official annotations, or extract frames",
        description="`tsm prepare DATASET ...` writes classes.txt and train/val list files; "
        "`tsm prepare extract ...` decodes videos into JPEG frame folders; `tsm prepare flow ...` computes "
        "optical flow.",
    )
    prep = p.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    for name in DATASETS:
        d = prep.add_parser(name, help=f"list files for {name}")
        d.add_argument("--root", type=Path, required=True,
                       help="data root holding the frame folders and/or videos (list paths are relative to it)")
        d.add_argument("--out", type=Path, required=True, help="where to write classes.txt and the lists")
        if name in ("ucf101", "hmdb51"):
            d.add_argument("--splits-dir", type=Path, required=True, help="folder with the official split files")
            d.add_argument("--split", type=int, default=1, choices=(1, 2, 3))
        else:
            if name != "kinetics":
                d.add_argument("--labels", type=Path, required=True, help="official labels file")
            d.add_argument("--train", type=Path, required=True, help="official training annotations")
            d.add_argument("--val", type=Path, required=name != "kinetics", help="official validation annotations")
        d.add_argument("--template", default=DEFAULT_TEMPLATE, help="frame file names (default %(default)s)")
        d.add_argument("--missing", default="error", choices=("error", "skip"),
                       help="samples found on disk neither as frames nor video: fail, or list and leave out")
        d.set_defaults(func=_cmd_prepare)
    e = prep.add_parser("extract", help="decode videos into JPEG frame folders (parallel, resumable)")
    e.add_argument("--videos", type=Path, required=True, help="folder of videos (searched recursively)")
    e.add_argument("--out", type=Path, required=True, help="frame folders go to OUT/<video path without ext>")
    e.add_argument("--short-side", type=int, default=256, help="resize the short side (0: keep the size)")
    e.add_argument("--quality", type=int, default=90, help="JPEG quality")
    e.add_argument("--template", default=DEFAULT_TEMPLATE)
    e.add_argument("--workers", type=int, default=None, help="processes (default: CPU count, max 8)")
    e.add_argument("--failures", type=Path, default=None, help="failure list (default OUT/extract_failures.txt)")
    e.set_defaults(func=_cmd_extract)
    f = prep.add_parser("flow", help="optical flow of a list's videos or frame folders (TV-L1 or Farneback; "
                        "parallel, resumable)",
                        description="Compute the flow of every consecutive frame pair of each entry of a list "
                        "file (frame folders or videos) with OpenCV (needs the 'flow' extra), store it in the "
                        "reference layout (OUT/<entry>/flow_x_00001.jpg, flow_y_00001.jpg: clipped to +-bound "
                        "px, quantised to 0-255) and write a flow list. Finished videos are skipped on a rerun; "
                        "failures are listed in OUT/flow_failures.txt (exit status 1).")
    f.add_argument("--list", type=Path, required=True, help="list file of frame folders or videos (relative to --root)")
    f.add_argument("--root", type=Path, required=True, help="data root the list's paths are relative to")
    f.add_argument("--out", type=Path, required=True, help="flow root (may be --root: flow next to the frames)")
    f.add_argument("--out-list", type=Path, default=None, help="flow list (default OUT/<list name>_flow.txt)")
    f.add_argument("--method", default="tvl1", choices=("tvl1", "farneback"),
                   help="TV-L1 (OpenCV contrib; the reference's) or Farneback (faster)")
    f.add_argument("--bound", type=float, default=20.0, help="clip flow to +-BOUND pixels (default %(default)s)")
    f.add_argument("--short-side", type=int, default=0, help="resize frames to this short side first (0: keep)")
    f.add_argument("--quality", type=int, default=95, help="JPEG quality")
    f.add_argument("--kind", default="auto", choices=("auto", "frames", "videos"))
    f.add_argument("--template", default=DEFAULT_TEMPLATE, help="frame file names of frame folders")
    f.add_argument("--workers", type=int, default=None, help="processes (default: CPU count, max 8)")
    f.add_argument("--failures", type=Path, default=None, help="failure list (default OUT/flow_failures.txt)")
    f.set_defaults(func=_cmd_flow)

    p = sub.add_parser(
        "bench-data",
        help="data loading speed: training clips/s from frame folders and mp4",
        description="Time 8-frame training clips (TSN sampling, multi-scale crop + flip, "
        "normalisation) through a DataLoader from frame folders and from mp4, in interleaved "
        "repetitions; prints median and spread. Without --root a synthetic 256x340 set is "
        "written to --work-dir and reused.",
    )
    p.add_argument("--root", type=Path, default=None, help="data root of your own lists")
    p.add_argument("--frames-list", type=Path, default=None, help="frame-folder list (with --root)")
    p.add_argument("--videos-list", type=Path, default=None, help="video list (with --root)")
    p.add_argument("--work-dir", type=Path, default=Path("bench_data"), help="synthetic benchmark data")
    p.add_argument("--workers", type=int, default=1, help="DataLoader worker processes (0: main process)")
    p.add_argument("--clips", type=int, default=64, help="clips per repetition")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--segments", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--json", type=Path, default=None, help="write the result as JSON here")
    p.add_argument("--plot", type=Path, default=None, help="write a box plot (PNG) here")
    p.set_defaults(func=_cmd_bench_data)


def _cmd_synth(args: argparse.Namespace) -> int:
    from temporal_shift.data.synthetic import generate_synthetic

    paths = generate_synthetic(
        args.out, num_videos=args.num_videos, size=args.size, frames=args.frames, seed=args.seed,
        val_fraction=args.val_fraction, workers=args.workers, clutter=not args.plain, motion=args.motion,
        pair_hues=args.pair_hues, object_scale=args.object_scale, spin=args.spin,
    )
    print(f"wrote {args.num_videos} clips to {paths.root}")
    for path in (paths.train_frames, paths.val_frames, paths.train_videos, paths.val_videos, paths.classes):
        print(f"  {path}")
    return 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    from temporal_shift.data.prepare import prepare_dataset

    result = prepare_dataset(
        args.dataset, root=args.root, out_dir=args.out, labels=getattr(args, "labels", None),
        train=getattr(args, "train", None), val=getattr(args, "val", None),
        splits_dir=getattr(args, "splits_dir", None), split=getattr(args, "split", 1),
        template=args.template, missing=args.missing,
    )
    print(result.summary())
    for split, lost in result.missing.items():
        print(f"{len(lost)} {split} samples missing, listed in {args.out / f'missing_{split}*.txt'}")
    return 0


def _cmd_extract(args: argparse.Namespace) -> int:
    from temporal_shift.data.extract import extract_frames

    result = extract_frames(
        args.videos, args.out, short_side=args.short_side or None, quality=args.quality,
        template=args.template, workers=args.workers, failures_file=args.failures,
    )
    print(result.summary())
    return 1 if result.failed else 0


def _cmd_flow(args: argparse.Namespace) -> int:
    from temporal_shift.data.flow import prepare_flow

    result = prepare_flow(
        args.list if args.list.is_absolute() else args.root / args.list, root=args.root, out_root=args.out,
        out_list=args.out_list, method=args.method, bound=args.bound, short_side=args.short_side or None,
        quality=args.quality, kind=args.kind, template=args.template, workers=args.workers,
        failures_file=args.failures,
    )
    print(result.summary())
    return 1 if result.extraction.failed else 0


def _cmd_bench_data(args: argparse.Namespace) -> int:
    from temporal_shift.apps.bench.data import benchmark_data, ensure_bench_data, plot_data_bench

    if args.root is None:
        if args.frames_list or args.videos_list:
            raise ValueError("--frames-list/--videos-list need --root")
        root = ensure_bench_data(args.work_dir)
        frames_list, videos_list = root / "train_frames.txt", root / "train_videos.txt"
    else:
        if not (args.frames_list and args.videos_list):
            raise ValueError("--root needs both --frames-list and --videos-list")
        root, frames_list, videos_list = args.root, args.frames_list, args.videos_list
    result = benchmark_data(
        root=root, frames_list=frames_list, videos_list=videos_list, workers=args.workers,
        clips=args.clips, repeats=args.repeats, segments=args.segments, size=args.size,
        batch_size=args.batch_size,
    )
    print(result.table())
    if args.json:
        args.json.write_text(result.to_json())
        print(f"wrote {args.json}")
    if args.plot:
        print(f"wrote {plot_data_bench(result, args.plot)}")
    return 0



# --- training commands (train.py) --------------------------------------------------


def _register_train_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a TSN/TSM model from a YAML config (DDP under torchrun)",
        description="Train from a YAML config (see configs/), with section.key=value overrides. "
        "Writes config.yaml, last.pt, best.pt, log.csv and TensorBoard logs to run.out_dir. "
        "Ctrl-C/SIGTERM saves a resumable checkpoint. Multi-process: "
        "torchrun --nproc_per_node=N -m temporal_shift.cli train --config FILE.",
    )
    p.add_argument("--config", type=Path, required=True, help="YAML config file")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="overrides, e.g. optim.lr=0.02 run.amp=true")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue the run in run.out_dir from last.pt")
    group.add_argument("--finetune-from", type=Path, metavar="CKPT",
                       help="start from another run's weights (our or imported formats); the head is "
                       "replaced when the class count differs")
    group.add_argument("--weights", dest="published", default=None, metavar="NAME",
                       help="like --finetune-from, from published weights (`tsm weights list`)")
    p.add_argument("--amp", action="store_true", help="mixed precision (same as run.amp=true)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "demo",
        help="train TSN and TSM on the synthetic temporal dataset and compare them (6-11 min on 2 CPU cores)",
        description="Generate the synthetic dataset if absent (plain backgrounds), train TSN and TSM "
        "(ResNet-18 from scratch, 4 frames of 32x32) with the same data, seed and budget, test both "
        "and print top-1 overall, on the order-only temporal pairs and on the control pair, order accuracy "
        "(true class vs its time-reversed partner), params, FLOPs and latency; saves demo.png. On a GPU it "
        "trains on 4x the clips, loaded by worker processes (the output says which budget ran).",
    )
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder (default runs/demo)")
    p.add_argument("--data", type=Path, default=Path("data/synthetic_demo"),
                   help="synthetic dataset folder, generated if absent (default data/synthetic_demo)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per model (default 8)")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--jobs", type=int, default=None,
                   help="on a CPU, models trained at once, each in its own process (default: TSN and TSM side by "
                   "side when there are 2+ cores; 1: one after the other)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser(
        "reproduce",
        help="the paper's ablations in miniature: shift proportion, placement, online, zoo (PNG, JSON, table)",
        description="Train every arm of an experiment on the demo's synthetic order-only data with the same "
        "data, budget, seeds and optimizer (only the model differs), test them and write <out>/<experiment>/"
        "results.json (every run), results.md (the table) and <experiment>.png; prints the table with mean ± sd "
        "over seeds and whether differences are within the seed spread. Experiments: shift-proportion "
        "(fold_div sweep + latency overhead), placement (residual vs in-place), online (causal vs bidirectional, "
        "streaming accuracy per frame), zoo (accuracy vs GMACs of every installed model family), all (each "
        "distinct run trained once: an arm that an earlier experiment already trained with the same settings and "
        "seed is reused, and its table says so).",
    )
    p.add_argument("experiment", choices=("shift-proportion", "placement", "online", "zoo", "all"))
    p.add_argument("--budget", choices=("small", "full"), default="small",
                   help="small: ~15 min per experiment on 2 CPU cores (2 seeds); full: the demo's data and epochs, "
                   "5 seeds, latency at 224x224")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (default: the budget's)")
    p.add_argument("--out", type=Path, default=Path("runs/reproduce"), help="output folder (default runs/reproduce)")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--jobs", type=int, default=None,
                   help="on a CPU, runs trained at once, each in its own process with its share of the cores "
                   "(default: one per core, at most 8)")
    p.set_defaults(func=_cmd_reproduce)


def _cmd_train(args: argparse.Namespace) -> int:
    from temporal_shift.engine.config import load_config
    from temporal_shift.engine.train import train

    overrides = list(args.overrides) + (["run.amp=true"] if args.amp else [])
    config = load_config(args.config, overrides)
    finetune_from = args.finetune_from
    if args.published is not None:
        from temporal_shift.hub.weights import get_weights

        finetune_from = get_weights(args.published)
    result = train(config, resume=args.resume, finetune_from=finetune_from)
    best = f"best val top-1 {result.best_top1:.2f}% (epoch {result.best_epoch})" if result.best_epoch > 0 else "no validation yet"
    print(f"{'stopped' if result.interrupted else 'finished'}: {result.epochs_completed} epochs, "
          f"{result.global_step} steps, {best}; checkpoints in {result.out_dir}")
    return 130 if result.interrupted and config.run.stop_after_steps is None else 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from temporal_shift.apps.experiments.demo import run_demo

    if args.epochs is not None and args.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {args.epochs}")
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
    demo = run_demo(out_dir=args.out, data_dir=args.data, epochs=args.epochs, seed=args.seed, device=args.device,
                    progress=not args.no_progress, jobs=args.jobs, log=lambda line: print(line, flush=True))
    print(demo.table())
    if demo.plot is not None:
        print(f"wrote {demo.plot} ({demo.seconds / 60:.1f} min in all)")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from temporal_shift.apps.experiments.reproduce import report, reproduce

    if args.seeds is not None and args.seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {args.seeds}")
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
    results = reproduce(args.experiment, budget=args.budget, seeds=args.seeds, out_dir=args.out, device=args.device,
                        progress=not args.no_progress, log=lambda line: print(line, flush=True), jobs=args.jobs)
    for result in results:
        print()
        print(report(result))
    return 0


# --- evaluation commands (evaluate.py, predict.py) --------------------------------


def _register_eval_commands(sub: argparse._SubParsersAction) -> None:
    from temporal_shift.data.lists import DEFAULT_TEMPLATE

    p = sub.add_parser(
        "test",
        help="evaluate checkpoints (or an ensemble) with the paper's test protocols",
        description="Score every video of a list file with the views of a test protocol (clips x crops), "
        "average the views (softmax probabilities or logits), fuse ensemble members with weights, and "
        "print top-1, top-5 and mean class accuracy. With --out, also writes metrics.json, "
        "per_class.csv, predictions.csv, confusion.npy and confusion.png.",
    )
    p.add_argument("--checkpoint", dest="members", action=_AppendMember, const="file", type=Path, metavar="CKPT",
                   help="checkpoint to test; repeat for an ensemble (e.g. an 8-frame and a 16-frame model)")
    p.add_argument("--weights", dest="members", action=_AppendMember, const="name", metavar="NAME",
                   help="published weights to test (`tsm weights list`); repeatable, mixes with --checkpoint")
    p.add_argument("--ensemble-weights", type=float, nargs="+", default=None, metavar="W",
                   help="ensemble weights, one per member (--checkpoint/--weights, in order; normalised; "
                   "default equal)")
    p.add_argument("--segments", type=int, nargs="+", default=None,
                   help="T of foreign (reference/MMAction2) checkpoints: one value, or one per member")
    p.add_argument("--data", type=Path, required=True, help="data root (list paths are relative to it)")
    p.add_argument("--list", type=Path, required=True, help="list file, relative to --data or absolute")
    p.add_argument("--flow-list", type=Path, default=None,
                   help="two-stream: the flow list (tsm prepare flow) that flow checkpoints read, relative to "
                   "--flow-data; its entries pair with --list's videos by path (video extension dropped)")
    p.add_argument("--flow-data", type=Path, default=None, help="root of the flow list's folders (default --data)")
    p.add_argument("--kind", default="auto", choices=("auto", "frames", "videos"))
    p.add_argument("--template", default=DEFAULT_TEMPLATE, help="frame file names (default %(default)s)")
    p.add_argument("--clips", default="single", choices=("single", "twice", "dense"),
                   help="single: 1 centre clip; twice: 2 clips (twice_sample); dense: --dense-clips windows")
    p.add_argument("--dense-clips", type=int, default=10)
    p.add_argument("--dense-window", type=int, default=64, help="frames per dense window")
    p.add_argument("--crops", type=int, default=1, choices=(1, 3, 5, 10),
                   help="1 centre crop, 3 full-resolution crops, 5 (corners + centre) or 10 (and mirrors)")
    p.add_argument("--fusion", default="softmax", choices=("softmax", "logits"),
                   help="average softmax probabilities or logits over views and members")
    p.add_argument("--size", type=int, default=None, help="crop side (default: as trained, else 224)")
    p.add_argument("--scale-size", type=int, default=None, help="short side before cropping (default: as trained, else 256)")
    p.add_argument("--classes", type=Path, default=None, help="class names, one per line (default: the checkpoint's)")
    p.add_argument("--batch-size", type=int, default=4, help="videos per batch (x views clips per forward)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--on-error", default="raise", choices=("raise", "skip"),
                   help="unreadable videos: fail, or leave them out and report them")
    p.add_argument("--out", type=Path, default=None, help="write metrics, predictions and the confusion matrix here")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_test)

    p = sub.add_parser(
        "predict",
        help="top-k classes of a video, a frame folder or a folder of videos",
        description="Classify each input with one centre clip (the checkpoint's T segment centres) and one "
        "centre crop; print the top-k class names with softmax probabilities.",
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="VIDEO_OR_FOLDER",
                   help="video file, JPEG frame folder, or folder of videos")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, default=None)
    _add_weights_option(source, "--checkpoint")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--classes", type=Path, default=None, help="class names, one per line (default: the checkpoint's)")
    p.add_argument("--segments", type=int, default=None, help="T, for checkpoints of other releases")
    p.add_argument("--size", type=int, default=None, help="crop side (default: as trained, else 224)")
    p.add_argument("--scale-size", type=int, default=None, help="short side before cropping (default: as trained, else 256)")
    p.add_argument("--template", default=DEFAULT_TEMPLATE, help="frame file names (default %(default)s)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model first (CUDA graphs on CUDA): faster per clip, "
                   "slower to start (compilation takes seconds to minutes)")
    p.add_argument("--compile-mode", default="auto",
                   metavar="{auto,default,reduce-overhead,max-autotune,max-autotune-no-cudagraphs}",
                   help="torch.compile mode with --compile (auto: reduce-overhead on CUDA, default elsewhere)")
    p.set_defaults(func=_cmd_predict)


class _AppendMember(argparse.Action):
    """``--checkpoint FILE`` / ``--weights NAME``: ensemble members in command-line order."""

    def __call__(self, parser, namespace, values, option_string=None):
        members = list(getattr(namespace, self.dest, None) or [])
        members.append((self.const, values))
        setattr(namespace, self.dest, members)


def _cmd_test(args: argparse.Namespace) -> int:
    from temporal_shift.engine.evaluate import EvalProtocol, Member, evaluate
    from temporal_shift.hub.weights import get_weights

    if not args.members:
        raise ValueError("give --checkpoint FILE or --weights NAME (repeat either for an ensemble)")
    checkpoints: list[object] = []
    for kind, value in args.members:
        if kind == "name":
            try:
                float(value)
            except ValueError:
                checkpoints.append(get_weights(value))
                continue
            raise ValueError(f"--weights takes names of published weights, got {value!r}; ensemble "
                             "weights are --ensemble-weights W ...")
        else:
            checkpoints.append(value)
    n = len(checkpoints)
    weights = args.ensemble_weights or [1.0] * n
    if len(weights) != n:
        raise ValueError(f"--ensemble-weights: {len(weights)} values for {n} checkpoints")
    segments = args.segments or [None]
    if len(segments) == 1:
        segments = segments * n
    if len(segments) != n:
        raise ValueError(f"--segments: {len(segments)} values for {n} checkpoints (give one, or one per checkpoint)")
    protocol = EvalProtocol(clips=args.clips, crops=args.crops, fusion=args.fusion, dense_clips=args.dense_clips,
                            dense_window=args.dense_window, size=args.size, scale_size=args.scale_size)
    result = evaluate(
        [Member(checkpoint=c, weight=w, n_segment=t) for c, w, t in zip(checkpoints, weights, segments)],
        list_file=args.list, root=args.data, protocol=protocol, kind=args.kind, template=args.template,
        classes=args.classes, batch_size=args.batch_size, workers=args.workers, device=args.device,
        on_error=args.on_error, out_dir=args.out, progress=not args.no_progress, flow_list=args.flow_list,
        flow_root=args.flow_data,
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

    if args.compile_mode != "auto" and not args.compile:
        raise ValueError("--compile-mode goes with --compile")
    checkpoint = _checkpoint_or_weights(args)
    predictions = predict(
        args.inputs, checkpoint=checkpoint, topk=args.topk, n_segment=args.segments, classes=args.classes,
        size=args.size, scale_size=args.scale_size, device=args.device, template=args.template,
        compile=args.compile_mode if args.compile else None,
    )
    if args.json:
        print(json.dumps({"checkpoint": str(checkpoint), "predictions": [p.to_dict() for p in predictions]},
                         indent=2))
        return 0
    for prediction in predictions:
        if len(predictions) > 1:
            print(f"{prediction.input}:")
        for line in prediction.lines():
            print(f"  {line}" if len(predictions) > 1 else line)
    return 0


# --- stream command (stream.py) ------------------------------------------------------


def _register_stream_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stream",
        help="classify a video, frame folder or camera frame by frame with an online TSM",
        description="Run a causal TSM frame by frame over SOURCE (a video file, a folder of JPEG "
        "frames, or a camera index); print one JSON line per processed frame and a summary "
        "(frames/s, model-step latency) on stderr. The shift buffers are reset at the start, on "
        "a gap in the timestamps (dropped frames, seeks) and never otherwise.",
    )
    p.add_argument("source", help="video file, JPEG frame folder, or camera index (0, 1, ...)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", type=Path, default=None,
                        help="causal checkpoint (or --weights NAME; one is required for --runtime torch)")
    _add_weights_option(source, "--checkpoint (a causal model, e.g. online_tsm_mobilenetv2_jester)")
    p.add_argument("--classes", type=Path, default=None, help="class names, one per line (default: indices)")
    p.add_argument("--segments", type=int, default=None, help="T, for checkpoints of other releases")
    p.add_argument("--runtime", default="torch", choices=("torch", "onnxruntime"))
    p.add_argument("--onnx", type=Path, default=None, help="streaming-step ONNX (tsm export --online), for onnxruntime")
    p.add_argument("--every", type=int, default=1, help="process every K-th frame")
    p.add_argument("--smooth", type=int, default=1, help="average the scores of the last N steps")
    p.add_argument("--hysteresis", type=int, default=1, help="a label becomes current after M consecutive wins")
    p.add_argument("--topk", type=int, default=3)
    p.add_argument("--size", type=int, default=224, help="centre crop side")
    p.add_argument("--short-side", type=int, default=None, help="resize the short side to this (default: size*8/7)")
    p.add_argument("--fps", type=float, default=None, help="frame rate for frame folders (default 25) or override")
    p.add_argument("--out-video", type=Path, default=None, help="write an mp4 with the current label drawn on")
    p.add_argument("--json-summary", type=Path, default=None, help="write the summary as JSON here")
    p.set_defaults(func=_cmd_stream)


def _cmd_stream(args: argparse.Namespace) -> int:
    import json

    from temporal_shift.apps.stream import load_stream, run_stream

    checkpoint = args.checkpoint
    if args.published is not None:
        from temporal_shift.hub.weights import get_weights

        checkpoint = get_weights(args.published)
    model = load_stream(runtime=args.runtime, checkpoint=checkpoint, onnx=args.onnx,
                        n_segment=args.segments, classes=args.classes)
    summary = run_stream(
        args.source, model.stream, classes=model.classes, out=sys.stdout, out_video=args.out_video,
        size=args.size, short_side=args.short_side, every=args.every, smooth=args.smooth,
        hysteresis=args.hysteresis, topk=args.topk, fps=args.fps,
    )
    print(f"tsm stream: {summary.line()}", file=sys.stderr)
    if args.out_video is not None:
        print(f"tsm stream: wrote {args.out_video}", file=sys.stderr)
    if args.json_summary is not None:
        args.json_summary.parent.mkdir(parents=True, exist_ok=True)
        args.json_summary.write_text(json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8")
    return 0


# --- serve command (serve/) -------------------------------------------------------------


def _register_serve_commands(sub: argparse._SubParsersAction) -> None:
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
    model = p.add_mutually_exclusive_group()
    model.add_argument("--checkpoint", type=Path, default=None, help="causal checkpoint (or --weights NAME, or --demo)")
    _add_weights_option(model, "--checkpoint (a causal model, e.g. online_tsm_mobilenetv2_jester)")
    model.add_argument("--demo", action="store_true",
                       help="train a small causal model on synthetic data once (about 2 minutes on a CPU) and "
                       "serve it; cached in --demo-cache, $TSM_SERVE_CACHE or ~/.cache/temporal-shift/serve-demo")
    p.add_argument("--demo-cache", type=Path, default=None, help="where --demo keeps its model")
    p.add_argument("--classes", type=Path, default=None,
                   help="class names, one per line (default: the checkpoint's, else indices)")
    p.add_argument("--segments", type=int, default=None, help="T, for checkpoints of other releases")
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


def _cmd_serve(args: argparse.Namespace) -> int:
    from temporal_shift.apps.serve import run_serve
    from temporal_shift.apps.serve.protocol import ServeLimits

    checkpoint = args.checkpoint
    if args.published is not None:
        from temporal_shift.hub.weights import get_weights

        checkpoint = get_weights(args.published)
    limits = ServeLimits(max_connections=args.max_connections, max_side=args.max_side,
                         max_message_bytes=args.max_message_bytes, max_fps=args.max_fps)
    run_serve(checkpoint=checkpoint, runtime=args.runtime, onnx=args.onnx, classes=args.classes,
              n_segment=args.segments, demo=args.demo, demo_cache=args.demo_cache, host=args.host, port=args.port,
              size=args.size, short_side=args.short_side, smooth=args.smooth, hysteresis=args.hysteresis,
              topk=args.topk, fps=args.fps, limits=limits, log=lambda line: print(line, file=sys.stderr, flush=True))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
        sys.stdout.flush()  # inside the try: a reader that went away is handled below
    except BrokenPipeError:  # e.g. `tsm predict ... | head -1`: stop quietly, like other tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 128 + 13  # the shell's status for SIGPIPE
    except (ValueError, OSError, ModuleNotFoundError) as exc:  # user errors (and a missing extra): one line
        if args.debug:
            raise
        from temporal_shift.data.dataset import worker_error

        exc = worker_error(exc) or exc  # a DataLoader worker's own error, not "Caught X in worker"
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"tsm {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tsm {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


_REGISTRARS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _register_model_commands,
    _register_weights_commands,
    _register_online_commands,
    _register_data_commands,
    _register_train_commands,
    _register_eval_commands,
    _register_stream_commands,
    _register_serve_commands,
)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
