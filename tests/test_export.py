"""Export: one form of the shift in every exported graph (ONNX, torch.export, TorchScript; offline
bidirectional, causal, the online step; ResNet and MobileNetV2), each format verified in its own
runtime (onnxruntime, ExecuTorch/XNNPACK, OpenVINO, PyTorch; TensorRT on a GPU), int8 builds, the CLI."""

from __future__ import annotations

import copy
import itertools
from unittest import mock

import numpy as np
import onnx
import pytest
import torch

from conftest import calibrated_model
from temporal_shift.checkpoint.format import save_checkpoint
from temporal_shift.cli import main
from temporal_shift.engine.export import (
    calibration_clips,
    check_exportable,
    export_model,
    export_online,
    onnx_graph_summary,
    run_onnx,
    verify_export,
    verify_online_export,
)
from temporal_shift.engine.runtimes import ExportedStream, format_of, load_runtime
from temporal_shift.models import build_model
from temporal_shift.models.online import OnlineRecognizer, OnlineStream
from temporal_shift.ops.shift import OFFSETS, shift_export, shift_with_torch_ops

T = 4
SIZE = 32


def _model(arch: str = "resnet18", **options) -> torch.nn.Module:
    return calibrated_model(arch, num_classes=5, n_segment=T, size=SIZE, calibration_seed=1, **options)


@pytest.fixture(scope="module")
def model():
    return _model()


@pytest.fixture(scope="module")
def online():
    return OnlineRecognizer(_model("mobilenet_v2", mode="causal"))


def test_shift_export_is_the_shift_for_both_batch_kinds():
    """Its static-batch spelling (per-clip slices) and its dynamic one (traced: a (N, T, C, H*W) view)
    equal the reference for every offset pair, T, fold and batch."""
    for t, c, offsets, n, fold_div in itertools.product(
        (1, 3, 4), (5, 16), [*OFFSETS.values(), (1, 0)], (1, 2), (2, 8)
    ):
        x = torch.randn(n * t, c, 3, 2)
        fold = c // fold_div
        expected = shift_with_torch_ops(x, t, fold, *offsets)
        assert torch.equal(shift_export(x, t, fold, *offsets), expected)
        with pytest.warns(FutureWarning):  # torch.jit.trace is deprecated upstream
            traced = torch.jit.trace(lambda z, t=t, f=fold, o=offsets: shift_export(z, t, f, *o), x)
        assert torch.equal(traced(x), expected)
        if n == 1:  # a traced graph takes any batch
            other = torch.randn(3 * t, c, 3, 2)
            assert torch.equal(traced(other), shift_with_torch_ops(other, t, fold, *offsets))


# --- the graphs -------------------------------------------------------------------------------------

_FORBIDDEN = ("scatter", "index_put", "copy_", "empty_permuted", "empty_like", "where")


def _check_program(program: torch.export.ExportedProgram, *, dynamic: bool) -> dict[str, int]:
    """Core ATen ops only, no rank-5 tensor past the clip input, static shapes but the batch."""
    program = program.run_decompositions()
    ops: dict[str, int] = {}
    for node in program.graph.nodes:
        if node.op != "call_function":
            continue
        name = str(node.target)
        ops[name] = ops.get(name, 0) + 1
        if isinstance(node.target, torch._ops.OpOverload):
            assert torch.Tag.core in node.target.tags or name.startswith("aten.view_copy"), f"not Core ATen: {name}"
        assert not any(word in name for word in _FORBIDDEN), name
        value = node.meta.get("val")
        if isinstance(value, torch.Tensor):
            if node.args and getattr(node.args[0], "op", None) == "placeholder" and value.dim() == 5:
                continue  # the (N, T, C, H, W) clips' own view
            assert value.dim() <= 4, f"{name} makes a rank-{value.dim()} tensor"
            symbolic = [i for i, d in enumerate(value.shape) if not isinstance(d, int)]
            assert symbolic in ([], [0]) and (dynamic or not symbolic), f"{name}: dynamic dims {symbolic}"
    return ops


