"""The 2D torchvision backbones: one table, and what each kind of network needs for TSM.

`BACKBONES` maps an arch name to its torchvision constructor and its *kind*
(`BackboneKind`): how temporal shifts (and non-local blocks) go into that kind of network,
where its classifier and first convolution are. Adding a backbone of a known kind is one
line of the table; a new kind of network is one `BackboneKind` (its insertion functions in
`insert`) and one line of `KINDS`.

`make_temporal_shift` / `make_non_local` change any supported torchvision model in place,
keeping its structure: each shifted module is only wrapped (`TemporalShift.net`), so
pretrained 2D weights still load after a key rename.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping

from torch import Tensor, nn
from torchvision import models as tvm

from temporal_shift.models.config import PLACES
from temporal_shift.models.insert import non_local_resnet, shift_mobilenet_v2, shift_resnet
from temporal_shift.ops.shift import check_shift_args


@dataclasses.dataclass(frozen=True)
class BackboneKind:
    """How TSM goes into one kind of torchvision 2D network."""

    name: str
    module_type: type[nn.Module]
    # (model, n_segment, *, fold_div, place, mode, temporal_pool): insert shifts in place
    insert_shift: Callable[..., None]
    # (model, n_segment): add the published TSM-R50+NL's non-local blocks, or None
    insert_non_local: Callable[[nn.Module, int], None] | None
    classifier: str  # the attribute holding the 2D classifier ("fc"; MobileNetV2: "classifier", last layer)

    def take_classifier(self, model: nn.Module) -> int:
        """Replace the 2D classifier by the identity; return its input size (the feature size)."""
        head = getattr(model, self.classifier)
        last = head[-1] if isinstance(head, nn.Sequential) else head
        if not isinstance(last, nn.Linear):
            raise TypeError(f"{self.name}'s classifier {self.classifier!r} ends in {type(last).__name__}, not Linear")
        setattr(model, self.classifier, nn.Identity())
        return last.in_features


RESNET = BackboneKind("ResNet", tvm.ResNet, shift_resnet, non_local_resnet, "fc")
MOBILENET_V2 = BackboneKind("MobileNetV2", tvm.MobileNetV2, shift_mobilenet_v2, None, "classifier")
KINDS: tuple[BackboneKind, ...] = (RESNET, MOBILENET_V2)


@dataclasses.dataclass(frozen=True)
class Backbone:
    """A torchvision 2D network ``build(weights=None)`` of a known kind."""

    build: Callable[..., nn.Module]
    kind: BackboneKind


# The torchvision constructors build_model accepts (no weights are downloaded).
BACKBONES: dict[str, Backbone] = {
    "resnet18": Backbone(tvm.resnet18, RESNET),
    "resnet34": Backbone(tvm.resnet34, RESNET),
    "resnet50": Backbone(tvm.resnet50, RESNET),
    "resnet101": Backbone(tvm.resnet101, RESNET),
    "resnet152": Backbone(tvm.resnet152, RESNET),
    "resnext50_32x4d": Backbone(tvm.resnext50_32x4d, RESNET),
    "resnext101_32x8d": Backbone(tvm.resnext101_32x8d, RESNET),
    "resnext101_64x4d": Backbone(tvm.resnext101_64x4d, RESNET),
    "wide_resnet50_2": Backbone(tvm.wide_resnet50_2, RESNET),
    "wide_resnet101_2": Backbone(tvm.wide_resnet101_2, RESNET),
    "mobilenet_v2": Backbone(tvm.mobilenet_v2, MOBILENET_V2),
}


# (block counts of layer1..4, bottleneck?) -> depth-named ResNet family members; the
# layer1.0.conv2 weight shape (out, in/groups) then picks ResNet, ResNeXt or Wide ResNet.
RESNET_LAYOUTS: dict[tuple[tuple[int, ...], bool], dict[tuple[int, int], str]] = {
    ((2, 2, 2, 2), False): {(64, 64): "resnet18"},
    ((3, 4, 6, 3), False): {(64, 64): "resnet34"},
    ((3, 4, 6, 3), True): {
        (64, 64): "resnet50",
        (128, 4): "resnext50_32x4d",
        (128, 128): "wide_resnet50_2",
    },
    ((3, 4, 23, 3), True): {
        (64, 64): "resnet101",
        (256, 8): "resnext101_32x8d",
        (256, 4): "resnext101_64x4d",
        (128, 128): "wide_resnet101_2",
    },
    ((3, 8, 36, 3), True): {(64, 64): "resnet152"},
}


def resnet_layout(state: Mapping[str, Tensor]) -> tuple[list[int], bool, tuple[int, ...] | None]:
    """(blocks per layer, bottleneck blocks?, layer1.0.conv2's shape) of a ResNet state dict in
    torchvision key names (without our ``net``/``block`` wrapper levels)."""
    counts = []
    for layer in range(1, 5):
        found = {int(m.group(1)) for k in state if (m := re.match(rf"^layer{layer}\.(\d+)\.", k))}
        counts.append(len(found))
    conv2 = state.get("layer1.0.conv2.weight")
    return counts, "layer1.0.conv3.weight" in state, tuple(conv2.shape) if conv2 is not None else None


def resnet_arch_of(state: Mapping[str, Tensor]) -> str | None:
    """The torchvision ResNet (or ResNeXt, Wide ResNet) whose weights ``state`` holds, or None."""
    counts, bottleneck, conv2 = resnet_layout(state)
    family = RESNET_LAYOUTS.get((tuple(counts), bottleneck), {})
    return family.get(conv2[:2]) if conv2 is not None and len(conv2) == 4 else None


def supported() -> str:
    return ", ".join(f"torchvision {kind.name}" for kind in KINDS)


def kind_of(model: nn.Module) -> BackboneKind:
    """The kind of a torchvision model; an error lists the supported kinds."""
    for kind in KINDS:
        if isinstance(model, kind.module_type):
            return kind
    raise ValueError(f"unsupported backbone {type(model).__name__}; supported: {supported()}")


def headless_backbone(arch: str) -> tuple[nn.Module, int]:
    """A fresh torchvision 2D backbone of `BACKBONES` without its classifier, and its feature size."""
    if arch not in BACKBONES:
        raise ValueError(f"unknown arch {arch!r}; supported: {', '.join(BACKBONES)}")
    backbone = BACKBONES[arch]
    model = backbone.build(weights=None)
    return model, backbone.kind.take_classifier(model)


def make_temporal_shift(
    model: nn.Module,
    n_segment: int,
    *,
    fold_div: int = 8,
    place: str = "blockres",
    mode: str = "bidirectional",
    temporal_pool: bool = False,
) -> nn.Module:
    """Insert temporal shifts into a torchvision ResNet or MobileNetV2 (in place); returns it.

    ``place="blockres"`` shifts before the first conv of each residual branch;
    ``place="block"`` shifts the whole block's input. Like the reference release,
    ResNet-101/152 get residual shifts in every other block (``blockres``) but in-place
    shifts in every block (``block``). With ``temporal_pool`` the frames are max-pooled
    over time before layer2 (ResNet only), and later shifts use T/2.
    """
    check_shift_args(n_segment=n_segment, fold_div=fold_div, mode=mode)
    if place not in PLACES:
        raise ValueError(f"unknown shift place {place!r}; expected one of {', '.join(PLACES)}")
    kind_of(model).insert_shift(
        model, n_segment, fold_div=fold_div, place=place, mode=mode, temporal_pool=temporal_pool
    )
    return model


def make_non_local(model: nn.Module, n_segment: int) -> nn.Module:
    """Add non-local blocks where the published TSM-R50+NL has them (in place); returns it.

    Must run after `make_temporal_shift` without temporal pooling; needs a ResNet with at
    least 5 blocks in layer3 (ResNet-50 and deeper).
    """
    kind = kind_of(model)
    if kind.insert_non_local is None:
        raise ValueError(f"non-local blocks need a torchvision ResNet backbone, got {type(model).__name__}")
    kind.insert_non_local(model, n_segment)
    return model
