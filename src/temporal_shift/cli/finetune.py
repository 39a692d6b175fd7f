"""`tsm finetune ROOT`: your class folders -> a fine-tuned, tested model with a model card."""

from __future__ import annotations

import argparse
from pathlib import Path

from temporal_shift.cli import options


def register(sub: argparse._SubParsersAction) -> None:
    from temporal_shift.engine.finetune import finetune

    p = sub.add_parser(
        "finetune",
        help="fine-tune published weights or a checkpoint on ROOT/<class>/<videos>: test, model card",
        description="Prepare ROOT (class folders, or ROOT/train and ROOT/val: tsm prepare folder), fine-tune the "
        "model of --weights/--checkpoint with a new head for your classes (the reference recipe: learning rate "
        "scaled linearly with the batch, 5x/10x for the new head, partial BN, dropout 0.8), test the best "
        "checkpoint (1 centre clip, centre crop) and write OUT/README.md, the model card: data, classes, recipe, "
        "accuracy, confusion matrix. --flow fine-tunes a flow stream (optical flow computed first).",
    )
    p.add_argument("root", type=Path, metavar="ROOT", help="ROOT/<class>/<video or frame folder>")
    options.add_checkpoint_or_weights(
        p, required=True, checkpoint_help="start from this checkpoint (ours, reference release, MMAction2)"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="run folder: lists, checkpoints, test results, README.md (default: runs/finetune-<ROOT's name>)",
    )
    p.add_argument("--epochs", type=int, default=None, help="default: 25 on a GPU (the reference's), 10 on a CPU")
    p.add_argument("--batch-size", type=int, default=None, help="clips per step (default: 16 on a GPU, 4 on a CPU)")
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="learning rate for every 64 clips, scaled linearly with the batch (default 0.001, the reference's)",
    )
    p.add_argument(
        "--flow",
        action="store_true",
        help="fine-tune the flow stream (from flow weights, e.g. --weights tsm_r50_kinetics400_flow_8f); "
        "computes the optical flow of every video first (the 'flow' extra)",
    )
    p.add_argument(
        "--flow-method",
        default=options.default(finetune, "flow_method"),
        choices=("farneback", "tvl1"),
        help="with --flow: optical flow method (default %(default)s; tvl1 is the reference's, much slower on a CPU)",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=options.default(finetune, "val_fraction"),
        help="share of each class for val, unless ROOT has train/ and val/ (default %(default)s)",
    )
    p.add_argument("--seed", type=int, default=options.default(finetune, "seed"))
    p.add_argument("--extract", action="store_true", help="decode the videos into JPEG frame folders first")
    p.add_argument("--size", type=int, default=None, help="crop side (default: the source model's, else 224)")
    options.add_device(p, default=options.default(finetune, "device"))
    p.add_argument("--workers", type=int, default=None, help="loader and extraction processes (default by device)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    options.add_no_progress(p)
    p.set_defaults(func=_cmd_finetune)


def default_out(root: Path) -> Path:
    """Where a run goes without --out: ``runs/finetune-<ROOT's folder name>``, in the working directory."""
    return Path("runs") / f"finetune-{root.resolve().name}"


def _cmd_finetune(args: argparse.Namespace) -> int:
    from temporal_shift.engine.finetune import finetune

    for flag, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be at least 1, got {value}")
    if args.lr is not None and args.lr <= 0:
        raise ValueError(f"--lr must be positive, got {args.lr}")
    result = finetune(
        args.root,
        source=options.checkpoint_or_weights(args),
        out_dir=args.out if args.out is not None else default_out(args.root),
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        flow=args.flow,
        flow_method=args.flow_method,
        val_fraction=args.val_fraction,
        seed=args.seed,
        extract=args.extract,
        size=args.size,
        device=args.device,
        workers=args.workers,
        resume=args.resume,
        progress=not args.no_progress,
        log=lambda line: print(line, flush=True),
    )
    print(result.summary())
    return 0
