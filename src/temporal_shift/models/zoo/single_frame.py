"""Single-frame 2D baseline: a 2D CNN classifies one frame of the clip.

The TSM paper's "2D" baseline before temporal modelling. Clips arrive with the same T
frames as every other model (so one data pipeline feeds all of them); the model looks at
one: a random frame of each clip in training, the centre frame (index T // 2) in eval,
at test time and in exports. Its cost is one frame's, whatever T is.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from temporal_shift.models.backbones import BACKBONES, headless_backbone
from temporal_shift.models.base import ClipClassifier
from temporal_shift.models.config import ModelConfig


class SingleFrame(ClipClassifier):
    """(N, T, C, H, W) clips -> (N, K) logits from one frame per clip."""

    archs: ClassVar[tuple[str, ...]] = tuple(BACKBONES)
    frames: ClassVar[tuple[int, ...]] = (1, 8)

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.backbone, feature_dim = headless_backbone(config.arch)
        self.set_head(feature_dim)

    def pick_frames(self, x: Tensor) -> Tensor:
        """(N, T, C, H, W) -> (N, C, H, W): the centre frame in eval, a random one in training."""
        if not self.training:
            return x[:, x.shape[1] // 2]
        index = torch.randint(x.shape[1], (x.shape[0],), device=x.device)
        return x[torch.arange(x.shape[0], device=x.device), index]

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dropout(self.backbone(self.pick_frames(self.checked(x)))))
