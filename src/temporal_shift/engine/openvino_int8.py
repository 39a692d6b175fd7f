"""An int8 OpenVINO model whose convolutions after a shift run in int8: one quantizer after each shift.

NNCF's post-training quantization puts a FakeQuantize at the input of every convolution and
moves it up through a concatenation onto each of its inputs (their scales unified). For a
shift, the concatenation's inputs are the shifted parts, each a Slice of the block input and,
for the moved ones, a zero frame (a Pad, or a concatenated constant in the static-batch form):
NNCF quantizes each part after its Slice. OpenVINO's low-precision transformations then cannot
carry the int8 data through the concatenation (the zero frames are not quantized), so the
convolution after every shift runs in f32 with its int8 weights dequantized: measured on
MobileNetV2 TSM (T=8, 224, 2 threads), its ten convolutions after a shift took 7.3 ms in f32
where the same convolutions in int8 take about 2.4.

One FakeQuantize with the same ranges on the concatenation's output computes the same values
(quantizing is elementwise, so it commutes with slicing, padding and concatenating, provided
zero is a point of the quantization grid, which is checked) and gives the convolution the quantized
input it has in a TSN: FakeQuantize, (Reshape,) Convolution, which runs in int8.

`quantize_after_shift(model)` rewrites an NNCF-quantized ``openvino.Model`` in place; the
OpenVINO export (`engine.export`) applies it after ``nncf.quantize``. `runtime_precisions`
reads what a compiled model's layers run in (how the problem was found).

The streaming step (`engine.export.export_online`) has no zero frames: each shifted layer
concatenates the buffer (an input) with channels ``[fold, C)`` of the current frame's features
``x`` and hands ``x[:, :fold]`` on as the new buffer (an output). NNCF quantizes the two parts
of the concatenation with one quantizer (a FakeQuantize on the buffer, one after the Slice of
``x``), and the new buffer leaves unquantized: OpenVINO then cuts ``x`` in f32 (a VariadicSplit
on its reference implementation) and runs each part's FakeQuantize on its own.
`quantize_new_buffers(model)` puts that quantizer on ``x`` before the cut instead and takes the
new buffer after it, so the cut runs on int8 data and the buffer leaves on the quantization grid,
where the next step's FakeQuantize (the same ranges) leaves it unchanged: the same function (the
values differ by where OpenVINO rounds in between, as between any two int8 builds). On
MobileNetV2's causal step (224, 2 threads, buffers as states, 30 rounds of 20 frames side by
side) TSM/TSN int8 1.245 -> 1.159.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _source(node: Any, index: int = 0) -> Any:
    return node.input(index).get_source_output().get_node()


def _ranges(fake_quantize: Any) -> tuple[np.ndarray, ...]:
    """The input low/high and output low/high constants of a FakeQuantize node."""
    return tuple(np.asarray(_source(fake_quantize, i).get_data()) for i in range(1, 5))


def _levels(fake_quantize: Any) -> int:
    return int(fake_quantize.get_attributes()["levels"])


def _same_quantizer(a: Any, b: Any) -> bool:
    return _levels(a) == _levels(b) and all(np.array_equal(x, y) for x, y in zip(_ranges(a), _ranges(b), strict=True))


def _keeps_zero(fake_quantize: Any) -> bool:
    """Per-tensor ranges under which 0 quantizes to 0: zero is a point of the grid (NNCF aligns its
    ranges so; in int8 it is the zero point, exactly), so zero frames need no quantizer. In the
    f32 arithmetic of the ranges as stored it comes out within a thousandth of a step of 0."""
    ranges = _ranges(fake_quantize)
    if not all(r.size == 1 and np.issubdtype(r.dtype, np.floating) for r in ranges):
        return False
    in_low, in_high, out_low, out_high = (float(r.reshape(())) for r in ranges)
    if not in_low <= 0.0 <= in_high or in_high <= in_low:
        return False
    steps = _levels(fake_quantize) - 1
    level = round((0.0 - in_low) / (in_high - in_low) * steps)
    step = (out_high - out_low) / steps
    return abs(level * step + out_low) <= 1e-3 * abs(step)


def _quantizer_like(fake_quantize: Any, output: Any) -> Any:
    """A FakeQuantize of ``output`` with ``fake_quantize``'s ranges and levels."""
    from openvino import opset13 as ops

    return ops.fake_quantize(output, *[ops.constant(r) for r in _ranges(fake_quantize)], _levels(fake_quantize))


def _only_reader(node: Any) -> bool:
    return len(node.output(0).get_target_inputs()) == 1


def _zeros(node: Any) -> bool:
    """A constant of zeros (possibly converted)."""
    if node.get_type_name() == "Convert":
        node = _source(node)
    return node.get_type_name() == "Constant" and not np.any(node.get_data())


def _padded_with_zeros(pad: Any) -> bool:
    if pad.get_attributes().get("pad_mode", "constant") != "constant":
        return False
    return pad.get_input_size() < 4 or _zeros(_source(pad, 3))


