"""Running an evaluation: scoring videos view by view, ensemble members, and `evaluate`.

Memory: batches are streamed; per video only the fused score vector is kept (a
``num_videos x num_classes`` array), never the clips.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from temporal_shift.checkpoint.loading import (
    LoadedCheckpoint,
    load_checkpoint,
    resolve_class_names,
)
from temporal_shift.data.dataset import SkippedSample, VideoDataset
from temporal_shift.data.decode import Decoder
from temporal_shift.data.flow import FLOW_X_TEMPLATE, pair_records
from temporal_shift.data.lists import (
    DEFAULT_TEMPLATE,
    ListFileError,
    ListKind,
    read_list,
)
from temporal_shift.engine.evaluate.metrics import compute_metrics
from temporal_shift.engine.evaluate.protocol import (
    EvalProtocol,
    Fusion,
    fuse_views,
    normalize_weights,
)
from temporal_shift.engine.evaluate.report import EvalResult, write_results
from temporal_shift.hub.published import PublishedWeights
from temporal_shift.ops.runtime import ignore_sigint, resolve_device


@dataclasses.dataclass(frozen=True)
class Member:
    """One ensemble member: a checkpoint (a file, or published weights: `weights.get_weights`),
    its weight, and T for foreign checkpoints."""

    checkpoint: str | Path | PublishedWeights
    weight: float = 1.0
    n_segment: int | None = None


# --- the scoring loop ------------------------------------------------------------------------


@dataclasses.dataclass
class VideoScores:
    """What `score_videos` got: the fused view scores of the videos it could read."""

    indices: np.ndarray  # (n,) dataset indices, in the order scored
    scores: np.ndarray  # (n, K) float64: view scores fused with the given fusion
    skipped: dict[int, str]  # dataset index -> reason, for videos left out (on_error="skip")


class _Indexed(Dataset):
    """(clip, dataset index) pairs, so scores land on the right video whatever is skipped."""

    def __init__(self, dataset: VideoDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Tensor, int] | SkippedSample:
        item = self.dataset[index]
        if isinstance(item, SkippedSample):
            return item
        return item[0], index


def _collate(items: list[tuple[Tensor, int] | SkippedSample]) -> tuple[Tensor | None, Tensor, list[SkippedSample]]:
    good = [x for x in items if not isinstance(x, SkippedSample)]
    skipped = [x for x in items if isinstance(x, SkippedSample)]
    clips = torch.stack([c for c, _ in good]) if good else None
    return clips, torch.tensor([i for _, i in good], dtype=torch.long), skipped


def score_videos(
    model: nn.Module,
    dataset: VideoDataset,
    *,
    device: torch.device,
    views: int = 1,
    fusion: Fusion = "softmax",
    indices: Sequence[int] | None = None,
    batch_size: int = 4,
    workers: int = 0,
    amp_dtype: torch.dtype | None = None,
    progress: bool = False,
    desc: str = "test",
) -> VideoScores:
    """Score the videos of ``dataset`` (those at ``indices``, else all) with ``model``:
    ``views`` views per video (the dataset's transform makes them), one forward pass per
    batch of ``batch_size`` videos, the views' logits fused with ``fusion``. The one
    scoring loop of `evaluate` (``tsm test``) and of the trainer's validation.

    ``model`` is used as it is (put it in eval mode); ``amp_dtype`` runs it under autocast.
    Only the fused (n, K) scores are kept, never the clips.
    """
    loader = DataLoader(
        _Indexed(dataset),
        batch_size=batch_size,
        sampler=indices,
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=device.type == "cuda",
        worker_init_fn=ignore_sigint,
        generator=torch.Generator().manual_seed(0),  # private: torch's global RNG is left alone
    )
    autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
    found: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    skipped: dict[int, str] = {}
    bar = tqdm(loader, desc=desc, unit="batch", disable=not progress, dynamic_ncols=True, leave=False, file=sys.stderr)
    with torch.inference_mode():
        for clips, index, bad in bar:
            for s in bad:
                skipped.setdefault(s.index, s.reason)
            if clips is None:
                continue
            if clips.dim() == 5:  # a single view: (B, T, C, H, W)
                clips = clips.unsqueeze(1)
            if clips.shape[1] != views:
                raise RuntimeError(f"expected {views} views per video, the data gave {clips.shape[1]}")
            b = clips.shape[0]
            with autocast:
                logits = model(clips.flatten(0, 1).to(device, non_blocking=True)).float()
            found.append(index.numpy())
            scores.append(fuse_views(logits.view(b, views, -1), fusion).cpu().double().numpy())
    bar.close()
    if not found:
        return VideoScores(np.zeros(0, dtype=np.int64), np.zeros((0, 0)), skipped)
    return VideoScores(np.concatenate(found), np.concatenate(scores), skipped)


# --- evaluate ---------------------------------------------------------------------------------


def _check_list(list_file: Path, *, kind: ListKind, num_classes: int, checkpoint: Path, skip: bool) -> None:
    errors: list[ListFileError] | None = [] if skip else None
    records = read_list(list_file, kind=kind, errors=errors)
    if not records and not errors:
        raise ListFileError(f"{list_file}: empty list, no videos to evaluate")
    if not skip:
        for record in records:
            if record.label >= num_classes:
                raise ListFileError(
                    f"{record.source}: label {record.label} out of range: {checkpoint} has "
                    f"{num_classes} classes (0..{num_classes - 1})"
                )


def evaluate(
    members: Sequence[Member | str | Path],
    *,
    list_file: str | Path,
    root: str | Path,
    protocol: EvalProtocol = EvalProtocol(),
    kind: ListKind = "auto",
    template: str = DEFAULT_TEMPLATE,
    normalize: bool | None = None,
    classes: str | Path | None = None,
    batch_size: int = 4,
    workers: int = 2,
    device: str = "auto",
    on_error: Literal["raise", "skip"] = "raise",
    out_dir: str | Path | None = None,
    progress: bool = True,
    flow_list: str | Path | None = None,
    flow_root: str | Path | None = None,
    flow_template: str = FLOW_X_TEMPLATE,
    decoder: Decoder = "pyav",
) -> EvalResult:
    """Score every video of ``list_file`` (paths relative to ``root``) with the views of
    ``protocol``, fuse views and then members, compute the metrics, and write the files
    listed in `report.write_results` to ``out_dir`` if given.

    Two-stream testing: a flow member (a checkpoint with ``modality`` flow) samples its own
    flow stacks from ``flow_list`` (a `tsm prepare flow` list, relative to ``flow_root``,
    default ``root``), with the same protocol; its entries are paired with the videos of
    ``list_file`` by path (relative, video extension dropped), and the scores of the RGB and
    flow members are fused with the members' weights. ``flow_template`` names the flow list's
    x files (`data.flow.flow_templates`); ``decoder`` decodes the videos (pyav, torchcodec).

    ``members`` are checkpoints (paths or `Member`s with weights); they must have the same
    classes, may differ in architecture and n_segment (each samples its own frames).
    ``normalize``, ``protocol.size`` and ``protocol.scale_size`` default to the first
    checkpoint's training settings. ``batch_size`` counts videos: a batch is one forward
    pass of ``batch_size x views`` clips. With ``on_error="skip"`` unreadable videos (and
    bad list lines) are left out of the metrics and listed in ``EvalResult.skipped``;
    a video any member could not read is left out for all.
    """
    members, weights, root, list_file = _checked_inputs(
        members, root=root, list_file=list_file, batch_size=batch_size, workers=workers, on_error=on_error
    )
    dev = resolve_device(device)
    loaded = _load_members(members)
    class_names = resolve_class_names(loaded, classes)
    protocol, main, datasets = _member_datasets(
        loaded,
        protocol=protocol,
        list_file=list_file,
        root=root,
        kind=kind,
        template=template,
        normalize=normalize,
        on_error=on_error,
        flow_list=flow_list,
        flow_root=flow_root,
        flow_template=flow_template,
        decoder=decoder,
    )
    start = time.perf_counter()
    scored = _score_members(
        loaded,
        datasets,
        main,
        protocol=protocol,
        device=dev,
        batch_size=batch_size,
        workers=workers,
        skip=on_error == "skip",
        progress=progress,
    )
    seconds = time.perf_counter() - start
    result = _fuse_and_measure(
        scored, weights, loaded, main, list_file=list_file, class_names=class_names, protocol=protocol, seconds=seconds
    )
    if out_dir is not None:
        result.files = write_results(result, out_dir)
    return result


def _checked_inputs(
    members: Sequence[Member | str | Path],
    *,
    root: str | Path,
    list_file: str | Path,
    batch_size: int,
    workers: int,
    on_error: str,
) -> tuple[list[Member], list[float], Path, Path]:
    """`evaluate`'s arguments checked before anything loads: the members, their normalised
    weights, the data root and the list file (under the root)."""
    if batch_size < 1 or workers < 0:
        raise ValueError(f"batch_size must be >= 1 and workers >= 0, got {batch_size}, {workers}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    checked = [m if isinstance(m, Member) else Member(checkpoint=m) for m in members]
    if not checked:
        raise ValueError("no checkpoint to evaluate")
    weights = normalize_weights([m.weight for m in checked])
    root, list_file = Path(root), Path(root) / list_file
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: data root not found")
    if not list_file.is_file():
        raise FileNotFoundError(f"{list_file}: list file not found")
    for m in checked:  # published weights (weights.PublishedWeights) are fetched when loaded
        if isinstance(m.checkpoint, (str, Path)) and not Path(m.checkpoint).is_file():
            raise FileNotFoundError(f"checkpoint not found: {m.checkpoint}")
    return checked, weights, root, list_file


def _member_datasets(
    loaded: Sequence[LoadedCheckpoint],
    *,
    protocol: EvalProtocol,
    list_file: Path,
    root: Path,
    kind: ListKind,
    template: str,
    normalize: bool | None,
    on_error: Literal["raise", "skip"],
    flow_list: str | Path | None,
    flow_root: str | Path | None,
    flow_template: str,
    decoder: Decoder,
) -> tuple[EvalProtocol, VideoDataset, list[VideoDataset]]:
    """The list checked, the protocol's sizes filled in from the first member, the videos the
    metrics are over (``list_file``, as the first member samples it) and each member's test
    dataset: an RGB member samples ``list_file`` with its own T, a flow member its flow stacks
    from ``flow_list`` (under ``flow_root``, default ``root``)."""
    _check_list(
        list_file, kind=kind, num_classes=loaded[0].num_classes, checkpoint=loaded[0].path, skip=on_error == "skip"
    )
    protocol = dataclasses.replace(
        protocol, size=protocol.size or loaded[0].input_size, scale_size=protocol.scale_size or loaded[0].scale_size
    )
    rgb_normalize = loaded[0].normalize if normalize is None else normalize  # every RGB member's
    flow_root = Path(flow_root) if flow_root is not None else root
    rgb: dict[str, Any] = {
        "list_file": list_file,
        "root": root,
        "normalize": rgb_normalize,
        "kind": kind,
        "template": template,
        "decoder": decoder,
        "num_classes": loaded[0].num_classes,
        "on_error": on_error,
    }
    main = protocol.dataset(
        modality="rgb",
        n_segment=loaded[0].n_segment,
        check_files=any(c.config.modality != "flow" for c in loaded),
        **rgb,
    )
    datasets: list[VideoDataset] = []
    for c in loaded:
        if c.config.modality != "flow":
            datasets.append(protocol.dataset(modality="rgb", n_segment=c.n_segment, **rgb))
            continue
        if flow_list is None:
            raise ValueError(
                f"{c.path} is a flow model: give the flow list of the videos "
                "(flow_list=, tsm test --flow-list; tsm prepare flow writes it)"
            )
        datasets.append(
            protocol.dataset(
                modality="flow",
                list_file=flow_root / flow_list,
                root=flow_root,
                n_segment=c.n_segment,
                normalize=c.normalize if normalize is None else normalize,
                flow_length=c.config.flow_length,
                flow_template=flow_template,
                num_classes=loaded[0].num_classes,
                on_error=on_error,
            )
        )
    return protocol, main, datasets


def _load_members(members: Sequence[Member]) -> list[LoadedCheckpoint]:
    """The members' checkpoints, which must agree on the number of classes."""
    loaded = [load_checkpoint(m.checkpoint, n_segment=m.n_segment) for m in members]
    first = loaded[0]
    for other in loaded[1:]:
        if other.num_classes != first.num_classes:
            raise ValueError(
                f"ensemble members disagree on the classes: {first.path} has {first.num_classes}, "
                f"{other.path} has {other.num_classes}"
            )
    return loaded


def _score_members(
    loaded: Sequence[LoadedCheckpoint],
    datasets: Sequence[VideoDataset],
    main: VideoDataset,
    *,
    protocol: EvalProtocol,
    device: torch.device,
    batch_size: int,
    workers: int,
    skip: bool,
    progress: bool,
) -> list[VideoScores]:
    """Every member's fused view scores (`_score_member`), one member after the other."""
    return [
        _score_member(
            c,
            dataset,
            main,
            protocol=protocol,
            device=device,
            batch_size=batch_size,
            workers=workers,
            skip=skip,
            progress=progress,
            desc=f"test {c.path.name}" if len(loaded) == 1 else f"test {m + 1}/{len(loaded)} {c.path.name}",
        )
        for m, (c, dataset) in enumerate(zip(loaded, datasets, strict=True))
    ]


def _score_member(
    checkpoint: LoadedCheckpoint,
    dataset: VideoDataset,
    main: VideoDataset,
    *,
    protocol: EvalProtocol,
    device: torch.device,
    batch_size: int,
    workers: int,
    skip: bool,
    progress: bool,
    desc: str,
) -> VideoScores:
    """One member's fused view scores, indexed by ``main``'s videos; its model visits
    ``device`` only while it scores. A member reading another list (a flow stream) scores
    the entries that pair with ``main``'s videos (`pair_records`)."""
    positions, unpaired = (
        (None, {})
        if dataset.list_file == main.list_file and dataset.records == main.records
        else pair_records(main, dataset, skip=skip)
    )
    model = checkpoint.model.to(device).eval()
    try:
        scores = score_videos(
            model,
            dataset,
            device=device,
            views=protocol.views,
            fusion=protocol.fusion,
            indices=None if positions is None else np.flatnonzero(positions >= 0).tolist(),
            batch_size=batch_size,
            workers=workers,
            progress=progress,
            desc=desc,
        )
    finally:
        checkpoint.model.to("cpu")
    if positions is None:
        return scores
    skipped = {int(positions[i]): reason for i, reason in scores.skipped.items() if positions[i] >= 0}
    return VideoScores(positions[scores.indices], scores.scores, {**unpaired, **skipped})


def _fuse_and_measure(
    scored: Sequence[VideoScores],
    weights: Sequence[float],
    loaded: Sequence[LoadedCheckpoint],
    dataset: VideoDataset,
    *,
    list_file: Path,
    class_names: list[str],
    protocol: EvalProtocol,
    seconds: float,
) -> EvalResult:
    """Weighted sum of the members' scores over the videos every member read; metrics."""
    records = dataset.records
    n, num_classes = len(records), loaded[0].num_classes
    scores = np.zeros((n, num_classes), dtype=np.float64)
    done = np.zeros((len(scored), n), dtype=bool)
    skipped: dict[int, str] = {}
    for m, (member, weight) in enumerate(zip(scored, weights, strict=True)):
        if len(member.indices):
            scores[member.indices] += weight * member.scores
        done[m, member.indices] = True
        for index, reason in member.skipped.items():
            skipped.setdefault(index, reason)
    ok = done.all(axis=0)
    reasons = [skipped.get(i, f"{records[i].source}: not scored") for i in np.flatnonzero(~ok).tolist()]
    reasons = list(dataset.skipped_lines) + reasons
    if not ok.any():
        raise ValueError(f"{list_file}: none of the {n} videos could be read")
    labels = np.array([r.label for r in records], dtype=np.int64)[ok]
    scores = scores[ok]
    metrics = compute_metrics(scores, labels, num_classes)
    return EvalResult(
        top1=metrics.top1,
        top5=metrics.top5,
        mean_class=metrics.mean_class,
        per_class=metrics.per_class,
        confusion=metrics.confusion,
        scores=scores,
        labels=labels,
        videos=[records[i].path for i in np.flatnonzero(ok).tolist()],
        class_names=class_names,
        protocol=protocol,
        members=[
            {
                "checkpoint": c.path,
                "weight": w,
                "arch": c.config.arch,
                "family": c.config.family,
                "n_segment": c.n_segment,
                "shift": c.config.shift,
                "modality": c.config.modality,
                "flow_length": c.config.flow_length,
            }
            for c, w in zip(loaded, weights, strict=True)
        ],
        skipped=reasons,
        seconds=seconds,
    )
