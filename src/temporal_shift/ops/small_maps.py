"""Convolutions that are fast where their output is a single pixel (or frame) along an axis.

On small frames the last stage of a ResNet works on 1x1 maps (32x32 frames: ResNet-18's
layer4 sees 1x1, ``tsm demo`` and ``tsm reproduce``). A zero-padded 3x3 convolution there
reads only its centre tap, yet oneDNN's backward pass runs the full 3x3 kernel: on one CPU
thread its three 512->512 convolutions took 111 ms each backward against 19 ms for the same
result from the centre tap alone, a third of a whole training step
(`benchmarks/small_map_convs.py`). A 3D network is hit the same way along time: C3D on 4
frames of 32x32 runs conv4 and conv5 (3x3x3) on a single frame, where only the middle
temporal tap meets it, and oneDNN's 3D backward there took 4x the time of the equal 2D
convolution.

`SmallMapConv2d` and `SmallMapConv3d` are `nn.Conv2d` and `nn.Conv3d` that, along every axis
where the output has a single position, convolve with only the window of taps that meets the
input (no padding on that axis); a 3D convolution left with one tap on one frame runs as a 2D
one. The same sums (up to float rounding), the same gradients (exactly zero on the taps it
skips, as the padded zeros made them), the same parameters, ``state_dict`` keys and
checkpoints. Every other case, and traced, scripted or exported graphs (whose input size may
change later), take the plain layer's own path. `use_small_map_convs` makes a module's plain
`nn.Conv2d`/`nn.Conv3d` layers into these classes in place; `full_kernels` turns them back for
a while, for counting FLOPs the conventional way (every tap of every output pixel, the padded
zeros included).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from temporal_shift.ops.shift import _is_exporting

Window = tuple[tuple[int, int] | None, ...]


class _SmallMapConv(nn.Module):
    """The shortcut shared by `SmallMapConv2d` and `SmallMapConv3d` (mixed in before the conv class,
    whose own forward ``super().forward`` reaches)."""

    # the attributes of the convolution it is mixed into (`torch.nn.modules.conv._ConvNd`)
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: str | tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    padding_mode: Literal["zeros", "reflect", "replicate", "circular"]
    weight: Tensor
    bias: Tensor | None

    def forward(self, x: Tensor) -> Tensor:
        window = self._window(x)
        if window is None:
            return super().forward(x)
        assert not isinstance(self.padding, str)  # a window only for numeric padding (_window)
        weight, stride, padding = self.weight, [], []
        for axis, (taps, k_stride, pad) in enumerate(zip(window, self.stride, self.padding, strict=True)):
            if taps is None:  # several outputs along this axis: the layer's own taps and padding
                stride.append(k_stride)
                padding.append(pad)
                continue
            first, count = taps
            weight = weight.narrow(2 + axis, first, count)
            x = x.narrow(2 + axis, 0, count)
            stride.append(1)
            padding.append(0)
        if len(window) == 3 and window[0] is not None and window[0][1] == 1:
            # one tap on one frame: a 2D convolution (oneDNN's 3D backward costs 4x more there)
            y = F.conv2d(x.squeeze(2), weight.squeeze(2), self.bias, stride[1:], padding[1:], 1, self.groups)
            return y.unsqueeze(2)
        conv = F.conv2d if len(window) == 2 else F.conv3d
        return conv(x, weight, self.bias, stride, padding, 1, self.groups)

    def _window(self, x: Tensor) -> Window | None:
        """Per axis, (first tap, taps) that its single output position reads, or None where the
        output has several positions; None for the whole layer when no axis has a single
        output or the layer is out of this shortcut's scope."""
        dims = len(self.kernel_size)
        if (
            x.dim() != dims + 2
            or self.padding_mode != "zeros"
            or isinstance(self.padding, str)
            or any(d != 1 for d in self.dilation)
            or torch.jit.is_tracing()
            or torch.jit.is_scripting()
            or _is_exporting()
        ):
            return None
        window: list[tuple[int, int] | None] = []
        for size, k, stride, pad in zip(x.shape[-dims:], self.kernel_size, self.stride, self.padding, strict=True):
            if (size + 2 * pad - k) // stride != 0:  # more than one output position along this axis
                window.append(None)
            else:  # the single output reads input positions 0..k-pad-1 with taps pad..k-1
                window.append((pad, min(int(size), k - pad)))
        if all(w is None for w in window):
            return None
        return tuple(window)


class SmallMapConv2d(_SmallMapConv, nn.Conv2d):
    """`nn.Conv2d` computing a single-pixel output axis from the taps that meet the input (module doc)."""


class SmallMapConv3d(_SmallMapConv, nn.Conv3d):
    """`nn.Conv3d` computing a single-position output axis from the taps that meet the input (module doc)."""


_Conv = type[nn.Conv2d] | type[nn.Conv3d]
_FAST: dict[_Conv, _Conv] = {nn.Conv2d: SmallMapConv2d, nn.Conv3d: SmallMapConv3d}
_PLAIN: dict[type[nn.Module], _Conv] = {fast: plain for plain, fast in _FAST.items()}  # looked up by any layer's type


def _plain_conv(layer: nn.Module) -> _Conv | None:
    """`nn.Conv2d`/`nn.Conv3d` when ``layer`` computes exactly as one: the class itself or a
    subclass that only builds it differently (torchvision's ``Conv3DSimple``), not one with a
    forward of its own (I3D's time padding, the fusion models' folded time)."""
    for plain in _FAST:
        if not isinstance(layer, plain):
            continue
        kind = type(layer)
        if kind not in _PLAIN and kind.forward is plain.forward and kind._conv_forward is plain._conv_forward:
            return plain
    return None


M = TypeVar("M", bound=nn.Module)


def use_small_map_convs(module: M) -> M:
    """Make every convolution of ``module`` that computes as a plain `nn.Conv2d`/`nn.Conv3d` a
    `SmallMapConv2d`/`SmallMapConv3d` (in place; parameters, buffers and ``state_dict`` keys
    unchanged; subclasses with forwards of their own are left alone) and return ``module``."""
    for layer in module.modules():
        plain = _plain_conv(layer)
        if plain is not None:
            layer.__class__ = _FAST[plain]
    return module


@contextlib.contextmanager
def full_kernels(module: nn.Module) -> Iterator[nn.Module]:
    """Within the block, ``module``'s small-map convolutions are plain `nn.Conv2d`/`nn.Conv3d` again
    (a ``Conv3DSimple`` made one comes back as `nn.Conv3d`: the same computation)."""
    layers = [(layer, type(layer)) for layer in module.modules() if type(layer) in _PLAIN]
    for layer, fast in layers:
        layer.__class__ = _PLAIN[fast]
    try:
        yield module
    finally:
        for layer, fast in layers:
            layer.__class__ = fast
