"""The flow stream's first convolution: 2L input channels, initialised from RGB weights.

TSN's cross-modality initialisation: the RGB stem's kernel (out, 3, k, k) is averaged over
its 3 input channels and the mean copied to each of the 2L flow channels. A flow input
whose 2L channels all equal one image then gets 2L/3 times the response the RGB stem
gives to that image in its 3 channels: the mean response per input channel is kept.
"""

from __future__ import annotations

from torch import Tensor, nn


def stem_conv_name(backbone: nn.Module) -> str:
    """Name of the backbone's first convolution (``conv1`` for ResNets, ``features.0.0`` for MobileNetV2)."""
    for name, module in backbone.named_modules():
        if isinstance(module, nn.Conv2d):
            return name
    raise ValueError(f"{type(backbone).__name__} has no Conv2d to take flow input")


def cross_modality_weight(weight: Tensor, in_channels: int) -> Tensor:
    """(out, c, k, k) RGB kernel -> (out, in_channels, k, k): the mean over c, repeated."""
    if weight.dim() != 4:
        raise ValueError(f"expected a (out, in, kh, kw) convolution kernel, got shape {tuple(weight.shape)}")
    return weight.mean(dim=1, keepdim=True).expand(-1, in_channels, -1, -1).contiguous()


def _pair(size: tuple[int, ...]) -> tuple[int, int]:
    """A Conv2d's (h, w) size (torch types its sizes as tuples of any length)."""
    h, w = size
    return h, w


def set_input_channels(backbone: nn.Module, in_channels: int) -> None:
    """Replace the backbone's first convolution by one taking ``in_channels`` channels,
    initialised from its current weights by cross-modality averaging."""
    name = stem_conv_name(backbone)
    parent_name, _, attr = name.rpartition(".")
    parent = backbone.get_submodule(parent_name) if parent_name else backbone
    old: nn.Conv2d = getattr(parent, attr)
    new = nn.Conv2d(
        in_channels,
        old.out_channels,
        _pair(old.kernel_size),
        stride=_pair(old.stride),
        padding=old.padding if isinstance(old.padding, str) else _pair(old.padding),
        dilation=_pair(old.dilation),
        groups=old.groups,
        bias=old.bias is not None,
    )
    new.weight.data.copy_(cross_modality_weight(old.weight.data, in_channels))
    if old.bias is not None:
        assert new.bias is not None  # built with bias=True just above
        new.bias.data.copy_(old.bias.data)
    setattr(parent, attr, new)
