"""2D backbone weights from files: ImageNet initialisation and I3D inflation.

A file of 2D weights is either a torchvision state dict (``torch.save(resnet50(...).state_dict())``,
bare or under ``state_dict``, a DataParallel ``module.`` prefix stripped) or a checkpoint of a
2D model family that `load_checkpoint` reads (ours of the tsn or single_frame family, the
reference release's or MMAction2's TSM): its backbone without the shift wrappers, and its
classifier as ``fc.*``. `read_2d_weights` gives the state dict in torchvision's key names;
each model family maps it onto itself (`ClipClassifier.load_backbone_state`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from torch import Tensor

from temporal_shift.checkpoint.format import CheckpointError, is_our_format, load_state_strict, read_checkpoint
from temporal_shift.checkpoint.loading import load_checkpoint
from temporal_shift.models.base import ClipClassifier, plain_key

TWO_D_FAMILIES = ("tsn", "single_frame")  # our families whose backbone is a 2D torchvision network
SOURCES_HINT = (
    "2D weights are a tsn-family (TSN/TSM) checkpoint, a reference-release or MMAction2 TSM "
    "checkpoint, or a torchvision ResNet state dict"
)
# keys of the checkpoint layouts `load_checkpoint` imports, which a torchvision state dict never has
_FOREIGN_PREFIXES = ("base_model.", "new_fc.", "backbone.", "cls_head.")


def read_2d_weights(source: str | Path | Mapping[str, Tensor]) -> dict[str, Tensor]:
    """2D weights in torchvision key names (see the module docstring); errors name the file."""
    if isinstance(source, Mapping):
        return _torchvision_state(dict(source), "state dict")
    name = str(source)
    data = read_checkpoint(source)
    if not is_our_format(data):
        state = data.get("state_dict", data)
        if isinstance(state, dict):
            state = _strip_module(state)
            if state and not any(isinstance(k, str) and k.startswith(_FOREIGN_PREFIXES) for k in state):
                return _torchvision_state(state, name)
    model = load_checkpoint(source, default_n_segment=8).model
    family = model.config.family
    if family not in TWO_D_FAMILIES:
        raise CheckpointError(f"{name}: a {family} checkpoint, not 2D weights; {SOURCES_HINT}")
    if model.config.non_local:
        raise CheckpointError(f"{name}: its non-local blocks have no 2D counterpart; {SOURCES_HINT} without them")
    state = {plain_key(k): v for k, v in model.backbone.state_dict().items()}
    state.update({f"fc.{k}": v for k, v in model.head.state_dict().items()})
    return state


def load_backbone_weights(model: ClipClassifier, source: str | Path | Mapping[str, Tensor]) -> None:
    """Fill ``model`` from the 2D weights in ``source`` (a file or a state dict; e.g. ImageNet
    weights), the way its family maps them (the head keeps its initialisation)."""
    name = "state dict" if isinstance(source, Mapping) else str(source)
    model.load_backbone_state(read_2d_weights(source), source=name)


def inflate_2d_weights(model: ClipClassifier, source: str | Path | Mapping[str, Tensor], *, head: bool = False) -> None:
    """Fill ``model`` (an I3D) from 2D ResNet weights: kernels repeated over time and divided by
    the temporal kernel size, BatchNorm copied (`models.zoo.inflate`). ``head=True`` also copies
    the 2D classifier, which must have the model's number of classes. The 2D network must be
    the model's arch (an error names the file and both archs)."""
    name = "state dict" if isinstance(source, Mapping) else str(source)
    state = read_2d_weights(source)
    model.load_backbone_state(state, source=name)
    if head:
        classifier = {k[len("fc.") :]: v for k, v in state.items() if k.startswith("fc.")}
        if not classifier:
            raise CheckpointError(f"{name}: no 2D classifier (fc.* / head.*) to copy; pass head=False")
        load_state_strict(model.head, classifier, source=f"{name} (classifier)")


def _torchvision_state(state: dict[str, Tensor], name: str) -> dict[str, Tensor]:
    bad = sorted(str(k) for k, v in state.items() if not isinstance(v, Tensor))
    if bad:
        raise CheckpointError(f"{name}: not a state dict of tensors ({', '.join(bad[:4])}); {SOURCES_HINT}")
    return state


def _strip_module(state: dict[str, Tensor]) -> dict[str, Tensor]:
    if state and all(isinstance(k, str) and k.startswith("module.") for k in state):
        return {k[len("module.") :]: v for k, v in state.items()}
    return state
