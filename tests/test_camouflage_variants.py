"""benchmarks/camouflage_variants.py: the camouflage scene's variants apply while the diagnosis runs, and only then."""

from __future__ import annotations

import numpy as np
import pytest

import temporal_shift.data.synthetic as synthetic
from conftest import benchmark_script


@pytest.fixture(scope="module")
def script():
    return benchmark_script("camouflage_variants")


def _dot_side_and_share(clip: np.ndarray) -> tuple[int, float]:
    """The side of the clip's dots (the shortest run of one colour along a row) and the share of bright cells."""
    bright = clip[0, :, :, :].mean(-1) > clip[0].mean()
    runs = [len(r) for row in bright for r in np.split(row, np.flatnonzero(np.diff(row)) + 1)]
    return min(runs), float(bright.mean())


def test_the_variant_is_what_renders_during_the_run_and_the_scene_is_restored_after(script, monkeypatch):
    seen = {}

    def diagnosis(argv):
        seen["argv"] = argv
        rng = np.random.default_rng(0)
        clip, _ = synthetic.render_clip(0, rng=rng, size=32, frames=2, clutter=False, scene="camouflage")
        seen["dots"] = _dot_side_and_share(clip)
        return []

    monkeypatch.setattr(script.synthetic_learnability, "main", diagnosis)
    constants = (synthetic._CAMO_CELL, synthetic._CAMO_DENSITY)
    script.main(["--dot", "4", "--density", "0.1", "--models", "tsm"])
    assert seen["argv"] == ["--scene", "camouflage", "--models", "tsm"]
    side, share = seen["dots"]
    assert side == 4 and 0.02 < min(share, 1 - share) < 0.2, seen["dots"]
    assert constants == (synthetic._CAMO_CELL, synthetic._CAMO_DENSITY)


def test_a_tiny_run_of_a_variant_trains_and_reports(script) -> None:
    rows = script.main(
        ["--density", "0.2", "--pair-hues", "--models", "tsm", "--train", "12", "--val", "12",
         "--epochs", "1", "--batch-size", "6", "--segments", "2", "--frames", "4", "--size", "32", "--json"]
    )  # fmt: skip
    assert [r["model"] for r in rows] == ["tsm"] and rows[0]["step"] == 2
    assert set(rows[0]["order_per_pair"]) <= set(synthetic.CAMOUFLAGE_CLASSES)


@pytest.mark.parametrize(
    ("argv", "message"), [(["--dot", "0"], "--dot: expected"), (["--density", "1.5"], "--density: expected")]
)
def test_a_bad_variant_is_one_line_error(script, capsys, argv, message):
    with pytest.raises(SystemExit):
        script.main(argv)
    assert message in capsys.readouterr().err
