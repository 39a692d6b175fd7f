"""`tsm bench overhead|train|compare|two-stream|data|runtimes`: what the shift costs (TSM vs TSN
inference or training steps), the comparison models' efficiency table, the two-stream baseline's cost,
the data path's speed, and TSN/TSM in the deployment runtimes. Each subcommand takes only its own
options; `moved` points the spellings from before the subcommands (`tsm bench --train`,
`tsm bench-data`, ...) to the new ones."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from temporal_shift.cli import options

SUBCOMMANDS = ("overhead", "train", "compare", "two-stream", "data", "runtimes")
_MOVED_FLAGS = {"--train": "train", "--compare": "compare NAMES", "--two-stream": "two-stream"}


def moved(*, command: str, args: Sequence[str]) -> str | None:
    """The one-line pointer to the new form when ``tsm COMMAND ARGS`` is spelled as before `tsm bench`
    had subcommands; None otherwise (argparse then parses it)."""
    if command == "bench-data":
        return "`tsm bench-data` is now `tsm bench data`"
    if command != "bench" or (args and (args[0] in SUBCOMMANDS or args[0] in ("-h", "--help"))):
        return None
    if not args:
        return f"name a benchmark: tsm bench {{{','.join(SUBCOMMANDS)}}} (see tsm bench --help)"
    for arg in args:
        flag = arg.split("=", 1)[0]
        if flag in _MOVED_FLAGS:
            return f"`{flag}` is now `tsm bench {_MOVED_FLAGS[flag]}`"
    if args[0].startswith("-"):
        return "plain `tsm bench` is now `tsm bench overhead`"
    return None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmarks: TSM vs TSN overhead (inference, training steps), the comparison models' efficiency "
        "table, the two-stream baseline, data loading, deploy runtimes",
        description="What the shift costs and what the alternatives cost, each measured in interleaved rounds "
        "on one device; every benchmark prints a table and writes JSON (--json) and most a PNG (--plot).",
    )
    bench = p.add_subparsers(dest="benchmark", required=True)
    _register_overhead(bench)
    _register_train(bench)
    _register_compare(bench)
    _register_two_stream(bench)
    _register_data(bench)
    _register_runtimes(bench)


def _register_overhead(bench: argparse._SubParsersAction) -> None:
    from temporal_shift.apps.bench.overhead import benchmark_overhead

    b = bench.add_parser(
        "overhead",
        help="TSM vs TSN inference: params, FLOPs, interleaved latency ratio",
        description="Measure params, FLOPs and latency of TSN and TSM with identical weights, timed in "
        "interleaved pairs; prints a table and optionally writes JSON and a PNG.",
    )
    _add_pair(b, library=benchmark_overhead, warmup="untimed calls of each model")
    options.add_compile(
        b,
        help="torch.compile both models first (CUDA graphs on CUDA)",
        auto="reduce-overhead on CUDA, otherwise default",
    )
    options.add_result_files(b)
    b.set_defaults(func=_cmd_overhead)


def _register_train(bench: argparse._SubParsersAction) -> None:
    from temporal_shift.apps.bench.train import AMP_MODES, benchmark_training

    b = bench.add_parser(
        "train",
        help="TSM vs TSN training steps (forward, backward, SGD step) and peak memory",
        description="Time training steps of TSN and TSM with identical weights (forward, cross-entropy, "
        "backward, SGD momentum step) in interleaved pairs, with the peak memory a step allocates.",
    )
    _add_pair(b, library=benchmark_training, warmup="untimed steps of each model")
    b.add_argument(
        "--amp",
        default=options.default(benchmark_training, "amp"),
        metavar="{" + ",".join(AMP_MODES) + "}",
        help="autocast dtype (fp16 with a GradScaler; default %(default)s)",
    )
    options.add_compile(b, help="torch.compile both models first", auto="default")
    options.add_result_files(b)
    b.set_defaults(func=_cmd_train)


def _register_compare(bench: argparse._SubParsersAction) -> None:
    from temporal_shift.apps.bench.compare import CONTENDERS, benchmark_compare

    b = bench.add_parser(
        "compare",
        help="the paper's efficiency table: the comparison models side by side",
        description="The paper's efficiency table: params, GMACs, batch-1 latency and throughput of the named "
        f"models ({', '.join(CONTENDERS)}, or all) side by side, next to the published figures. Each model "
        "has its own backbone, T and input; the table is eager float32 inference.",
    )
    b.add_argument("names", metavar="NAMES", help="comma-separated models (e.g. tsm,tsm16,i3d_r50,eco,c3d), or all")
    b.add_argument(
        "--size",
        type=int,
        default=options.default(benchmark_compare, "size"),
        help="input height and width of every model (default: each model's published size)",
    )
    b.add_argument(
        "--batch-size",
        type=int,
        default=options.default(benchmark_compare, "batch_size"),
        help="the throughput batch (default 16 on CUDA, 4 on the CPU)",
    )
    # the command warms up one round, the library two
    _add_timing(
        b, library=benchmark_compare, repeats="interleaved rounds", warmup="untimed rounds first", warmup_default=1
    )
    options.add_result_files(b)
    b.set_defaults(func=_cmd_compare)


def _register_two_stream(bench: argparse._SubParsersAction) -> None:
    from temporal_shift.apps.bench.two_stream import benchmark_two_stream

    b = bench.add_parser(
        "two-stream",
        help="per-clip cost of the two-stream baseline (TSN on RGB and on optical flow, the flow's "
        "extraction) next to TSM",
        description="Per-clip cost of the two-stream baseline (TSN RGB + TSN flow, flow extraction with TV-L1 "
        "and Farneback on one core) next to TSM, in interleaved rounds of batch-1 eager inference "
        "(needs the 'flow' extra).",
    )
    _add_model(b, library=benchmark_two_stream)
    b.add_argument(
        "--flow-length",
        type=int,
        default=options.default(benchmark_two_stream, "flow_length"),
        metavar="L",
        help="flow fields per segment (default %(default)s)",
    )
    _add_timing(b, library=benchmark_two_stream, repeats="interleaved rounds", warmup="untimed rounds first")
    options.add_result_files(b, plot=False)
    b.set_defaults(func=_cmd_two_stream)


def _register_data(bench: argparse._SubParsersAction) -> None:
    from temporal_shift.apps.bench.data import benchmark_data

    b = bench.add_parser(
        "data",
        help="data loading speed: training clips/s from frame folders and mp4",
        description="Time training clips (TSN sampling, multi-scale crop + flip, normalisation) through a "
        "DataLoader from frame folders and from mp4, in interleaved repetitions; prints median and spread. "
        "Without --root a synthetic 256x340 set is written to --work-dir and reused.",
    )
    b.add_argument("--root", type=Path, default=None, help="data root of your own lists")
    b.add_argument("--frames-list", type=Path, default=None, help="frame-folder list (with --root)")
    b.add_argument("--videos-list", type=Path, default=None, help="video list (with --root)")
    b.add_argument("--avi-list", type=Path, default=None, help="a second video list, e.g. AVI (with --root)")
    b.add_argument(
        "--decoders",
        nargs="+",
        default=["pyav", "torchcodec"],
        choices=("pyav", "torchcodec"),
        help="video decoders timed side by side (default: both; one that cannot read a source says why)",
    )
    b.add_argument(
        "--work-dir", type=Path, default=Path("bench_data"), help="synthetic benchmark data (default %(default)s)"
    )
    b.add_argument(
        "--workers",
        type=int,
        default=options.default(benchmark_data, "workers"),
        help="DataLoader worker processes (0: main process; default %(default)s)",
    )
    b.add_argument(
        "--clips",
        type=int,
        default=options.default(benchmark_data, "clips"),
        help="clips per repetition (default %(default)s)",
    )
    b.add_argument(
        "--repeats",
        type=int,
        default=options.default(benchmark_data, "repeats"),
        help="interleaved repetitions (default %(default)s)",
    )
    options.add_segments(
        b, default=options.default(benchmark_data, "segments"), help="frames per clip (default %(default)s)"
    )
    b.add_argument(
        "--size",
        type=int,
        default=options.default(benchmark_data, "size"),
        help="crop height and width (default %(default)s)",
    )
    b.add_argument(
        "--batch-size",
        type=int,
        default=options.default(benchmark_data, "batch_size"),
        help="clips per batch (default %(default)s)",
    )
    options.add_result_files(b)
    b.set_defaults(func=_cmd_data)


def _register_runtimes(bench: argparse._SubParsersAction) -> None:
    from temporal_shift.apps.bench.runtimes import ARCHS, RUNTIMES, benchmark_runtimes

    b = bench.add_parser(
        "runtimes",
        help="TSN vs TSM batch-1 latency in PyTorch eager, torch.compile, onnxruntime, ExecuTorch "
        "(XNNPACK) and OpenVINO, fp32 and int8, and the online step's frames/s",
        description="Export TSN and TSM (identical weights) of each backbone as tsm export does, run them in each "
        "runtime on the CPU and time them in one run of interleaved rounds: batch-1 latency, the TSM/TSN ratio "
        "per runtime, the online MobileNetV2 step's frames/s and the fastest runtime's speed-up over eager. "
        "Needs the 'deploy' extra; exported files are kept in --work-dir.",
    )
    b.add_argument("--archs", default=",".join(ARCHS), help="comma-separated backbones (default %(default)s)")
    b.add_argument("--runtimes", default=",".join(RUNTIMES), help="comma-separated runtimes (default %(default)s)")
    b.add_argument("--no-int8", action="store_true", help="skip the int8 ExecuTorch and OpenVINO builds")
    b.add_argument("--no-online", action="store_true", help="skip the online MobileNetV2 step")
    options.add_segments(
        b, default=options.default(benchmark_runtimes, "n_segment"), help="frames per clip (default %(default)s)"
    )
    b.add_argument(
        "--size",
        type=int,
        default=options.default(benchmark_runtimes, "size"),
        help="input height and width (default %(default)s)",
    )
    b.add_argument(
        "--repeats",
        type=int,
        default=options.default(benchmark_runtimes, "repeats"),
        help="interleaved rounds (default %(default)s)",
    )
    b.add_argument(
        "--warmup",
        type=int,
        default=options.default(benchmark_runtimes, "warmup"),
        help="untimed rounds first (default %(default)s)",
    )
    b.add_argument(
        "--threads",
        type=int,
        default=options.default(benchmark_runtimes, "threads"),
        help="CPU threads of every runtime (default %(default)s)",
    )
    b.add_argument(
        "--work-dir",
        type=Path,
        default=Path(options.default(benchmark_runtimes, "work_dir")),
        help="where the exported models are kept, reused by a later run while the code that exports them "
        "and the runtimes' versions are the same (default %(default)s)",
    )
    options.add_result_files(b)
    b.set_defaults(func=_cmd_runtimes)


def _add_pair(parser: argparse.ArgumentParser, *, library: Callable[..., object], warmup: str) -> None:
    """The options of a TSN/TSM pair timed side by side: the model (`_add_model`), --batch-size,
    the timing (`_add_timing`) and --contiguous, with the defaults of ``library``."""
    _add_model(parser, library=library)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=options.default(library, "batch_size"),
        help="clips per batch (default %(default)s)",
    )
    _add_timing(parser, library=library, repeats="interleaved TSN/TSM pairs", warmup=warmup)
    parser.add_argument("--contiguous", action="store_true", help="NCHW instead of channels_last")


def _add_model(parser: argparse.ArgumentParser, *, library: Callable[..., object]) -> None:
    """--arch, --segments and --size of the TSN/TSM pair, with the defaults of ``library``, the benchmark function."""
    from temporal_shift.models.backbones import BACKBONES

    parser.add_argument(
        "--arch",
        default=options.default(library, "arch"),
        choices=sorted(BACKBONES),
        help="backbone (default %(default)s)",
    )
    options.add_segments(
        parser, default=options.default(library, "n_segment"), help="frames per clip (default %(default)s)"
    )
    parser.add_argument(
        "--size",
        type=int,
        default=options.default(library, "size"),
        help="input height and width (default %(default)s)",
    )


def _add_timing(
    parser: argparse.ArgumentParser,
    *,
    library: Callable[..., object],
    repeats: str,
    warmup: str,
    warmup_default: int | None = None,
) -> None:
    """--repeats, --warmup, --device and --threads, with the defaults of ``library``, the benchmark function."""
    parser.add_argument(
        "--repeats", type=int, default=options.default(library, "repeats"), help=f"{repeats} (default %(default)s)"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=options.default(library, "warmup") if warmup_default is None else warmup_default,
        help=f"{warmup} (default %(default)s)",
    )
    options.add_device(parser, default=options.default(library, "device"))
    parser.add_argument("--threads", type=int, default=options.default(library, "threads"), help="torch CPU threads")


def _cmd_overhead(args: argparse.Namespace) -> int:
    from temporal_shift.apps.bench.overhead import benchmark_overhead, plot_latencies

    result = benchmark_overhead(
        arch=args.arch,
        n_segment=args.segments,
        size=args.size,
        batch_size=args.batch_size,
        repeats=args.repeats,
        warmup=args.warmup,
        device=args.device,
        threads=args.threads,
        channels_last=not args.contiguous,
        compile=options.compile_mode(args),
    )
    options.print_result(result, json_file=args.json, plot_file=args.plot, plot=plot_latencies)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from temporal_shift.apps.bench.train import benchmark_training, plot_steps

    result = benchmark_training(
        arch=args.arch,
        n_segment=args.segments,
        size=args.size,
        batch_size=args.batch_size,
        repeats=args.repeats,
        warmup=args.warmup,
        amp=args.amp,
        compile=options.compile_mode(args),
        device=args.device,
        threads=args.threads,
        channels_last=not args.contiguous,
    )
    options.print_result(result, json_file=args.json, plot_file=args.plot, plot=plot_steps)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from temporal_shift.apps.bench.compare import benchmark_compare, parse_names, plot_compare

    result = benchmark_compare(
        parse_names(args.names),
        batch_size=args.batch_size,
        size=args.size,
        repeats=args.repeats,
        warmup=args.warmup,
        device=args.device,
        threads=args.threads,
    )
    options.print_result(result, json_file=args.json, plot_file=args.plot, plot=plot_compare)
    return 0


def _cmd_two_stream(args: argparse.Namespace) -> int:
    from temporal_shift.apps.bench.two_stream import benchmark_two_stream

    result = benchmark_two_stream(
        arch=args.arch,
        n_segment=args.segments,
        size=args.size,
        flow_length=args.flow_length,
        repeats=args.repeats,
        warmup=args.warmup,
        device=args.device,
        threads=args.threads,
    )
    options.print_result(result, json_file=args.json)
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from temporal_shift.apps.bench.data import AVI_LIST, benchmark_data, ensure_bench_data, plot_data_bench

    if args.root is None:
        if args.frames_list or args.videos_list or args.avi_list:
            raise ValueError("--frames-list/--videos-list/--avi-list need --root")
        root = ensure_bench_data(args.work_dir)
        frames_list, videos_list, avi_list = root / "train_frames.txt", root / "train_videos.txt", root / AVI_LIST
    else:
        if not (args.frames_list and args.videos_list):
            raise ValueError("--root needs both --frames-list and --videos-list")
        root, frames_list, videos_list, avi_list = args.root, args.frames_list, args.videos_list, args.avi_list
    result = benchmark_data(
        root=root,
        frames_list=frames_list,
        videos_list=videos_list,
        workers=args.workers,
        clips=args.clips,
        repeats=args.repeats,
        segments=args.segments,
        size=args.size,
        batch_size=args.batch_size,
        avi_list=avi_list,
        decoders=args.decoders,
    )
    options.print_result(result, json_file=args.json, plot_file=args.plot, plot=plot_data_bench)
    return 0


def _cmd_runtimes(args: argparse.Namespace) -> int:
    from temporal_shift.apps.bench.runtimes import benchmark_runtimes, plot_runtimes

    def names(spec: str, what: str) -> list[str]:
        values = [v.strip() for v in spec.split(",") if v.strip()]
        if not values:
            raise ValueError(f"--{what}: no names in {spec!r}")
        return values

    result = benchmark_runtimes(
        archs=names(args.archs, "archs"),
        runtimes=names(args.runtimes, "runtimes"),
        int8=not args.no_int8,
        online=not args.no_online,
        n_segment=args.segments,
        size=args.size,
        repeats=args.repeats,
        warmup=args.warmup,
        threads=args.threads,
        work_dir=args.work_dir,
    )
    plot = args.plot if args.plot is not None else (args.json.with_suffix(".png") if args.json else None)
    options.print_result(result, json_file=args.json, plot_file=plot, plot=plot_runtimes)
    return 0
