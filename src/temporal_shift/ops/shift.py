"""The temporal shift op.

Input and output are (N*T, C, H, W) tensors whose frames of one clip are adjacent (time
varies fastest). With ``fold = C // fold_div``:

- ``mode="bidirectional"`` (offline, the paper's TSM): channels ``[0, fold)`` take the
  value of frame t+1, channels ``[fold, 2*fold)`` take frame t-1, the rest stay. A
  position with no neighbour inside its clip is zero. Matches the reference release.
- ``mode="causal"`` (online): channels ``[0, fold)`` take frame t-1 (zero at t=0), the
  rest stay. Matches the reference release's online demo.

The op is pure data movement: the output is written once (no zero-fill of the whole
tensor, no Python loop over time), which keeps its cost at one read and one write of
the feature map. Which implementation runs depends on the context (`_dispatch`):

- eager: on CUDA a one-pass Triton kernel (`temporal_shift.ops.kernels`), elsewhere a few
  strided copies (`temporal_shift.ops.strided`); with a gradient, one autograd node
  (`nodes.Shift`) whose backward is the adjoint shift;
- ``torch.compile``: `shift_functional`, which Inductor fuses into one pass in the
  convolution's layout, forward and backward;
- TorchScript tracing and ``torch.export`` (hence ONNX, ExecuTorch, OpenVINO, TensorRT):
  `shift_export`, static slices and concatenations on rank-4 tensors (Core ATen ops only),
  in the module path as in `temporal_shift`;
- `TemporalShift` in training keeps the unshifted input for the backward pass, not a
  shifted copy, and shifts it again there: eager, the shift and the convolution it wraps
  are one autograd node (`nodes.ShiftConv2d`); compiled, the shift is checkpointed, which
  makes Inductor recompute it. At inference the shifted channels of a large input move
  inside it and are restored after the wrapped convolution (fused Triton kernels on CUDA).

The registered operator ``torch.ops.temporal_shift.shift`` is the same shift for code that
calls it directly (any context, compiled without a graph break) and checks its arguments;
the model path does not go through it: its dispatch costs more host time than shifting
a small tensor, and the module checks its settings once.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from temporal_shift.ops import strided
from temporal_shift.ops.kernels import triton_available
from temporal_shift.ops.nodes import Shift, fusable, shift_conv2d

MODES = ("bidirectional", "causal")
# time offset of the first and second channel fold: +1 reads frame t+1, -1 frame t-1
OFFSETS = {"bidirectional": (1, -1), "causal": (-1, 0)}


def check_shift_args(*, n_segment: int, fold_div: int, mode: str) -> None:
    """Validate the settings shared by every shift; raise ValueError naming the value."""
    if not isinstance(n_segment, int) or isinstance(n_segment, bool) or n_segment < 1:
        raise ValueError(f"n_segment must be a positive int, got {n_segment!r}")
    if not isinstance(fold_div, int) or isinstance(fold_div, bool) or fold_div < 2:
        raise ValueError(f"fold_div must be an int >= 2, got {fold_div!r}")
    if mode not in MODES:
        raise ValueError(f"unknown shift mode {mode!r}; expected one of {', '.join(MODES)}")


def _check_input(x: Tensor, n_segment: int) -> None:
    if x.dim() != 4:
        raise ValueError(f"temporal_shift expects a 4-D (N*T, C, H, W) tensor, got shape {tuple(x.shape)}")
    if not torch.jit.is_tracing() and x.shape[0] % n_segment != 0:
        raise ValueError(
            f"batch dimension {x.shape[0]} is not divisible by n_segment={n_segment}: "
            "expected (N*T, C, H, W) with T = n_segment"
        )


def temporal_shift(x: Tensor, n_segment: int, *, fold_div: int = 8, mode: str = "bidirectional") -> Tensor:
    """Shift a fraction of the channels of ``x`` (N*T, C, H, W) along time; see the module doc."""
    check_shift_args(n_segment=n_segment, fold_div=fold_div, mode=mode)
    _check_input(x, n_segment)
    return _dispatch(x, n_segment, x.shape[1] // fold_div, *OFFSETS[mode])


def _dispatch(x: Tensor, n_segment: int, fold: int, offset0: int, offset1: int) -> Tensor:
    """The implementation for the context: exported graphs, compiled graphs, or eager."""
    if _is_graph_export():
        # TorchScript and torch.export (hence ONNX, ExecuTorch, OpenVINO): one exported form
        return shift_export(x, n_segment, fold, offset0, offset1)
    if torch.compiler.is_compiling():
        # Inductor fuses the functional form into one pass in the consumer's layout
        return shift_functional(x, n_segment, fold, offset0, offset1)
    if torch.is_grad_enabled() and x.requires_grad:
        return Shift.apply(x, shift_eager, (n_segment, fold, offset0, offset1))
    return shift_eager(x, n_segment, fold, offset0, offset1)


def shift_eager(x: Tensor, n_segment: int, fold: int, offset0: int, offset1: int) -> Tensor:
    """The shift in eager code, out of place: the Triton kernel for a dense CUDA tensor,
    strided copies otherwise. No autograd node (see `nodes.Shift`), no argument checks."""
    if x.is_cuda:
        kernels = _triton_kernels()
        if kernels is not None and kernels.supports(x):
            return kernels.shift_out_of_place(x, n_segment, fold, offset0, offset1)
    return strided.shift_out_of_place(x, n_segment, fold, offset0, offset1)


def shift_with_torch_ops(x: Tensor, n_segment: int, fold: int, offset0: int, offset1: int) -> Tensor:
    """The shift written with standard torch ops (slice copies into a new tensor).

    Channels ``[0, fold)`` read frame ``t + offset0``, channels ``[fold, 2*fold)`` frame
    ``t + offset1`` (offsets in {-1, 0, 1}), zero where that frame is outside the clip;
    the rest are copied. Every output element is written exactly once (no zero-fill of
    the whole tensor). The reference the other implementations are tested against (exported
    graphs take `shift_export`).
    """
    out = torch.empty_like(x)
    # (N, T, C, H, W) views; splitting the outermost dim is a view in any memory format.
    x5 = x.view((-1, n_segment, *tuple(x.shape[1:])))
    out5 = out.view(x5.shape)
    start = 0
    for lo, hi, offset in ((0, fold, offset0), (fold, 2 * fold, offset1)):
        if offset == 0:
            break
        if offset > 0:  # from t+1
            out5[:, :-1, lo:hi] = x5[:, 1:, lo:hi]
            out5[:, -1:, lo:hi] = 0
        else:  # from t-1
            out5[:, 1:, lo:hi] = x5[:, :-1, lo:hi]
            out5[:, :1, lo:hi] = 0
        start = hi
    out5[:, :, start:] = x5[:, :, start:]
    return out


def shift_functional(x: Tensor, n_segment: int, fold: int, offset0: int, offset1: int) -> Tensor:
    """The same shift as one functional expression on the 4-D tensor, for graph capture.

    Each shifted channel group is the input moved by one frame along the batch dim (a
    slice and a zero frame) and masked to zero where the frame crosses a clip boundary;
    the groups are concatenated along channels. No in-place writes, no 5-D view, and a
    channels_last input is handled as the (N*T, H, W, C) tensor it is in memory, so
    torch.compile's Inductor writes the shifted tensor once, in the layout of the
    input and of the following convolution. (Slice copies into a 5-D view, or a
    concatenation along dim 1 of a channels_last tensor, made it write an NCHW buffer
    and convert it to channels_last: two passes, one of them a transpose.) Its backward
    is derived by autograd and fuses into the gradient sum; torch.export / ONNX get
    standard Slice, Pad, Where and Concat ops.
    """
    channels_last = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    y = x.permute(0, 2, 3, 1) if channels_last else x
    dim = 3 if channels_last else 1
    parts = []
    start = 0
    t = None
    for lo, hi, offset in ((0, fold, offset0), (fold, 2 * fold, offset1)):
        if offset == 0:
            break
        if t is None:  # each frame's time index, (N*T, 1, 1, 1)
            t = (torch.arange(x.shape[0], device=x.device) % n_segment).view(-1, 1, 1, 1)
        group = y.narrow(dim, lo, hi - lo)
        # F.pad lists dims from the last one; the last pair pads dim 0 (frames)
        if offset > 0:  # from t+1; the last frame of each clip gets zeros
            moved = nn.functional.pad(group[1:], (0, 0, 0, 0, 0, 0, 0, 1))
            keep = t < n_segment - 1
        else:  # from t-1; the first frame of each clip gets zeros
            moved = nn.functional.pad(group[:-1], (0, 0, 0, 0, 0, 0, 1, 0))
            keep = t > 0
        parts.append(torch.where(keep, moved, torch.zeros((), dtype=x.dtype, device=x.device)))
        start = hi
    parts.append(y.narrow(dim, start, y.shape[dim] - start))
    out = torch.cat(parts, dim=dim)
    return out.permute(0, 3, 1, 2) if channels_last else out


def shift_export(x: Tensor, n_segment: int, fold: int, offset0: int, offset1: int) -> Tensor:
    """The shift as exported graphs have it: static slices and concatenations, rank 4 only.

    Every runtime we deploy to fuses or delegates these ops: no scatter, no in-place write,
    no 5-D tensor, no mask, only Core ATen ops (slice, cat, constant_pad_nd, view). Two
    spellings of the same function, chosen by what the graph knows about the batch:

    - a static batch (ExecuTorch programs, the streaming step): the frames stay in the
      (N*T, C, H, W) tensor; each shifted channel group is the clips' frames sliced along
      the batch dim with one zero frame concatenated at the clip edge. No reshape, so a
      runtime that keeps feature maps channels-last (XNNPACK) runs the shift in its layout,
      inside the delegate: a slice or concatenation along channels is one along its last dim;
    - a dynamic batch N (ONNX, OpenVINO, TorchScript, torch.export with ``Dim("batch")``):
      a (N, T, C, H*W) view, slices along T and C, a zero frame padded along T, one
      concatenation along C, and the view back: static shapes except N.
    """
    batch = x.shape[0]
    groups = []
    for lo, offset in ((0, offset0), (fold, offset1)):
        if offset == 0:
            break
        groups.append((lo, lo + fold, offset))
    rest = fold * len(groups)  # channels [rest, C) stay
    if not groups:
        return x
    if not isinstance(batch, int) or torch.jit.is_tracing():
        c, h, w = x.shape[1:]
        y = x.reshape(-1, n_segment, c, h * w)
        parts = []
        for lo, hi, offset in groups:
            group = y[:, :, lo:hi]
            # F.pad lists dims from the last one; the third pair pads dim 1 (time)
            if offset > 0:  # from t+1; the last frame of each clip gets zeros
                parts.append(nn.functional.pad(group[:, 1:], (0, 0, 0, 0, 0, 1)))
            else:  # from t-1; the first frame of each clip gets zeros
                parts.append(nn.functional.pad(group[:, :-1], (0, 0, 0, 0, 1, 0)))
        parts.append(y[:, :, rest:])
        return torch.cat(parts, dim=2).reshape(x.shape)
    parts = []
    for lo, hi, offset in groups:
        zero = x.new_zeros((1, hi - lo, *tuple(x.shape[2:])))
        pieces = []
        for start in range(0, batch, n_segment):  # one clip at a time: static slices
            clip = x[start : start + n_segment, lo:hi]
            pieces += [clip[1:], zero] if offset > 0 else [zero, clip[:-1]]
        parts.append(torch.cat([p for p in pieces if p.shape[0] > 0], dim=0))
    parts.append(x[:, rest:])
    return torch.cat(parts, dim=1)


# --- the registered operator -----------------------------------------------------------
#
# ``temporal_shift::shift(x, n_segment, fold, offset0, offset1)``: a real torch operator for
# code that calls it directly: autograd records one node per shift, torch.compile traces it
# without a graph break (its fake implementation gives the output's shape and strides) and
# CUDA tensors take the one-pass Triton kernel. Its backward is the same op with the
# opposite offsets. Every implementation (fake included) checks its arguments first.


def check_op_args(x: Tensor, n_segment: int, fold: int, offset0: int, offset1: int) -> None:
    """Validate the registered op's arguments; raise ValueError naming the value.

    The input and ``n_segment`` as `temporal_shift` checks them; ``fold`` channels per
    moved group, the groups (one per non-zero offset, the first offset moving first)
    within the channels; offsets in {-1, 0, 1}.
    """
    if not isinstance(n_segment, int) or isinstance(n_segment, bool) or n_segment < 1:
        raise ValueError(f"n_segment must be a positive int, got {n_segment!r}")
    _check_input(x, n_segment)
    for name, offset in (("offset0", offset0), ("offset1", offset1)):
        if offset not in (-1, 0, 1) or isinstance(offset, bool):
            raise ValueError(f"{name} must be -1, 0 or 1 (frames to read from), got {offset!r}")
    if offset0 == 0 and offset1 != 0:
        raise ValueError(f"offset1 must be 0 when offset0 is 0 (the first group moves first), got {offset1!r}")
    groups = (offset0 != 0) + (offset1 != 0)
    if not isinstance(fold, int) or isinstance(fold, bool) or fold < 0 or groups * fold > x.shape[1]:
        raise ValueError(f"fold must be an int >= 0 with {groups} * fold <= {x.shape[1]} channels, got {fold!r}")


@torch.library.custom_op("temporal_shift::shift", mutates_args=())
def _shift_op(x: Tensor, n_segment: int, fold: int, offset0: int, offset1: int) -> Tensor:
    check_op_args(x, n_segment, fold, offset0, offset1)
    return shift_eager(x, n_segment, fold, offset0, offset1)


@_shift_op.register_fake
def _shift_op_fake(x: Tensor, n_segment: int, fold: int, offset0: int, offset1: int) -> Tensor:
    check_op_args(x, n_segment, fold, offset0, offset1)
    return torch.empty_like(x)


def _shift_op_setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    ctx.args = inputs[1:3]
    ctx.offsets = inputs[3:5]


def _shift_op_backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None, None]:
    offset0, offset1 = ctx.offsets
    adjoint = torch.ops.temporal_shift.shift(grad, *ctx.args, -offset0, -offset1)
    return adjoint, None, None, None, None


_shift_op.register_autograd(_shift_op_backward, setup_context=_shift_op_setup_context)


@functools.cache
def _triton_kernels() -> ModuleType | None:
    """The Triton kernels module, or None where Triton is missing (imported on first use)."""
    if not triton_available():
        return None
    from temporal_shift.ops.kernels import triton_shift

    return triton_shift


def _in_place_kernels(x: Tensor) -> ModuleType:
    """The module whose ``prefers_in_place`` / ``shift_in_place`` / ``restore_in_place`` take the dense ``x``."""
    if x.is_cuda:
        kernels = _triton_kernels()
        if kernels is not None:
            return kernels
    return strided


def _is_exporting() -> bool:
    is_exporting = getattr(torch.compiler, "is_exporting", None)  # torch >= 2.6
    return bool(is_exporting and is_exporting())


def _is_graph_export() -> bool:
    """Whether the code is being traced or scripted by TorchScript or exported by torch.export."""
    return torch.jit.is_tracing() or torch.jit.is_scripting() or _is_exporting()


def _writable_dense(x: Tensor) -> bool:
    return x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)


class TemporalShift(nn.Module):
    """Shift the input along time, then call the wrapped module (``net``).

    The wrapped module is stored as ``net`` so state-dict keys read
    ``...conv1.net.weight``, like the reference release. The settings are checked once,
    here; a call checks only its input's shape.

    Training (a gradient is recorded): a plain zero-padded ``nn.Conv2d`` and the shift run
    as one autograd node that keeps the unshifted input, not a shifted copy, for the
    backward pass (`nodes.ShiftConv2d`; the same in eager and compiled code); any other
    ``net`` sees the shifted tensor, the shift being its own node.

    Inference fast path (``inplace_inference=True``, the default): when no gradient is
    recorded, nothing is being traced or compiled, ``net`` is a convolution (which never
    returns a view of its input) and ``x`` is large enough for it to pay (below that one
    out-of-place shift costs less: `strided.IN_PLACE_FROM`, `triton_shift.IN_PLACE_MIN_BYTES`),
    the shifted channels are moved inside ``x`` itself, ``net`` runs, and ``x`` is restored
    before returning. The result is bit-identical to the out-of-place shift and ``x`` is
    unchanged afterwards; it only saves memory traffic (see benchmarks/shift_variants.py).
    """

    def __init__(
        self,
        net: nn.Module,
        n_segment: int,
        *,
        fold_div: int = 8,
        mode: str = "bidirectional",
        inplace_inference: bool = True,
    ) -> None:
        super().__init__()
        check_shift_args(n_segment=n_segment, fold_div=fold_div, mode=mode)
        self.net = net
        self.n_segment = n_segment
        self.fold_div = fold_div
        self.mode = mode
        self.inplace_inference = inplace_inference

    def forward(self, x: Tensor) -> Tensor:
        _check_input(x, self.n_segment)
        fold = x.shape[1] // self.fold_div
        net = self.net
        args = (self.n_segment, fold, *OFFSETS[self.mode])
        if _is_graph_export():
            return net(shift_export(x, *args))
        if fold == 0:  # nothing moves
            return net(x)
        if torch.compiler.is_compiling():
            if self._records_grad(x):
                # a checkpointed shift: Inductor's partitioner recomputes it in the backward
                # pass instead of keeping the shifted copy (which it would, as the input of
                # a convolution's backward), as the eager node below does
                return net(checkpoint(shift_functional, x, *args, use_reentrant=False))
            return net(shift_functional(x, *args))
        if self._records_grad(x):
            if fusable(net):
                return shift_conv2d(x, net, shift_eager, args)
            return net(Shift.apply(x, shift_eager, args))
        if self.inplace_inference:
            kernels = _in_place_kernels(x)
            if kernels.prefers_in_place(x) and self._in_place_safe(x):
                undo = kernels.shift_in_place(x, *args)
                try:
                    return net(x)
                finally:
                    kernels.restore_in_place(x, undo, *args)
        return net(shift_eager(x, *args))

    def _records_grad(self, x: Tensor) -> bool:
        """Whether autograd records this call (the input or ``net``'s parameters need a gradient)."""
        return torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.net.parameters()))

    def _in_place_safe(self, x: Tensor) -> bool:
        """Whether eager inference may shift ``x`` in place: ``net`` cannot return a view of
        it, ``x`` can be written (an inference tensor only in inference mode) and is dense."""
        return (
            isinstance(self.net, nn.Conv2d)
            and not (x.is_inference() and not torch.is_inference_mode_enabled())
            and _writable_dense(x)
        )

    def _can_shift_in_place(self, x: Tensor) -> bool:
        """Whether this call may take the in-place path (at a size where it pays, it does)."""
        return (
            self.inplace_inference
            and not self._records_grad(x)
            and not _is_graph_export()
            and not torch.compiler.is_compiling()
            and self._in_place_safe(x)
        )

    def extra_repr(self) -> str:
        return f"n_segment={self.n_segment}, fold_div={self.fold_div}, mode={self.mode!r}"
