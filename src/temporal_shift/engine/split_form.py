"""The exported form of a ResNet with residual shifts: the channels a shift moves travel as a
tensor of their own.

An exported graph cannot shift channels in place, so `ops.shift.shift_export` writes a
shifted copy of each block's whole input (static slices and one concatenation). In a runtime
that keeps feature maps in a blocked layout around its convolutions (onnxruntime's NCHWc,
OpenVINO's), the slices and the concatenation also convert the whole input out of that layout
and back. Profiled in onnxruntime (TSM ResNet-50, T=8, 224, batch 1, 2 threads, a quiet
machine), the shift's ops and their layout conversions took 57 ms a forward against 302 ms of
convolutions (24 ms NCHWc reorders, 33 ms Split, Slice, Pad and Concat); in this form, 12 ms.

This form keeps each residual block's input as two tensors, ``xs`` (the ``k * fold`` channels
a shift moves: k = 2 bidirectional, 1 causal) and ``xr`` (the rest), so that a shift copies
only ``xs`` (1/4 of the channels at the default fold_div 8):

- the convolution after the shift is split by input channels, ``conv(shift(xs)) + conv(xr)``
  (the same multiply-adds; onnxruntime and OpenVINO fuse the sum into the second convolution);
- the block's last convolution and its projection shortcut are split by output channels, at
  the channel count the next block's shift moves, so the block's output is again two tensors;
- the stem (convolution, batch norm, ReLU, max pool) is split by output channels too, so that
  no slice of its max-pooled features starts the blocks: in OpenVINO's int8 graph, the two
  slices' quantizers (two ranges) kept the max pool in f32 (1.75 ms against TSN's 0.37 ms in
  int8, ResNet-50, T=8, 224) and ran a VariadicSplit on the reference implementation. Side by
  side with the sliced stem (TSM/TSN, 40 rounds, quiet): OpenVINO int8 1.145 -> 1.102 (TSM
  93.8 -> 88.6 ms), OpenVINO f32 1.073 -> 1.053; onnxruntime (1.020) and torch.compile
  (1.065 -> 1.054, 20 rounds) unchanged within their spread;
- each convolution carries its batch norm folded in (the runtimes fold it anyway);
- global average pooling pools each tensor and concatenates the two feature vectors.

`export_model` writes this form for onnxruntime, OpenVINO and TensorRT, and
`compiled.compile_for_inference` compiles it (Inductor's convolutions keep their own layout
too). TSM/TSN of ResNet-50 side by side (T=8, 224, batch 1, 2 threads of a quiet 2-core CPU),
the whole-input form -> this one: onnxruntime 1.155 -> 1.034, OpenVINO 1.205 -> 1.070,
torch.compile 1.206 -> 1.030. ExecuTorch keeps the whole-input form: XNNPACK runs it inside
one delegated subgraph without layout conversions, and this form measured the same there.

Where the batch is one clip and static (``tsm export --batch-size 1``) and ``one_clip_shift``
is set (OpenVINO exports and `torch.compile`), the frames are the batch axis and the shift
is a Pad of that axis (`shift_one_clip`) instead of a Pad on the (N, T, C, H*W) view: in
OpenVINO's int8 graph that view converted ``xs`` out of the convolutions' channels-last
layout and back, 32 reorders in ResNet-50 (3.9 of the 7.1 ms that its nodes took over TSN's
in a profile; 1.2 ms left in all). Side by side with the view (`benchmarks/one_clip_shift.py`:
TSM/TSN, ResNet-50, T=8, 224, batch 1 static, 2 threads): OpenVINO int8 lower in each of five
runs, by 0.015-0.047 (1.114 -> 1.067, 1.042 -> 1.009, 1.094 -> 1.061, 1.113 -> 1.087, 1.128 ->
1.113); OpenVINO f32 1.081 -> 1.067, 1.049 -> 1.042, 1.060 -> 1.061; torch.compile 1.031 ->
1.015, 1.028 -> 1.030. onnxruntime does not take it (1.039 -> 1.051, 1.039 -> 1.057, 1.032 ->
1.066: its NCHWc layout does not mind the view, and it runs the Pad of the batch axis slower).

MobileNetV2 keeps the whole-input form: split the same way (each inverted residual block's
expansion by input channels, its projection by output channels), its thin feature maps
(24-160 channels) made it slower, TSM/TSN 1.067 -> 1.417 in onnxruntime and 1.060 -> 1.112
in OpenVINO (T=8, 224, batch 1, 2 threads, 30 rounds side by side).

It applies to `VideoRecognizer` ResNets (ResNet, ResNeXt, Wide ResNet) with residual shifts
(``place="blockres"``, every block or every other block), without temporal pooling or
non-local blocks, with plain convolutions (not ``small_maps``) and a shift that leaves some
channels in place (not ``fold_div=2`` bidirectional); `split_form` returns None
for any other model, which exports as it is. The result computes the model's function (to
float rounding); `export_model` verifies every export against the original model.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.models import ResNet
from torchvision.models.resnet import BasicBlock, Bottleneck

from temporal_shift.models.tsn import VideoRecognizer
from temporal_shift.ops.shift import OFFSETS, TemporalShift


def split_form(model: nn.Module, *, one_clip_shift: bool = False) -> SplitShiftResNet | None:
    """``model`` in the split form (a new module, in eval mode), or None where it does not apply.
    ``one_clip_shift``: where the batch is one clip and static, shift on the batch axis
    (`shift_one_clip`; see the module's text)."""
    if not isinstance(model, VideoRecognizer):
        return None
    config = model.config
    backbone = model.backbone
    if not (
        isinstance(backbone, ResNet)
        and config.shift
        and config.place == "blockres"
        and not config.temporal_pool
        and not config.non_local
    ):
        return None
    blocks = _blocks(backbone)
    if not (_foldable(backbone.conv1, backbone.bn1) and all(_plain_block(block) for block in blocks)):
        return None
    moved = 2 if OFFSETS[config.mode][1] != 0 else 1  # channel folds a shift moves
    moved_channels = [moved * (_in_channels(block) // config.fold_div) for block in blocks]
    if not all(0 < m < _in_channels(block) for m, block in zip(moved_channels, blocks, strict=True)):
        return None  # a shift that moves no channel, or every one (fold_div 2): nothing to split
    return SplitShiftResNet(model, moved=moved, one_clip_shift=one_clip_shift).eval()


def shift_moved(xs: Tensor, n_segment: int, fold: int, offset0: int, offset1: int) -> Tensor:
    """The shift of a tensor that holds only the channels it moves (``xs``: one fold per nonzero
    offset): on its (N, T, C, H*W) view, one Pad per fold that both crops the fold's channels
    and moves it one frame (negative pads crop; ONNX's Pad and OpenVINO's take them), then one
    concatenation (none for the causal shift's single fold). Measured against slices and pads
    (the form of `ops.shift.shift_export`) in this form of TSM ResNet-50 (T=8, 224, 2 threads):
    onnxruntime 1.044 -> 1.034 of TSN, OpenVINO 1.091 -> 1.070."""
    c, h, w = xs.shape[1:]
    y = xs.reshape(-1, n_segment, c, h * w)
    parts = []
    for lo, offset in ((0, offset0), (fold, offset1)):
        if offset == 0:
            break
        # F.pad lists dims from the last one: H*W, then channels [lo, lo + fold), then time
        frames = (-1, 1) if offset > 0 else (1, -1)  # from t+1 (zero last frame) / t-1 (zero first)
        parts.append(F.pad(y, (0, 0, -lo, lo + fold - c, *frames)))
    return (parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)).reshape(xs.shape)


def shift_one_clip(xs: Tensor, fold: int, offset0: int, offset1: int) -> Tensor:
    """`shift_moved` of one clip (a batch of one, static): its frames are the batch axis, so
    each fold moves one frame with a Pad of that axis (a split and a concatenation of the
    channels around them), without `shift_moved`'s (N, T, C, H*W) view."""
    parts = []
    for part, offset in zip(xs.split(fold, dim=1), (offset0, offset1), strict=False):
        if offset == 0:
            break
        parts.append(F.pad(part, (0, 0, 0, 0, 0, 0, *((-1, 1) if offset > 0 else (1, -1)))))
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def _blocks(backbone: ResNet) -> list[nn.Module]:
    return [block for stage in (backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4) for block in stage]


def _plain_block(block: nn.Module) -> bool:
    """Plain convolutions, each followed by a batch norm with running statistics (what folding
    needs); any other block makes the model export as it is."""
    if not isinstance(block, (BasicBlock, Bottleneck)):
        return False
    pairs = [(_unwrapped(block.conv1), block.bn1), (block.conv2, block.bn2)]
    if isinstance(block, Bottleneck):
        pairs.append((block.conv3, block.bn3))
    if block.downsample is not None:
        if not (isinstance(block.downsample, nn.Sequential) and len(block.downsample) == 2):
            return False
        pairs.append((block.downsample[0], block.downsample[1]))
    return all(_foldable(conv, bn) for conv, bn in pairs)


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return type(conv) is nn.Conv2d and isinstance(bn, nn.BatchNorm2d) and bn.running_var is not None


def _unwrapped(module: nn.Module) -> nn.Module:
    return module.net if isinstance(module, TemporalShift) else module


def _first_conv(block: nn.Module) -> nn.Conv2d:
    conv = _unwrapped(block.get_submodule("conv1"))
    assert isinstance(conv, nn.Conv2d)
    return conv


def _last_conv(block: nn.Module) -> nn.Conv2d:
    conv = block.conv3 if isinstance(block, Bottleneck) else block.conv2
    assert isinstance(conv, nn.Conv2d)
    return conv


def _in_channels(block: nn.Module) -> int:
    return _first_conv(block).in_channels


def _folded(conv: nn.Conv2d, bn: nn.Module) -> tuple[Tensor, Tensor]:
    """``conv`` followed by the (eval) batch norm ``bn`` as one weight and bias."""
    assert isinstance(bn, nn.BatchNorm2d) and bn.running_var is not None and bn.running_mean is not None
    scale = (bn.weight if bn.weight is not None else 1.0) / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias if bn.bias is not None else 0.0
    bias = shift - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    return (conv.weight * scale.reshape(-1, 1, 1, 1)).detach(), bias.detach()


def _conv(like: nn.Conv2d, weight: Tensor, bias: Tensor | None) -> nn.Conv2d:
    """A convolution with ``like``'s geometry and the given weight (out, in, kh, kw) and bias."""
    conv = nn.Conv2d(
        weight.shape[1] * like.groups,
        weight.shape[0],
        (weight.shape[2], weight.shape[3]),
        stride=cast("tuple[int, int]", like.stride),
        padding=cast("tuple[int, int]", like.padding),
        dilation=cast("tuple[int, int]", like.dilation),
        groups=like.groups,
        bias=bias is not None,
    )
    conv.weight = nn.Parameter(weight.clone(), requires_grad=False)
    if bias is not None:
        conv.bias = nn.Parameter(bias.clone(), requires_grad=False)
    return conv


class _SplitIn(nn.Module):
    """A convolution (with its batch norm) over the channels ``[xs | xr]``, as two summed
    convolutions; the first one's input is shifted first when ``shift`` is given."""

    def __init__(self, conv: nn.Conv2d, bn: nn.Module, split: int, out: slice | None = None) -> None:
        super().__init__()
        if conv.groups != 1:
            raise ValueError("a split convolution needs groups=1")
        weight, bias = _folded(conv, bn)
        if out is not None:
            weight, bias = weight[out], bias[out]
        self.moved = _conv(conv, weight[:, :split], None)
        self.rest = _conv(conv, weight[:, split:], bias)

    def forward(self, xs: Tensor, xr: Tensor) -> Tensor:
        return self.moved(xs) + self.rest(xr)


class _SplitBlock(nn.Module):
    """One residual block on ``(xs, xr)``, with ``split_in`` / ``split_out`` channels in the
    moved part of its input / output; its shift (if the block has one) moves ``xs`` only."""

    def __init__(
        self, block: BasicBlock | Bottleneck, *, split_in: int, split_out: int, one_clip_shift: bool = False
    ) -> None:
        super().__init__()
        self.one_clip_shift = one_clip_shift
        shifted = block.conv1 if isinstance(block.conv1, TemporalShift) else None
        conv1 = _first_conv(block)
        self.shift: tuple[int, int, int, int] | None = None
        if shifted is not None:
            fold = conv1.in_channels // shifted.fold_div
            self.shift = (shifted.n_segment, fold, *OFFSETS[shifted.mode])
        self.first = _SplitIn(conv1, block.bn1, split_in)
        last_conv, last_bn = _last_conv(block), (block.bn3 if isinstance(block, Bottleneck) else block.bn2)
        middle = []
        if isinstance(block, Bottleneck):
            middle = [_conv(block.conv2, *_folded(block.conv2, block.bn2)), nn.ReLU()]
        self.middle = nn.Sequential(*middle)
        weight, bias = _folded(last_conv, last_bn)
        self.last_moved = _conv(last_conv, weight[:split_out], bias[:split_out])
        self.last_rest = _conv(last_conv, weight[split_out:], bias[split_out:])
        self.down: nn.ModuleList | None = None
        if block.downsample is not None:
            conv, bn = block.downsample[0], block.downsample[1]
            self.down = nn.ModuleList(
                [
                    _SplitIn(conv, bn, split_in, slice(0, split_out)),
                    _SplitIn(conv, bn, split_in, slice(split_out, None)),
                ]
            )

    def forward(self, xs: Tensor, xr: Tensor) -> tuple[Tensor, Tensor]:
        moved = xs
        if self.shift is not None:
            n_segment, fold, offset0, offset1 = self.shift
            one_clip = self.one_clip_shift and isinstance(xs.shape[0], int) and xs.shape[0] == n_segment
            moved = shift_one_clip(xs, fold, offset0, offset1) if one_clip else shift_moved(xs, *self.shift)
        out = self.middle(F.relu(self.first(moved, xr)))
        if self.down is not None:
            identity_s, identity_r = self.down[0](xs, xr), self.down[1](xs, xr)
        else:
            identity_s, identity_r = xs, xr
        return F.relu(self.last_moved(out) + identity_s), F.relu(self.last_rest(out) + identity_r)


class SplitShiftResNet(nn.Module):
    """A residual-shift `VideoRecognizer` ResNet in the split form (see the module's text):
    (N, T, C, H, W) clips in, (N, num_classes) logits out, as the model it was made from."""

    def __init__(self, model: VideoRecognizer, *, moved: int, one_clip_shift: bool = False) -> None:
        super().__init__()
        self.config = model.config
        self.input_size = model.input_size
        backbone = model.backbone
        assert isinstance(backbone, ResNet)
        blocks = _blocks(backbone)
        fold_div = model.config.fold_div
        split_in = moved * (_in_channels(blocks[0]) // fold_div)  # the stem's output, the first block's input
        weight, bias = _folded(backbone.conv1, backbone.bn1)
        self.stem_moved, self.stem_rest = (
            nn.Sequential(_conv(backbone.conv1, weight[part], bias[part]), nn.ReLU(), backbone.maxpool)
            for part in (slice(0, split_in), slice(split_in, None))
        )
        splits = [moved * (_in_channels(b) // fold_div) for b in blocks[1:]]
        splits.append(moved * (_last_conv(blocks[-1]).out_channels // fold_div))
        layers = []
        for block, split_out in zip(blocks, splits, strict=True):
            layers.append(_SplitBlock(block, split_in=split_in, split_out=split_out, one_clip_shift=one_clip_shift))
            split_in = split_out
        self.blocks = nn.ModuleList(layers)
        self.dropout = model.dropout
        self.head = model.head

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        frames = x.flatten(0, 1)
        xs, xr = self.stem_moved(frames), self.stem_rest(frames)
        for block in self.blocks:
            xs, xr = block(xs, xr)
        pooled = torch.cat([xs.mean(dim=(2, 3)), xr.mean(dim=(2, 3))], dim=1)
        return self.head(self.dropout(pooled)).view(n, -1, self.config.num_classes).mean(dim=1)
