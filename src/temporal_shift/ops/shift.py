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

- eager: the registered operator ``torch.ops.temporal_shift.shift`` (one autograd node,
  backward = the adjoint shift in one pass); on CUDA a one-pass Triton kernel
  (`temporal_shift.ops.kernels`), elsewhere slice copies (`shift_with_torch_ops`);
- ``torch.compile``: `shift_functional`, which Inductor fuses into one pass in the
  convolution's layout, forward and backward;
- TorchScript tracing and ``torch.export`` (hence ONNX, ExecuTorch, OpenVINO, TensorRT):
  `shift_export`, static slices and concatenations on rank-4 tensors (Core ATen ops only);
- `TemporalShift` at inference: the shifted channels move inside the input and are
  restored after the wrapped convolution (fused Triton kernels on CUDA).
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

import torch
from torch import Tensor, nn

from temporal_shift.ops.kernels import triton_available

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
    if torch.jit.is_tracing() or torch.jit.is_scripting() or _is_exporting():
        # TorchScript and torch.export (hence ONNX, ExecuTorch, OpenVINO): one exported form
        return shift_export(x, n_segment, fold, offset0, offset1)
    if torch.compiler.is_compiling():
        # Inductor fuses the functional form into one pass in the consumer's layout
        return shift_functional(x, n_segment, fold, offset0, offset1)
    return torch.ops.temporal_shift.shift(x, n_segment, fold, offset0, offset1)


def shift_with_torch_ops(x: Tensor, n_segment: int, fold: int, offset0: int, offset1: int) -> Tensor:
    """The shift written with standard torch ops (slice copies into a new tensor).

    Channels ``[0, fold)`` read frame ``t + offset0``, channels ``[fold, 2*fold)`` frame
    ``t + offset1`` (offsets in {-1, 0, 1}), zero where that frame is outside the clip;
    the rest are copied. Every output element is written exactly once (no zero-fill of
    the whole tensor). This is the implementation on the CPU, in traced and exported
    graphs (it maps to standard ONNX ops) and the reference the kernels are tested against.
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
# ``temporal_shift::shift(x, n_segment, fold, offset0, offset1)``: a real torch operator,
# so autograd records one node per shift (not one CopySlices node per slice copy, each of
# whose backward clones the whole gradient), torch.compile traces it without a graph break
# (its fake implementation gives the output's shape and strides) and CUDA tensors take a
# one-pass Triton kernel. Its backward is the same op with the opposite offsets: the
# adjoint of moving channels forward in time is moving them back, zero at the other edge.


@torch.library.custom_op("temporal_shift::shift", mutates_args=())
def _shift_op(x: Tensor, n_segment: int, fold: int, offset0: int, offset1: int) -> Tensor:
    return shift_with_torch_ops(x, n_segment, fold, offset0, offset1)


@_shift_op.register_kernel("cuda")
def _shift_op_cuda(x: Tensor, n_segment: int, fold: int, offset0: int, offset1: int) -> Tensor:
    kernels = _triton_kernels()
    if kernels is not None and kernels.supports(x):
        return kernels.shift_out_of_place(x, n_segment, fold, offset0, offset1)
    return shift_with_torch_ops(x, n_segment, fold, offset0, offset1)


@_shift_op.register_fake
def _shift_op_fake(x: Tensor, n_segment: int, fold: int, offset0: int, offset1: int) -> Tensor:
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


def _shift_in_place(x5: Tensor, fold: int, mode: str) -> Tensor:
    """Shift the (N, T, C, H, W) view ``x5`` in place; returns the original shifted channels.

    Only the shifted channels move: they are saved (a copy of 2/8 of the tensor for the
    default fold_div), written shifted, and later restored from the copy by the caller:
    three passes over 2/8 of the tensor instead of reading and writing all of it, and
    the untouched channels stay where the caches have them.
    """
    moved = 2 * fold if mode == "bidirectional" else fold
    saved = x5[:, :, :moved].clone()
    if mode == "bidirectional":
        x5[:, :-1, :fold] = saved[:, 1:, :fold]
        x5[:, -1:, :fold] = 0
        x5[:, 1:, fold:moved] = saved[:, :-1, fold:]
        x5[:, :1, fold:moved] = 0
    else:
        x5[:, 1:, :fold] = saved[:, :-1]
        x5[:, :1, :fold] = 0
    return saved


def _is_exporting() -> bool:
    is_exporting = getattr(torch.compiler, "is_exporting", None)  # torch >= 2.6
    return bool(is_exporting and is_exporting())


def _writable_dense(x: Tensor) -> bool:
    return x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)


class TemporalShift(nn.Module):
    """Shift the input along time, then call the wrapped module (``net``).

    The wrapped module is stored as ``net`` so state-dict keys read
    ``...conv1.net.weight``, like the reference release.

    Inference fast path (``inplace_inference=True``, the default): when no gradient is
    recorded, nothing is being traced or compiled and ``net`` is a convolution (which
    never returns a view of its input), the shifted channels are moved inside ``x``
    itself, ``net`` runs, and ``x`` is restored before returning. The result is
    bit-identical to the out-of-place shift and ``x`` is unchanged afterwards; it only
    saves memory traffic (see benchmarks/shift_variants.py).
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
        offset0, offset1 = OFFSETS[self.mode]
        if self._can_shift_in_place(x) and fold > 0:
            kernels = _triton_kernels() if x.is_cuda else None
            if kernels is not None:  # two fused passes over the shifted channels
                edge = kernels.shift_in_place(x, self.n_segment, fold, offset0, offset1)
                try:
                    return self.net(x)
                finally:
                    kernels.restore_in_place(x, edge, self.n_segment, fold, offset0, offset1)
            x5 = x.view((-1, self.n_segment, *tuple(x.shape[1:])))
            saved = _shift_in_place(x5, fold, self.mode)
            try:
                return self.net(x)
            finally:
                x5[:, :, : saved.shape[2]] = saved
        return self.net(_dispatch(x, self.n_segment, fold, offset0, offset1))

    def _can_shift_in_place(self, x: Tensor) -> bool:
        return (
            self.inplace_inference
            and isinstance(self.net, nn.Conv2d)
            and not (
                torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.net.parameters()))
            )
            and not torch.jit.is_tracing()
            and not torch.jit.is_scripting()
            and not torch.compiler.is_compiling()
            and not _is_exporting()
            and not (x.is_inference() and not torch.is_inference_mode_enabled())
            and _writable_dense(x)
        )

    def extra_repr(self) -> str:
        return f"n_segment={self.n_segment}, fold_div={self.fold_div}, mode={self.mode!r}"
