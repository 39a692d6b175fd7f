"""The temporal shift op against an independent explicit-loop reference."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch

from temporal_shift.ops.shift import TemporalShift, temporal_shift


def reference_shift(x: np.ndarray, n_segment: int, fold_div: int, mode: str) -> np.ndarray:
    """Explicit loops over clips, time and channels: the definition, written out."""
    nt, c = x.shape[:2]
    fold = c // fold_div
    out = np.zeros_like(x)
    for n in range(nt // n_segment):
        for t in range(n_segment):
            i = n * n_segment + t
            for ch in range(c):
                if mode == "bidirectional" and ch < fold:
                    src = t + 1  # first fold: from the next frame
                elif mode == "bidirectional" and ch < 2 * fold:
                    src = t - 1  # second fold: from the previous frame
                elif mode == "causal" and ch < fold:
                    src = t - 1
                else:
                    src = t
                if 0 <= src < n_segment:
                    out[i, ch] = x[n * n_segment + src, ch]
    return out


@pytest.mark.parametrize("mode", ["bidirectional", "causal"])
@pytest.mark.parametrize(
    ("n", "t", "c", "fold_div"),
    [(2, 8, 16, 8), (1, 8, 67, 8), (3, 4, 5, 8), (2, 1, 16, 8), (2, 3, 12, 4), (1, 5, 9, 2)],
)
def test_matches_explicit_loops(mode, n, t, c, fold_div):
    x = torch.randn(n * t, c, 3, 2, dtype=torch.float64)
    expected = reference_shift(x.numpy(), t, fold_div, mode)
    got = temporal_shift(x, t, fold_div=fold_div, mode=mode)
    np.testing.assert_array_equal(got.numpy(), expected)
    assert got.shape == x.shape and got.data_ptr() != x.data_ptr()


def test_published_convention_on_a_labelled_tensor():
    # value = 100*t + channel, one clip of 3 frames, 8 channels, fold = 1
    x = (torch.arange(3)[:, None] * 100 + torch.arange(8)[None, :]).float().view(3, 8, 1, 1)
    out = temporal_shift(x, 3, fold_div=8).view(3, 8)
    assert out[:, 0].tolist() == [100, 200, 0]  # channel 0 from t+1
    assert out[:, 1].tolist() == [0, 1, 101]  # channel 1 from t-1
    assert torch.equal(out[:, 2:], x.view(3, 8)[:, 2:])
    causal = temporal_shift(x, 3, fold_div=8, mode="causal").view(3, 8)
    assert causal[:, 0].tolist() == [0, 0, 100]
    assert torch.equal(causal[:, 1:], x.view(3, 8)[:, 1:])


def test_channels_smaller_than_fold_div_is_identity():
    x = torch.randn(8, 5, 2, 2)
    assert torch.equal(temporal_shift(x, 4, fold_div=8), x)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtypes(dtype):
    x = torch.randn(8, 16, 2, 2).to(dtype)
    expected = reference_shift(x.double().numpy(), 4, 8, "bidirectional")
    got = temporal_shift(x, 4)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got.double().numpy(), expected)


@pytest.mark.parametrize("mode", ["bidirectional", "causal"])
def test_channels_last_keeps_values_and_layout(mode):
    x = torch.randn(8, 24, 5, 3).contiguous(memory_format=torch.channels_last)
    got = temporal_shift(x, 4, mode=mode)
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(got, temporal_shift(x.contiguous(), 4, mode=mode))


@pytest.mark.parametrize("mode", ["bidirectional", "causal"])
def test_gradient_is_the_exact_adjoint(mode):
    x = torch.randn(6, 9, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: temporal_shift(v, 3, fold_div=4, mode=mode), (x,))
    # adjoint: <shift(x), y> == <x, shift^T(y)> with shift^T the backward pass
    y = torch.randn(6, 9, 2, 2, dtype=torch.float64)
    (grad,) = torch.autograd.grad(temporal_shift(x, 3, fold_div=4, mode=mode), x, y)
    lhs = (temporal_shift(x, 3, fold_div=4, mode=mode) * y).sum()
    assert torch.allclose(lhs, (x * grad).sum())
    # the backward of a forward shift is a backward shift on the same channels
    fold = 9 // 4
    g5, y5 = grad.view(2, 3, 9, 2, 2), y.view(2, 3, 9, 2, 2)
    if mode == "bidirectional":
        assert torch.equal(g5[:, 1:, :fold], y5[:, :-1, :fold]) and not g5[:, 0, :fold].any()
    else:
        assert torch.equal(g5[:, :-1, :fold], y5[:, 1:, :fold]) and not g5[:, -1, :fold].any()


def test_trace_has_no_warnings_and_generalises_over_batch():
    module = TemporalShift(torch.nn.Identity(), 4)
    x = torch.randn(8, 16, 3, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.trace itself is deprecated
        traced = torch.jit.trace(module, x)
    other = torch.randn(12, 16, 3, 3)
    assert torch.equal(traced(other), temporal_shift(other, 4))


def test_torch_export_with_dynamic_batch():
    module = TemporalShift(torch.nn.Conv2d(16, 4, 1), 4).eval()
    batch = torch.export.Dim("batch")
    program = torch.export.export(module, (torch.randn(8, 16, 3, 3),), dynamic_shapes={"x": {0: 4 * batch}})
    other = torch.randn(12, 16, 3, 3)
    assert torch.allclose(program.module()(other), module(other))


@pytest.mark.gpu
def test_cuda_matches_cpu():
    x = torch.randn(8, 24, 4, 4)
    assert torch.equal(temporal_shift(x.cuda(), 4).cpu(), temporal_shift(x, 4))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(x=torch.randn(7, 16, 2, 2), n_segment=4), "not divisible by n_segment=4"),
        (dict(x=torch.randn(8, 16, 2, 2), n_segment=4, fold_div=1), "fold_div must be an int >= 2, got 1"),
        (dict(x=torch.randn(8, 16, 2), n_segment=4), r"4-D \(N\*T, C, H, W\) tensor, got shape \(8, 16, 2\)"),
        (dict(x=torch.randn(8, 16, 2, 2), n_segment=4, mode="left"), "unknown shift mode 'left'"),
        (dict(x=torch.randn(8, 16, 2, 2), n_segment=0), "n_segment must be a positive int, got 0"),
    ],
)
def test_invalid_input_names_the_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        temporal_shift(**kwargs)


def test_module_shifts_then_calls_wrapped_module():
    conv = torch.nn.Conv2d(16, 4, 1)
    module = TemporalShift(conv, 4, fold_div=4, mode="causal")
    x = torch.randn(8, 16, 3, 3)
    assert torch.equal(module(x), conv(temporal_shift(x, 4, fold_div=4, mode="causal")))
    with pytest.raises(ValueError, match="unknown shift mode"):
        TemporalShift(conv, 4, mode="both")
    assert "n_segment=4, fold_div=4, mode='causal'" in repr(module)


# --- the inference fast path of TemporalShift ------------------------------------------


@pytest.mark.parametrize("mode", ["bidirectional", "causal"])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("context", ["no_grad", "inference_mode"])
def test_in_place_inference_path_is_exact_and_restores_input(mode, channels_last, context):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(20, 6, 1)
    fast = TemporalShift(conv, 4, mode=mode)
    slow = TemporalShift(conv, 4, mode=mode, inplace_inference=False)
    with torch.no_grad() if context == "no_grad" else torch.inference_mode():
        x = torch.randn(8, 20, 5, 5)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        before = x.clone()
        assert fast._can_shift_in_place(x)
        expected = conv(temporal_shift(x, 4, mode=mode))
        assert torch.equal(fast(x), expected)
        assert torch.equal(slow(x), expected)
        assert torch.equal(x, before)  # restored


def test_in_place_path_is_not_taken_when_it_would_be_unsafe():
    conv = torch.nn.Conv2d(16, 4, 1)
    shift = TemporalShift(conv, 2)
    x = torch.randn(4, 16, 3, 3)
    assert not shift._can_shift_in_place(x)  # grad enabled and conv weights require grad
    with torch.no_grad():
        assert not shift._can_shift_in_place(x.expand(4, 16, 3, 3)[:, :, :, :2])  # not dense
        assert not TemporalShift(torch.nn.ReLU(), 2)._can_shift_in_place(x)  # may alias its input
    with torch.inference_mode():
        frozen = torch.randn(4, 16, 3, 3)
    with torch.no_grad():
        assert not shift._can_shift_in_place(frozen)  # inference tensor outside inference mode
    # training: gradients equal the out-of-place path's
    x.requires_grad_(True)
    shift(x).sum().backward()
    grad = x.grad.clone()
    x.grad = None
    TemporalShift(conv, 2, inplace_inference=False)(x).sum().backward()
    assert torch.equal(grad, x.grad)


# --- the registered operator: one autograd node, adjoint backward, compile ------------


def _autograd_node_names(out: torch.Tensor) -> list[str]:
    names, stack, seen = [], [out.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.append(type(node).__name__)
        stack.extend(fn for fn, _ in node.next_functions)
    return names


@pytest.mark.parametrize("mode", ["bidirectional", "causal"])
def test_one_autograd_node_and_no_copy_slices(mode):
    x = torch.randn(8, 16, 3, 3, requires_grad=True)
    names = _autograd_node_names(temporal_shift(x, 4, mode=mode))
    assert not any("CopySlices" in n for n in names), names
    assert len([n for n in names if n != "AccumulateGrad"]) == 1, names


@pytest.mark.parametrize("mode", ["bidirectional", "causal"])
@pytest.mark.parametrize(("t", "c", "fold_div"), [(3, 9, 4), (1, 8, 8), (4, 5, 2)])
def test_op_gradcheck_and_double_backward(mode, t, c, fold_div):
    x = torch.randn(2 * t, c, 2, 3, dtype=torch.float64, requires_grad=True)
    fn = lambda v: temporal_shift(v, t, fold_div=fold_div, mode=mode)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


@pytest.mark.parametrize("channels_last", [False, True])
def test_backward_matches_the_slice_shift_bit_for_bit(channels_last):
    from temporal_shift.ops.shift import shift_with_torch_ops

    x = torch.randn(16, 67, 5, 4)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    grad = torch.randn(16, 67, 5, 4)
    for mode, offsets in (("bidirectional", (1, -1)), ("causal", (-1, 0))):
        a = x.clone().requires_grad_(True)
        b = x.clone().requires_grad_(True)
        temporal_shift(a, 8, mode=mode).backward(grad)
        # autograd through the slice copies: the behaviour before the op existed
        shift_with_torch_ops(b, 8, 67 // 8, *offsets).backward(grad)
        assert torch.equal(a.grad, b.grad)


def test_opcheck():
    x = torch.randn(8, 12, 3, 2, requires_grad=True)
    for args in ((4, 1, 1, -1), (4, 1, -1, 0), (4, 0, 1, -1), (8, 6, 1, -1)):
        torch.library.opcheck(torch.ops.temporal_shift.shift.default, (x, *args))
    xcl = torch.randn(8, 12, 3, 2).contiguous(memory_format=torch.channels_last)
    torch.library.opcheck(torch.ops.temporal_shift.shift.default, (xcl, 4, 1, 1, -1))


def test_compile_fullgraph_no_graph_break():
    torch._dynamo.reset()
    module = TemporalShift(torch.nn.Conv2d(16, 8, 3, padding=1), 4)
    x = torch.randn(8, 16, 6, 6, requires_grad=True)
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    out = compiled(x)
    assert torch.equal(out, module(x))
    (g_compiled,) = torch.autograd.grad(out.sum(), x)
    (g_eager,) = torch.autograd.grad(module(x).sum(), x)
    assert torch.allclose(g_compiled, g_eager)
    # the registered op on its own also compiles without a break (its fake gives the strides)
    op = torch.compile(
        lambda v: torch.ops.temporal_shift.shift(v, 4, 2, 1, -1) * 2, fullgraph=True, backend="aot_eager"
    )
    assert torch.equal(op(x.detach()), temporal_shift(x.detach(), 4) * 2)


@pytest.mark.parametrize("channels_last", [False, True])
def test_functional_form_matches_and_keeps_the_layout(channels_last):
    from temporal_shift.ops.shift import shift_functional, shift_with_torch_ops

    for t, c, fold_div in ((1, 8, 8), (3, 9, 4), (4, 67, 8), (2, 5, 2)):
        x = torch.randn(2 * t, c, 3, 2)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        for offsets in ((1, -1), (-1, 0), (-1, 1), (1, 0)):
            got = shift_functional(x, t, c // fold_div, *offsets)
            assert torch.equal(got, shift_with_torch_ops(x, t, c // fold_div, *offsets))
            assert got.stride() == x.stride()


def test_inductor_writes_the_shift_once_in_the_convolutions_layout():
    """A compiled TSM bottleneck has one extra forward kernel (the shift) over TSN, none in
    backward, and feeds the conv a channels_last buffer without a layout conversion."""
    from torch._inductor.utils import run_and_get_code
    from torchvision.models.resnet import Bottleneck

    def generated(shift: bool) -> str:
        torch._dynamo.reset()
        torch.manual_seed(0)
        block = Bottleneck(32, 8)
        if shift:
            block.conv1 = TemporalShift(block.conv1, 4)
        block = block.to(memory_format=torch.channels_last).train()
        x = torch.randn(8, 32, 6, 6).contiguous(memory_format=torch.channels_last).requires_grad_(True)
        compiled = torch.compile(block, fullgraph=True)

        def step():
            out = compiled(x)
            out.sum().backward()
            return out

        out, code = run_and_get_code(step)
        assert torch.allclose(out, block(x), atol=1e-5)
        return "\n".join(code)

    code = {name: generated(name == "tsm") for name in ("tsn", "tsm")}
    kernels = {
        name: set(re.findall(r"\b(cpp_fused_\w+|triton_\w+) = async_compile", text)) for name, text in code.items()
    }
    assert len(kernels["tsm"]) == len(kernels["tsn"]) + 1, kernels
    # no NCHW (contiguous) buffer of the block input, 4-D or as a (N, T, C, H, W) view: the
    # shift is written once, channels_last, straight into the convolution's input
    assert "(1152, 36, 6, 1)" not in code["tsm"] and "(4608, 1152, 36, 6, 1)" not in code["tsm"]
