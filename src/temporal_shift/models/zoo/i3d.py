"""I3D-ResNet-50 as the TSM paper compares it: the baseline of Wang et al.'s non-local paper.

Wang, Girshick, Gupta, He, "Non-local Neural Networks" (CVPR 2018), Sec. 4 ("Inflated 3D
ConvNet"): a 2D ResNet-50 whose kernels are inflated in time, "I3D_3x1x1" -- the first
(1x1) convolution of a bottleneck becomes 3x1x1, in every other residual block only
("inflating more layers shows diminishing return"), and conv1 becomes 5x7x7. Which blocks
and which temporal strides follow the released model (facebookresearch/video-nonlocal-net,
``use_temp_convs`` / ``temp_strides``, as ported in Tushar-N/pytorch-resnet3d; the same
pattern as MMAction2's and PySlowFast's I3D-R50)::

    conv1 5x7x7, stride (2, 2, 2)            T -> T/2
    pool1 max 2x3x3, stride (2, 2, 2)        T/2 -> T/4
    res2  3 blocks, 3x1x1 in blocks 0 1 2
    pool2 max 2x1x1, stride (2, 1, 1)        T/4 -> T/8
    res3  4 blocks, 3x1x1 in blocks 0 2
    res4  6 blocks, 3x1x1 in blocks 0 2 4
    res5  3 blocks, 3x1x1 in block 1
    global average pool, dropout, head

It is torchvision's ``resnet50`` with every Conv2d/BatchNorm2d/MaxPool2d made 3D, so its
state-dict keys are torchvision's (``backbone.layer1.0.conv1.weight`` ...) with a time
axis on the convolution weights; `inflate_2d_weights` fills it from 2D weights.

T must be a multiple of 8 (conv1, pool1 and pool2 each halve time). The published input
is 32 frames at 224x224 (Kinetics; 8 time steps reach res2, 4 res3..res5): 33.1 GMACs and
28.04M parameters with 400 classes -- the TSM paper's row "I3D from [non-local], 8
frames: 33G, 29.3M" matches this network within 0.4% (GMACs) and 4.3% (params), its "8
frames" being, as we read it, the 8 time steps the network keeps after its stem; fed
only 8 frames the same network costs 8.3 GMACs (res3..res5 see one time step). Pinned in
tests/test_zoo_3d.py; the parameter count equals MMAction2's I3D-R50 (28,043,472).

One documented change: the temporal padding of the inflated convolutions replicates the
edge frames instead of zero-filling them (spatial padding stays zero). Costs and
parameters are unchanged; in exchange a clip of T identical frames gives exactly the
inflated 2D network's output, the I3D paper's "boring video" fixed point, which is what
makes inflated weights start where the 2D network left off.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision import models as tvm

from temporal_shift.models.base import ClipClassifier
from temporal_shift.models.config import ModelConfig
from temporal_shift.models.zoo.inflate import inflate_state

# Temporal kernel of the first convolution of each bottleneck of res2..res5 (3: inflated to 3x1x1).
INFLATED: dict[str, tuple[tuple[int, ...], ...]] = {
    "resnet50": ((3, 3, 3), (3, 1, 3, 1), (3, 1, 3, 1, 3, 1), (1, 3, 1)),
}
CONV1_TIME = 5  # conv1: 5x7x7
TIME_STRIDE = 8  # conv1, pool1 and pool2 each halve T


class TimePaddedConv3d(nn.Conv3d):
    """A Conv3d whose temporal padding repeats the edge frames (spatial padding stays zero).

    A plain `nn.Conv3d` as far as parameters go (``weight``, ``bias``); ``time_padding``
    frames are replicated at each end of the clip before the convolution.
    """

    def __init__(self, *args, time_padding: int = 0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.time_padding = time_padding

    def forward(self, x: Tensor) -> Tensor:
        if self.time_padding:
            pad = self.time_padding
            x = F.pad(x, (0, 0, 0, 0, pad, pad), mode="replicate")
        return super().forward(x)


def _conv3d(conv: nn.Conv2d, *, time: int, time_stride: int = 1) -> nn.Conv3d:
    """``conv`` with a ``time`` x kh x kw kernel (a fresh one, same settings otherwise)."""
    return TimePaddedConv3d(
        conv.in_channels,
        conv.out_channels,
        kernel_size=(time, *conv.kernel_size),
        stride=(time_stride, *conv.stride),
        padding=(0, *conv.padding),
        dilation=(1, *conv.dilation),
        groups=conv.groups,
        bias=conv.bias is not None,
        time_padding=time // 2,
    )


def _bn3d(bn: nn.BatchNorm2d) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(bn.num_features, eps=bn.eps, momentum=bn.momentum)


def inflated_resnet(arch: str) -> tuple[tvm.ResNet, int]:
    """torchvision's ``arch`` with 3D modules in place of its 2D ones (I3D_3x1x1), without
    its classifier, and its feature size. Fresh weights (He init, BN at 1/0 as torchvision)."""
    backbone = getattr(tvm, arch)(weights=None)
    feature_dim = backbone.fc.in_features
    backbone.fc = nn.Identity()
    backbone.conv1 = _conv3d(backbone.conv1, time=CONV1_TIME, time_stride=2)
    backbone.bn1 = _bn3d(backbone.bn1)
    backbone.maxpool = nn.MaxPool3d(kernel_size=(2, 3, 3), stride=(2, 2, 2), padding=(0, 1, 1))
    backbone.avgpool = nn.AdaptiveAvgPool3d(1)
    layers = (backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4)
    for layer, times in zip(layers, INFLATED[arch], strict=True):
        for block, time in zip(layer, times, strict=True):
            block.conv1 = _conv3d(block.conv1, time=time)
            block.conv2 = _conv3d(block.conv2, time=1)
            block.conv3 = _conv3d(block.conv3, time=1)
            block.bn1, block.bn2, block.bn3 = _bn3d(block.bn1), _bn3d(block.bn2), _bn3d(block.bn3)
            if block.downsample is not None:
                conv, bn = block.downsample
                block.downsample = nn.Sequential(_conv3d(conv, time=1), _bn3d(bn))
    for module in backbone.modules():  # torchvision's init, on the new modules
        if isinstance(module, nn.Conv3d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    return backbone, feature_dim


class I3D(ClipClassifier):
    """(N, T, 3, H, W) clips -> (N, K) logits: the non-local paper's I3D-ResNet-50."""

    archs: ClassVar[tuple[str, ...]] = tuple(INFLATED)
    frames: ClassVar[tuple[int, ...]] = (32, 8)
    backbone: tvm.ResNet  # inflated (`inflated_resnet`)

    @classmethod
    def check_config(cls, config: ModelConfig) -> None:
        """T must be a multiple of 8: conv1, pool1 and pool2 each halve time."""
        super().check_config(config)
        if config.n_segment % TIME_STRIDE:
            raise ValueError(
                f"n_segment={config.n_segment}: I3D takes a multiple of {TIME_STRIDE} frames "
                "(its conv1, pool1 and pool2 each halve time); published: 32, or 8"
            )

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.backbone, feature_dim = inflated_resnet(config.arch)
        self.pool2 = nn.MaxPool3d(kernel_size=(2, 1, 1), stride=(2, 1, 1))
        self.set_head(feature_dim)

    def forward(self, x: Tensor) -> Tensor:
        b = self.backbone
        x = b.maxpool(b.relu(b.bn1(b.conv1(self.checked(x).transpose(1, 2)))))  # (N, 3, T, H, W) in
        x = self.pool2(b.layer1(x))
        x = b.layer4(b.layer3(b.layer2(x)))
        return self.head(self.dropout(b.avgpool(x).flatten(1)))

    def load_backbone_state(self, state: Mapping[str, Tensor], *, source: str) -> None:
        """Inflate a torchvision 2D ResNet state dict of ``config.arch`` (`inflate_state`; the
        head keeps its init)."""
        inflate_state(self, {k: v for k, v in state.items() if not k.startswith("fc.")}, source=source)
