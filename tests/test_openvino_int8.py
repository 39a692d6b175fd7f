"""`engine.openvino_int8.quantize_after_shift`: one quantizer after each shift of an NNCF int8 model, so
that every convolution runs in int8; the same values; nothing rewritten where they would change."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import calibrated_model
from temporal_shift.engine.export import export_model, verify_export, verify_online_export

ov = pytest.importorskip("openvino")
from openvino import opset13 as ops  # noqa: E402

from temporal_shift.engine.openvino_int8 import quantize_after_shift, runtime_precisions  # noqa: E402

T, SIZE = 4, 32
# a grid of 255 steps from -1.28 to 1.27 (0 is its 128th point) and one without 0 on it
ON_GRID, OFF_GRID = (-1.28, 1.27), (-1.005, 1.545)


def _fake_quantize(x, low: float, high: float):
    limits = [ops.constant(np.float32(v)) for v in (low, high, low, high)]
    return ops.fake_quantize(x, *limits, 256)


def _slice(x, lo: int, hi: int, axis: int):
    ints = [ops.constant(np.int64([v])) for v in (lo, hi, 1, axis)]
    return ops.slice(x, *ints)


def _shift_like(ranges, *, padded: bool = True, zero_frame: bool = True):
    """A graph shaped like NNCF's quantized shift on the (N, T, C, HW) view: two moved parts (a Slice
    along T, a FakeQuantize, a zero frame padded along T) and the rest, each part with its own
    FakeQuantize (``ranges``: one (low, high) each), concatenated along C, then a convolution's
    input reshape. ``zero_frame=False``: no zero frame at all (a concatenation of other kinds)."""
    x = ops.parameter([1, 4, 8, 9], np.float32, name="x")
    moved = [
        (_slice(_slice(x, 1, 4, 1), 0, 2, 2), [0, 0, 0, 0], [0, 1, 0, 0]),  # from t+1
        (_slice(_slice(x, 0, 3, 1), 2, 4, 2), [0, 1, 0, 0], [0, 0, 0, 0]),  # from t-1
    ]
    parts = []
    for (part, begin, end), r in zip(moved, ranges[:2], strict=True):
        q = _fake_quantize(part if zero_frame else _slice(x, 0, 4, 1), *r)
        if padded and zero_frame:
            parts.append(ops.pad(q, np.int64(begin), np.int64(end), "constant", ops.constant(np.float32(0))))
        elif zero_frame:  # the static-batch form: a constant zero frame concatenated along T
            zeros = ops.constant(np.zeros((1, 1, 2, 9), np.float32))
            parts.append(ops.concat([zeros, q] if begin[1] else [q, zeros], axis=1))
        else:
            parts.append(q)
    parts.append(_fake_quantize(_slice(x, 4, 8, 2), *ranges[2]))
    out = ops.reshape(ops.concat(parts, axis=2), ops.constant(np.int64([4, -1, 3, 3])), False)
    return ov.Model([out.output(0)], [x], "shift")


def _run(model, x: np.ndarray) -> np.ndarray:
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return compiled({0: x})[0]


def _quantizers_read_by(model) -> list[str]:
    """The type of each FakeQuantize's first reader."""
    return sorted(
        next(iter(n.output(0).get_target_inputs())).get_node().get_type_name()
        for n in model.get_ordered_ops()
        if n.get_type_name() == "FakeQuantize"
    )


@pytest.mark.parametrize("padded", [True, False], ids=["pad", "static-batch"])
def test_one_quantizer_after_the_shift_gives_the_same_values(padded):
    model = _shift_like([ON_GRID] * 3, padded=padded)
    x = np.random.default_rng(0).normal(size=(1, 4, 8, 9)).astype(np.float32)
    before = _run(model, x)
    assert quantize_after_shift(model) == (1 if padded else 3)  # the static form's inner concatenations first
    assert _quantizers_read_by(model) == ["Reshape"]  # one FakeQuantize, on the concatenation, before the conv
    # the same grid point everywhere (a step is 0.01); the kernels round the f32 arithmetic differently
    np.testing.assert_allclose(_run(model, x), before, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "ranges, zero_frame",
    [
        ([ON_GRID, ON_GRID, (-1.0, 1.0)], True),  # the parts' quantizers differ
        ([OFF_GRID] * 3, True),  # 0 is not on the grid: the zero frames would change
        ([ON_GRID] * 3, False),  # no zero frame: a concatenation that is not a shift's
    ],
    ids=["different-ranges", "zero-off-grid", "not-a-shift"],
)
def test_nothing_is_rewritten_where_it_would_change_the_values_or_is_not_a_shift(ranges, zero_frame):
    model = _shift_like(ranges, zero_frame=zero_frame)
    assert quantize_after_shift(model) == 0
    assert _quantizers_read_by(model).count("Reshape") == 0


