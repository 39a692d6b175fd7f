"""`tsm weights list|get`: the reference release's published checkpoints, by name."""

from __future__ import annotations

import argparse
from pathlib import Path

from temporal_shift.cli import options


def register(sub: argparse._SubParsersAction) -> None:
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
    w.set_defaults(func=_cmd_list)
    w = weights_sub.add_parser("get", help="download (or find in the cache) and verify published weights")
    w.add_argument("name", help="a name from `tsm weights list`")
    w.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="download here instead of the torch hub cache ($TORCH_HOME/hub/checkpoints)",
    )
    options.add_no_progress(w, help="no progress bar")
    w.set_defaults(func=_cmd_get)


def _cmd_list(args: argparse.Namespace) -> int:
    import json

    from temporal_shift.hub.weights import registry, weights_table

    if args.json:
        print(json.dumps([w.to_dict() for w in registry().values()], indent=2))
    else:
        print(weights_table())
    return 0


def _cmd_get(args: argparse.Namespace) -> int:
    from temporal_shift.hub.download import sha256_file
    from temporal_shift.hub.weights import download_weights, get_weights

    entry = get_weights(args.name)
    path = download_weights(entry, cache_dir=args.cache_dir, progress=not args.no_progress)
    print(f"{entry.name}: {path} (sha256 {sha256_file(path)})")
    return 0
