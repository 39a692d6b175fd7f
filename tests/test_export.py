"""Export to ONNX (checked in onnxruntime), TorchScript and torch.export; the CLI."""

from __future__ import annotations

import onnx
import pytest
import torch

from temporal_shift.checkpoint.format import save_checkpoint
from temporal_shift.cli import main
from temporal_shift.engine.export import export_model, run_onnx, verify_export
from temporal_shift.models import build_model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_model("resnet18", num_classes=5, n_segment=4).eval()
    # a non-trivial head so logits are not ~0
    torch.nn.init.normal_(m.head.weight, 0, 0.1)
    return m


def test_onnx_matches_pytorch_with_dynamic_batch(tmp_path, model):
    path = export_model(model, tmp_path / "tsm.onnx", format="onnx", size=64)
    graph = onnx.load(str(path)).graph
    dims = graph.input[0].type.tensor_type.shape.dim
    assert graph.input[0].name == "clips" and dims[0].dim_param and [d.dim_value for d in dims[1:]] == [4, 3, 64, 64]
    for batch in (1, 3):
        clips = torch.randn(batch, 4, 3, 64, 64)
        with torch.no_grad():
            expected = model(clips)
        got = run_onnx(path, clips)
        assert got.shape == (batch, 5)
        assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
    assert verify_export(model, path, format="onnx", size=64) < 1e-4


@pytest.mark.parametrize("fmt", ["torchscript", "exported"])
def test_torchscript_and_exported_program(tmp_path, model, fmt):
    path = export_model(model, tmp_path / f"tsm.{fmt}", format=fmt, size=64)
    assert verify_export(model, path, format=fmt, size=64) < 1e-5


def test_unknown_format(tmp_path, model):
    with pytest.raises(ValueError, match="unknown export format 'tflite'"):
        export_model(model, tmp_path / "x", format="tflite")


def test_cli_export_and_errors(tmp_path, model, capsys):
    ckpt = save_checkpoint(model, tmp_path / "m.pt")
    out = tmp_path / "m.ts"
    assert main(["export", str(ckpt), "--format", "torchscript", "--out", str(out), "--size", "64"]) == 0
    assert out.is_file()
    assert "max relative difference" in capsys.readouterr().out

    assert main(["export", str(tmp_path / "missing.pt"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoint not found" in err[0] and "missing.pt" in err[0]
