"""Evaluation: the paper's test protocols, score fusion, ensembles and metrics.

A *view* is one forward pass of a model on one (T, C, H, W) clip: one sampled clip under
one spatial crop. A test protocol (`EvalProtocol`) fixes the views of every video:

- clips: ``"single"`` (the TSN centre clip: each segment's centre frame), ``"twice"``
  (``twice_sample``: the centre clip and the segment-start clip, 2 clips) or ``"dense"``
  (``dense_clips`` evenly spaced windows of ``dense_window`` frames, ``n_segment`` frames
  at a fixed stride each; 10 by default, the paper's Kinetics protocol);
- crops: after resizing the short side to ``scale_size``, 1 centre crop of ``size``, 3
  full-resolution crops of side ``scale_size`` along the long side, 5 crops of ``size``
  (four corners + centre) or 10 (those five and their mirrors);

so a video has ``clips x crops`` views (`EvalProtocol.views`). The view scores of a video
are averaged (``fusion="softmax"``: the softmax probabilities, ``"logits"``: the raw
logits); ensemble members (e.g. an 8-frame and a 16-frame model, each sampling with its own
``n_segment``) are then fused with normalised weights, in the same space (probabilities or
logits), before the metrics.

Memory: batches are streamed; per video only the fused score vector is kept (a
``num_videos x num_classes`` array), never the clips.

Metrics are pure functions of the fused scores and labels (`topk_accuracy`,
`confusion_matrix`, `per_class_accuracy`, `mean_class_accuracy`); all accuracies are in
percent. Ties between scores are broken towards the lower class index. A class with no
video in the labels has no per-class accuracy (NaN) and is left out of the mean class
accuracy (the mean over the classes that occur; MMAction2 does the same); predictions of
such a class still count as errors of the true class.

`evaluate(...)` runs everything and returns an `EvalResult`; with ``out_dir`` it also
writes ``metrics.json``, ``per_class.csv``, ``predictions.csv`` (video, true label, top-5
labels, names and fused scores), ``confusion.npy`` (rows: true class, columns: predicted)
and ``confusion.png``.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
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
    DEFAULT_SCALE_SIZE,
    DEFAULT_SIZE,
    LoadedCheckpoint,
    load_checkpoint,
    resolve_class_names,
)
from temporal_shift.data.dataset import SkippedSample, VideoDataset
from temporal_shift.data.factory import Modality, build_dataset, build_sampler, build_transform
from temporal_shift.data.flow import pair_records
from temporal_shift.data.lists import DEFAULT_TEMPLATE, ListFileError, ListKind, read_list
from temporal_shift.data.sampling import Sampler
from temporal_shift.hub.published import Accuracy, PublishedWeights
from temporal_shift.ops.runtime import ignore_sigint, resolve_device

ClipProtocol = Literal["single", "twice", "dense"]
Fusion = Literal["softmax", "logits"]
CLIP_PROTOCOLS: tuple[str, ...] = ("single", "twice", "dense")
CROPS: tuple[int, ...] = (1, 3, 5, 10)
FUSIONS: tuple[str, ...] = ("softmax", "logits")


# --- protocol ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EvalProtocol:
    """Which views of a video are scored and how their scores are averaged.

    ``size``/``scale_size`` of None mean "as the checkpoint was trained" (its saved
    ``data.size``/``data.scale_size``), else 224/256; `evaluate` fills them in.
    """

    clips: ClipProtocol = "single"
    crops: int = 1
    fusion: Fusion = "softmax"
    dense_clips: int = 10
    dense_window: int = 64
    size: int | None = None
    scale_size: int | None = None

    def __post_init__(self) -> None:
        if self.clips not in CLIP_PROTOCOLS:
            raise ValueError(f"clips must be one of {', '.join(CLIP_PROTOCOLS)}, got {self.clips!r}")
        if self.crops not in CROPS:
            raise ValueError(f"crops must be 1, 3, 5 or 10, got {self.crops!r}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be 'softmax' or 'logits', got {self.fusion!r}")
        if self.dense_clips < 1 or self.dense_window < 1:
            raise ValueError(f"dense_clips and dense_window must be >= 1, got {self.dense_clips}, {self.dense_window}")
        for name in ("size", "scale_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.size is not None and self.scale_size is not None and self.scale_size < self.size:
            raise ValueError(f"scale_size ({self.scale_size}) must be at least size ({self.size})")

    @classmethod
    def of(cls, accuracy: Accuracy) -> EvalProtocol:
        """The protocol a published accuracy was measured under (`hub.published.Accuracy`)."""
        return cls(
            clips=accuracy.clips,
            crops=accuracy.crops,
            size=accuracy.size,  # type: ignore[arg-type]
            scale_size=accuracy.scale_size,
        )

    @property
    def num_clips(self) -> int:
        return {"single": 1, "twice": 2, "dense": self.dense_clips}[self.clips]

    @property
    def views(self) -> int:
        """Forward passes (views) per video: clips x crops."""
        return self.num_clips * self.crops

    def sampler(self, n_segment: int, *, new_length: int = 1) -> Sampler:
        """The frame sampler for a model with ``n_segment`` frames (of ``new_length`` consecutive
        frames or flow fields each)."""
        if self.clips == "dense" and self.dense_window < n_segment:
            raise ValueError(f"dense_window ({self.dense_window}) must be at least n_segment ({n_segment})")
        return build_sampler(
            sampling="dense" if self.clips == "dense" else "tsn",
            num_segments=n_segment,
            train=False,
            new_length=new_length,
            dense_window=self.dense_window,
            num_clips=self.dense_clips,
            twice_sample=self.clips == "twice",
        )

    def transform(self, *, normalize: bool = True, flow_length: int | None = None):
        """The clip transform: (T, C, H, W) uint8 -> float (crops, T, C, H, W) (or (T, C, H, W) for 1 crop);
        with ``flow_length`` L, flow (T*L, 2, H, W) -> (crops, T, 2L, H, W) (`data.factory.build_transform`)."""
        size, scale_size = self.size or DEFAULT_SIZE, self.scale_size or DEFAULT_SCALE_SIZE
        if flow_length is not None:
            return build_transform(
                modality="flow",
                train=False,
                size=size,
                scale_size=scale_size,
                views=self.crops,
                normalize=normalize,
                flow_length=flow_length,
            )
        return build_transform(
            modality="rgb", train=False, size=size, scale_size=scale_size, views=self.crops, normalize=normalize
        )

    def dataset(
        self,
        *,
        modality: Modality,
        list_file: str | Path,
        root: str | Path,
        n_segment: int,
        normalize: bool,
        flow_length: int = 1,
        kind: ListKind = "auto",
        template: str = DEFAULT_TEMPLATE,
        num_classes: int | None = None,
        on_error: Literal["raise", "skip"] = "raise",
        check_files: bool = True,
    ) -> VideoDataset:
        """The test dataset of a model: this protocol's views of ``list_file`` (a flow list for a
        flow model, ``flow_length`` fields per segment), `data.factory.build_dataset`."""
        flow = modality == "flow"
        return build_dataset(
            modality=modality,
            list_file=list_file,
            root=root,
            sampler=self.sampler(n_segment, new_length=flow_length if flow else 1),
            train=False,
            size=self.size or DEFAULT_SIZE,
            scale_size=self.scale_size or DEFAULT_SCALE_SIZE,
            views=self.crops,
            normalize=normalize,
            flow_length=flow_length,
            kind=kind,
            template=template,
            num_classes=num_classes,
            on_error=on_error,
            check_files=check_files,
        )

    def describe(self) -> str:
        clips = {
            "single": "1 centre clip",
            "twice": "2 clips (twice_sample)",
            "dense": f"{self.dense_clips} dense clips (window {self.dense_window})",
        }[self.clips]
        crops = {1: "1 centre crop", 3: "3 full-resolution crops", 5: "5 crops", 10: "10 crops"}[self.crops]
        size = f"{self.size or DEFAULT_SIZE}px from short side {self.scale_size or DEFAULT_SCALE_SIZE}"
        return f"{clips} x {crops} = {self.views} view{'s' if self.views > 1 else ''} ({size}), {self.fusion} average"


# --- score fusion (pure) ---------------------------------------------------------------


def fuse_views(logits: Tensor, fusion: Fusion = "softmax") -> Tensor:
    """(N, V, K) logits of V views per video -> (N, K): mean of the softmax probabilities
    (``"softmax"``) or of the logits (``"logits"``)."""
    if logits.dim() != 3:
        raise ValueError(f"expected (videos, views, classes) scores, got shape {tuple(logits.shape)}")
    if fusion == "softmax":
        return logits.float().softmax(dim=-1).mean(dim=1)
    if fusion == "logits":
        return logits.float().mean(dim=1)
    raise ValueError(f"fusion must be 'softmax' or 'logits', got {fusion!r}")


def normalize_weights(weights: Sequence[float]) -> list[float]:
    """Positive ensemble weights scaled to sum to 1."""
    if not weights:
        raise ValueError("no ensemble weights")
    for w in weights:
        if not (isinstance(w, (int, float)) and math.isfinite(w) and w > 0):
            raise ValueError(f"ensemble weights must be positive numbers, got {list(weights)}")
    total = float(sum(weights))
    return [float(w) / total for w in weights]


def fuse_members(scores: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """Weighted average of per-member (N, K) video scores (weights normalised to sum 1)."""
    if not scores:
        raise ValueError("no member scores to fuse")
    w = normalize_weights(list(weights) if weights is not None else [1.0] * len(scores))
    if len(w) != len(scores):
        raise ValueError(f"{len(scores)} members but {len(w)} weights")
    shapes = {np.shape(s) for s in scores}
    if len(shapes) != 1:
        raise ValueError(f"member scores have different shapes {sorted(shapes)}")
    return sum(wi * np.asarray(s, dtype=np.float64) for wi, s in zip(w, scores))


# --- metrics (pure) ----------------------------------------------------------------------


def topk_predictions(scores: np.ndarray, k: int) -> np.ndarray:
    """(N, K) scores -> (N, min(k, K)) class indices, best first; ties go to the lower index."""
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"expected (videos, classes) scores, got shape {scores.shape}")
    k = min(k, scores.shape[1])
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    """Percent of videos whose label is among the ``k`` best scores (k is capped at K)."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        raise ValueError("no videos to score")
    top = topk_predictions(scores, k)
    return 100.0 * float((top == labels[:, None]).any(axis=1).mean())


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) counts; row = true class, column = predicted class."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    if labels.shape != predictions.shape:
        raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} differ in shape")
    for name, values in (("label", labels), ("prediction", predictions)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} out of range [0, {num_classes})")
    flat = np.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Percent correct per true class (the diagonal over the row sums); NaN for classes
    with no video."""
    confusion = np.asarray(confusion)
    counts = confusion.sum(axis=1).astype(np.float64)
    hits = np.diag(confusion).astype(np.float64)
    out = np.full(len(counts), np.nan)
    present = counts > 0
    out[present] = 100.0 * hits[present] / counts[present]
    return out


def mean_class_accuracy(confusion: np.ndarray) -> float:
    """Mean of the per-class accuracies of the classes that occur in the labels (percent)."""
    per_class = per_class_accuracy(confusion)
    present = ~np.isnan(per_class)
    if not present.any():
        raise ValueError("no videos to score")
    return float(per_class[present].mean())


@dataclasses.dataclass
class Metrics:
    top1: float
    top5: float
    mean_class: float
    per_class: np.ndarray
    confusion: np.ndarray


def compute_metrics(scores: np.ndarray, labels: np.ndarray, num_classes: int) -> Metrics:
    """Top-1, top-5, mean class accuracy, per-class accuracy and the confusion matrix."""
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[1] != num_classes:
        raise ValueError(f"expected scores of shape (videos, {num_classes}), got {scores.shape}")
    confusion = confusion_matrix(labels, topk_predictions(scores, 1)[:, 0], num_classes)
    return Metrics(
        top1=topk_accuracy(scores, labels, 1),
        top5=topk_accuracy(scores, labels, 5),
        mean_class=mean_class_accuracy(confusion),
        per_class=per_class_accuracy(confusion),
        confusion=confusion,
    )


# --- evaluation --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Member:
    """One ensemble member: a checkpoint (a file, or published weights: `weights.get_weights`),
    its weight, and T for foreign checkpoints."""

    checkpoint: str | Path | PublishedWeights
    weight: float = 1.0
    n_segment: int | None = None


@dataclasses.dataclass
class EvalResult:
    """What `evaluate` measured. Accuracies in percent; ``scores`` are the fused per-video
    scores (probabilities for softmax fusion, logits for logits fusion)."""

    top1: float
    top5: float
    mean_class: float
    per_class: np.ndarray  # (K,), NaN for classes without videos
    confusion: np.ndarray  # (K, K) int, rows true, columns predicted
    scores: np.ndarray  # (N, K)
    labels: np.ndarray  # (N,)
    videos: list[str]  # list paths, in list order
    class_names: list[str]
    protocol: EvalProtocol
    members: list[dict[str, Any]]  # checkpoint, weight (normalised), arch, n_segment, shift, modality
    skipped: list[str]  # reasons for videos left out (on_error="skip")
    seconds: float
    files: dict[str, Path] = dataclasses.field(default_factory=dict)

    @property
    def num_videos(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def views_per_video(self) -> int:
        return self.protocol.views

    def to_dict(self) -> dict[str, Any]:
        """JSON-able metrics and settings (no per-video scores)."""
        return {
            "top1": self.top1,
            "top5": self.top5,
            "mean_class_accuracy": self.mean_class,
            "videos": self.num_videos,
            "classes": self.num_classes,
            "views_per_video": self.views_per_video,
            "protocol": dataclasses.asdict(self.protocol),
            "members": [{k: str(v) if isinstance(v, Path) else v for k, v in m.items()} for m in self.members],
            "skipped": list(self.skipped),
            "seconds": round(self.seconds, 3),
            "per_class_accuracy": {
                name: (None if math.isnan(acc) else acc) for name, acc in zip(self.class_names, self.per_class.tolist())
            },
        }

    def summary(self) -> str:
        members = " + ".join(
            f"{m['checkpoint']} ({m['arch']}, T={m['n_segment']}"
            + (f", flow L={m['flow_length']}" if m.get("modality") == "flow" else "")
            + (f", weight {m['weight']:.3g}" if len(self.members) > 1 else "")
            + ")"
            for m in self.members
        )
        lines = [
            f"model: {members}",
            f"protocol: {self.protocol.describe()}",
            f"videos: {self.num_videos}" + (f" ({len(self.skipped)} unreadable, left out)" if self.skipped else ""),
            f"top-1 {self.top1:.2f}%  top-5 {self.top5:.2f}%  mean class {self.mean_class:.2f}%",
        ]
        return "\n".join(lines)


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
) -> EvalResult:
    """Score every video of ``list_file`` (paths relative to ``root``) with the views of
    ``protocol``, fuse views and then members, compute the metrics, and write the files
    listed in the module docstring to ``out_dir`` if given.

    Two-stream testing: a flow member (a checkpoint with ``modality`` flow) samples its own
    flow stacks from ``flow_list`` (a `tsm prepare flow` list, relative to ``flow_root``,
    default ``root``), with the same protocol; its entries are paired with the videos of
    ``list_file`` by path (relative, video extension dropped), and the scores of the RGB and
    flow members are fused with the members' weights.

    ``members`` are checkpoints (paths or `Member`s with weights); they must have the same
    classes, may differ in architecture and n_segment (each samples its own frames).
    ``normalize``, ``protocol.size`` and ``protocol.scale_size`` default to the first
    checkpoint's training settings. ``batch_size`` counts videos: a batch is one forward
    pass of ``batch_size x views`` clips. With ``on_error="skip"`` unreadable videos (and
    bad list lines) are left out of the metrics and listed in ``EvalResult.skipped``;
    a video any member could not read is left out for all.
    """
    if batch_size < 1 or workers < 0:
        raise ValueError(f"batch_size must be >= 1 and workers >= 0, got {batch_size}, {workers}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    members = [m if isinstance(m, Member) else Member(checkpoint=m) for m in members]
    if not members:
        raise ValueError("no checkpoint to evaluate")
    weights = normalize_weights([m.weight for m in members])
    root, list_file = Path(root), Path(root) / list_file
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: data root not found")
    if not list_file.is_file():
        raise FileNotFoundError(f"{list_file}: list file not found")
    for m in members:  # published weights (weights.PublishedWeights) are fetched when loaded
        if isinstance(m.checkpoint, (str, Path)) and not Path(m.checkpoint).is_file():
            raise FileNotFoundError(f"checkpoint not found: {m.checkpoint}")
    dev = resolve_device(device)
    loaded = _load_members(members)
    class_names = resolve_class_names(loaded, classes)
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
                num_classes=loaded[0].num_classes,
                on_error=on_error,
            )
        )
    start = time.perf_counter()
    scored = [
        _score_member(
            c,
            dataset,
            main,
            protocol=protocol,
            device=dev,
            batch_size=batch_size,
            workers=workers,
            skip=on_error == "skip",
            progress=progress,
            desc=f"test {c.path.name}" if len(loaded) == 1 else f"test {m + 1}/{len(loaded)} {c.path.name}",
        )
        for m, (c, dataset) in enumerate(zip(loaded, datasets))
    ]
    seconds = time.perf_counter() - start
    result = _fuse_and_measure(
        scored, weights, loaded, main, list_file=list_file, class_names=class_names, protocol=protocol, seconds=seconds
    )
    if out_dir is not None:
        result.files = write_results(result, out_dir)
    return result


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
    for m, (member, weight) in enumerate(zip(scored, weights)):
        if len(member.indices):
            scores[member.indices] += weight * member.scores
        done[m, member.indices] = True
        for index, reason in member.skipped.items():
            skipped.setdefault(index, reason)
    ok = done.all(axis=0)
    reasons = [skipped.get(i, f"{records[i].source}: not scored") for i in np.flatnonzero(~ok)]
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
        videos=[r.path for r, good in zip(records, ok) if good],
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
            for c, w in zip(loaded, weights)
        ],
        skipped=reasons,
        seconds=seconds,
    )


# --- outputs -----------------------------------------------------------------------------


def write_predictions_csv(result: EvalResult, path: str | Path, *, k: int = 5) -> Path:
    """One row per video: video, true label and name, then the top-k labels, names, scores."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    top = topk_predictions(result.scores, k)
    k = top.shape[1]
    header = ["video", "label", "name"] + [f"{f}_{i}" for i in range(1, k + 1) for f in ("pred", "pred_name", "score")]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for video, label, row, score in zip(result.videos, result.labels.tolist(), top, result.scores):
            cells: list[Any] = [video, label, result.class_names[label]]
            for j in row.tolist():
                cells += [j, result.class_names[j], f"{score[j]:.6g}"]
            w.writerow(cells)
    return path


