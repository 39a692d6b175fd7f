"""The shift's autograd nodes for training: one per shift, or one for a shift and the convolution it feeds.

- `Shift`: the shift as one node whose backward is the adjoint shift (the same shift with
  the opposite offsets: moving channels forward in time is undone by moving them back,
  zero at the other edge). `shift_with_grad` records it only when a gradient is wanted.
- `ShiftConv2d`: a shift and the 2-D convolution after it as one node that keeps the
  *unshifted* input for the backward pass and shifts it again there. The convolution
  needs its input to compute the weight gradient; kept as a separate node it would keep
  the shifted copy, a tensor nothing else keeps. In a TSM ResNet the unshifted input is
  the block input, which the block's last ReLU already keeps (TSN's first convolution
  keeps that same tensor), so TSM keeps what TSN keeps, for the price of one more shift
  per layer in the backward pass. The backward pass is aten's ``convolution_backward``
  with the arguments autograd's own convolution node passes to it, so the gradients are
  bit for bit those of the two separate nodes.

Both take the shift to run as an argument, ``shift(x, n_segment, fold, offset0, offset1)``
(`ShiftFn`): the eager kernels, or `shift_functional` under ``torch.compile``, which traces
the nodes (Inductor then keeps what the node keeps). Their backward passes are made of
differentiable steps, so double backward works.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeGuard

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ShiftFn = Callable[[Tensor, int, int, int, int], Tensor]
ShiftArgs = tuple[int, int, int, int]  # n_segment, fold, offset0, offset1


class Shift(torch.autograd.Function):
    """``shift(x, *args)`` as one autograd node; backward: the adjoint shift."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, shift: ShiftFn, args: ShiftArgs) -> Tensor:
        ctx.shift, ctx.adjoint = shift, adjoint(args)
        return shift(x, *args)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        return shift_with_grad(grad, ctx.shift, ctx.adjoint), None, None


def adjoint(args: ShiftArgs) -> ShiftArgs:
    """The arguments of the adjoint shift: the same groups moved the other way."""
    n_segment, fold, offset0, offset1 = args
    return n_segment, fold, -offset0, -offset1


def shift_with_grad(x: Tensor, shift: ShiftFn, args: ShiftArgs) -> Tensor:
    """``shift(x, *args)``, recorded as a `Shift` node when autograd records ``x``'s uses."""
    if torch.is_grad_enabled() and x.requires_grad:
        return Shift.apply(x, shift, args)
    return shift(x, *args)


class ShiftConv2d(torch.autograd.Function):
    """``conv2d(shift(x), weight, bias)`` as one node that saves ``x`` and ``weight``."""

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        shift: ShiftFn,
        args: ShiftArgs,
        conv: tuple[Any, Any, Any, int],
    ) -> Tensor:
        stride, padding, dilation, groups = conv
        out = F.conv2d(shift(x, *args), weight, bias, stride, padding, dilation, groups)
        ctx.save_for_backward(x, weight)
        ctx.shift, ctx.args, ctx.conv = shift, args, conv
        ctx.bias_sizes = None if bias is None else [bias.shape[0]]
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None, None, None, None]:
        x, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv
        shifted = shift_with_grad(x, ctx.shift, ctx.args)  # the forward's shift, again
        grad_shifted, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
            grad,
            shifted,
            weight,
            ctx.bias_sizes,
            stride,
            padding,
            dilation,
            False,
            [0, 0],
            groups,
            list(ctx.needs_input_grad[:3]),
        )
        grad_x = None if grad_shifted is None else shift_with_grad(grad_shifted, ctx.shift, adjoint(ctx.args))
        return grad_x, grad_weight, grad_bias, None, None, None


def fusable(net: nn.Module) -> TypeGuard[nn.Conv2d]:
    """Whether `shift_conv2d` can stand for ``net(shifted)``: a plain zero-padded `nn.Conv2d`
    (a subclass may compute something else; string paddings need the layer's own logic)."""
    return type(net) is nn.Conv2d and net.padding_mode == "zeros" and not isinstance(net.padding, str)


def shift_conv2d(x: Tensor, conv: nn.Conv2d, shift: ShiftFn, args: ShiftArgs) -> Tensor:
    """``conv(shift(x, *args))`` through `ShiftConv2d`, for a ``conv`` that is `fusable`.

    Under autocast the operands are cast first, as autocast casts a convolution's (its
    lower precision for float16/bfloat16/float32, float64 left alone), so the node
    keeps the tensors the convolution would have kept.
    """
    weight, bias = conv.weight, conv.bias
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        dtype = torch.get_autocast_dtype(device_type)
        x, weight = _autocast(x, dtype), _autocast(weight, dtype)
        bias = None if bias is None else _autocast(bias, dtype)
    return ShiftConv2d.apply(x, weight, bias, shift, args, (conv.stride, conv.padding, conv.dilation, conv.groups))


def _autocast(t: Tensor, dtype: torch.dtype) -> Tensor:
    if not t.is_floating_point() or t.dtype in (dtype, torch.float64):
        return t
    return t.to(dtype)
