"""benchmarks/one_clip_shift.py: TSN and both forms of the TSM's shift, built and timed side by side."""

from __future__ import annotations

import pytest

from conftest import benchmark_script


def test_both_forms_are_timed_against_the_tsn_and_match_pytorch(capsys):
    pytest.importorskip("onnxruntime")
    script = benchmark_script("one_clip_shift")
    argv = ["--runtimes", "onnxruntime", "--arch", "resnet18", "--segments", "4", "--size", "32", "--rounds", "4"]
    result = script.main([*argv, "--threads", "1"])
    assert set(result) == {"onnxruntime/view", "onnxruntime/batch axis"}
    assert all(r["q1"] <= r["ratio"] <= r["q3"] and r["ms"] > 0 and r["tsn_ms"] > 0 for r in result.values())
    differences = [float(line.rsplit(" ", 1)[1]) for line in capsys.readouterr().out.splitlines() if "PyTorch" in line]
    assert len(differences) == 2 and max(differences) < 1e-4


def test_an_unknown_runtime_or_a_model_without_a_split_form_is_refused(capsys):
    script = benchmark_script("one_clip_shift")
    with pytest.raises(SystemExit):
        script.main(["--runtimes", "tensorrt"])
    assert "--runtimes: unknown tensorrt" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.main(["--runtimes", "onnxruntime", "--arch", "mobilenet_v2", "--size", "32"])
    assert "has no split form" in capsys.readouterr().err
