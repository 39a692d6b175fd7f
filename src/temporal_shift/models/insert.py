"""Where temporal shifts (and temporal pooling, non-local blocks) go in each kind of network.

One function per kind of torchvision backbone (ResNet, with ResNeXt and Wide ResNet;
MobileNetV2), each changing the model in place and keeping its structure: a shifted module
is only wrapped (`TemporalShift.net`). `backbones.KINDS` ties them to the networks, and
`backbones.make_temporal_shift` is the entry point for any supported model.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.models import MobileNetV2, ResNet
from torchvision.models.mobilenetv2 import InvertedResidual

from temporal_shift.models.non_local import NonLocalAfter
from temporal_shift.ops.shift import TemporalShift

# With residual ("blockres") shifts, ResNets with at least this many blocks in layer3
# (ResNet-101/152) shift every other block, as the reference release does; in-place
# ("block") shifts wrap every block at any depth there.
EVERY_OTHER_BLOCK_FROM = 23
# The published TSM-R50+NL model: non-local blocks after these blocks.
NON_LOCAL_BLOCKS = {"layer2": (0, 2), "layer3": (0, 2, 4)}


class TemporalPool(nn.Module):
    """Max-pool over time (kernel 3, stride 2, padding 1), then run ``net`` on T/2 frames.

    Named ``net`` like the reference release's wrapper, so its keys read
    ``layer2.net.0...``.
    """

    def __init__(self, net: nn.Module, n_segment: int) -> None:
        super().__init__()
        if n_segment % 2:
            raise ValueError(f"temporal_pool needs an even n_segment, got {n_segment}")
        self.net = net
        self.n_segment = n_segment

    def forward(self, x: Tensor) -> Tensor:
        c, h, w = x.shape[1:]
        clip = x.view(-1, self.n_segment, c, h, w).transpose(1, 2)  # N, C, T, H, W
        pooled = F.max_pool3d(clip, kernel_size=(3, 1, 1), stride=(2, 1, 1), padding=(1, 0, 0))
        return self.net(pooled.transpose(1, 2).reshape(-1, c, h, w))


def shift_resnet(model: ResNet, n_segment: int, *, fold_div: int, place: str, mode: str, temporal_pool: bool) -> None:
    """Shifts in every residual block (every other one of deep ResNets with ``blockres``)."""
    stages = [model.layer1, model.layer2, model.layer3, model.layer4]
    deep = len(model.layer3) >= EVERY_OTHER_BLOCK_FROM
    every = 2 if place == "blockres" and deep else 1
    segments = [n_segment] + [n_segment // 2 if temporal_pool else n_segment] * 3
    for stage, t in zip(stages, segments, strict=True):
        for i, block in enumerate(stage):
            if i % every:
                continue
            if place == "blockres":
                block.conv1 = TemporalShift(block.conv1, t, fold_div=fold_div, mode=mode)
            else:
                stage[i] = TemporalShift(block, t, fold_div=fold_div, mode=mode)
    if temporal_pool:
        model.layer2 = TemporalPool(model.layer2, n_segment)


def shift_mobilenet_v2(
    model: MobileNetV2, n_segment: int, *, fold_div: int, place: str, mode: str, temporal_pool: bool
) -> None:
    """Shifts in every inverted residual block with a residual connection."""
    if temporal_pool:
        raise ValueError("temporal_pool is only supported for ResNet backbones")
    for i, block in enumerate(model.features):
        if isinstance(block, InvertedResidual) and block.use_res_connect:
            if place == "blockres":
                first = block.conv[0]  # Conv2dNormActivation: shift before its conv
                first[0] = TemporalShift(first[0], n_segment, fold_div=fold_div, mode=mode)
            else:
                model.features[i] = TemporalShift(block, n_segment, fold_div=fold_div, mode=mode)


def non_local_resnet(model: ResNet, n_segment: int) -> None:
    """Non-local blocks after the published TSM-R50+NL's blocks (`NON_LOCAL_BLOCKS`)."""
    for name, indices in NON_LOCAL_BLOCKS.items():  # check all before changing any
        stage = getattr(model, name)
        if not isinstance(stage, nn.Sequential) or len(stage) <= max(indices):
            raise ValueError(
                f"non-local blocks need at least {max(indices) + 1} blocks in {name} "
                "(ResNet-50 or deeper, no temporal_pool)"
            )
    for name, indices in NON_LOCAL_BLOCKS.items():
        stage = getattr(model, name)
        for i in indices:
            stage[i] = NonLocalAfter(stage[i], _out_channels(stage[i]), n_segment)


def _out_channels(block: nn.Module) -> int:
    inner = block.net if isinstance(block, TemporalShift) else block
    last_bn = inner.get_submodule("bn3" if hasattr(inner, "bn3") else "bn2")
    if not isinstance(last_bn, nn.BatchNorm2d):
        raise TypeError(f"a non-local block follows a ResNet block ending in BatchNorm2d, not {type(last_bn).__name__}")
    return last_bn.num_features