# each case takes 5-15 s on 2 quiet cores (a dynamic batch is the slowest): three run by default, all with -m slow
_SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    ("arch", "kind"),
    [
        ("resnet18", "bidirectional"),
        ("mobilenet_v2", "causal"),
        ("mobilenet_v2", "online"),
        pytest.param("mobilenet_v2", "bidirectional", marks=_SLOW),
        pytest.param("resnet18", "causal", marks=_SLOW),
        pytest.param("resnet18", "online", marks=_SLOW),
    ],
)
def test_exported_graphs_have_the_rank4_shift_in_core_aten(arch, kind):
    """torch.export (the graph ONNX, ExecuTorch and OpenVINO start from): the bidirectional model with a
    dynamic batch, the causal one with a static batch of 2 (the ExecuTorch spelling), the online step."""
    if kind == "online":
        step = OnlineRecognizer(_model(arch, mode="causal"))
        inputs = (torch.randn(1, 3, SIZE, SIZE), *step.initial_buffers(size=(SIZE, SIZE)))
        with torch.no_grad():
            ops = _check_program(torch.export.export(step, inputs), dynamic=False)
    else:
        m = _model(arch, mode=kind)
        dynamic = kind == "bidirectional"
        shapes = ({0: torch.export.Dim("batch", min=1)},) if dynamic else None
        with torch.no_grad():
            program = torch.export.export(m, (torch.randn(2, T, 3, SIZE, SIZE),), dynamic_shapes=shapes)
        ops = _check_program(program, dynamic=dynamic)
    shifts = {"resnet18": 8, "mobilenet_v2": 10}[arch]
    assert ops.get("aten.cat.default", 0) >= shifts


def test_torchscript_graph_has_the_rank4_shift(model):
    with pytest.warns(FutureWarning):
        traced = torch.jit.trace(model, torch.randn(2, T, 3, SIZE, SIZE))
    kinds = [node.kind() for node in traced.inlined_graph.nodes()]
    assert not [k for k in kinds if any(word in k for word in _FORBIDDEN)]
    assert kinds.count("aten::cat") == 8 and kinds.count("aten::reshape") == 16 and "aten::pad" in kinds


def test_onnx_matches_pytorch_with_dynamic_batch_and_has_no_scatter(tmp_path, model):
    path = export_model(model, tmp_path / "tsm.onnx", format="onnx", size=SIZE)
    graph = onnx.load(str(path)).graph
    dims = graph.input[0].type.tensor_type.shape.dim
    assert graph.input[0].name == "clips" and dims[0].dim_param
    assert [d.dim_value for d in dims[1:]] == [T, 3, SIZE, SIZE]
    summary = onnx_graph_summary(path)
    assert "ScatterND" not in summary["ops"] and "Where" not in summary["ops"]
    assert summary["rank5_tensors"] == 0 and summary["ops"]["Concat"] >= 8
    for batch in (1, 3):
        clips = torch.randn(batch, T, 3, SIZE, SIZE)
        with torch.no_grad():
            expected = model(clips)
        got = run_onnx(path, clips)
        assert got.shape == (batch, 5)
        assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
    parity = verify_export(model, path, format="onnx", size=SIZE)
    assert parity.max_rel < 1e-4 and parity.runtime == "onnxruntime" and "3 random clips" in parity.line()


@pytest.mark.parametrize("fmt", ["torchscript", "exported"])
def test_torchscript_and_exported_program(tmp_path, model, fmt):
    path = export_model(model, tmp_path / f"tsm.{fmt}", format=fmt, size=SIZE)
    assert verify_export(model, path, format=fmt, size=SIZE).max_abs < 1e-5


@pytest.mark.parametrize("fmt", ["torchscript", "exported"])
def test_online_step_in_pytorch_formats(tmp_path, online, fmt):
    path = export_online(online, tmp_path / f"step.{fmt}", format=fmt, size=SIZE)
    parity = verify_online_export(online, path, format=fmt, size=SIZE, steps=6)
    assert parity.max_abs < 1e-5, parity.line()