def _quantized_part(node: Any) -> tuple[Any, bool] | None:
    """(the FakeQuantize, whether a zero-padding Pad follows it) for a part that is a FakeQuantize,
    or a zero-padded FakeQuantize, read by nothing else; else None."""
    padded = node.get_type_name() == "Pad" and _padded_with_zeros(node) and _only_reader(node)
    if padded:
        node = _source(node)
    if node.get_type_name() == "FakeQuantize" and _only_reader(node):
        return node, padded
    return None


def _sinkable(concat: Any, sunk: set[str]) -> list[Any] | None:
    """The FakeQuantizes of a shift's concatenation, if one after it gives the same values: every
    input a quantized part (`_quantized_part`) or zeros, at least one zero frame among them (the
    shift's signature: other concatenations are left as NNCF made them; ``sunk``: the quantizers
    already moved after an inner concatenation with zero frames), one quantizer for all."""
    quantizers, zero_frames = [], 0
    for i in range(concat.get_input_size()):
        node = _source(concat, i)
        part = _quantized_part(node)
        if part is not None:
            quantizer, padded = part
            quantizers.append(quantizer)
            zero_frames += padded or quantizer.get_friendly_name() in sunk  # a Pad, or an inner shift's quantizer
        elif _zeros(node):
            zero_frames += 1
        else:
            return None
    if not quantizers or not zero_frames or not _keeps_zero(quantizers[0]):
        return None
    return quantizers if all(_same_quantizer(quantizers[0], q) for q in quantizers[1:]) else None


def quantize_after_shift(model: Any) -> int:
    """Replace the FakeQuantizes on the parts of each shift's concatenation (see the module
    docstring) by one on its output; returns how many concatenations were rewritten. Nested
    concatenations (the static-batch form's zero frames) are rewritten from the inside out, so
    the outer one then sees quantized parts."""

    rewritten, sunk = 0, set[str]()
    for concat in model.get_ordered_ops():
        if concat.get_type_name() != "Concat":
            continue
        quantizers = _sinkable(concat, sunk)
        if quantizers is None:
            continue
        readers = list(concat.output(0).get_target_inputs())
        after = _quantizer_like(quantizers[0], concat.output(0))
        sunk.add(after.get_friendly_name())
        for target in readers:
            target.replace_source_output(after.output(0))
        for quantizer in quantizers:  # each part now goes in unquantized
            for target in list(quantizer.output(0).get_target_inputs()):
                target.replace_source_output(quantizer.input(0).get_source_output())
        rewritten += 1
    if rewritten:
        model.validate_nodes_and_infer_types()
    return rewritten


def _new_buffer_cut(rest: Any) -> Any | None:
    """The Slice of the same features as ``rest`` (a Slice) whose only reader is a ``new_buffer_i``
    output of the step, if there is one."""
    features = rest.input(0).get_source_output()
    for target in features.get_target_inputs():
        node = target.get_node()
        if node is rest or node.get_type_name() != "Slice" or not _only_reader(node):
            continue
        (reader,) = node.output(0).get_target_inputs()
        output = reader.get_node()
        if output.get_type_name() == "Result" and any(
            n.startswith("new_buffer_") for n in output.output(0).get_names()
        ):
            return node
    return None


def quantize_new_buffers(model: Any) -> int:
    """In a streaming step quantized by NNCF, move each shifted layer's quantizer before the cut of
    its features into the new buffer and the rest (see the module docstring); returns how many
    layers were rewritten. Only where the concatenation is (FakeQuantize of an input, FakeQuantize
    of a Slice) with one quantizer whose grid holds zero and the features' other Slice is a new
    buffer output; anything else is left as NNCF made it."""

    rewritten = 0
    for concat in model.get_ordered_ops():
        if concat.get_type_name() != "Concat" or concat.get_input_size() != 2:
            continue
        buffer_q, rest_q = _source(concat, 0), _source(concat, 1)
        if not all(q.get_type_name() == "FakeQuantize" and _only_reader(q) for q in (buffer_q, rest_q)):
            continue
        rest = _source(rest_q)
        if (
            _source(buffer_q).get_type_name() != "Parameter"
            or rest.get_type_name() != "Slice"
            or not _only_reader(rest)
        ):
            continue
        cut = _new_buffer_cut(rest)
        if cut is None or not _same_quantizer(buffer_q, rest_q) or not _keeps_zero(rest_q):
            continue
        quantized = _quantizer_like(rest_q, rest.input(0).get_source_output())
        rest.input(0).replace_source_output(quantized.output(0))
        cut.input(0).replace_source_output(quantized.output(0))
        concat.input(1).replace_source_output(rest.output(0))
        rewritten += 1
    if rewritten:
        model.validate_nodes_and_infer_types()
    return rewritten


def runtime_precisions(compiled: Any, layer_type: str = "Convolution") -> dict[str, int]:
    """How many layers of ``layer_type`` (OpenVINO's execution graph names: ``Convolution``,
    ``Pooling`` ...) a compiled OpenVINO model runs in each precision (``u8``, ``i8``, ``f32``
    ...), from its execution graph."""
    counts: dict[str, int] = {}
    for node in compiled.get_runtime_model().get_ordered_ops():
        info = node.get_rt_info()
        if info["layerType"].astype(str) == layer_type:
            precision = info["runtimePrecision"].astype(str)
            counts[precision] = counts.get(precision, 0) + 1
    return counts