def test_a_slice_read_elsewhere_keeps_its_quantizer():
    """A part whose quantized values have another reader is not moved (that reader would lose them)."""
    model = _shift_like([ON_GRID] * 3)
    rest_quantizer = next(
        n
        for n in model.get_ordered_ops()
        if n.get_type_name() == "FakeQuantize"
        and next(iter(n.output(0).get_target_inputs())).get_node().get_type_name() == "Concat"
    )
    extra = ops.relu(rest_quantizer.output(0))
    model.add_results([ops.result(extra)])
    assert quantize_after_shift(model) == 0


@pytest.mark.parametrize(
    "batch_size",
    [None, pytest.param(1, marks=pytest.mark.slow)],  # NNCF and OpenVINO's conversion: ~10 s each on 2 cores
    ids=["dynamic-batch", "static-batch"],
)
def test_every_convolution_of_an_int8_mobilenet_v2_tsm_runs_in_int8(tmp_path, batch_size):
    """Before the rewrite, NNCF's quantizers on the shift's parts left each convolution after a shift
    in f32 (OpenVINO's execution graph says so); now none is, and the model agrees with PyTorch as
    the int8 builds do."""
    pytest.importorskip("nncf")
    model = calibrated_model("mobilenet_v2", num_classes=5, n_segment=T, size=SIZE, calibration_seed=1)
    clips = [torch.randn(1, T, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(i)) for i in range(8)]
    path = export_model(
        model,
        tmp_path / "q.xml",
        format="openvino",
        size=SIZE,
        batch_size=batch_size,
        quantize="int8",
        calibration=clips,
    )
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    precisions = runtime_precisions(compiled)
    assert sum(precisions.values()) == 52 and precisions and set(precisions) <= {"u8", "i8"}, precisions
    parity = verify_export(model, path, format="openvino", clips=torch.cat(clips[:1] if batch_size else clips))
    assert parity.top1_agreement is not None and parity.max_rel < 0.5, parity.line()


def test_an_int8_resnet_tsm_runs_its_max_pool_and_every_convolution_in_int8(tmp_path):
    """The split form (`engine.split_form`) is exported for ResNets; when its blocks started from
    two slices of the stem's max-pooled features, their two quantizers kept the max pool in f32.
    Its stem is split by output channels now, and every layer that runs in int8 in a TSN does."""
    pytest.importorskip("nncf")
    model = calibrated_model("resnet18", num_classes=5, n_segment=T, size=SIZE, calibration_seed=1)
    clips = [torch.randn(1, T, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(i)) for i in range(8)]
    path = export_model(model, tmp_path / "q.xml", format="openvino", size=SIZE, quantize="int8", calibration=clips)
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    pools, convolutions = runtime_precisions(compiled, "Pooling"), runtime_precisions(compiled)
    assert sum(pools.values()) == 2 and set(pools) <= {"u8", "i8"}, pools  # one per part of the stem
    # ResNet-18's 20 convolutions in the split form: each block's two in two parts (32), each
    # projection shortcut in four (12), the stem in two
    assert sum(convolutions.values()) == 46 and set(convolutions) <= {"u8", "i8"}, convolutions
    parity = verify_export(model, path, format="openvino", clips=torch.cat(clips))
    assert parity.top1_agreement is not None and parity.max_rel < 0.5, parity.line()


def _reorders(compiled) -> int:
    """The layout conversions an OpenVINO model runs per inference (not those of its constants)."""
    count = 0
    for node in compiled.get_runtime_model().get_ordered_ops():
        if node.get_rt_info()["layerType"].astype(str) == "Reorder":
            source = node.input(0).get_source_output().get_node()
            count += source.get_rt_info()["layerType"].astype(str) != "Const"
    return count


def test_an_int8_resnet_tsm_of_one_static_clip_runs_no_more_layout_conversions_than_its_tsn(tmp_path):
    """With a dynamic batch, the split form shifts on an (N, T, C, H*W) view, and OpenVINO converts
    the moved channels out of its int8 convolutions' channels-last layout and back around each
    shift (ResNet-18: 17 reorders, its TSN 2). With a static batch of one clip, the shift is a Pad
    of the batch axis (`split_form.shift_one_clip`) and no conversion is left."""
    pytest.importorskip("nncf")
    clips = [torch.randn(1, T, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(i)) for i in range(8)]
    reorders = {}
    for shift in (False, True):
        model = calibrated_model("resnet18", num_classes=5, n_segment=T, size=SIZE, calibration_seed=1, shift=shift)
        path = tmp_path / f"{shift}.xml"
        export_model(model, path, format="openvino", size=SIZE, batch_size=1, quantize="int8", calibration=clips)
        reorders[shift] = _reorders(ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}))
    assert reorders[True] <= reorders[False], reorders
    parity = verify_export(model, path, format="openvino", clips=clips[0])
    assert parity.top1_agreement is not None and parity.max_rel < 0.5, parity.line()


def _first_step(path, frame: np.ndarray) -> dict[str, np.ndarray]:
    """Every output of a streaming step's first frame (zero buffers), by name."""
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    buffers = [np.zeros(tuple(port.get_shape()), np.float32) for port in compiled.inputs[1:]]
    results = compiled.create_infer_request().infer([frame, *buffers])
    return {port.get_any_name(): np.array(results[port]) for port in compiled.outputs}


