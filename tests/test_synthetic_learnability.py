"""benchmarks/synthetic_learnability.py: the diagnosis behind the demo's data runs and reports per pair."""

from __future__ import annotations

import json

import pytest

from conftest import benchmark_script


@pytest.fixture(scope="module")
def script():
    return benchmark_script("synthetic_learnability")


def test_a_tiny_run_reports_every_pair_it_trains_on(script, capsys) -> None:
    rows = script.main(
        [
            "--classes",
            "0,1,6,7,10",
            "--train",
            "20",
            "--val",
            "10",
            "--epochs",
            "2",
            "--batch-size",
            "10",
            "--segments",
            "4",
            "--motion",
            "3",
            "--spin",
            "2.5",
            "--json",
            "--threads",
            "1",
        ]
    )
    assert [r["step"] for r in rows] == [2, 4]
    # pairs (0, 1) and (6, 7) are both in; class 10's partner is not a temporal pair
    assert set(rows[-1]["order_per_pair"]) == {"moving_right", "rotating_clockwise"}
    assert all(0 <= v <= 100 for v in rows[-1]["order_per_pair"].values())
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2]


def test_sampling_takes_one_frame_per_segment(script) -> None:
    import numpy as np
    import torch

    clips = torch.arange(8.0).view(1, 8, 1, 1, 1).expand(2, 8, 3, 2, 2)
    test = script.sample(clips, 4, train=False, rng=np.random.default_rng(0))
    assert test[0, :, 0, 0, 0].tolist() == [1.0, 3.0, 5.0, 7.0]
    train = script.sample(clips, 4, train=True, rng=np.random.default_rng(0))[0, :, 0, 0, 0]
    assert all(2 * k <= int(v) <= 2 * k + 1 for k, v in enumerate(train.tolist()))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--classes", "0,0"], "--classes: distinct indices"),
        (["--classes", "12"], "--classes: distinct indices"),
        (["--train", "4"], "--train 4 is smaller than one batch"),
    ],
)
def test_bad_arguments_name_the_option(script, capsys, argv, message) -> None:
    with pytest.raises(SystemExit) as exit_info:
        script.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
