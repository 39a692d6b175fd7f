"""The two-stream cost next to TSM (bench_flow) and its CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cv2", reason="the 'flow' extra (opencv-contrib-python-headless) is part of the test extra")

from temporal_shift.apps.bench.two_stream import benchmark_two_stream, moving_texture_pair
from temporal_shift.data.flow import FlowComputer


def test_benchmark_frames_move_as_stated() -> None:
    prev, nxt = moving_texture_pair(48, 64, shift=(2, 1))
    flow = FlowComputer("farneback")(prev, nxt)[8:-8, 8:-8].reshape(-1, 2)
    assert np.median(flow[:, 0]) == pytest.approx(2.0, abs=0.3) and np.median(flow[:, 1]) == pytest.approx(1.0, abs=0.3)


def test_two_stream_cost_per_clip_next_to_tsm(one_thread) -> None:
    result = benchmark_two_stream(
        arch="resnet18", n_segment=2, size=32, flow_length=2, flow_frame=(24, 32), repeats=2, warmup=0, num_classes=5
    )
    assert result.flow_pairs_per_clip == 4
    assert set(result.per_clip_ms) == {"TSM", "two-stream (tvl1)", "two-stream (farneback)"}
    f, pair = result.forward_ms, result.flow_pair_ms
    assert (
        result.per_clip_ms["two-stream (farneback)"]["min"]
        >= (f["TSN-RGB"]["min"] + f["TSN-flow"]["min"] + 4 * pair["farneback"]["min"]) - 1e-9
    )
    assert result.flow_fps["tvl1"] == pytest.approx(1000 / pair["tvl1"]["median"])
    assert result.gflops["TSN-flow"] > result.gflops["TSN-RGB"] * 0.9  # only the first conv differs
    assert "pairs/s per core" in result.table() and "x TSM" in result.table()
    assert json.loads(result.to_json())["flow_length"] == 2


def test_cli_two_stream_writes_json(tmp_path: Path, run_cli, one_thread) -> None:
    out = tmp_path / "two_stream.json"
    r = run_cli(
        [
            "bench",
            "two-stream",
            "--arch",
            "resnet18",
            "--segments",
            2,
            "--size",
            32,
            "--flow-length",
            1,
            "--repeats",
            1,
            "--warmup",
            0,
            "--device",
            "cpu",
            "--json",
            out,
        ]
    )
    assert r.code == 0, r.err
    assert "x TSM" in r.out and f"wrote {out}" in r.out
    data = json.loads(out.read_text())
    assert (data["flow_length"], data["n_segment"], data["size"]) == (1, 2, 32)