@pytest.mark.slow  # two NNCF quantizations of the step: ~15 s
def test_an_int8_streaming_step_cuts_its_new_buffers_in_int8_and_hands_on_the_quantized_buffer(tmp_path):
    """NNCF leaves the step's cut of each shifted layer's features into the new buffer and the rest
    in f32 (OpenVINO's execution graph: 10 f32 Splits); `quantize_new_buffers` quantizes before the
    cut, so every Split runs in int8 and the new buffer is NNCF's quantized by the quantizer the next
    step would apply to it (the same ranges), and the step streams as an int8 build does."""
    pytest.importorskip("nncf")
    from unittest import mock

    from temporal_shift.engine import export
    from temporal_shift.engine.openvino_int8 import _levels, _ranges, _source, quantize_new_buffers
    from temporal_shift.models.online import OnlineRecognizer

    step = OnlineRecognizer(
        calibrated_model("mobilenet_v2", num_classes=5, n_segment=T, size=SIZE, calibration_seed=1, mode="causal")
    )
    frames = torch.randn(12, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(4))
    options = {"format": "openvino", "size": SIZE, "quantize": "int8", "calibration": [frames[None, :8]]}
    with mock.patch.object(export, "quantize_new_buffers", lambda model: 0):  # NNCF's model as it is
        nncf_path = export.export_online(step, tmp_path / "nncf.xml", **options)
    path = export.export_online(step, tmp_path / "q.xml", **options)
    core = ov.Core()
    assert quantize_new_buffers(core.read_model(str(nncf_path))) == step.num_buffers == 10
    model = core.read_model(str(path))
    assert quantize_new_buffers(model) == 0  # done at export: nothing left to do
    config = {"INFERENCE_PRECISION_HINT": "f32"}
    assert runtime_precisions(core.compile_model(str(nncf_path), "CPU", config), "Split") == {"f32": 10}
    splits = runtime_precisions(core.compile_model(str(path), "CPU", config), "Split")
    assert sum(splits.values()) == 10 and set(splits) <= {"u8", "i8"}, splits
    # the first layer's new buffer: NNCF's, quantized (later layers differ by int8 rounding in between)
    (result,) = [r for r in model.get_results() if "new_buffer_0" in r.output(0).get_names()]
    quantizer = _source(_source(result))  # Result <- Slice <- FakeQuantize
    low, high, out_low, out_high = (float(r.reshape(-1)[0]) for r in _ranges(quantizer))
    steps = _levels(quantizer) - 1
    nncf, ours = (_first_step(p, frames[:1].numpy())["new_buffer_0"] for p in (nncf_path, path))
    expected = (
        np.round((np.clip(nncf, low, high) - low) / (high - low) * steps) / steps * (out_high - out_low) + out_low
    )
    assert np.abs(nncf - expected).max() > 0  # the quantizer moves values: the check can tell
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-3 * (out_high - out_low) / steps)
    parity = verify_online_export(step, path, frames=frames)
    assert parity.top1_agreement is not None and parity.max_rel < 1.0, parity.line()


def test_a_streaming_steps_int8_ranges_are_the_extremes_over_all_its_calibration_frames(tmp_path):
    """A streaming step is calibrated one frame a sample, and NNCF's default range (each sample's
    extremes averaged over the samples) clipped what it streams (docs/deploy.md): the step's
    quantizers take the extremes over all samples instead. Seen on the frame's quantizer."""
    pytest.importorskip("nncf")
    from temporal_shift.engine.export import export_online
    from temporal_shift.engine.openvino_int8 import _ranges
    from temporal_shift.models.online import OnlineRecognizer

    step = OnlineRecognizer(
        calibrated_model("mobilenet_v2", num_classes=5, n_segment=T, size=SIZE, calibration_seed=1, mode="causal")
    )
    # frames of different contrast: each one's extremes are far from all frames' extremes
    scale = torch.linspace(0.5, 3, 8).view(8, 1, 1, 1)
    frames = torch.randn(8, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(4)) * scale
    per_frame = frames.flatten(1).abs().max(1).values
    assert per_frame.mean() < 0.7 * per_frame.max()  # the two ranges are told apart
    path = export_online(
        step, tmp_path / "q.xml", format="openvino", size=SIZE, quantize="int8", calibration=[frames[None]]
    )
    model = ov.Core().read_model(str(path))
    (frame,) = [p for p in model.get_parameters() if "frame" in p.output(0).get_names()]
    (quantizer,) = [t.get_node() for t in frame.output(0).get_target_inputs()]
    assert quantizer.get_type_name() == "FakeQuantize"
    low, high = (float(r.reshape(-1)[0]) for r in _ranges(quantizer)[:2])
    assert high == pytest.approx(float(frames.max()), rel=1e-5)
    assert low == pytest.approx(-high * 128 / 127, rel=1e-5)  # symmetric, 256 levels
