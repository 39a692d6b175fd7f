"""`tsm export` and `tsm import`: a checkpoint out to ONNX/TorchScript/torch.export, a foreign one in."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from temporal_shift.cli import options

if TYPE_CHECKING:
    from temporal_shift.hub.weights import PublishedWeights


def register(sub: argparse._SubParsersAction) -> None:
    from temporal_shift.engine.export import FORMATS, export_model
    from temporal_shift.models.config import ModelConfig

    p = sub.add_parser(
        "export",
        help="export a checkpoint to ONNX, TorchScript or a torch.export program",
        description="Export a checkpoint; the exported model takes (N, T, C, H, W) clips with "
        "a dynamic batch size N. ONNX exports are verified in onnxruntime.",
    )
    p.add_argument("checkpoint", type=Path, nargs="?", default=None, help="checkpoint file (or --weights NAME)")
    options.add_weights(p, instead_of="a checkpoint file")
    p.add_argument("--format", default=options.default(export_model, "format"), choices=FORMATS)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--size",
        type=int,
        default=None,
        help="input height and width for tracing (default: the model's published size, 224; C3D 112)",
    )
    options.add_segments(p)
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
    options.add_segments(p, help="T the checkpoint was trained with")
    p.add_argument(
        "--fold-div",
        type=int,
        default=None,
        help=f"shift 1/fold_div each way (default {options.default(ModelConfig, 'fold_div')})",
    )
    p.set_defaults(func=_cmd_import)


def _cmd_export(args: argparse.Namespace) -> int:
    from temporal_shift.checkpoint.loading import load_checkpoint
    from temporal_shift.engine.export import export_model, verify_export

    checkpoint = options.checkpoint_or_weights(args, what="CHECKPOINT")
    if args.online:
        return _export_online(args, checkpoint=checkpoint)
    model = load_checkpoint(checkpoint, n_segment=args.segments).model
    out = export_model(model, args.out, format=args.format, size=args.size)
    print(f"wrote {out}")
    if not args.no_verify:
        error = verify_export(model, out, format=args.format, size=args.size)
        print(f"max relative difference to PyTorch on random input: {error:.2e}")
        if error > 1e-4:
            raise ValueError(f"{out}: exported model differs from PyTorch by {error:.2e} (> 1e-4)")
    return 0


def _export_online(args: argparse.Namespace, *, checkpoint: Path | PublishedWeights) -> int:
    from temporal_shift.checkpoint.loading import load_online
    from temporal_shift.engine.export import export_online, verify_online_export

    if args.format != "onnx":
        raise ValueError(f"--online exports ONNX only, not {args.format}")
    online = load_online(checkpoint, n_segment=args.segments)
    size = options.default(export_online, "size") if args.size is None else args.size
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
