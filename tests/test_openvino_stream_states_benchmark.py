"""benchmarks/openvino_stream_states.py: the OpenVINO online step with its buffers fed or kept as states,
side by side with the TSN step; both TSM forms stream the same logits and buffers."""

from __future__ import annotations

import pytest

from conftest import benchmark_script


def test_fed_and_kept_buffers_are_timed_against_the_tsn_and_agree(capsys):
    pytest.importorskip("openvino")
    script = benchmark_script("openvino_stream_states")
    result = script.main(["--precisions", "f32", "--size", "32", "--rounds", "4", "--steps", "3", "--threads", "1"])
    assert set(result) == {"f32/fed", "f32/states"}
    assert all(r["q1"] <= r["ratio"] <= r["q3"] and r["ms"] > 0 and r["tsn_ms"] > 0 for r in result.values())
    (line,) = [line for line in capsys.readouterr().out.splitlines() if "max abs difference" in line]
    logits, buffers = (float(part.rsplit(" ", 1)[1]) for part in line.split(": ", 2)[2].split(", "))
    assert logits <= 1e-6 and buffers <= 1e-6, line


def test_an_unknown_precision_is_refused(capsys):
    script = benchmark_script("openvino_stream_states")
    with pytest.raises(SystemExit):
        script.main(["--precisions", "fp16"])
    assert "--precisions: unknown fp16" in capsys.readouterr().err
