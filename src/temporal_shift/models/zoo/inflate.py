"""Inflating 2D ResNet weights into an I3D: repeat each kernel over time, divide by its length.

A t x k x k kernel made of t copies of the k x k one divided by t sees a clip of
identical frames as the 2D kernel sees one frame, so the inflated I3D (whose temporal
padding repeats edge frames: `i3d`) gives a still clip exactly the 2D network's output.
BatchNorm parameters and statistics are copied as they are. Reading 2D weights from files
(torchvision state dicts, TSN/TSM checkpoints) is `temporal_shift.checkpoint.backbone`'s.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from temporal_shift.models.backbones import resnet_arch_of
from temporal_shift.models.base import ClipClassifier
from temporal_shift.models.state import CheckpointError, load_state_strict


def inflate_state(model: ClipClassifier, state: Mapping[str, Tensor], *, source: str) -> None:
    """Fill ``model.backbone`` (an inflated ResNet of ``model.config.arch``) from a 2D torchvision
    ResNet state dict without its classifier; an error names ``source`` and both archs when the
    weights are another ResNet's, and every key that does not fit otherwise."""
    want = model.config.arch
    arch = resnet_arch_of(state)
    if arch != want:
        held = f"{arch} weights" if arch else "no torchvision ResNet layout"
        raise CheckpointError(f"{source}: holds {held}, but this I3D is {want}; inflate a {want} checkpoint")
    own = model.backbone.state_dict()
    inflated = {}
    for key, value in state.items():
        target = own.get(key)
        if target is not None and target.dim() == value.dim() + 1 and value.dim() == 4:
            time = target.shape[2]
            value = value.unsqueeze(2).repeat(1, 1, time, 1, 1) / time
        inflated[key] = value
    load_state_strict(model.backbone, inflated, source=source)