def write_per_class_csv(result: EvalResult, path: str | Path) -> Path:
    path = Path(path)
    counts = result.confusion.sum(axis=1)
    hits = np.diag(result.confusion)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["label", "name", "videos", "correct", "accuracy"])
        for i, name in enumerate(result.class_names):
            acc = result.per_class[i]
            w.writerow([i, name, int(counts[i]), int(hits[i]), "" if math.isnan(acc) else f"{acc:.4f}"])
    return path


def plot_confusion(
    confusion: np.ndarray, class_names: Sequence[str], path: str | Path, *, title: str = "confusion matrix"
) -> Path:
    """Draw the row-normalised confusion matrix (recall per true class) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    confusion = np.asarray(confusion, dtype=np.float64)
    k = len(confusion)
    rows = confusion.sum(axis=1, keepdims=True)
    normalised = np.divide(confusion, rows, out=np.zeros_like(confusion), where=rows > 0)
    side = min(max(4.0, 0.3 * k + 2.0), 24.0)
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    image = ax.imshow(normalised, vmin=0.0, vmax=1.0, cmap="Blues", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if k <= 40:
        ax.set_xticks(range(k), labels=list(class_names), rotation=90, fontsize=7)
        ax.set_yticks(range(k), labels=list(class_names), fontsize=7)
        if k <= 15:
            for i in range(k):
                for j in range(k):
                    if confusion[i, j]:
                        ax.text(
                            j,
                            i,
                            int(confusion[i, j]),
                            ha="center",
                            va="center",
                            fontsize=7,
                            color="white" if normalised[i, j] > 0.5 else "black",
                        )
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_results(result: EvalResult, out_dir: str | Path) -> dict[str, Path]:
    """Write metrics.json, per_class.csv, predictions.csv, confusion.npy and confusion.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "metrics": out / "metrics.json",
        "per_class": out / "per_class.csv",
        "predictions": out / "predictions.csv",
        "confusion": out / "confusion.npy",
        "confusion_png": out / "confusion.png",
    }
    files["metrics"].write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    write_per_class_csv(result, files["per_class"])
    write_predictions_csv(result, files["predictions"])
    np.save(files["confusion"], result.confusion)
    plot_confusion(
        result.confusion,
        result.class_names,
        files["confusion_png"],
        title=f"top-1 {result.top1:.1f}%, mean class {result.mean_class:.1f}% "
        f"({result.num_videos} videos, {result.views_per_video} views each)",
    )
    return files
