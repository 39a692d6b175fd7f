"""Building models from what users name: published weights by name, 2D backbone weights in a file.

`build_model` is the package's front door (``temporal_shift.build_model``): the model
layer's `models.factory.build_model`, plus ``weights=NAME`` (the model of published
weights, loaded with them) and ``backbone_weights=PATH`` (2D weights read from a file,
`checkpoint.backbone`). `load_model` also takes a published name.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from temporal_shift.checkpoint.backbone import read_2d_weights
from temporal_shift.checkpoint.format import load_state_strict
from temporal_shift.checkpoint.loading import load_checkpoint
from temporal_shift.checkpoint.loading import load_model as load_model_file
from temporal_shift.hub.published import PublishedWeights
from temporal_shift.hub.weights import get_weights, registry
from temporal_shift.models import factory
from temporal_shift.models.base import ClipClassifier


def build_model(
    arch: str = "resnet50",
    *,
    num_classes: int,
    backbone_weights: str | Path | Mapping[str, Tensor] | None = None,
    weights: str | PublishedWeights | None = None,
    **options: Any,
) -> ClipClassifier:
    """Build a TSM (``shift=True``) or TSN (``shift=False``) video classifier, or with
    ``family=`` one of the comparison models (`temporal_shift.models.zoo`).

    ``options`` are the other fields of `ModelConfig` (``n_segment``, ``shift``,
    ``fold_div``, ``place``, ``mode``, ``family``, ...), with its defaults, except that
    ``shift`` defaults to False for the families that have none; an unknown name is a
    TypeError listing the known ones. ``backbone_weights`` is a file (or a state dict) of 2D
    weights, e.g. a torchvision state dict of ImageNet weights saved beforehand
    (`checkpoint.backbone.read_2d_weights`); its classifier is dropped and each family maps it
    its own way (I3D inflates it over time). ``weights`` names published weights (or is a
    `PublishedWeights` entry): the model is built with their settings and loaded with them
    (`build_published`; the arguments given must agree with them).
    """
    if weights is not None:
        if backbone_weights is not None:
            raise ValueError("build_model: backbone_weights and weights exclude each other")
        return build_published(weights, arch=arch, num_classes=num_classes, options=options)
    model = factory.build_model(arch, num_classes=num_classes, **options)
    if backbone_weights is not None:
        name = "state dict" if isinstance(backbone_weights, Mapping) else str(backbone_weights)
        model.load_backbone_state(read_2d_weights(backbone_weights), source=name)
    return model


def build_published(
    weights: str | PublishedWeights, *, arch: str, num_classes: int, options: Mapping[str, Any]
) -> ClipClassifier:
    """`build_model(arch, num_classes=..., weights=NAME, **options)`: the model of the
    published weights, loaded with them (train mode, as `build_model` returns models).

    ``arch``, ``num_classes`` and the shift settings given must be the entry's (an error
    names the first that is not); ``n_segment`` may differ (the weights do not depend on
    T) and the other options (dropout, partial_bn, ...) are free."""
    entry = get_weights(weights)
    expected = entry.model_options()
    given = dict(options, arch=arch, num_classes=num_classes)
    for name in expected:
        if name == "n_segment" or (name == "place" and not entry.shift):
            continue
        if name in given and given[name] != expected[name]:
            raise ValueError(
                f"build_model: {name}={given[name]!r}, but {entry.name} holds a model with {name}={expected[name]!r}"
            )
    model = factory.build_model(**{**expected, **given})
    state = load_checkpoint(entry).model.state_dict()
    load_state_strict(model, state, source=entry.name)
    return model


def resolve_weights(source: str | Path | PublishedWeights) -> Path | PublishedWeights:
    """``source`` for `load_model`: an existing file stays a path; otherwise a string that is
    a published name becomes its entry (the only place a bare string turns into a
    download, and only because a name was given)."""
    if isinstance(source, (PublishedWeights, Path)):
        return source
    if Path(source).exists():
        return Path(source)
    table = registry()
    if source in table:
        return table[source]
    return Path(source)


def load_model(path: str | Path | PublishedWeights, *, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model saved at ``path`` in our format (`checkpoint.format.save_checkpoint`,
    ``tsm train``) with its weights, in eval mode; other layouts: `load_checkpoint`.

    ``path`` may also name published weights (``load_model("tsm_r50_kinetics400_8f")``,
    `weights.registry`), downloaded into the torch hub cache if absent; an existing file
    of that name wins."""
    return load_model_file(resolve_weights(path), map_location=map_location)
