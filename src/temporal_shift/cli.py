"""The `tsm` command: a thin argparse layer over the library.

Every sub-command parses its arguments and calls one library function. Errors a user can
cause (ValueError, OSError and their subclasses) are printed as one line and exit with
status 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence


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


_REGISTRARS: tuple[Callable[[argparse._SubParsersAction], None], ...] = ()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
