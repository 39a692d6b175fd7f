"""2D convolutions that are fast where their output map is a single pixel.

On small frames the last stage of a ResNet works on 1x1 maps (32x32 frames: ResNet-18's
layer4 sees 1x1, ``tsm demo`` and ``tsm reproduce``). A zero-padded 3x3 convolution there
reads only its centre tap, yet oneDNN's backward pass runs the full 3x3 kernel: on one CPU
thread its three 512->512 convolutions took 111 ms each backward against 19 ms for the same
result from the centre tap alone, a third of a whole training step
(`benchmarks/small_map_convs.py`).

`SmallMapConv2d` is an `nn.Conv2d` that, when its output is 1x1, convolves with only the
window of taps that meets the input (no padding): the same sums (up to float rounding), the
same gradients (exactly zero on the taps it skips, as the padded zeros made them), the same
parameters, ``state_dict`` keys and checkpoints. Every other map size, and traced, scripted
or exported graphs (whose input size may change later), take `nn.Conv2d`'s own path.
`use_small_map_convs` makes a module's plain `nn.Conv2d` layers into this class in place;
`full_kernels` turns them back for a while, for counting FLOPs the conventional way (every
tap of every output pixel, the padded zeros included).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from temporal_shift.shift import _is_exporting


class SmallMapConv2d(nn.Conv2d):
    """`nn.Conv2d` computing a 1x1 output from the taps that meet the input (see the module doc)."""

    def forward(self, x: Tensor) -> Tensor:
        window = self._window(x)
        if window is None:
            return super().forward(x)
        (top, height), (left, width) = window
        weight = self.weight[:, :, top:top + height, left:left + width]
        return F.conv2d(x[..., :height, :width], weight, self.bias, 1, 0, 1, self.groups)

    def _window(self, x: Tensor) -> tuple[tuple[int, int], tuple[int, int]] | None:
        """((first tap row, rows), (first tap column, columns)) that a 1x1 output reads, or None
        when the output is larger or the layer is out of this shortcut's scope."""
        if (x.dim() != 4 or self.padding_mode != "zeros" or isinstance(self.padding, str)
                or self.dilation != (1, 1) or torch.jit.is_tracing() or torch.jit.is_scripting()
                or _is_exporting()):
            return None
        window = []
        for size, k, stride, pad in zip(x.shape[-2:], self.kernel_size, self.stride, self.padding):
            if (size + 2 * pad - k) // stride != 0:  # more than one output pixel along this axis
                return None
            # the single output reads input pixels 0..k-pad-1 with taps pad..k-1
            window.append((pad, min(int(size), k - pad)))
        return window[0], window[1]


def use_small_map_convs(module: nn.Module) -> nn.Module:
    """Make every plain `nn.Conv2d` in ``module`` a `SmallMapConv2d` (in place; parameters,
    buffers and ``state_dict`` keys unchanged) and return ``module``."""
    for layer in module.modules():
        if type(layer) is nn.Conv2d:
            layer.__class__ = SmallMapConv2d
    return module


@contextlib.contextmanager
def full_kernels(module: nn.Module) -> Iterator[nn.Module]:
    """Within the block, ``module``'s `SmallMapConv2d` layers are plain `nn.Conv2d` again."""
    layers = [layer for layer in module.modules() if type(layer) is SmallMapConv2d]
    for layer in layers:
        layer.__class__ = nn.Conv2d
    try:
        yield module
    finally:
        for layer in layers:
            layer.__class__ = SmallMapConv2d
