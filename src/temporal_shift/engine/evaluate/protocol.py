"""Test protocols: which views of a video are scored, and how view and member scores are fused.

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
logits, `fuse_views`); ensemble members (e.g. an 8-frame and a 16-frame model, each sampling
with its own ``n_segment``) are then fused with normalised weights, in the same space
(probabilities or logits), before the metrics (`fuse_members`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from torch import Tensor

from temporal_shift.checkpoint.loading import DEFAULT_SCALE_SIZE, DEFAULT_SIZE
from temporal_shift.data.dataset import VideoDataset
from temporal_shift.data.decode import Decoder
from temporal_shift.data.factory import (
    Modality,
    build_dataset,
    build_sampler,
    build_transform,
)
from temporal_shift.data.flow.layout import FLOW_X_TEMPLATE
from temporal_shift.data.lists import DEFAULT_TEMPLATE, ListKind
from temporal_shift.data.sampling import Sampler
from temporal_shift.hub.published import Accuracy

ClipProtocol = Literal["single", "twice", "dense"]
Fusion = Literal["softmax", "logits"]
CLIP_PROTOCOLS: tuple[str, ...] = ("single", "twice", "dense")
CROPS: tuple[int, ...] = (1, 3, 5, 10)
FUSIONS: tuple[str, ...] = ("softmax", "logits")


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
            size=accuracy.size,
            scale_size=accuracy.scale_size,
        )

    @property
    def num_clips(self) -> int:
        return {"single": 1, "twice": 2, "dense": self.dense_clips}[self.clips]

    @property
    def views(self) -> int:
        """Forward passes (views) per video: clips x crops."""
        return self.num_clips * self.crops

    def sampler(self, n_segment: int, *, frames_per_segment: int = 1) -> Sampler:
        """The frame sampler for a model with ``n_segment`` frames (of ``frames_per_segment`` consecutive
        frames or flow fields each)."""
        if self.clips == "dense" and self.dense_window < n_segment:
            raise ValueError(f"dense_window ({self.dense_window}) must be at least n_segment ({n_segment})")
        return build_sampler(
            sampling="dense" if self.clips == "dense" else "tsn",
            n_segment=n_segment,
            train=False,
            frames_per_segment=frames_per_segment,
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
        decoder: Decoder = "pyav",
        flow_template: str = FLOW_X_TEMPLATE,
    ) -> VideoDataset:
        """The test dataset of a model: this protocol's views of ``list_file`` (a flow list for a
        flow model, ``flow_length`` fields per segment), `data.factory.build_dataset`."""
        flow = modality == "flow"
        return build_dataset(
            modality=modality,
            list_file=list_file,
            root=root,
            sampler=self.sampler(n_segment, frames_per_segment=flow_length if flow else 1),
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
            decoder=decoder,
            flow_template=flow_template,
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


def normalize_weights(ensemble_weights: Sequence[float]) -> list[float]:
    """Positive ensemble weights scaled to sum to 1."""
    if not ensemble_weights:
        raise ValueError("no ensemble weights")
    for w in ensemble_weights:
        if not (isinstance(w, (int, float)) and math.isfinite(w) and w > 0):
            raise ValueError(f"ensemble weights must be positive numbers, got {list(ensemble_weights)}")
    total = float(sum(ensemble_weights))
    return [float(w) / total for w in ensemble_weights]


def fuse_members(scores: Sequence[np.ndarray], ensemble_weights: Sequence[float] | None = None) -> np.ndarray:
    """Weighted average of per-member (N, K) video scores (ensemble weights normalised to sum 1)."""
    if not scores:
        raise ValueError("no member scores to fuse")
    w = normalize_weights(list(ensemble_weights) if ensemble_weights is not None else [1.0] * len(scores))
    if len(w) != len(scores):
        raise ValueError(f"{len(scores)} members but {len(w)} weights")
    shapes = {np.shape(s) for s in scores}
    if len(shapes) != 1:
        raise ValueError(f"member scores have different shapes {sorted(shapes)}")
    (shape,) = shapes  # the sum starts from zeros of that shape (0 + x: the same values), an array throughout
    return sum((wi * np.asarray(s, dtype=np.float64) for wi, s in zip(w, scores, strict=True)), np.zeros(shape))
