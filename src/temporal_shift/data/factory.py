"""Datasets by modality: the training or test dataset of an RGB or a flow model, with its
sampler and transform, from plain values.

`build_sampler` gives TSN (sparse) or dense frame sampling, `build_transform` the training
augmentation or the test views of a modality, and `build_dataset` puts them together: a
`VideoDataset` of frame folders or videos for ``"rgb"``, a `flow.FlowDataset` of
`flow.prepare_flow`'s flow folders for ``"flow"`` (``flow_length`` fields per segment,
stacked as 2L channels). Training (`engine.train`) and testing (`engine.evaluate`) both
build their data here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from torchvision.transforms import v2

from temporal_shift.data.dataset import VideoDataset
from temporal_shift.data.decode import Decoder
from temporal_shift.data.flow.dataset import FlowDataset
from temporal_shift.data.flow.layout import FLOW_X_TEMPLATE, flow_templates
from temporal_shift.data.flow.transforms import DEFAULT_FLOW_LENGTH, flow_test_transform, flow_train_transform
from temporal_shift.data.lists import DEFAULT_TEMPLATE, ListKind
from temporal_shift.data.sampling import DenseSampler, Sampler, TSNSampler
from temporal_shift.data.transforms import PAPER_SCALES, test_transform, train_transform

Modality = Literal["rgb", "flow"]
Sampling = Literal["tsn", "dense"]
MODALITIES: tuple[str, ...] = ("rgb", "flow")
SAMPLINGS: tuple[str, ...] = ("tsn", "dense")


def _check_modality(modality: str) -> None:
    if modality not in MODALITIES:
        raise ValueError(f"modality must be 'rgb' or 'flow', got {modality!r}")


def build_sampler(
    *,
    sampling: Sampling,
    n_segment: int,
    train: bool,
    frames_per_segment: int = 1,
    dense_window: int = 64,
    num_clips: int = 1,
    twice_sample: bool = False,
) -> Sampler:
    """``n_segment`` positions of ``frames_per_segment`` consecutive frames (flow: fields) each.

    ``"tsn"``: one random frame per segment in training, the segment centres in testing
    (with ``twice_sample`` also the segment starts, a second clip). ``"dense"``: frames
    ``dense_window // n_segment`` apart in a window, at a random start in training, at
    ``num_clips`` evenly spaced starts in testing.
    """
    if sampling == "tsn":
        return TSNSampler(
            n_segment=n_segment, train=train, frames_per_segment=frames_per_segment, twice_sample=twice_sample
        )
    if sampling == "dense":
        if twice_sample:
            raise ValueError("twice_sample goes with TSN sampling; dense sampling takes num_clips windows")
        return DenseSampler(
            n_segment=n_segment,
            train=train,
            window=dense_window,
            num_clips=num_clips,
            frames_per_segment=frames_per_segment,
        )
    raise ValueError(f"sampling must be 'tsn' or 'dense', got {sampling!r}")


def build_transform(
    *,
    modality: Modality,
    train: bool,
    size: int = 224,
    scales: Sequence[float] = PAPER_SCALES,
    flip: bool = True,
    scale_size: int = 256,
    views: int = 1,
    normalize: bool = True,
    flow_length: int = DEFAULT_FLOW_LENGTH,
) -> v2.Compose:
    """The clip transform of a modality: training augmentation (multi-scale crop to ``size``
    from ``scales``, optional flip) or the test views (short side to ``scale_size``, then
    ``views`` crops of ``size``: 1, 3, 5 or 10); flow flips negate x and its clips become
    (T, 2 ``flow_length``, H, W). ``normalize``: ImageNet statistics for RGB, the reference
    release's for flow."""
    _check_modality(modality)
    if modality == "flow":
        if train:
            return flow_train_transform(
                flow_length=flow_length, size=size, scales=scales, flip=flip, normalize=normalize
            )
        return flow_test_transform(
            flow_length=flow_length, size=size, scale_size=scale_size, views=views, normalize=normalize
        )
    if train:
        return train_transform(size=size, scales=scales, flip=flip, normalize=normalize)
    return test_transform(size=size, scale_size=scale_size, views=views, normalize=normalize)


def build_dataset(
    *,
    modality: Modality,
    list_file: str | Path,
    root: str | Path,
    sampler: Sampler,
    train: bool,
    size: int = 224,
    scales: Sequence[float] = PAPER_SCALES,
    flip: bool = True,
    scale_size: int = 256,
    views: int = 1,
    normalize: bool = True,
    flow_length: int = DEFAULT_FLOW_LENGTH,
    kind: ListKind = "auto",
    template: str = DEFAULT_TEMPLATE,
    num_classes: int | None = None,
    seed: int = 0,
    on_error: Literal["raise", "skip"] = "raise",
    check_files: bool = True,
    decoder: Decoder = "pyav",
    flow_template: str = FLOW_X_TEMPLATE,
) -> VideoDataset:
    """The dataset of ``list_file`` (paths relative to ``root``) for a model of ``modality``:
    clips from ``sampler`` through `build_transform`'s training augmentation (``train``) or
    test views. RGB lists hold frame folders (``template``) or videos (``kind``); a flow
    list is `flow.prepare_flow`'s, whose sampler must take ``flow_length`` fields per
    segment, its x files named by ``flow_template`` (the y files: `flow.flow_templates`).
    ``num_classes``, ``seed``, ``on_error``, ``check_files`` and ``decoder`` (of videos:
    ``pyav`` or ``torchcodec``) are `VideoDataset`'s.
    """
    _check_modality(modality)
    transform = build_transform(
        modality=modality,
        train=train,
        size=size,
        scales=scales,
        flip=flip,
        scale_size=scale_size,
        views=views,
        normalize=normalize,
        flow_length=flow_length,
    )
    common: dict[str, Any] = {
        "list_file": list_file,
        "root": root,
        "sampler": sampler,
        "transform": transform,
        "num_classes": num_classes,
        "seed": seed,
        "on_error": on_error,
        "check_files": check_files,
    }
    if modality == "rgb":
        return VideoDataset(kind=kind, template=template, decoder=decoder, **common)
    _check_flow_list(list_file, sampler, template=template, kind=kind, flow_length=flow_length)
    x_template, y_template = flow_templates(flow_template)
    return FlowDataset(x_template=x_template, y_template=y_template, **common)


def _check_flow_list(
    list_file: str | Path, sampler: Sampler, *, template: str, kind: ListKind, flow_length: int
) -> None:
    """What a flow list cannot take: a frame template, video entries, a sampler of another flow length."""
    if template != DEFAULT_TEMPLATE or kind == "videos":
        raise ValueError(
            f"{list_file}: a flow list (tsm prepare flow) names flow_x_/flow_y_ folders, so a frame "
            "template and kind 'videos' do not apply to modality 'flow'; leave them unset"
        )
    if sampler.frames_per_segment != flow_length:
        raise ValueError(
            f"{list_file}: a flow clip takes flow_length={flow_length} fields per segment but the "
            f"sampler takes {sampler.frames_per_segment}; build the sampler with frames_per_segment={flow_length}"
        )
