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
the feature map.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

MODES = ("bidirectional", "causal")


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
        raise ValueError(
            f"temporal_shift expects a 4-D (N*T, C, H, W) tensor, got shape {tuple(x.shape)}"
        )
    if not torch.jit.is_tracing() and x.shape[0] % n_segment != 0:
        raise ValueError(
            f"batch dimension {x.shape[0]} is not divisible by n_segment={n_segment}: "
            "expected (N*T, C, H, W) with T = n_segment"
        )


def temporal_shift(
    x: Tensor, n_segment: int, *, fold_div: int = 8, mode: str = "bidirectional"
) -> Tensor:
    """Shift a fraction of the channels of ``x`` (N*T, C, H, W) along time; see the module doc."""
    check_shift_args(n_segment=n_segment, fold_div=fold_div, mode=mode)
    _check_input(x, n_segment)
    return _shift(x, n_segment, x.shape[1] // fold_div, mode)


def _shift(x: Tensor, n_segment: int, fold: int, mode: str) -> Tensor:
    # (N, T, C, H, W) view; splitting the outermost dim is a view in any memory format.
    x5 = x.view((-1, n_segment) + tuple(x.shape[1:]))
    out = torch.empty_like(x5)
    if mode == "bidirectional":
        out[:, :-1, :fold] = x5[:, 1:, :fold]  # from t+1
        out[:, -1:, :fold] = 0
        out[:, 1:, fold : 2 * fold] = x5[:, :-1, fold : 2 * fold]  # from t-1
        out[:, :1, fold : 2 * fold] = 0
        out[:, :, 2 * fold :] = x5[:, :, 2 * fold :]
    else:
        out[:, 1:, :fold] = x5[:, :-1, :fold]  # from t-1
        out[:, :1, :fold] = 0
        out[:, :, fold:] = x5[:, :, fold:]
    return out.view(x.shape)


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
        if self._can_shift_in_place(x) and fold > 0:
            x5 = x.view((-1, self.n_segment) + tuple(x.shape[1:]))
            saved = _shift_in_place(x5, fold, self.mode)
            try:
                return self.net(x)
            finally:
                x5[:, :, : saved.shape[2]] = saved
        return self.net(_shift(x, self.n_segment, fold, self.mode))

    def _can_shift_in_place(self, x: Tensor) -> bool:
        return (
            self.inplace_inference
            and isinstance(self.net, nn.Conv2d)
            and not (torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.net.parameters())))
            and not torch.jit.is_tracing()
            and not torch.jit.is_scripting()
            and not torch.compiler.is_compiling()
            and not _is_exporting()
            and not (x.is_inference() and not torch.is_inference_mode_enabled())
            and _writable_dense(x)
        )

    def extra_repr(self) -> str:
        return f"n_segment={self.n_segment}, fold_div={self.fold_div}, mode={self.mode!r}"
