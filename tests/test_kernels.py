"""The Triton kernels, bit for bit against the torch-ops shift.

Without a GPU the kernels run in Triton's interpreter on the CPU: ``TRITON_INTERPRET``
is read when a kernel is defined, so the module is (re)loaded here with it set.
"""

from __future__ import annotations

import importlib
import os

import pytest
import torch

from temporal_shift.ops.kernels import triton_available
from temporal_shift.ops.shift import OFFSETS, shift_with_torch_ops

pytestmark = pytest.mark.skipif(not triton_available(), reason="Triton is not installed")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture(scope="module")
def kernels():
    name = "temporal_shift.ops.kernels.triton_shift"
    if DEVICE == "cuda":
        yield importlib.import_module(name)
        return
    # Triton reads the switch when a kernel is defined and again when it is launched
    before = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        yield importlib.reload(importlib.import_module(name))
    finally:
        if before is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = before
        importlib.reload(importlib.import_module(name))  # leave GPU kernels for later users


SHAPES = [  # (clips, T, C, H, W, fold_div)
    (2, 8, 16, 3, 2, 8),
    (1, 8, 67, 2, 3, 8),
    (3, 4, 5, 2, 2, 8),
    (2, 1, 16, 2, 2, 8),
    (2, 3, 12, 3, 1, 4),
    (1, 5, 9, 2, 2, 2),
    (2, 4, 33, 1, 3, 16),
]
CASES = [
    (shape, mode, layout)
    for shape in SHAPES
    for mode in ("bidirectional", "causal")
    for layout in ("contiguous", "channels_last")
]


def _input(shape, layout, dtype=torch.float64):
    clips, t, c, h, w, _ = shape
    x = torch.randn(clips * t, c, h, w, dtype=dtype, device=DEVICE)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    return x


@pytest.mark.parametrize(("shape", "mode", "layout"), CASES)
def test_out_of_place_forward_and_adjoint(kernels, shape, mode, layout):
    x = _input(shape, layout)
    t, fold = shape[1], shape[2] // shape[5]
    a, b = OFFSETS[mode]
    got = kernels.shift_out_of_place(x, t, fold, a, b)
    assert got.stride() == x.stride()
    assert torch.equal(got, shift_with_torch_ops(x, t, fold, a, b))
    backward = kernels.shift_out_of_place(x, t, fold, -a, -b)
    assert torch.equal(backward, shift_with_torch_ops(x, t, fold, -a, -b))


@pytest.mark.parametrize(("shape", "mode", "layout"), CASES)
def test_in_place_shift_and_restore(kernels, shape, mode, layout):
    x = _input(shape, layout)
    t, fold = shape[1], shape[2] // shape[5]
    a, b = OFFSETS[mode]
    work = x.clone()
    edge = kernels.shift_in_place(work, t, fold, a, b)
    assert torch.equal(work, shift_with_torch_ops(x, t, fold, a, b))
    assert edge.numel() == shape[0] * fold * (2 if b else 1) * shape[3] * shape[4]
    kernels.restore_in_place(work, edge, t, fold, a, b)
    assert torch.equal(work, x)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_half_precision_and_float(kernels, dtype, layout):
    shape = (2, 4, 24, 3, 3, 8)
    x = _input(shape, layout, dtype)
    expected = shift_with_torch_ops(x, 4, 3, 1, -1)
    assert torch.equal(kernels.shift_out_of_place(x, 4, 3, 1, -1), expected)
    work = x.clone()
    edge = kernels.shift_in_place(work, 4, 3, 1, -1)
    assert torch.equal(work, expected)
    kernels.restore_in_place(work, edge, 4, 3, 1, -1)
    assert torch.equal(work, x)


def test_refuses_layouts_it_cannot_index(kernels):
    x = torch.randn(8, 16, 4, 4, device=DEVICE)[:, :, :, :3]
    assert not kernels.supports(x)
    with pytest.raises(ValueError, match="contiguous or channels_last"):
        kernels.shift_out_of_place(x, 4, 2, 1, -1)
    with pytest.raises(ValueError, match="n_segment=3"):
        kernels.shift_out_of_place(torch.randn(8, 16, 2, 2, device=DEVICE), 3, 2, 1, -1)


