"""The `tsm` command: a thin argparse layer over the library.

Every sub-command parses its arguments and calls one library function. Errors a user can
cause (ValueError, OSError and their subclasses) are printed as one line and exit with
status 2; `--debug` shows the traceback instead. Each command group is a module here with a
`register(sub)` function that adds its sub-commands, each storing its handler as `func`;
`options` holds the options several commands share.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from temporal_shift.cli import bench, data, evaluate, model, online, serve, stream, train, weights

GROUPS = (bench, model, weights, online, data, train, evaluate, stream, serve)  # in help order


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tsm",
        description="Temporal Shift Module: video action recognition with TSN/TSM.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


def _command(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """The sub-command of ``argv`` (its first word after tsm's own options) and the words after it."""
    for k, word in enumerate(argv):
        if not word.startswith("-"):
            return word, list(argv[k + 1 :])
    return None, []


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command, rest = _command(argv)
    pointer = None if command is None else bench.moved(command=command, args=rest)
    if pointer is not None:  # an old spelling of a benchmark: say the new one
        print(f"tsm {command}: error: {pointer}", file=sys.stderr)
        return 2
    parser = build_parser()
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

        error = worker_error(exc) or exc  # a DataLoader worker's own error, not "Caught X in worker"
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"tsm {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tsm {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)
