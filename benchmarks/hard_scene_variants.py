"""Is the hard scene's order learnable by TSM in the demo's budget if the scene is made easier?

A diagnosis, not a data generator: `synthetic_learnability.py` on variants of the hard scene
(`data.synthetic`'s ``scene="hard"``) that the library does not offer, made by replacing three of
the scene's private draws for this process only:

- ``--distractors LO,HI``: how many distractors (the scene draws 3-5; 0,0 for none),
- ``--distractor-shapes other``: distractors drawn as triangles and bars instead of squares and
  circles, so the two actors are the only square and circle of the clip,
- ``--headings axis``: the actors' and distractors' directions one of the four axis directions
  instead of any angle.

Every other argument goes to `synthetic_learnability.py` (``--models``, ``--object-scale``,
``--motion``, ``--segments``, ``--train``, ``--epochs``, ``--json`` ...):

    python benchmarks/hard_scene_variants.py --distractors 0,0 --headings axis --object-scale 1.5 \\
        --motion 3 --segments 4 --models tsm --train 2880 --val 720 --epochs 8 --json

The figures are in docs/reproduce.md (the hard data).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from pathlib import Path
from unittest import mock

import numpy as np

import temporal_shift.data.synthetic as synthetic

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synthetic_learnability


def _axis_heading(rng: np.random.Generator) -> np.ndarray:
    phi = int(rng.integers(4)) * math.pi / 2
    return np.array([math.cos(phi), math.sin(phi)])


def _other_shapes(draw):
    def distractor(rng: np.random.Generator, stage) -> dict:
        thing = draw(rng, stage)
        thing["shape"] = ("triangle", "bar")[int(rng.integers(2))]
        return thing

    return distractor


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=False)
    p.add_argument("--distractors", default=None, help="LO,HI distractors a clip (default: the scene's 3,5)")
    p.add_argument("--distractor-shapes", choices=("same", "other"), default="same")
    p.add_argument("--headings", choices=("any", "axis"), default="any")
    args, rest = p.parse_known_args(argv)
    with contextlib.ExitStack() as variant:  # the scene's own draws are back when main returns
        if args.distractors is not None:
            low, high = (int(v) for v in args.distractors.split(","))
            if not 0 <= low <= high:
                p.error(f"--distractors: expected LO,HI with 0 <= LO <= HI, got {args.distractors}")
            variant.enter_context(mock.patch.object(synthetic, "_HARD_DISTRACTORS", (low, high)))
        if args.distractor_shapes == "other":
            shapes = _other_shapes(synthetic._hard_distractor)
            variant.enter_context(mock.patch.object(synthetic, "_hard_distractor", shapes))
        if args.headings == "axis":
            variant.enter_context(mock.patch.object(synthetic, "_heading", _axis_heading))
        return synthetic_learnability.main(["--scene", "hard", *rest])


if __name__ == "__main__":
    main()
