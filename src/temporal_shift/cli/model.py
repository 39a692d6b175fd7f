"""`tsm export` and `tsm import`: a checkpoint out to a runtime's format (verified there), a foreign one in."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from temporal_shift.cli import options

if TYPE_CHECKING:
    import torch

    from temporal_shift.engine.export import Parity
    from temporal_shift.hub.weights import PublishedWeights
    from temporal_shift.models.base import ClipClassifier
    from temporal_shift.models.online import OnlineRecognizer


def register(sub: argparse._SubParsersAction) -> None:
    _register_export(sub)
    _register_import(sub)


def _register_export(sub: argparse._SubParsersAction) -> None:
    from temporal_shift.engine.export import FORMATS, export_model

    p = sub.add_parser(
        "export",
        help="export a checkpoint for a runtime: ONNX, ExecuTorch, OpenVINO, TensorRT, TorchScript, torch.export",
        description="Export a checkpoint and verify it in its runtime against PyTorch (onnxruntime; ExecuTorch "
        "with XNNPACK; OpenVINO on the CPU, f32; TensorRT on a GPU; PyTorch for torchscript and exported), "
        "printing the max abs difference. The exported model takes (N, T, C, H, W) clips with a dynamic batch "
        "N (ExecuTorch: a static one, --batch-size, default 1); --online exports the streaming step instead. "
        "See docs/deploy.md for which format suits which device.",
    )
    p.add_argument("checkpoint", type=Path, nargs="?", default=None, help="checkpoint file (or --weights NAME)")
    options.add_weights(p, instead_of="a checkpoint file")
    p.add_argument("--format", default=options.default(export_model, "format"), choices=FORMATS)
    p.add_argument("--out", type=Path, required=True, help="the file to write (OpenVINO: an .xml, weights in the .bin)")
    p.add_argument(
        "--size",
        type=int,
        default=None,
        help="input height and width (default: the model's published size, 224; C3D 112)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="a static batch size (default: dynamic; ExecuTorch: 1). OpenVINO at 1: a ResNet TSM's shift runs on "
        "the batch axis, which its int8 convolutions run faster (docs/deploy.md)",
    )
    options.add_segments(p)
    _add_int8(p)
    p.add_argument(
        "--precision",
        default=options.default(export_model, "precision"),
        choices=("fp32", "fp16"),
        help="TensorRT engine precision (default %(default)s)",
    )
    p.add_argument("--threads", type=int, default=None, help="CPU threads of the runtime that verifies")
    p.add_argument("--no-verify", action="store_true", help="skip the comparison with PyTorch")
    p.add_argument(
        "--online",
        action="store_true",
        help="export the streaming step (frame, *buffers) -> (logits, *new_buffers) of a causal model",
    )
    p.set_defaults(func=_cmd_export)


def _add_int8(p: argparse.ArgumentParser) -> None:
    """--quantize and the calibration clips it needs."""
    from temporal_shift.engine.export import QUANTIZE, calibration_clips

    p.add_argument(
        "--quantize",
        default=None,
        choices=QUANTIZE,
        help="int8 post-training quantization (executorch: PT2E + XNNPACK quantizer; openvino: NNCF), "
        "calibrated on --calibration",
    )
    p.add_argument(
        "--calibration",
        type=Path,
        default=None,
        metavar="LIST",
        help="clips to calibrate int8 on: a list file of frame folders or videos (as tsm test reads)",
    )
    p.add_argument("--root", type=Path, default=None, help="data root of --calibration (default: the list's folder)")
    p.add_argument(
        "--calibration-clips",
        type=int,
        default=options.default(calibration_clips, "limit"),
        help="use the first N clips of --calibration (default %(default)s)",
    )


def _register_import(sub: argparse._SubParsersAction) -> None:
    from temporal_shift.models.config import ModelConfig

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


# an fp32 graph must match PyTorch to this relative difference; a TensorRT fp16 engine to the second
TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2}


def _check_parity(parity: Parity, out: Path, *, args: argparse.Namespace) -> None:
    print(parity.line())
    if args.quantize:  # int8 is not expected to match: its top-1 agreement is the figure to read
        return
    limit = TOLERANCE["fp16" if args.format == "tensorrt" and args.precision == "fp16" else "fp32"]
    error = parity.max_rel
    if not error <= limit:
        raise ValueError(f"{out}: exported model differs from PyTorch by {error:.2e} relative (> {limit:g})")


def _calibration(
    args: argparse.Namespace, model: ClipClassifier | OnlineRecognizer, *, scale_size: int | None
) -> list[torch.Tensor] | None:
    from temporal_shift.engine.export import calibration_clips

    if args.quantize is None:
        if args.calibration is not None:
            raise ValueError("--calibration goes with --quantize int8")
        return None
    if args.calibration is None:
        raise ValueError(f"--quantize {args.quantize} needs --calibration LIST (clips to calibrate on)")
    root = args.root if args.root is not None else args.calibration.parent
    return calibration_clips(
        args.calibration, root=root, model=model, size=args.size, scale_size=scale_size, limit=args.calibration_clips
    )


def _cmd_export(args: argparse.Namespace) -> int:
    import torch

    from temporal_shift.checkpoint.loading import load_checkpoint
    from temporal_shift.engine.export import check_exportable, export_model, verify_export

    checkpoint = options.checkpoint_or_weights(args, what="CHECKPOINT")
    if args.online:
        return _export_online(args, checkpoint=checkpoint)
    loaded = load_checkpoint(checkpoint, n_segment=args.segments)
    model = loaded.model
    check_exportable(model, format=args.format, quantize=args.quantize)
    # the short side the checkpoint was tested with, when the crop is its own
    scale = loaded.scale_size if args.size in (None, loaded.input_size) else None
    calibration = _calibration(args, model, scale_size=scale)
    out = export_model(
        model,
        args.out,
        format=args.format,
        size=args.size,
        batch_size=args.batch_size,
        quantize=args.quantize,
        calibration=calibration,
        precision=args.precision,
    )
    print(f"wrote {out}" + (f" (int8, calibrated on {sum(len(c) for c in calibration)} clips)" if calibration else ""))
    if not args.no_verify:
        clips = torch.cat(calibration) if calibration else None
        parity = verify_export(
            model,
            out,
            format=args.format,
            size=args.size,
            batch_size=args.batch_size,
            clips=clips,
            threads=args.threads,
        )
        _check_parity(parity, out, args=args)
    return 0


def _export_online(args: argparse.Namespace, *, checkpoint: Path | PublishedWeights) -> int:
    import torch

    from temporal_shift.checkpoint.loading import load_online
    from temporal_shift.engine.export import check_exportable, export_online, verify_online_export

    if args.batch_size not in (None, 1):
        raise ValueError("--online exports the step of one stream: --batch-size does not apply")
    online = load_online(checkpoint, n_segment=args.segments)
    check_exportable(online, format=args.format, quantize=args.quantize)
    size = options.default(export_online, "size") if args.size is None else args.size
    args.size = size
    calibration = _calibration(args, online, scale_size=None)
    out = export_online(
        online,
        args.out,
        format=args.format,
        size=size,
        quantize=args.quantize,
        calibration=calibration,
        precision=args.precision,
    )
    print(f"wrote {out} (inputs: frame, buffer_0..{online.num_buffers - 1})")
    if not args.no_verify:
        frames = torch.cat(calibration).flatten(0, 1) if calibration else None
        parity = verify_online_export(online, out, format=args.format, size=size, frames=frames, threads=args.threads)
        _check_parity(parity, out, args=args)
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from temporal_shift.checkpoint.importers import import_checkpoint

    imported = import_checkpoint(args.checkpoint, args.out, n_segment=args.segments, fold_div=args.fold_div)
    print(imported.summary())
    return 0
