"""`tsm bench runtimes`: TSN and TSM exported and timed in each runtime, each row in its own process,
in interleaved rounds; the TSM/TSN ratio per pair, the online step's frames/s, JSON and PNG, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from temporal_shift.apps.bench.runtimes import _interleaved, benchmark_runtimes, export_fingerprint
from temporal_shift.cli import main

TINY = ["--segments", "2", "--size", "32", "--threads", "1", "--repeats", "2", "--warmup", "0"]


class _Worker:
    """The parent's end of a worker's pipe: records what it is asked to time."""

    def __init__(self, row: str, calls: list[str]) -> None:
        self.row, self.calls = row, calls

    def send(self, name: str) -> None:
        self.calls.append(f"{self.row}:{name}")

    def recv(self) -> tuple[str, float]:
        return "time", 0.001


def test_rounds_rotate_rows_and_alternate_the_pair() -> None:
    calls: list[str] = []
    workers = {row: _Worker(row, calls) for row in ("a", "b")}
    times = _interleaved(workers, repeats=2, warmup=1, log=None)
    assert calls == [
        *["b:TSM", "b:TSN", "a:TSM", "a:TSN"],  # warmup round -1: rotated by one, TSM first
        *["a:TSN", "a:TSM", "b:TSN", "b:TSM"],
        *["b:TSM", "b:TSN", "a:TSM", "a:TSN"],
    ]
    assert {row: [len(t) for t in per.values()] for row, per in times.items()} == {"a": [2, 2], "b": [2, 2]}


def test_an_eager_row_in_its_own_process(tmp_path: Path) -> None:
    """One worker process (spawned: it imports torch afresh, ~5 s of this test)."""
    result = benchmark_runtimes(
        archs=["resnet18"],
        runtimes=["eager"],
        online=False,
        n_segment=2,
        size=32,
        repeats=3,
        threads=1,
        work_dir=tmp_path,
    )
    samples = result.samples_ms["resnet18/eager"]
    assert [len(samples["TSN"]), len(samples["TSM"])] == [3, 3]
    ratios = sorted(b / a for a, b in zip(samples["TSN"], samples["TSM"], strict=True))
    assert result.ratio["resnet18/eager"]["median"] == pytest.approx(ratios[1])
    best = result.speedups()["resnet18"]
    assert best["best"] == "eager" and best["speedup_over_eager"] == 1.0


@pytest.mark.slow  # two ONNX exports and two worker processes: ~25 s on 2 cores
def test_cli_times_eager_and_onnxruntime_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "runtimes.json"
    argv = ["bench", "runtimes", "--archs", "resnet18", "--runtimes", "eager,onnxruntime", "--no-int8", "--no-online"]
    assert main([*argv, *TINY, "--work-dir", str(tmp_path / "w"), "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert list(data["latency_ms"]) == ["resnet18/eager", "resnet18/onnxruntime"]
    (work,) = (tmp_path / "w").iterdir()  # named after the settings and the export's code
    assert work.name == f"t2-32-batch1-{export_fingerprint()}"
    assert sorted(p.name for p in work.iterdir()) == ["resnet18-tsm.onnx", "resnet18-tsn.onnx"]
    for name in ("tsn", "tsm"):  # the latency of batch 1, as `tsm export --batch-size 1` writes it
        (clips,) = onnx.load(str(work / f"resnet18-{name}.onnx")).graph.input
        assert [d.dim_value for d in clips.type.tensor_type.shape.dim] == [1, 2, 3, 32, 32]
    for row, samples in data["samples_ms"].items():
        assert [len(samples["TSN"]), len(samples["TSM"])] == [2, 2]
        ratios = sorted(b / a for a, b in zip(samples["TSN"], samples["TSM"], strict=True))
        assert data["ratio"][row]["min"] == pytest.approx(ratios[0]) and data["latency_ms"][row]["TSM"]["median"] > 0
    best = data["speedups"]["resnet18"]
    assert best["best"] in ("eager", "onnxruntime") and best["speedup_over_eager"] >= 1.0
    assert out.with_suffix(".png").stat().st_size > 10_000
    assert "resnet18: fastest TSM in" in capsys.readouterr().out


@pytest.mark.slow  # the online step to ExecuTorch and OpenVINO, fp32 and int8, then 5 worker processes: ~1-2 min
def test_the_online_step_in_the_edge_runtimes_fp32_and_int8(tmp_path: Path) -> None:
    pytest.importorskip("executorch")
    pytest.importorskip("nncf")
    result = benchmark_runtimes(
        archs=[],
        runtimes=["eager", "executorch", "openvino"],
        n_segment=2,
        size=32,
        repeats=2,
        warmup=0,
        threads=1,
        online_frames=3,
        work_dir=tmp_path,
        log=None,
    )
    runtimes = ["eager", "executorch", "openvino", "executorch-int8", "openvino-int8"]
    assert list(result.latency_ms) == [f"online/{r}" for r in runtimes]
    files = sorted(p.name for p in (tmp_path / f"t2-32-batch1-{export_fingerprint()}").iterdir())
    assert "mobilenet_v2-online-tsm-int8.pte" in files and "mobilenet_v2-online-tsn-int8.xml" in files
    assert all(result.fps(f"online/{r}") > 0 for r in runtimes)
    assert set(result.speedups()) == {"online"} and "online/openvino-int8" in result.table()
    assert "online rows: 3 consecutive steps of one stream a timing, ms per step" in result.notes


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--runtimes", "eager,tflite"], "unknown runtime 'tflite'"),
        (["--archs", "resnet5"], "unknown arch 'resnet5'"),
        (["--archs", " , "], "--archs: no names in"),
        (["--repeats", "0"], "need repeats >= 1"),
    ],
)
def test_bad_inputs_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], message: str
) -> None:
    assert main(["bench", "runtimes", *args, "--work-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_the_export_fingerprint_follows_the_code_that_shapes_the_graphs(tmp_path: Path) -> None:
    """The work folder's exports are reused only by the code that wrote them: a changed source file
    changes the fingerprint (so a new export form is timed, not the stale files); the same does not."""
    source = tmp_path / "export.py"
    source.write_text("FORM = 1\n")
    before = export_fingerprint([source])
    assert export_fingerprint([source]) == before and len(before) == 10
    source.write_text("FORM = 2\n")
    assert export_fingerprint([source]) != before
    assert export_fingerprint() == export_fingerprint()  # the package's own sources: stable
