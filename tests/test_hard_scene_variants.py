"""benchmarks/hard_scene_variants.py: the hard scene's variants apply while the diagnosis runs, and only then."""

from __future__ import annotations

import math

import numpy as np
import pytest

import temporal_shift.data.synthetic as synthetic
from conftest import benchmark_script


@pytest.fixture(scope="module")
def script():
    return benchmark_script("hard_scene_variants")


def test_the_variant_is_what_renders_during_the_run_and_the_scene_is_restored_after(script, monkeypatch):
    seen = {}

    def diagnosis(argv):
        rng = np.random.default_rng(0)
        stage = synthetic._Stage(t=np.arange(4.0), height=32, width=32, size=0.5, motion=1.0)
        seen["argv"] = argv
        seen["distractors"] = synthetic._HARD_DISTRACTORS
        seen["shapes"] = {synthetic._hard_distractor(rng, stage)["shape"] for _ in range(20)}
        seen["angles"] = {round(math.degrees(math.atan2(*synthetic._heading(rng)[::-1]))) % 360 for _ in range(40)}
        return []

    monkeypatch.setattr(script.synthetic_learnability, "main", diagnosis)
    drawn = (synthetic._HARD_DISTRACTORS, synthetic._hard_distractor, synthetic._heading)
    script.main(["--distractors", "0,0", "--distractor-shapes", "other", "--headings", "axis", "--models", "tsm"])
    assert seen["argv"] == ["--scene", "hard", "--models", "tsm"]
    assert seen["distractors"] == (0, 0)
    assert seen["shapes"] == {"triangle", "bar"}
    assert seen["angles"] == {0, 90, 180, 270}
    assert (synthetic._HARD_DISTRACTORS, synthetic._hard_distractor, synthetic._heading) == drawn


def test_a_tiny_run_of_a_variant_trains_and_reports(script) -> None:
    rows = script.main(
        ["--distractors", "1,1", "--headings", "axis", "--models", "tsm", "--train", "12", "--val", "12",
         "--epochs", "1", "--batch-size", "6", "--segments", "2", "--frames", "4", "--size", "32", "--json"]
    )  # fmt: skip
    assert [r["model"] for r in rows] == ["tsm"] and rows[0]["step"] == 2
    assert set(rows[0]["order_per_pair"]) <= set(synthetic.HARD_CLASSES)
    assert synthetic._HARD_DISTRACTORS == (3, 5)


def test_a_bad_distractor_range_is_one_line_error(script, capsys):
    with pytest.raises(SystemExit):
        script.main(["--distractors", "3,1"])
    assert "--distractors: expected LO,HI with 0 <= LO <= HI, got 3,1" in capsys.readouterr().err
