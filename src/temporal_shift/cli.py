"""The `tsm` command: a thin argparse layer over the library.

Every sub-command parses its arguments and calls one library function. Errors a user can
cause (ValueError, OSError and their subclasses) are printed as one line and exit with
status 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
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


# Each area has one `_register_*` function that adds its sub-commands, storing the
# handler as `func`; `_REGISTRARS` at the end of the file lists them in help order.

# --- model commands (models/, checkpoints.py, export.py, bench.py) -----------------


def _register_model_commands(sub: argparse._SubParsersAction) -> None:
    from temporal_shift.models.recognizer import BACKBONES

    p = sub.add_parser(
        "bench",
        help="TSM vs TSN overhead: params, FLOPs, interleaved latency ratio",
        description="Measure params, FLOPs and latency of TSN and TSM with identical weights, "
        "timed in interleaved pairs; prints a table and optionally writes JSON and a PNG.",
    )
    p.add_argument("--arch", default="resnet50", choices=sorted(BACKBONES))
    p.add_argument("--segments", type=int, default=8, help="frames per clip (T)")
    p.add_argument("--size", type=int, default=224, help="input height and width")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--repeats", type=int, default=30, help="interleaved TSN/TSM pairs")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: auto)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--contiguous", action="store_true", help="NCHW instead of channels_last")
    p.add_argument("--json", type=Path, default=None, help="write the result as JSON here")
    p.add_argument("--plot", type=Path, default=None, help="write a latency box plot (PNG) here")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser(
        "export",
        help="export a checkpoint to ONNX, TorchScript or a torch.export program",
        description="Export a checkpoint; the exported model takes (N, T, C, H, W) clips with "
        "a dynamic batch size N. ONNX exports are verified in onnxruntime.",
    )
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--format", default="onnx", choices=("onnx", "torchscript", "exported"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--size", type=int, default=224, help="input height and width for tracing")
    p.add_argument("--segments", type=int, default=None, help="T, for checkpoints of other releases")
    p.add_argument("--no-verify", action="store_true", help="skip the comparison with PyTorch")
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
    from temporal_shift.bench import benchmark_overhead, plot_latencies

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
    )
    print(result.table())
    if args.json:
        args.json.write_text(result.to_json())
        print(f"wrote {args.json}")
    if args.plot:
        print(f"wrote {plot_latencies(result, args.plot)}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from temporal_shift.export import export_model, verify_export
    from temporal_shift.importers import load_any_checkpoint

    model = load_any_checkpoint(args.checkpoint, n_segment=args.segments)
    out = export_model(model, args.out, format=args.format, size=args.size)
    print(f"wrote {out}")
    if not args.no_verify:
        error = verify_export(model, out, format=args.format, size=args.size)
        print(f"max relative difference to PyTorch on random input: {error:.2e}")
        if error > 1e-4:
            raise ValueError(f"{out}: exported model differs from PyTorch by {error:.2e} (> 1e-4)")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from temporal_shift.importers import import_checkpoint

    imported = import_checkpoint(args.checkpoint, args.out, n_segment=args.segments, fold_div=args.fold_div)
    print(imported.summary())
    return 0


# --- data commands (data/) ---------------------------------------------------------



def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except (ValueError, OSError) as exc:  # user errors: one line, non-zero exit
        if args.debug:
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"tsm {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tsm {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


_REGISTRARS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _register_model_commands,
)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
