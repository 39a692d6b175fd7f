"""TSN/TSM video recognizers on torchvision backbones."""

from temporal_shift.models.insert import TemporalPool, make_non_local, make_temporal_shift
from temporal_shift.models.recognizer import (
    BACKBONES,
    ModelConfig,
    VideoRecognizer,
    build_model,
    param_groups,
)

__all__ = [
    "BACKBONES",
    "ModelConfig",
    "TemporalPool",
    "VideoRecognizer",
    "build_model",
    "make_non_local",
    "make_temporal_shift",
    "param_groups",
]
