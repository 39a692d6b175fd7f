"""`tsm bench`: the cost of the shift, TSM vs TSN (inference or training steps), the comparison models'
efficiency table, and the two-stream baseline's cost."""

from __future__ import annotations

import argparse

from temporal_shift.cli import options


def register(sub: argparse._SubParsersAction) -> None:
    from temporal_shift.models.recognizer import BACKBONES

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
    options.add_segments(p, help="frames per clip (T, default 8)")
    p.add_argument("--size", type=int, default=None,
                   help="input height and width (default 224; with --compare each model's published size)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="clips per batch (default 1; 8 with --train; with --compare the throughput batch, "
                   "default 16 on CUDA, 4 on the CPU)")
    p.add_argument("--repeats", type=int, default=None,
                   help="interleaved TSN/TSM pairs (default 30; 20 with --train; 10 rounds with --compare)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed calls (steps) of each model first (default 3; 1 with --compare)")
    options.add_device(p, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--contiguous", action="store_true", help="NCHW instead of channels_last")
    p.add_argument("--train", action="store_true",
                   help="time training steps: forward, cross-entropy, backward, SGD momentum step")
    p.add_argument("--amp", default=None, metavar="{off,bf16,fp16}",
                   help="with --train: autocast dtype (fp16 with a GradScaler); default off")
    options.add_compile(p, help="torch.compile both models first (inference: CUDA graphs on CUDA)",
                        auto="inference reduce-overhead on CUDA, otherwise default")
    p.add_argument("--two-stream", action="store_true",
                   help="per-clip cost of the two-stream baseline (TSN RGB + TSN flow, flow extraction with TV-L1 "
                   "and Farneback on one core) next to TSM, in interleaved rounds (needs the 'flow' extra)")
    p.add_argument("--flow-length", type=int, default=5, help="with --two-stream: flow fields per segment (L)")
    options.add_result_files(p)
    p.set_defaults(func=_cmd_bench)


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.compare is not None and args.two_stream:
        raise ValueError("--compare and --two-stream are two different tables: give one")
    if args.compare is not None:
        return _bench_compare(args)
    if args.two_stream:
        return _bench_two_stream(args)
    compile_mode = options.compile_mode(args)
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
    options.print_result(result, json_file=args.json, plot_file=args.plot, plot=plot)
    return 0


def _bench_two_stream(args: argparse.Namespace) -> int:
    from temporal_shift.apps.bench.two_stream import benchmark_two_stream

    others = [flag for flag, used in (("--train", args.train), ("--compile", args.compile), ("--plot", args.plot),
                                      ("--batch-size", args.batch_size is not None)) if used]
    if others:
        raise ValueError(f"--two-stream times batch-1 eager inference; it does not take {', '.join(others)}")
    result = benchmark_two_stream(arch=args.arch or "resnet50", n_segment=args.segments or 8, size=args.size or 224,
                                  flow_length=args.flow_length, repeats=5 if args.repeats is None else args.repeats,
                                  warmup=1 if args.warmup is None else args.warmup, device=args.device,
                                  threads=args.threads)
    options.print_result(result, json_file=args.json)
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
    options.print_result(result, json_file=args.json, plot_file=args.plot, plot=plot_compare)
    return 0
