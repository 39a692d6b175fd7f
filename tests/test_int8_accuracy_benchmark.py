"""benchmarks/int8_accuracy.py: top-1 and latency of a checkpoint before and after int8, offline
clips and (``--online``) the streaming step frame by frame, on a dataset the test writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import benchmark_script, calibrated_model
from temporal_shift.checkpoint.format import save_checkpoint
from temporal_shift.data.synthetic import generate_synthetic

SIZE = 32


@pytest.fixture(scope="module")
def script():
    return benchmark_script("int8_accuracy")


def _checkpoint(path: Path, **options) -> Path:
    model = calibrated_model("resnet18", num_classes=12, n_segment=4, size=SIZE, calibration_seed=1, **options)
    return save_checkpoint(model, path, extra={"config": {"data": {"size": SIZE, "scale_size": SIZE}}})


def _data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    generate_synthetic(root, num_videos=24, size=SIZE, frames=8, clutter=False, workers=1, progress=False)
    return root


@pytest.mark.slow  # ten exports, eight of them quantized: ~1.5 min on 2 cores
def test_the_streaming_step_is_scored_frame_by_frame_in_every_build(script, tmp_path):
    pytest.importorskip("openvino")
    pytest.importorskip("executorch")
    checkpoint = _checkpoint(tmp_path / "causal.pt", shift=True, mode="causal")
    argv = ["--checkpoint", str(checkpoint), "--root", str(_data(tmp_path)), "--online", "--repeats", "3"]
    argv += ["--calibration-clips", "2", "--threads", "1", "--out-dir", str(tmp_path / "out"), "--nncf-settings"]
    results = script.main([*argv, "--json", str(tmp_path / "online.json")])
    settings = [f"openvino-int8-{setting}" for setting in script.NNCF_SETTINGS]
    builds = ["executorch-fp32", "executorch-int8", "openvino-fp32", "openvino-int8", "openvino-int8-nncf-cut"]
    builds += settings
    assert list(results) == ["pytorch", *builds]
    # each setting changes the quantized step (NNCF's default ranges are not the export's extremes)
    rows = [results[name] for name in ("openvino-int8", *settings)]
    assert len({row["mean_abs_logit_difference"] for row in rows}) == len(rows), rows
    for name in ("executorch-fp32", "openvino-fp32"):  # fp32 streams as PyTorch does
        assert results[name]["max_abs_logit_difference"] < 1e-3, results[name]
        assert results[name]["agreement_with_pytorch"] == 100.0
    for name in builds:
        row = results[name]
        assert 0 <= row["top1"] <= 100 and row["latency_ms_median"] > 0
        assert row["latency_ms_iqr"][0] <= row["latency_ms_median"] <= row["latency_ms_iqr"][1]
    assert results["openvino-int8"]["max_abs_logit_difference"] > 0  # quantized: not the fp32 logits
    saved = json.loads((tmp_path / "online.json").read_text())
    assert saved["online"] is True and saved["results"] == json.loads(json.dumps(results))
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.suffix in (".pte", ".xml")) == sorted(
        f"online-{name}{'.pte' if name.startswith('executorch') else '.xml'}" for name in builds
    )


def test_online_needs_a_causal_checkpoint(script, tmp_path, capsys):
    checkpoint = _checkpoint(tmp_path / "offline.pt", shift=True)
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--checkpoint", str(checkpoint), "--root", str(tmp_path), "--online"])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"--online: {checkpoint}: a bidirectional TSM model cannot stream" in message


def test_nncf_settings_need_the_streaming_step(script, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--checkpoint", str(tmp_path / "x.pt"), "--root", str(tmp_path), "--nncf-settings"])
    assert exit_info.value.code == 2
    assert "--nncf-settings compares builds of the streaming step: add --online" in capsys.readouterr().err
