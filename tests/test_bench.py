"""Benchmarks: interleaving, ratio math, peak memory, `tsm bench overhead|train` JSON/PNG and their errors."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import torch

from temporal_shift.apps.bench.overhead import count_flops, summarize, tsn_tsm_pair
from temporal_shift.apps.bench.train import TrainStep, benchmark_training, interleaved_steps, peak_step_bytes
from temporal_shift.cli import main

TINY = ["--arch", "resnet18", "--segments", "2", "--size", "32", "--threads", "1"]


pytestmark = pytest.mark.usefixtures("one_thread")


def test_interleaved_steps_rotate_the_order_after_warmup() -> None:
    calls: list[str] = []
    steps = {name: (lambda n=name: calls.append(n)) for name in ("TSN", "TSM")}
    times = interleaved_steps(steps, device=torch.device("cpu"), repeats=3, warmup=1)
    assert calls == ["TSN", "TSM", "TSN", "TSM", "TSM", "TSN", "TSN", "TSM"]
    assert [len(t) for t in times.values()] == [3, 3]
    with pytest.raises(ValueError, match="repeats >= 1"):
        interleaved_steps(steps, device=torch.device("cpu"), repeats=0, warmup=1)


def test_summarize_quartiles() -> None:
    s = summarize([4.0, 1.0, 3.0, 2.0, 5.0])
    assert s == {"median": 3.0, "q1": 2.0, "q3": 4.0, "min": 1.0, "max": 5.0}
    assert summarize([7.0]) == {"median": 7.0, "q1": 7.0, "q3": 7.0, "min": 7.0, "max": 7.0}


def test_cpu_peak_memory_sees_a_step_allocation() -> None:
    def step() -> None:
        a = torch.ones(4_000_000, dtype=torch.uint8)  # 4 MB, freed before the next one
        del a
        b = torch.ones(6_000_000, dtype=torch.uint8)  # 6 MB: the peak
        del b

    peak = peak_step_bytes(step, torch.device("cpu"))
    assert 6_000_000 <= peak < 7_000_000


def test_train_step_learns_and_fp16_scales() -> None:
    """A step is a real SGD step: the loss on a fixed batch goes down; fp16 runs with its scaler."""
    from temporal_shift.models.factory import build_model

    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=3, n_segment=2, dropout=0.0)
    step = TrainStep(model, device=torch.device("cpu"), lr=0.05)
    clips, labels = torch.randn(2, 2, 3, 32, 32), torch.tensor([0, 2])
    losses = [float(step(clips, labels)) for _ in range(4)]
    assert losses[-1] < losses[0]
    fp16 = TrainStep(build_model("resnet18", num_classes=3, n_segment=2), device=torch.device("cpu"), amp="fp16")
    assert fp16.scaler.is_enabled() and torch.isfinite(fp16(clips, labels))
    with pytest.raises(ValueError, match="unknown amp 'fp8'"):
        TrainStep(model, device=torch.device("cpu"), amp="fp8")


def test_benchmark_training_result_and_ratio_math() -> None:
    result = benchmark_training(
        arch="resnet18", n_segment=2, size=32, batch_size=2, repeats=3, warmup=0, device="cpu", num_classes=5
    )
    assert (result.device, result.amp, result.compile, result.channels_last) == ("cpu", "off", None, True)
    ratios = [b / a for a, b in zip(result.samples_ms["TSN"], result.samples_ms["TSM"], strict=True)]
    assert result.ratio["median"] == pytest.approx(statistics.median(ratios))
    assert result.ratio["min"] == pytest.approx(min(ratios)) and result.ratio["max"] == pytest.approx(max(ratios))
    for name in ("TSN", "TSM"):
        assert len(result.samples_ms[name]) == 3
        assert result.step_ms[name]["median"] == pytest.approx(statistics.median(result.samples_ms[name]))
        assert result.clips_per_s[name] == pytest.approx(2 * 1000 / result.step_ms[name]["median"])
        # gradients of 11M float32 parameters alone are 44 MB
        assert 40 < result.peak_step_mb[name] < 2000
    assert "TSM/TSN step-time ratio" in result.table()


def test_cli_bench_train_writes_json_and_png(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out, png = tmp_path / "train.json", tmp_path / "train.png"
    code = main(
        [
            "bench",
            "train",
            *TINY,
            "--device",
            "cpu",
            "--batch-size",
            "2",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--amp",
            "bf16",
            "--json",
            str(out),
            "--plot",
            str(png),
        ]
    )
    assert code == 0
    data = json.loads(out.read_text())
    for key in (
        "arch",
        "n_segment",
        "size",
        "batch_size",
        "device",
        "amp",
        "compile",
        "channels_last",
        "repeats",
        "warmup",
        "step_ms",
        "clips_per_s",
        "ratio",
        "peak_step_mb",
        "memory_meter",
        "samples_ms",
    ):
        assert key in data, key
    assert (data["arch"], data["amp"], data["batch_size"], data["n_segment"]) == ("resnet18", "bf16", 2, 2)
    assert set(data["ratio"]) == {"median", "q1", "q3", "min", "max"}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "TSM/TSN step-time ratio" in printed and "amp bf16" in printed


def test_cli_bench_inference_json(tmp_path: Path) -> None:
    out = tmp_path / "infer.json"
    argv = [
        "bench",
        "overhead",
        *TINY,
        "--device",
        "cpu",
        "--batch-size",
        "2",
        "--repeats",
        "2",
        "--warmup",
        "0",
        "--json",
        str(out),
    ]
    assert main(argv) == 0
    data = json.loads(out.read_text())
    assert data["compile"] is None and data["batch_size"] == 2 and data["repeats"] == 2
    _, tsm = tsn_tsm_pair(arch="resnet18", n_segment=2)
    batch = torch.randn(2, 2, 3, 32, 32)
    assert data["gflops"]["TSM"] == pytest.approx(count_flops(tsm, batch) / 1e9)  # the whole batch's FLOPs


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--amp", "fp8"], "unknown amp 'fp8'"),
        (["train", "--batch-size", "0"], "batch_size >= 1"),
        (["overhead", "--batch-size", "0"], "batch_size >= 1"),
        (["overhead", "--compile", "--compile-mode", "fastest"], "unknown compile mode 'fastest'"),
        (["train", "--compile", "--compile-mode", "fastest"], "unknown compile mode 'fastest'"),
        (["overhead", "--compile-mode", "default"], "--compile-mode goes with --compile"),
        (["train", "--compile-mode", "default"], "--compile-mode goes with --compile"),
        (["train", "--compile", "--warmup", "1"], "warmup >= 2"),
        (["train", "--repeats", "0"], "repeats >= 1"),
        (["overhead", "--device", "tpu9"], "unknown device 'tpu9'"),
        pytest.param(
            ["train", "--device", "cuda"],
            "device cuda asked for but CUDA is not available",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA"),
        ),
    ],
)
def test_cli_bench_bad_inputs_are_one_line_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    device = [] if "--device" in argv else ["--device", "cpu"]
    assert main(["bench", *argv, *TINY, *device]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("tsm bench: error:") and message in err, err


def test_cli_bench_inference_writes_png(tmp_path: Path) -> None:
    png = tmp_path / "latency.png"
    assert main(["bench", "overhead", *TINY, "--device", "cpu", "--repeats", "2", "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
