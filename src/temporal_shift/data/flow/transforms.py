"""Transforms of flow clips: the RGB crops, a horizontal flip that negates x, the flow
normalisation, and stacking each segment's L fields as 2L channels.

uint8 (T*L, 2, H, W) -> `flow_train_transform` / `flow_test_transform` -> float (T, 2L, H, W)
(or (views, T, 2L, H, W)), channels x1, y1, x2, y2, ... per segment. A flip mirrors the field
and negates x (``255 - x``); values are normalised as in the reference release,
``(v/255 - 0.5) / 0.226``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from temporal_shift.data.transforms import (
    IMAGENET_STD,
    PAPER_SCALES,
    ClipHorizontalFlip,
    MultiScaleCrop,
    StackViews,
    ThreeCrop,
    ToFloatNormalize,
)

DEFAULT_FLOW_LENGTH = 5  # L: flow fields per segment (TSN, the TSM release)
# The reference release's flow normalisation: mean 0.5, std the mean of ImageNet's stds.
FLOW_MEAN = 0.5
FLOW_STD = float(np.mean(IMAGENET_STD))


def flip_flow(video: torch.Tensor) -> torch.Tensor:
    """Mirror (..., 2, H, W) uint8 flow horizontally: mirror the images and negate x (255 - x)."""
    out = F.horizontal_flip(video)
    if out.shape[-3] != 2:
        raise ValueError(f"expected flow with 2 channels (x, y), got shape {tuple(out.shape)}")
    out = out.clone()
    out[..., 0, :, :] = 255 - out[..., 0, :, :]
    return tv_tensors.wrap(out, like=video) if isinstance(video, tv_tensors.TVTensor) else out


class FlowHorizontalFlip(ClipHorizontalFlip):
    """`ClipHorizontalFlip` for flow clips: the mirrored field has its x component negated."""

    def flip(self, video: Any) -> Any:
        return flip_flow(video)


class FlowTenCrop(v2.Transform):
    """Four corners + centre of side ``size`` and their mirrors (x negated): 10 flow views."""

    def __init__(self, *, size: int) -> None:
        super().__init__()
        self.size = size

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        views = tuple(self._call_kernel(F.five_crop, inpt, [self.size, self.size]))
        return views + tuple(flip_flow(v) for v in views)


class StackFlow(v2.Transform):
    """(..., T*L, 2, H, W) -> (..., T, 2L, H, W): each segment's L fields as 2L channels x1, y1, x2, ..."""

    _transformed_types = (torch.Tensor,)

    def __init__(self, *, flow_length: int) -> None:
        super().__init__()
        self.flow_length = flow_length

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        x = inpt.as_subclass(torch.Tensor)
        *lead, frames, channels, h, w = x.shape
        if channels != 2 or frames % self.flow_length:
            raise ValueError(f"expected (T*{self.flow_length}, 2, H, W) flow, got {tuple(x.shape)}")
        out = x.reshape(*lead, frames // self.flow_length, self.flow_length * 2, h, w)
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out


def _flow_to_float(normalize: bool) -> ToFloatNormalize:
    return ToFloatNormalize(mean=(FLOW_MEAN, FLOW_MEAN), std=(FLOW_STD, FLOW_STD), normalize=normalize)


def flow_train_transform(
    *,
    flow_length: int = DEFAULT_FLOW_LENGTH,
    size: int = 224,
    scales: Sequence[float] = PAPER_SCALES,
    max_distort: int = 1,
    flip: bool = True,
    flip_labels: Mapping[int, int | None] | None = None,
    normalize: bool = True,
) -> v2.Compose:
    """The RGB training augmentation for flow: multi-scale crop, flip negating x, the flow
    normalisation, then (T*L, 2, H, W) -> (T, 2L, H, W)."""
    steps: list[v2.Transform] = [MultiScaleCrop(size=size, scales=scales, max_distort=max_distort)]
    if flip:
        steps.append(FlowHorizontalFlip(p=0.5, label_map=flip_labels))
    return v2.Compose([*steps, _flow_to_float(normalize), StackFlow(flow_length=flow_length)])


def flow_test_transform(
    *,
    flow_length: int = DEFAULT_FLOW_LENGTH,
    size: int = 224,
    scale_size: int = 256,
    views: int = 1,
    normalize: bool = True,
) -> v2.Compose:
    """`transforms.test_transform`'s views for flow (the 10-crop mirrors negate x) -> (T, 2L, H, W)
    or (views, T, 2L, H, W)."""
    steps: list[v2.Transform] = [v2.Resize(scale_size, antialias=True)]
    if views == 1:
        steps.append(v2.CenterCrop(size))
    elif views == 3:
        steps.append(ThreeCrop(size=scale_size))
    elif views == 5:
        steps.append(v2.FiveCrop(size))
    elif views == 10:
        steps.append(FlowTenCrop(size=size))
    else:
        raise ValueError(f"views must be 1, 3, 5 or 10, got {views}")
    steps.append(_flow_to_float(normalize))
    if views > 1:
        steps.append(StackViews())
    return v2.Compose([*steps, StackFlow(flow_length=flow_length)])
