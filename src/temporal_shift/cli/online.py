"""`tsm online convert`: check that a checkpoint is causal and streamable, and save it in our format."""

from __future__ import annotations

import argparse
from pathlib import Path

from temporal_shift.cli import options


def register(sub: argparse._SubParsersAction) -> None:
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
    options.add_segments(c, help="T of the offline model (foreign formats)")
    c.set_defaults(func=_cmd_convert)


def _cmd_convert(args: argparse.Namespace) -> int:
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
