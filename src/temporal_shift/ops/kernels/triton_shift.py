"""Triton kernels of the temporal shift: one pass over the bytes, any dense layout.

The shift is described by two channel groups and their time offsets: channels
``[0, fold)`` read frame ``t + offset0``, channels ``[fold, 2*fold)`` read frame
``t + offset1`` (offset 0: the group stays), the rest stay; a source outside the clip
reads as zero. The paper's bidirectional shift is offsets (+1, -1), the causal one
(-1, 0); the adjoint (the backward pass) of offsets (a, b) is (-a, -b).

Two families of kernels, both for (N*T, C, H, W) tensors that are contiguous or
channels_last (strides are arguments, so one kernel serves both layouts):

- `shift_out_of_place`: each program walks a block of the *output* in memory order and
  loads each element's source (the same offset, moved by whole frames for the shifted
  channels): every source element is read once and every output element written once.
  Forward and backward are the same kernel with opposite offsets.
- `shift_in_place` / `restore_in_place`: for inference, only the shifted channels move,
  inside the input itself. Each program owns a set of (clip, channel, pixel) positions
  and walks time in the direction that never overwrites a value it still has to read;
  the one value per position that falls off the clip's edge is kept in a small buffer
  (1/T of the shifted channels), so restoring is the opposite walk plus that edge.
  Traffic: 2 x 2/fold_div of the tensor per call, against 2 x 1 for out-of-place.

Import this module only when a kernel is needed: Triton decides at import time whether
to compile for the GPU or to interpret on the CPU (``TRITON_INTERPRET=1``, used by the
tests).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

BLOCK_OUT = 1024  # elements per program of the out-of-place kernel
BLOCK_IN_PLACE = 256  # positions per program of the in-place kernels
INT32_LIMIT = 2**31 - 1


@triton.jit
def _shift_out_of_place_kernel(
    src_ptr,
    out_ptr,
    numel,
    n_segment,
    channels,
    fold,
    frame_stride,
    channel_stride,
    offset0,
    offset1,
    BLOCK: tl.constexpr,
    WIDE_INDEX: tl.constexpr,
):
    pid = tl.program_id(0)
    if WIDE_INDEX:  # noqa: SIM108 (a branch on a constexpr: Triton compiles only the taken side)
        start = pid.to(tl.int64) * BLOCK
    else:
        start = pid * BLOCK
    i = start + tl.arange(0, BLOCK)  # offset into the output, in memory order
    inside = i < numel
    channel = (i // channel_stride) % channels
    t = (i // frame_stride) % n_segment
    offset = tl.where(channel < fold, offset0, tl.where(channel < 2 * fold, offset1, 0))
    source_t = t + offset
    valid = inside & (source_t >= 0) & (source_t < n_segment)
    value = tl.load(src_ptr + i + offset * frame_stride, mask=valid, other=0)
    tl.store(out_ptr + i, value, mask=inside)


@triton.jit
def _shift_in_place_kernel(
    x_ptr,
    edge_ptr,
    positions,
    n_segment,
    moved,
    fold,
    pixels,
    frame_stride,
    channel_stride,
    pixel_stride,
    offset0,
    offset1,
    RESTORE: tl.constexpr,
    CHANNELS_INNERMOST: tl.constexpr,
    BLOCK: tl.constexpr,
    WIDE_INDEX: tl.constexpr,
):
    """Shift the first ``moved`` channels of each position along time, in place.

    A position is (clip, channel < moved, pixel); ``edge`` is (clips, moved, pixels),
    contiguous. Shifting (RESTORE false) stores there the value that leaves the clip and
    zero-fills the vacated frame; restoring (the opposite offsets) fills the vacated
    frame from it.
    """
    pid = tl.program_id(0)
    if WIDE_INDEX:  # noqa: SIM108 (a branch on a constexpr: Triton compiles only the taken side)
        p = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    else:
        p = pid * BLOCK + tl.arange(0, BLOCK)
    inside = p < positions
    # enumerate positions in memory order of the layout, so neighbouring lanes touch
    # neighbouring addresses: channels fastest for channels_last, pixels fastest otherwise
    if CHANNELS_INNERMOST:
        channel = p % moved
        pixel = (p // moved) % pixels
    else:
        pixel = p % pixels
        channel = (p // pixels) % moved
    clip = p // (moved * pixels)
    offset = tl.where(channel < fold, offset0, offset1)
    forward = offset > 0  # reading from later frames: walk time upwards
    base = clip * n_segment * frame_stride + channel * channel_stride + pixel * pixel_stride
    edge_index = (clip * moved + channel) * pixels + pixel
    # the frame whose value has no destination inside the clip, and the frame left empty
    lost_t = tl.where(forward, 0, n_segment - 1)
    empty_t = tl.where(forward, n_segment - 1, 0)
    if not RESTORE:
        edge_value = tl.load(x_ptr + base + lost_t * frame_stride, mask=inside)
        tl.store(edge_ptr + edge_index, edge_value, mask=inside)
    for k in range(n_segment - 1):
        t = tl.where(forward, k, n_segment - 1 - k)
        value = tl.load(x_ptr + base + (t + offset) * frame_stride, mask=inside)
        tl.store(x_ptr + base + t * frame_stride, value, mask=inside)
    if RESTORE:
        fill = tl.load(edge_ptr + edge_index, mask=inside)
    else:
        fill = tl.full(
            (BLOCK,), 0, dtype=x_ptr.dtype.element_ty
        )  # (tl.zeros is a jit helper the interpreter may not patch)
    tl.store(x_ptr + base + empty_t * frame_stride, fill, mask=inside)


def _layout(x: Tensor) -> tuple[int, int, int] | None:
    """(frame, channel, pixel) strides of a dense (N*T, C, H, W) tensor; None otherwise.

    Dense means contiguous or channels_last: in both, a frame is a block of C*H*W
    elements and the H, W plane flattens to one pixel index with stride ``stride(3)``.
    """
    if x.is_contiguous():
        return x.stride(0), x.stride(1), 1
    if x.is_contiguous(memory_format=torch.channels_last):
        return x.stride(0), 1, x.stride(3)
    return None


def supports(x: Tensor) -> bool:
    """Whether the kernels take ``x``: a 4-D contiguous or channels_last tensor."""
    return x.dim() == 4 and _layout(x) is not None


def _check(x: Tensor, n_segment: int, fold: int) -> tuple[int, int, int]:
    layout = _layout(x)
    if x.dim() != 4 or layout is None:
        raise ValueError(
            f"the Triton shift needs a contiguous or channels_last (N*T, C, H, W) tensor, "
            f"got shape {tuple(x.shape)} with strides {x.stride()}"
        )
    if x.shape[0] % n_segment or not 0 <= 2 * fold <= x.shape[1]:
        raise ValueError(f"shape {tuple(x.shape)} does not fit n_segment={n_segment} and fold={fold}")
    return layout


def shift_out_of_place(x: Tensor, n_segment: int, fold: int, offset0: int, offset1: int) -> Tensor:
    """A new tensor (same layout as ``x``) holding ``x`` shifted by the given offsets."""
    frame_stride, channel_stride, _ = _check(x, n_segment, fold)
    out = torch.empty_like(x)
    numel = x.numel()
    if numel == 0:
        return out
    grid = (triton.cdiv(numel, BLOCK_OUT),)
    _shift_out_of_place_kernel[grid](
        x,
        out,
        numel,
        n_segment,
        x.shape[1],
        fold,
        frame_stride,
        channel_stride,
        offset0,
        offset1,
        BLOCK=BLOCK_OUT,
        WIDE_INDEX=numel + frame_stride > INT32_LIMIT,
    )
    return out


def _in_place(x: Tensor, edge: Tensor, n_segment: int, fold: int, offsets: tuple[int, int], *, restore: bool) -> None:
    frame_stride, channel_stride, pixel_stride = _check(x, n_segment, fold)
    moved = fold * (2 if offsets[1] else 1)
    clips = x.shape[0] // n_segment
    pixels = x.shape[2] * x.shape[3]
    positions = clips * moved * pixels
    if positions == 0:
        return
    grid = (triton.cdiv(positions, BLOCK_IN_PLACE),)
    _shift_in_place_kernel[grid](
        x,
        edge,
        positions,
        n_segment,
        moved,
        fold,
        pixels,
        frame_stride,
        channel_stride,
        pixel_stride,
        offsets[0],
        offsets[1],
        RESTORE=restore,
        CHANNELS_INNERMOST=channel_stride == 1 and x.shape[1] > 1,
        BLOCK=BLOCK_IN_PLACE,
        WIDE_INDEX=x.numel() + frame_stride > INT32_LIMIT,
    )


def shift_in_place(x: Tensor, n_segment: int, fold: int, offset0: int, offset1: int) -> Tensor:
    """Shift ``x`` in place; return the edge buffer that `restore_in_place` needs."""
    moved = fold * (2 if offset1 else 1)
    edge = x.new_empty((x.shape[0] // n_segment, moved, x.shape[2], x.shape[3]))
    _in_place(x, edge, n_segment, fold, (offset0, offset1), restore=False)
    return edge


def restore_in_place(x: Tensor, edge: Tensor, n_segment: int, fold: int, offset0: int, offset1: int) -> None:
    """Undo `shift_in_place` (same arguments) using its edge buffer."""
    _in_place(x, edge, n_segment, fold, (-offset0, -offset1), restore=True)