@pytest.mark.slow  # the ExecuTorch lowering and OpenVINO's conversion take ~20 s each on 2 cores
@pytest.mark.parametrize("fmt", ["executorch", "openvino"])
def test_executorch_and_openvino_match_pytorch(tmp_path, model, fmt):
    pytest.importorskip(fmt)
    path = export_model(model, tmp_path / ("tsm.pte" if fmt == "executorch" else "tsm.xml"), format=fmt, size=SIZE)
    runtime = load_runtime(path)
    assert runtime.format == fmt
    # ExecuTorch programs have a static batch (1 by default), OpenVINO's is dynamic
    assert runtime.input_shapes[0] == ((1 if fmt == "executorch" else None), T, 3, SIZE, SIZE)
    parity = verify_export(model, path, format=fmt, size=SIZE)
    assert parity.max_rel < 1e-5, parity.line()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["executorch", "openvino"])
def test_online_step_in_executorch_and_openvino(tmp_path, online, fmt):
    pytest.importorskip(fmt)
    path = export_online(online, tmp_path / ("step.pte" if fmt == "executorch" else "step.xml"), format=fmt, size=SIZE)
    parity = verify_online_export(online, path, size=SIZE, steps=12)
    assert parity.max_rel < 1e-4, parity.line()
    stream = ExportedStream(path)
    with pytest.raises(ValueError, match=r"expected a frame of shape \(1, 3, 32, 32\)"):
        stream.update(torch.randn(3, 16, 16))


def _stream_against_fed_buffers(path, frames, **stream_options):
    """Logits of ``frames`` through an `ExportedStream` and through the plain runtime fed its buffers."""
    stream = ExportedStream(path, **stream_options)
    plain = load_runtime(path)
    buffers = [torch.zeros(shape) for shape in plain.input_shapes[1:]]
    fed = []
    for frame in frames:
        logits, *buffers = plain(frame.unsqueeze(0), *buffers)
        fed.append(logits[0])
    return stream, torch.stack([stream.update(f) for f in frames]), torch.stack(fed)