def test_a_compiled_launch_is_kept_per_signature(kernels, monkeypatch):
    """After the first launch of a signature, the compiled kernel's launcher is called directly
    (Triton's argument binding and the input checks are skipped); a new shape, stride, dtype
    or pointer alignment is a new signature. Under the interpreter nothing is kept."""
    from collections import OrderedDict

    from triton.compiler import CompiledKernel

    launches = []

    class Compiled(CompiledKernel):
        module = None  # a stand-in: no binary behind it

        def __init__(self) -> None:
            pass

        def __getitem__(self, grid):
            return lambda *args: launches.append(("launcher", grid, args))

    class Kernel:
        def __getitem__(self, grid):
            def jit(*args):
                launches.append(("jit", grid, args))
                return Compiled()

            return jit

    monkeypatch.setattr(kernels, "_launchers", OrderedDict())
    monkeypatch.setattr(kernels, "LAUNCHERS_KEPT", 2)
    prepared = []

    def arguments():
        prepared.append(True)
        return (3,), (7, "constexpr")

    storage = torch.zeros(64)
    x, out = storage[:16], torch.zeros(16)
    for tensors in ((x, out), (x, out), (storage[1:17], out), (x, out)):
        kernels._launch(Kernel(), ("signature",), tensors, arguments)
    assert [(kind, grid) for kind, grid, _ in launches] == [
        ("jit", (3,)),
        ("launcher", (3, 1, 1)),
        ("jit", (3,)),
        ("launcher", (3, 1, 1)),
    ]
    assert launches[1][2][0] is x and launches[1][2][2:] == (7, "constexpr") and len(prepared) == 2
    kernels._launch(Kernel(), ("another",), (x, out), arguments)  # a third signature: the oldest goes
    assert len(kernels._launchers) == 2 and ("signature", True, True, -1) not in kernels._launchers
    # nothing to launch: nothing kept
    kernels._launch(Kernel(), ("empty",), (x, out), lambda: None)
    assert ("empty", True, True, -1) not in kernels._launchers and len(launches) == 5


def test_interpreted_launches_are_not_kept(kernels):
    x = _input((2, 4, 16, 2, 2, 8), "contiguous")
    for _ in range(2):
        assert torch.equal(kernels.shift_out_of_place(x, 4, 2, 1, -1), shift_with_torch_ops(x, 4, 2, 1, -1))
    assert DEVICE == "cuda" or not kernels._launchers


@pytest.mark.gpu
def test_kept_launches_give_the_same_results_at_any_alignment():
    from temporal_shift.ops.kernels import triton_shift

    base = torch.randn(8 * 24 * 5 * 5 + 3, device="cuda")
    for _ in range(3):  # the first launch of a signature compiles, the next ones reuse it
        for start in (0, 1, 2, 3):  # 16-byte aligned or not: separate signatures
            x = base[start : start + 8 * 24 * 5 * 5].view(8, 24, 5, 5)
            expected = shift_with_torch_ops(x, 4, 3, 1, -1)
            assert torch.equal(triton_shift.shift_out_of_place(x, 4, 3, 1, -1), expected)
            work = base.clone()[start : start + 8 * 24 * 5 * 5].view(8, 24, 5, 5)
            edge = triton_shift.shift_in_place(work, 4, 3, 1, -1)
            assert torch.equal(work, expected)
            triton_shift.restore_in_place(work, edge, 4, 3, 1, -1)
            assert torch.equal(work, x)
    assert triton_shift._launchers


@pytest.mark.gpu
def test_cuda_dispatch_uses_the_kernels_in_training_and_inference():
    from temporal_shift.ops.shift import TemporalShift, temporal_shift

    conv = torch.nn.Conv2d(24, 8, 1).cuda()
    x = torch.randn(8, 24, 5, 5, device="cuda").contiguous(memory_format=torch.channels_last)
    expected = shift_with_torch_ops(x, 4, 3, 1, -1)
    assert torch.equal(temporal_shift(x, 4), expected)
    leaf = x.clone().requires_grad_(True)
    grad = torch.randn_like(x)
    temporal_shift(leaf, 4).backward(grad)
    assert torch.equal(leaf.grad, shift_with_torch_ops(grad, 4, 3, -1, 1))
    with torch.inference_mode():
        before = x.clone()
        assert torch.equal(TemporalShift(conv, 4)(x), conv(expected))
        assert torch.equal(x, before)
