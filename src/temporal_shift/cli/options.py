"""Options several `tsm` commands share, each added by one helper and read back by another.

The model source (`--checkpoint FILE` or `--weights NAME`), `--device`, `--segments`,
`--compile/--compile-mode`, `--json/--plot` result files, and `default`, which reads a
default from the library function a command calls, so the command line does not restate it.
Importing this module imports no library module; the helpers that need one import it when called.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, overload

if TYPE_CHECKING:
    from temporal_shift.hub.weights import PublishedWeights

ArgumentGroup = argparse.ArgumentParser | argparse._ArgumentGroup | argparse._MutuallyExclusiveGroup


def default(func: Callable[..., object], name: str) -> Any:
    """The default value of parameter ``name`` of ``func`` (a library function or dataclass)."""
    parameter = inspect.signature(func).parameters[name]
    if parameter.default is inspect.Parameter.empty:
        raise TypeError(f"{func.__qualname__}: parameter {name!r} has no default")
    return parameter.default


# --- which model: --checkpoint FILE or --weights NAME --------------------------------------


def add_weights(parser: ArgumentGroup, *, instead_of: str, help: str | None = None) -> None:
    """``--weights NAME`` (stored as ``published``): published weights instead of ``instead_of``."""
    parser.add_argument(
        "--weights",
        dest="published",
        default=None,
        metavar="NAME",
        help=help
        or f"published weights by name instead of {instead_of} (`tsm weights list`; "
        "downloaded into the torch hub cache on first use)",
    )


def add_checkpoint_or_weights(
    parser: argparse.ArgumentParser,
    *,
    required: bool,
    checkpoint_help: str | None = None,
    instead_of: str = "--checkpoint",
) -> argparse._MutuallyExclusiveGroup:
    """``--checkpoint FILE`` or ``--weights NAME``, at most one (exactly one if ``required``); the
    group is returned for a command with a third way to name its model."""
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--checkpoint", type=Path, default=None, help=checkpoint_help)
    add_weights(group, instead_of=instead_of)
    return group


@overload
def checkpoint_or_weights(
    args: argparse.Namespace, *, dest: str = ..., required: Literal[True] = ..., what: str = ...
) -> Path | PublishedWeights: ...


@overload
def checkpoint_or_weights(
    args: argparse.Namespace, *, dest: str = ..., required: bool, what: str = ...
) -> Path | PublishedWeights | None: ...


def checkpoint_or_weights(
    args: argparse.Namespace, *, dest: str = "checkpoint", required: bool = True, what: str = "--checkpoint"
) -> Path | PublishedWeights | None:
    """The checkpoint file (``args.<dest>``) or the published weights (`PublishedWeights`) the user
    named; None when neither was given and neither is ``required``."""
    given = [x for x in (getattr(args, dest, None), args.published) if x is not None]
    if len(given) > 1 or (required and not given):
        raise ValueError(f"give {what} or --weights NAME" + (" (not both)" if given else ""))
    if args.published is not None:
        from temporal_shift.hub.weights import get_weights

        return get_weights(args.published)
    return given[0] if given else None


# --- how to run it ---------------------------------------------------------------------------


def add_device(parser: ArgumentGroup, *, default: str | None) -> None:
    parser.add_argument("--device", default=default, help="auto (CUDA if present; the default), cpu, cuda, cuda:N")


def add_segments(
    parser: ArgumentGroup, *, default: int | None = None, help: str = "T, for checkpoints of other releases"
) -> None:
    """``--segments T``: frames per clip (the paper's T) on every command that takes it."""
    parser.add_argument("--segments", type=int, default=default, metavar="T", help=help)


def add_compile(parser: ArgumentGroup, *, help: str, auto: str) -> None:
    """``--compile`` and ``--compile-mode MODE`` (``auto``: what ``auto`` says)."""
    from temporal_shift.engine.compiled import MODES

    parser.add_argument("--compile", action="store_true", help=help)
    parser.add_argument(
        "--compile-mode",
        default="auto",
        metavar="{" + ",".join(MODES) + "}",
        help=f"torch.compile mode with --compile (auto: {auto})",
    )


def compile_mode(args: argparse.Namespace) -> str | None:
    """The mode to compile with, None without --compile; --compile-mode alone is an error."""
    if args.compile_mode != "auto" and not args.compile:
        raise ValueError("--compile-mode goes with --compile")
    return args.compile_mode if args.compile else None


# --- what comes out ---------------------------------------------------------------------------


class Result(Protocol):
    def table(self) -> str: ...

    def to_json(self) -> str: ...


def add_result_files(parser: ArgumentGroup, *, plot: bool = True) -> None:
    """``--json FILE`` (and ``--plot FILE.png``): where a benchmark's result is written."""
    parser.add_argument("--json", type=Path, default=None, help="write the result as JSON here")
    if plot:
        parser.add_argument("--plot", type=Path, default=None, help="write a box plot (PNG) here")


def print_result(
    result: Result,
    *,
    json_file: Path | None,
    plot_file: Path | None = None,
    plot: Callable[[Any, Path], Path] | None = None,
) -> None:
    """Print the result's table, write its JSON and (with ``plot``, the library's plot function) its
    plot where asked, and say what was written."""
    print(result.table())
    if json_file:
        json_file.write_text(result.to_json())
        print(f"wrote {json_file}")
    if plot_file and plot is not None:
        print(f"wrote {plot(result, plot_file)}")


def add_stream_labels(parser: ArgumentGroup, *, library: Callable[..., object]) -> None:
    """--smooth, --hysteresis and --topk of an online stream's labels, with the defaults of ``library``."""
    parser.add_argument(
        "--smooth",
        type=int,
        default=default(library, "smooth"),
        help="average the scores of the last N steps (default %(default)s)",
    )
    parser.add_argument(
        "--hysteresis",
        type=int,
        default=default(library, "hysteresis"),
        help="a label becomes current after M consecutive wins (default %(default)s)",
    )
    parser.add_argument(
        "--topk", type=int, default=default(library, "topk"), help="classes reported per step (default %(default)s)"
    )


def add_processes(parser: ArgumentGroup) -> None:
    parser.add_argument("--workers", type=int, default=None, help="processes (default: CPU count, max 8)")


def add_no_progress(parser: ArgumentGroup, *, help: str = "no progress bars") -> None:
    parser.add_argument("--no-progress", action="store_true", help=help)