@pytest.mark.parametrize("quantize", [None, pytest.param("int8", marks=pytest.mark.slow)])
def test_an_openvino_stream_keeps_its_buffers_as_states(tmp_path, online, quantize):
    """`ExportedStream` of an OpenVINO step: the buffers become states of the infer request (the frame is
    its only input), it computes what the step fed its buffers computes, and reset starts afresh.
    int8: NNCF's graph (without `quantize_new_buffers`, after which the two forms round differently in
    int8: the next test), the form OpenVINO's own MakeStateful pass fails to compile."""
    pytest.importorskip("nncf" if quantize else "openvino")
    from temporal_shift.engine import export

    frames = torch.randn(6, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    calibration = [frames[None, :4]] if quantize else None
    with mock.patch.object(export, "quantize_new_buffers", lambda model: 0):
        path = export_online(
            online, tmp_path / "step.xml", format="openvino", size=SIZE, quantize=quantize, calibration=calibration
        )
    stream, got, fed = _stream_against_fed_buffers(path, frames)
    assert stream.runtime.states == online.num_buffers == 10
    assert [p.get_any_name() for p in stream.runtime.compiled.inputs] == ["frame"]
    assert len(stream.runtime.input_names) == 11  # the file's signature, as the file has it
    torch.testing.assert_close(got, fed, rtol=1e-5, atol=1e-6)
    assert (got[1:] - got[0]).abs().max() > 0  # the frames differ: so do their logits
    stream.reset()
    torch.testing.assert_close(torch.stack([stream.update(f) for f in frames]), got, rtol=0, atol=0)
    # a copy (`StreamModel.new_stream`: one per connection) has states of its own
    stream.reset()
    other = copy.copy(stream)
    other.reset()
    first = [stream.update(frames[0]), other.update(frames[5]), stream.update(frames[1])]
    torch.testing.assert_close(first[0], got[0], rtol=0, atol=0)
    torch.testing.assert_close(first[2], got[1], rtol=0, atol=0)  # the other stream's frame did not enter
    other.reset()  # nor does its reset touch this stream
    torch.testing.assert_close(stream.update(frames[2]), got[2], rtol=0, atol=0)


@pytest.mark.slow  # NNCF: ~8 s
def test_an_int8_openvino_stream_is_as_close_to_pytorch_as_its_step_fed_its_buffers(tmp_path, online):
    """With its cut in int8 (`openvino_int8.quantize_new_buffers`), an int8 step whose buffers are states
    compiles to other int8 roundings than the step fed its buffers (the first frame's logits already
    differ); both stay as far from PyTorch as each other (this toy model's int8 error is large)."""
    pytest.importorskip("nncf")
    frames = torch.randn(24, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    path = export_online(
        online, tmp_path / "q.xml", format="openvino", size=SIZE, quantize="int8", calibration=[frames[None, :8]]
    )
    _, got, fed = _stream_against_fed_buffers(path, frames)
    reference = OnlineStream(online)
    expected = torch.stack([reference.update(f) for f in frames])
    errors = [(x - expected).abs().mean().item() for x in (got, fed)]
    assert max(errors) <= 1.25 * min(errors), errors


def test_a_step_without_paired_buffers_keeps_its_inputs(tmp_path, model):
    """A TSN step (no buffers), a graph whose names do not pair ``buffer_i`` with ``new_buffer_i`` and
    one whose buffer has a dynamic shape: no state is made; the TSN step streams through its one input."""
    ov = pytest.importorskip("openvino")
    from openvino import opset13 as ops

    from temporal_shift.engine.runtimes import buffers_as_states

    x, b = ops.parameter([1, 2], np.float32, name="frame"), ops.parameter([1, 2], np.float32, name="buffer_0")
    x.output(0).get_tensor().set_names({"frame"})
    b.output(0).get_tensor().set_names({"buffer_0"})
    out = ops.add(x, b)
    out.output(0).get_tensor().set_names({"logits"})
    other = ops.multiply(x, b)
    other.output(0).get_tensor().set_names({"new_buffer_1"})
    graph = ov.Model([out.output(0), other.output(0)], [x, b], "unpaired")
    assert buffers_as_states(graph) == 0 and len(graph.inputs) == 2 and len(graph.outputs) == 2
    graph.outputs[1].get_tensor().set_names({"new_buffer_0"})  # paired now, but of a dynamic shape
    graph.reshape({b.output(0): ov.PartialShape([-1, 2])})
    assert buffers_as_states(graph) == 0 and len(graph.inputs) == 2 and len(graph.outputs) == 2
    graph.reshape({b.output(0): ov.PartialShape([1, 2])})  # static: the pair becomes a state
    assert buffers_as_states(graph) == 1 and len(graph.inputs) == 1 and len(graph.outputs) == 1
    tsn = OnlineRecognizer(_model("mobilenet_v2", shift=False))
    path = export_online(tsn, tmp_path / "tsn.xml", format="openvino", size=SIZE)
    frames = torch.randn(2, 3, SIZE, SIZE)
    stream, got, fed = _stream_against_fed_buffers(path, frames)
    assert stream.runtime.states == 0
    torch.testing.assert_close(got, fed)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["executorch", "openvino"])
def test_int8_builds_agree_with_pytorch_on_their_calibration_clips(tmp_path, model, fmt):
    pytest.importorskip("nncf" if fmt == "openvino" else "executorch")
    clips = [torch.randn(1, T, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(i)) for i in range(8)]
    path = export_model(
        model,
        tmp_path / ("q.pte" if fmt == "executorch" else "q.xml"),
        format=fmt,
        size=SIZE,
        quantize="int8",
        calibration=clips,
    )
    parity = verify_export(model, path, format=fmt, clips=torch.cat(clips))
    assert parity.top1_agreement is not None and parity.max_rel < 0.5, parity.line()


# --- errors -------------------------------------------------------------------------------------------


def test_unknown_format_and_what_a_runtime_cannot_take(tmp_path, model):
    with pytest.raises(ValueError, match="unknown export format 'tflite'"):
        export_model(model, tmp_path / "x", format="tflite")
    eco = build_model("resnet18", family="eco_lite", num_classes=3, n_segment=8)
    with pytest.raises(ValueError, match=r"^a eco_lite model has 3D layers \(.*\), which executorch .* or openvino$"):
        check_exportable(eco, format="executorch")
    check_exportable(eco, format="openvino")  # OpenVINO has 3D convolutions
    with pytest.raises(ValueError, match="--quantize int8 is for executorch and openvino, not onnx"):
        check_exportable(model, format="onnx", quantize="int8")
    with pytest.raises(ValueError, match="needs calibration clips"):
        export_model(model, tmp_path / "q.pte", format="executorch", quantize="int8", calibration=[])
    with pytest.raises(ValueError, match=r"an OpenVINO model is an \.xml file"):
        export_model(model, tmp_path / "m.bin", format="openvino")
    assert format_of("m.pte") == "executorch" and format_of("m.xml") == "openvino"
    with pytest.raises(ValueError, match="cannot tell the format"):
        format_of("m.tflite")


def test_a_missing_runtime_names_the_extra(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name.split(".")[0] == "openvino":
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    monkeypatch.delitem(__import__("sys").modules, "openvino", raising=False)
    (tmp_path / "m.xml").write_text("<net/>")
    missing = r"needs openvino, which is not installed: pip install 'temporal-shift\[deploy\]'"
    with pytest.raises(ValueError, match=missing):
        load_runtime(tmp_path / "m.xml")


# --- calibration clips and the CLI --------------------------------------------------------------------


def test_calibration_clips_read_a_list(tmp_path, make_frames, model):
    for i in range(3):
        make_frames(tmp_path, f"v{i}", 8)
    (tmp_path / "calib.txt").write_text("".join(f"v{i} 8 0\n" for i in range(3)))
    clips = calibration_clips(tmp_path / "calib.txt", root=tmp_path, model=model, size=SIZE, limit=2)
    assert [tuple(c.shape) for c in clips] == [(1, T, 3, SIZE, SIZE)] * 2


def test_cli_export_and_errors(tmp_path, model, capsys):
    ckpt = save_checkpoint(model, tmp_path / "m.pt")
    out = tmp_path / "m.ts"
    assert main(["export", str(ckpt), "--format", "torchscript", "--out", str(out), "--size", str(SIZE)]) == 0
    assert out.is_file()
    printed = capsys.readouterr().out
    assert "verified in torch.jit: max abs difference to PyTorch" in printed and "max relative difference" in printed

    assert main(["export", str(tmp_path / "missing.pt"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoint not found" in err[0] and "missing.pt" in err[0]

    for args, message in [
        (["--format", "onnx", "--quantize", "int8"], "--quantize int8 is for executorch and openvino, not onnx"),
        (["--format", "executorch", "--quantize", "int8"], "needs --calibration LIST"),
        (["--format", "torchscript", "--calibration", "x.txt"], "--calibration goes with --quantize int8"),
    ]:
        assert main(["export", str(ckpt), "--out", str(tmp_path / "x"), *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err

    eco = save_checkpoint(build_model("resnet18", family="eco_lite", num_classes=3, n_segment=8), tmp_path / "eco.pt")
    assert main(["export", str(eco), "--format", "executorch", "--out", str(tmp_path / "eco.pte")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a eco_lite model has 3D layers" in err[0] and "executorch" in err[0]


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_matches_pytorch(tmp_path, model, precision):
    pytest.importorskip("tensorrt")
    path = export_model(model, tmp_path / f"tsm-{precision}.engine", format="tensorrt", size=SIZE, precision=precision)
    parity = verify_export(model, path, format="tensorrt", size=SIZE)
    assert parity.max_rel < (1e-4 if precision == "fp32" else 2e-2), parity.line()
