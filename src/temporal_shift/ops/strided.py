"""The shift as a few strided copies: how eager code runs it where the Triton kernels do not.

The same arguments and API as `kernels.triton_shift`: channels ``[0, fold)`` read frame
``t + offset0``, channels ``[fold, 2*fold)`` frame ``t + offset1`` (offsets in {-1, 0, 1};
offset 0 leaves the group, and every group after it, where it is), the rest stay, a
source frame outside the clip reads as zero.

Every copy is one ``copy_`` between two `Tensor.as_strided` views of whole channel
groups across all clips, and the views' sizes, strides and offsets are worked out once
per input geometry (shape and strides; `_out_of_place_plan`, cached).
A call is then a handful of native ops whatever the layout: on a small tensor, where
per-op host time is the whole cost, about half the time of the slice assignments of
`shift.shift_with_torch_ops` (each of which parses its indices in Python), and the same
bytes moved on a large one.

- `shift_out_of_place`: a new tensor in the layout of ``x`` (the forward and backward
  passes of training). A tiny dense tensor is one gather through an index kept per
  geometry (four native ops instead of nine; `GATHER_BELOW`); a small one is cloned whole
  and its moved channels copied over (three ops fewer); a large one is written once, each
  part from its source (a quarter less traffic); the crossovers measured on one thread
  (`CLONE_BELOW`);
- `shift_in_place` / `restore_in_place`: inference. Only the moved channels move: they
  are saved, written back shifted, and restored from the saved copy after the wrapped
  convolution.

Any strides work for the out-of-place shift; the in-place pair needs a dense ``x``
(contiguous or channels_last), which `TemporalShift` checks before taking it, and is
worth its extra ops from `IN_PLACE_FROM` elements on (`prefers_in_place`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import Tensor

# Crossovers measured on one CPU thread, T=8, fold_div=8, both layouts (interleaved medians):
# below CLONE_BELOW elements a clone plus the moved channels beats a copy of each part
# (0.8x at 1K elements, 0.9x at 64K, 1.0x at 200-260K, 1.1-1.5x from 800K, contiguous);
# from IN_PLACE_FROM on the in-place pair (shift and restore) beats the out-of-place shift
# (1.3x at 1K, 1.2-1.8x at 16K, 1.0x at 64K, 0.75-0.8x at 200-260K, 0.2-0.75x from 800K).
# Below GATHER_BELOW elements a dense tensor's shift is one gather and a fill (0.55x the
# copies' time at 512 elements, 0.8x at 2K-4K, 1.1x at 8K, 2.5-3x at 32K: the index is int64,
# read per element); its index and zero mask are kept per geometry (at most ~9 MB in all).
CLONE_BELOW = 2**17
IN_PLACE_FROM = 2**16
GATHER_BELOW = 2**12

View = tuple[tuple[int, ...], tuple[int, ...], int]  # size, stride, storage offset
Undo = tuple[Tensor, Tensor] | None  # the moved channels of x (a view) and a copy of them


def _groups(fold: int, offset0: int, offset1: int) -> list[tuple[int, int]]:
    """(first channel, offset) of each moved channel group, in channel order."""
    groups: list[tuple[int, int]] = []
    for k, offset in enumerate((offset0, offset1)):
        if offset == 0 or fold == 0:
            break
        groups.append((k * fold, offset))
    return groups


def _clip_view(strides: Sequence[int], n_segment: int, *, frame: int, channel: int, size: tuple[int, ...]) -> View:
    """The (clips, frames, channels, H, W) view of a tensor with 4-D ``strides`` starting
    at ``frame`` of every clip and at ``channel``."""
    s0, s1, s2, s3 = strides
    return size, (n_segment * s0, s0, s1, s2, s3), frame * s0 + channel * s1


@functools.lru_cache(maxsize=256)
def _out_of_place_plan(
    shape: tuple[int, ...],
    x_strides: tuple[int, ...],
    out_strides: tuple[int, ...],
    n_segment: int,
    fold: int,
    offset0: int,
    offset1: int,
    cloned: bool,
) -> tuple[tuple[tuple[View, View], ...], View | None]:
    """The copies ((out view, x view) pairs: the moved groups, then the channels that stay
    unless ``out`` starts as a clone of ``x``) and the zero-filled view of the shift."""
    frames, channels, h, w = shape
    clips = frames // n_segment
    groups = _groups(fold, offset0, offset1)
    copies = []
    edges = []  # offset in ``out`` of each group's frame that has no source
    for first, offset in groups:
        if n_segment > 1:
            size = (clips, n_segment - 1, fold, h, w)
            copies.append(
                (
                    _clip_view(out_strides, n_segment, frame=max(0, -offset), channel=first, size=size),
                    _clip_view(x_strides, n_segment, frame=max(0, offset), channel=first, size=size),
                )
            )
        edge_frame = n_segment - 1 if offset > 0 else 0
        edges.append(edge_frame * out_strides[0] + first * out_strides[1])
    moved = fold * len(groups)
    if moved < channels and not cloned:  # the channels that stay
        size = (clips, n_segment, channels - moved, h, w)
        copies.append(
            (
                _clip_view(out_strides, n_segment, frame=0, channel=moved, size=size),
                _clip_view(x_strides, n_segment, frame=0, channel=moved, size=size),
            )
        )
    zero: View | None = None
    s0, s1, s2, s3 = out_strides
    if len(edges) == 1:
        zero = (clips, fold, h, w), (n_segment * s0, s1, s2, s3), edges[0]
    elif len(edges) == 2:  # both groups' empty frames in one view (a non-negative stride between them)
        low, high = sorted(edges)
        zero = (clips, 2, fold, h, w), (n_segment * s0, high - low, s1, s2, s3), low
    return tuple(copies), zero


def shift_out_of_place(x: Tensor, n_segment: int, fold: int, offset0: int, offset1: int) -> Tensor:
    """A new tensor (the layout of ``x``) holding ``x`` shifted by the given offsets."""
    n = x.numel()
    if 0 < n < GATHER_BELOW and _dense(x):
        index, zero = _gather_index(x.shape, x.stride(), n_segment, fold, offset0, offset1, x.device)
        flat = x.as_strided((n,), (1,), x.storage_offset())  # x's elements in memory order
        return flat.index_select(0, index).masked_fill_(zero, 0).as_strided(x.shape, x.stride())
    return _shift_by_copies(x, n_segment, fold, offset0, offset1)


def _dense(x: Tensor) -> bool:
    return x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)


@functools.lru_cache(maxsize=256)
def _gather_index(
    shape: tuple[int, ...],
    strides: tuple[int, ...],
    n_segment: int,
    fold: int,
    offset0: int,
    offset1: int,
    device: torch.device,
) -> tuple[Tensor, Tensor]:
    """For a dense tensor of this geometry, per element in memory order: the memory position
    of its source in the shift (any, where the shift reads zero) and where the shift reads
    zero. Made by shifting the positions themselves (1-based: 0 is the zero-filled edge)."""
    n = 1
    for size in shape:
        n *= size
    with torch.inference_mode(False):  # usable in and out of inference mode
        positions = torch.arange(1, n + 1, device=device).as_strided(shape, strides)
        shifted = _shift_by_copies(positions, n_segment, fold, offset0, offset1).as_strided((n,), (1,))
        return (shifted - 1).clamp_(min=0), shifted == 0


def _shift_by_copies(x: Tensor, n_segment: int, fold: int, offset0: int, offset1: int) -> Tensor:
    """`shift_out_of_place` as strided copies, any strides."""
    cloned = x.numel() < CLONE_BELOW
    out = x.clone() if cloned else torch.empty_like(x)  # x's strides, or dense ones in x's order
    copies, zero = _out_of_place_plan(x.shape, x.stride(), out.stride(), n_segment, fold, offset0, offset1, cloned)
    x_base, out_base = x.storage_offset(), out.storage_offset()
    for (size, out_stride, out_offset), (_, x_stride, x_offset) in copies:
        out.as_strided(size, out_stride, out_base + out_offset).copy_(x.as_strided(size, x_stride, x_base + x_offset))
    if zero is not None:
        size, stride, offset = zero
        out.as_strided(size, stride, out_base + offset).zero_()
    return out


def prefers_in_place(x: Tensor) -> bool:
    """Whether the in-place pair is the cheaper way to shift ``x`` at inference (`IN_PLACE_FROM`)."""
    return x.numel() >= IN_PLACE_FROM


def shift_in_place(x: Tensor, n_segment: int, fold: int, offset0: int, offset1: int) -> Undo:
    """Shift the dense ``x`` in place; returns what `restore_in_place` needs (None: nothing moved).

    The moved channels are saved (one copy; `Tensor.clone` keeps their memory order, so
    with channels_last each pixel's moved channels stay together), written back shifted
    from the saved copy (one copy per group) and zero-filled at the clip edges.
    """
    moved = fold * len(_groups(fold, offset0, offset1))
    if moved == 0:
        return None
    moved_view = x.narrow(1, 0, moved)
    saved = moved_view.clone()
    # the out-of-place shift's plan with the saved channels as its input and x as its output,
    # the channels that stay left alone
    copies, zero = _out_of_place_plan(x.shape, saved.stride(), x.stride(), n_segment, fold, offset0, offset1, True)
    x_base, saved_base = x.storage_offset(), saved.storage_offset()
    for (size, x_stride, x_offset), (_, saved_stride, saved_offset) in copies:
        x.as_strided(size, x_stride, x_base + x_offset).copy_(
            saved.as_strided(size, saved_stride, saved_base + saved_offset)
        )
    if zero is not None:
        size, stride, offset = zero
        x.as_strided(size, stride, x_base + offset).zero_()
    return moved_view, saved


def restore_in_place(x: Tensor, undo: Undo, n_segment: int, fold: int, offset0: int, offset1: int) -> None:
    """Undo `shift_in_place` (same arguments) with what it returned."""
    if undo is not None:
        moved_view, saved = undo
        moved_view.copy_(saved)
