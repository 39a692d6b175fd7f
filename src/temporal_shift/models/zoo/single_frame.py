"""Single-frame 2D baseline: a 2D CNN classifies one frame of the clip.

The TSM paper's "2D" baseline before temporal modelling. Clips arrive with the same T
frames as every other model (so one data pipeline feeds all of them); the model looks at
one: a random frame of each clip in training, the centre frame (index T // 2) in eval,
at test time and in exports. Its cost is one frame's, whatever T is.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from temporal_shift.models.recognizer import (
    BACKBONES,
    ModelConfig,
    freeze_partial_bn,
    headless_backbone,
    new_head,
    partial_bn_eval,
)


class SingleFrame(nn.Module):
    """(N, T, C, H, W) clips -> (N, K) logits from one frame per clip."""

    archs: tuple[str, ...] = tuple(BACKBONES)
    input_size: int = 224
    frames: tuple[int, ...] = (1, 8)

    @staticmethod
    def check_config(config: ModelConfig) -> None:
        """Any T (the frames it does not look at cost nothing) and any 2D backbone."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone, feature_dim = headless_backbone(config.arch)
        self.dropout = nn.Dropout(config.dropout)
        self.head = new_head(feature_dim, config.num_classes)
        if config.partial_bn:
            freeze_partial_bn(self.backbone)

    @property
    def n_segment(self) -> int:
        return self.config.n_segment

    def pick_frames(self, x: Tensor) -> Tensor:
        """(N, T, C, H, W) -> (N, C, H, W): the centre frame in eval, a random one in training."""
        if not self.training:
            return x[:, x.shape[1] // 2]
        index = torch.randint(x.shape[1], (x.shape[0],), device=x.device)
        return x[torch.arange(x.shape[0], device=x.device), index]

    def forward(self, x: Tensor) -> Tensor:
        if not torch.jit.is_tracing() and (x.dim() != 5 or x.shape[1] != self.config.n_segment):
            raise ValueError(
                f"expected input of shape (N, T={self.config.n_segment}, C, H, W), got {tuple(x.shape)}"
            )
        return self.head(self.dropout(self.backbone(self.pick_frames(x))))

    def train(self, mode: bool = True) -> "SingleFrame":
        """Like `nn.Module.train`; with partial BN, every BN layer but the first stays in eval."""
        super().train(mode)
        if mode and self.config.partial_bn:
            partial_bn_eval(self.backbone)
        return self
