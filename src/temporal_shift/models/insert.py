"""Insert temporal shifts (and temporal pooling, non-local blocks) into torchvision backbones.

Supported: torchvision ResNet (ResNet-18/34/50/101/152, ResNeXt, Wide ResNet) and
MobileNetV2. The model is changed in place and returned; its structure is kept, each
shifted module is only wrapped (`TemporalShift.net`), so pretrained 2D weights still load
after a key rename.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.models import MobileNetV2, ResNet
from torchvision.models.mobilenetv2 import InvertedResidual

from temporal_shift.models.non_local import NonLocalAfter
from temporal_shift.ops.shift import TemporalShift, check_shift_args

PLACES = ("blockres", "block")
SUPPORTED_BACKBONES = (
    "torchvision ResNet (resnet18/34/50/101/152, resnext*, wide_resnet*) and MobileNetV2"
)
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


def make_temporal_shift(
    model: nn.Module,
    n_segment: int,
    *,
    fold_div: int = 8,
    place: str = "blockres",
    mode: str = "bidirectional",
    temporal_pool: bool = False,
) -> nn.Module:
    """Insert temporal shifts into a torchvision ResNet or MobileNetV2 (in place).

    ``place="blockres"`` shifts before the first conv of each residual branch;
    ``place="block"`` shifts the whole block's input. Like the reference release,
    ResNet-101/152 get residual shifts in every other block (``blockres``) but in-place
    shifts in every block (``block``). With ``temporal_pool`` the frames
    are max-pooled over time before layer2 (ResNet only), and later shifts use T/2.
    """
    check_shift_args(n_segment=n_segment, fold_div=fold_div, mode=mode)
    if place not in PLACES:
        raise ValueError(f"unknown shift place {place!r}; expected one of {', '.join(PLACES)}")

    def shift(module: nn.Module, t: int) -> TemporalShift:
        return TemporalShift(module, t, fold_div=fold_div, mode=mode)

    if isinstance(model, ResNet):
        stages = [model.layer1, model.layer2, model.layer3, model.layer4]
        deep = len(model.layer3) >= EVERY_OTHER_BLOCK_FROM
        every = 2 if place == "blockres" and deep else 1
        segments = [n_segment] + [n_segment // 2 if temporal_pool else n_segment] * 3
        for stage, t in zip(stages, segments):
            for i, block in enumerate(stage):
                if i % every:
                    continue
                if place == "blockres":
                    block.conv1 = shift(block.conv1, t)
                else:
                    stage[i] = shift(block, t)
        if temporal_pool:
            model.layer2 = TemporalPool(model.layer2, n_segment)
        return model

    if isinstance(model, MobileNetV2):
        if temporal_pool:
            raise ValueError("temporal_pool is only supported for ResNet backbones")
        for i, block in enumerate(model.features):
            if isinstance(block, InvertedResidual) and block.use_res_connect:
                if place == "blockres":
                    first = block.conv[0]  # Conv2dNormActivation: shift before its conv
                    first[0] = shift(first[0], n_segment)
                else:
                    model.features[i] = shift(block, n_segment)
        return model

    raise ValueError(
        f"unsupported backbone {type(model).__name__}; supported: {SUPPORTED_BACKBONES}"
    )


def make_non_local(model: nn.Module, n_segment: int) -> nn.Module:
    """Add non-local blocks where the published TSM-R50+NL has them (in place).

    Must run after `make_temporal_shift` without temporal pooling; needs a ResNet with at
    least 5 blocks in layer3 (ResNet-50 and deeper).
    """
    if not isinstance(model, ResNet):
        raise ValueError(
            f"non-local blocks need a torchvision ResNet backbone, got {type(model).__name__}"
        )
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
    return model


def _out_channels(block: nn.Module) -> int:
    inner = block.net if isinstance(block, TemporalShift) else block
    last_bn = inner.bn3 if hasattr(inner, "bn3") else inner.bn2
    return last_bn.num_features
