"""Does TSM learn the camouflage scene's motion if its dots are larger or sparser?

A diagnosis, not a data generator: `synthetic_learnability.py` on the camouflage scene
(`data.synthetic`'s ``scene="camouflage"``, a random-dot kinematogram) with two of its constants
replaced for this process only:

- ``--dot PX``: the side of a dot in pixels at 32x32 (the scene's 2; scaled with the frame),
- ``--density P``: the odds of a dot in a cell (the scene's 0.5, a dense binary texture).

Every other argument goes to `synthetic_learnability.py` (``--models``, ``--pair-hues``,
``--motion``, ``--size``, ``--segments``, ``--train``, ``--epochs``, ``--json`` ...):

    python benchmarks/camouflage_variants.py --density 0.15 --pair-hues --motion 3 --segments 4 \\
        --models tsm --train 2880 --val 720 --epochs 8 --json

The figures are in docs/reproduce.md (the camouflage data).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from unittest import mock

import temporal_shift.data.synthetic as synthetic

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synthetic_learnability


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=False)
    p.add_argument("--dot", type=int, default=None, help="pixels a dot's side at 32x32 (default: the scene's 2)")
    p.add_argument("--density", type=float, default=None, help="odds of a dot in a cell (default: the scene's 0.5)")
    args, rest = p.parse_known_args(argv)
    if args.dot is not None and args.dot < 1:
        p.error(f"--dot: expected a whole number of pixels >= 1, got {args.dot}")
    if args.density is not None and not 0 < args.density < 1:
        p.error(f"--density: expected odds between 0 and 1, got {args.density}")
    with contextlib.ExitStack() as variant:  # the scene's own constants are back when main returns
        if args.dot is not None:
            variant.enter_context(mock.patch.object(synthetic, "_CAMO_CELL", args.dot))
        if args.density is not None:
            variant.enter_context(mock.patch.object(synthetic, "_CAMO_DENSITY", args.density))
        return synthetic_learnability.main(["--scene", "camouflage", *rest])


if __name__ == "__main__":
    main()
