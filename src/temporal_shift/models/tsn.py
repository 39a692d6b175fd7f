"""The TSN/TSM video classifier (family ``tsn``): 2D backbone -> dropout -> linear head ->
average over time.

Without shift it is TSN, the 2D baseline; with shift it is TSM (residual or in-place
shift, optional temporal pooling and non-local blocks, causal for online use). With
``modality="flow"`` it is the flow stream of the two-stream baseline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from torch import Tensor

from temporal_shift.models.backbones import BACKBONES, headless_backbone, make_non_local, make_temporal_shift
from temporal_shift.models.base import ClipClassifier, plain_key
from temporal_shift.models.config import ModelConfig
from temporal_shift.models.flow_stem import cross_modality_weight, set_input_channels, stem_conv_name
from temporal_shift.models.state import load_state_strict


class VideoRecognizer(ClipClassifier):
    """(N, T, C, H, W) clips -> (N, num_classes) logits, averaging per-frame scores."""

    archs: ClassVar[tuple[str, ...]] = tuple(BACKBONES)
    frames: ClassVar[tuple[int, ...]] = (8, 16)
    supports_shift: ClassVar[bool] = True
    modalities: ClassVar[tuple[str, ...]] = ("rgb", "flow")

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        backbone, feature_dim = headless_backbone(config.arch)
        if config.modality == "flow":
            set_input_channels(backbone, config.input_channels)
        if config.shift:
            make_temporal_shift(
                backbone,
                config.n_segment,
                fold_div=config.fold_div,
                place=config.place,
                mode=config.mode,
                temporal_pool=config.temporal_pool,
            )
        if config.non_local:
            make_non_local(backbone, config.n_segment)
        self.backbone = backbone
        self.set_head(feature_dim)

    def frame_logits(self, x: Tensor) -> Tensor:
        """Per-frame logits (N, T', K) before the consensus; T' = T/2 with temporal_pool."""
        n = self.checked(x).shape[0]
        features = self.backbone(x.flatten(0, 1))
        return self.head(self.dropout(features)).view(n, -1, self.config.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.frame_logits(x).mean(dim=1)

    def load_backbone_state(self, state: Mapping[str, Tensor], *, source: str) -> None:
        """Load a torchvision 2D state dict (e.g. ImageNet weights) into the backbone.

        Keys are mapped onto the wrapped modules (``layer1.0.conv1.weight`` ->
        ``layer1.0.conv1.net.weight``); the 2D classifier (``fc.*``, ``classifier.*``) is
        dropped and added non-local blocks keep their initialisation. A flow model's first
        convolution takes the RGB kernel averaged over its 3 input channels (cross-modality
        initialisation, `flow_stem`). Any other key that does not fit is an error listing it.
        """
        own = self.backbone.state_dict()
        own_by_plain = {plain_key(key): key for key in own}
        mapped = {key: value for key, value in own.items() if ".nl." in key}
        for key, value in state.items():
            if not key.startswith(("fc.", "classifier.")):
                mapped[own_by_plain.get(key, key)] = value
        stem = stem_conv_name(self.backbone) + ".weight"
        if self.config.modality == "flow" and stem in mapped and mapped[stem].shape[1:2] == (3,):
            mapped[stem] = cross_modality_weight(mapped[stem], self.config.input_channels)
        load_state_strict(self.backbone, mapped, source=source)
