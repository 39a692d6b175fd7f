"""Inflating 2D ResNet weights into an I3D: repeat each kernel over time, divide by its length.

Three sources of 2D weights are read:

- our checkpoints of the tsn family (TSN or TSM; `checkpoints.save_checkpoint`, ``tsm train``):
  the shift has no weights, so a TSM's backbone inflates like a TSN's;
- the other layouts `loading.load_checkpoint` reads (the paper's reference release,
  MMAction2's TSM), through it, built with 8 frames (T does not change the weights);
- a plain torchvision ResNet state dict (``torch.save(resnet50(weights=...).state_dict())``),
  bare or under ``state_dict``.

A t x k x k kernel made of t copies of the k x k one divided by t sees a clip of
identical frames as the 2D kernel sees one frame, so the inflated I3D (whose temporal
padding repeats edge frames: `i3d`) gives a still clip exactly the 2D network's output.
BatchNorm parameters and statistics are copied as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from temporal_shift.checkpoint.format import CheckpointError, is_our_format, load_state_strict, read_checkpoint

TWO_D_FAMILIES = ("tsn", "single_frame")  # our families whose backbone is a 2D torchvision network
SOURCES_HINT = (
    "2D weights are a tsn-family (TSN/TSM) checkpoint, a reference-release or MMAction2 TSM "
    "checkpoint, or a torchvision ResNet state dict"
)


def inflate_2d_weights(
    model: nn.Module, source: str | Path | Mapping[str, Tensor], *, head: bool = False
) -> None:
    """Fill ``model`` (an `I3D`) from 2D ResNet weights: a checkpoint file or a torchvision
    state dict (see the module docstring).

    Convolution kernels are repeated over time and divided by the temporal kernel size;
    BatchNorm is copied. ``head=True`` also copies the 2D classifier (``fc`` / ``head``),
    which must have the model's number of classes. The 2D network must be the model's arch
    (an error names the file and both archs); any key that does not fit is an error listing it.
    """
    name = "state dict" if isinstance(source, Mapping) else str(source)
    arch, backbone, classifier = _two_d_weights(source, name)
    want = model.config.arch
    if arch != want:
        raise CheckpointError(f"{name}: holds {arch} weights, but this I3D is {want}; inflate a {want} checkpoint")
    own = model.backbone.state_dict()
    inflated = {}
    for key, value in backbone.items():
        target = own.get(key)
        if target is not None and target.dim() == value.dim() + 1 and value.dim() == 4:
            time = target.shape[2]
            value = value.unsqueeze(2).repeat(1, 1, time, 1, 1) / time
        inflated[key] = value
    load_state_strict(model.backbone, inflated, source=name)
    if head:
        if classifier is None:
            raise CheckpointError(f"{name}: no 2D classifier (fc.* / head.*) to copy; pass head=False")
        load_state_strict(model.head, classifier, source=f"{name} (classifier)")


def _two_d_weights(
    source: str | Path | Mapping[str, Tensor], name: str
) -> tuple[str, dict[str, Tensor], dict[str, Tensor] | None]:
    """(arch, backbone state in torchvision key names without fc, classifier state or None)."""
    if isinstance(source, Mapping):
        return _torchvision_weights(dict(source), name)
    data = read_checkpoint(source)
    state = data.get("state_dict", data) if not is_our_format(data) else None
    if isinstance(state, dict) and _strip_module(state).keys() >= {"conv1.weight", "bn1.weight"}:
        return _torchvision_weights(_strip_module(state), name)
    from temporal_shift.checkpoint.loading import load_checkpoint  # loading imports the model modules

    model = load_checkpoint(source, default_n_segment=8).model
    family = getattr(model.config, "family", "tsn")
    if family not in TWO_D_FAMILIES:
        raise CheckpointError(f"{name}: a {family} checkpoint, not 2D weights; {SOURCES_HINT}")
    if getattr(model.config, "non_local", False):
        raise CheckpointError(f"{name}: its non-local blocks have no counterpart in I3D; {SOURCES_HINT} without them")
    backbone = {_plain_key(k): v for k, v in model.backbone.state_dict().items()}
    return model.config.arch, backbone, dict(model.head.state_dict())


def _torchvision_weights(
    state: dict[str, Tensor], name: str
) -> tuple[str, dict[str, Tensor], dict[str, Tensor] | None]:
    from temporal_shift.checkpoint.importers import _infer_resnet  # names the ResNet a key layout is

    backbone = {k: v for k, v in state.items() if not k.startswith("fc.")}
    classifier = {k[len("fc.") :]: v for k, v in state.items() if k.startswith("fc.")} or None
    bad = sorted(k for k, v in state.items() if not isinstance(v, Tensor))
    if bad:
        raise CheckpointError(f"{name}: not a state dict of tensors ({', '.join(bad[:4])})")
    # _infer_resnet wants a classifier only to count classes, which does not matter here.
    arch = _infer_resnet(backbone, classifier or {"weight": torch.zeros(1, 1)}, name).arch
    return arch, backbone, classifier


def _strip_module(state: dict[str, Tensor]) -> dict[str, Tensor]:
    if state and all(isinstance(k, str) and k.startswith("module.") for k in state):
        return {k[len("module.") :]: v for k, v in state.items()}
    return state


def _plain_key(key: str) -> str:
    """Our backbone key without the shift / temporal-pool wrapper levels (``net``)."""
    return ".".join(part for part in key.split(".") if part != "net")
