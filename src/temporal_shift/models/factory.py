"""The model families by name, and building a model from a `ModelConfig`.

`FAMILIES` is the one table of families (``ModelConfig.family``): adding a family is one
module defining a `ClipClassifier` subclass and one line here. `build_model` is the
keyword front door (``build_model("resnet50", num_classes=400, n_segment=8)``);
`model_from_config` builds from a saved config. Models take state dicts, never files:
2D backbone weights are given as a state dict (`temporal_shift.build_model` reads files
and published weights by name).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from temporal_shift.models.base import ClipClassifier
from temporal_shift.models.config import ModelConfig
from temporal_shift.models.tsn import VideoRecognizer
from temporal_shift.models.zoo.c3d import C3D
from temporal_shift.models.zoo.eco import EcoFull, EcoLite
from temporal_shift.models.zoo.fusion import EarlyFusion, LateFusion, SlowFusion
from temporal_shift.models.zoo.i3d import I3D
from temporal_shift.models.zoo.single_frame import SingleFrame
from temporal_shift.ops.small_maps import use_small_map_convs

FAMILIES: dict[str, type[ClipClassifier]] = {
    "tsn": VideoRecognizer,
    "single_frame": SingleFrame,
    "late_fusion": LateFusion,
    "early_fusion": EarlyFusion,
    "slow_fusion": SlowFusion,
    "c3d": C3D,
    "i3d": I3D,
    "eco_lite": EcoLite,
    "eco_full": EcoFull,
}


def family_class(family: str) -> type[ClipClassifier]:
    """The class that builds model family ``family``."""
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; supported: {', '.join(FAMILIES)}")
    return FAMILIES[family]


def check_config(config: ModelConfig) -> ModelConfig:
    """``config`` if its family can build it (family, arch, T, options), else ValueError."""
    family_class(config.family).check_config(config)
    return config


def model_from_config(config: ModelConfig) -> ClipClassifier:
    """A fresh model of any family, in train mode; with ``config.small_maps`` its plain
    convolutions compute only the taps that meet single-position outputs (`ops.small_maps`)."""
    model = family_class(config.family)(config)
    return use_small_map_convs(model) if config.small_maps else model


def build_model(
    arch: str = "resnet50",
    *,
    num_classes: int,
    backbone_weights: Mapping[str, Tensor] | None = None,
    **options: Any,
) -> ClipClassifier:
    """Build a TSM (``shift=True``) or TSN (``shift=False``) video classifier, or with
    ``family=`` one of the comparison models (`temporal_shift.models.zoo`).

    ``options`` are the other fields of `ModelConfig` (``n_segment``, ``shift``,
    ``fold_div``, ``place``, ``mode``, ``family``, ...), with its defaults, except that
    ``shift`` defaults to False for the families that have none; an unknown name is a
    TypeError listing the known ones. ``backbone_weights`` is a torchvision state dict of
    the 2D backbone (e.g. ImageNet weights), mapped by the family
    (`ClipClassifier.load_backbone_state`; I3D inflates it over time).
    """
    known = ModelConfig.field_names()
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(
            f"build_model: unknown option {unknown[0]!r}; model options: {', '.join(known)}, backbone_weights"
        )
    if backbone_weights is not None and not isinstance(backbone_weights, Mapping):
        raise TypeError(
            f"build_model: backbone_weights takes a state dict here, got {type(backbone_weights).__name__}; "
            "temporal_shift.build_model reads a file"
        )
    if options.get("family", "tsn") != "tsn":
        options.setdefault("shift", False)
    model = model_from_config(ModelConfig(arch=arch, num_classes=num_classes, **options))
    if backbone_weights is not None:
        model.load_backbone_state(backbone_weights, source="backbone_weights")
    return model
