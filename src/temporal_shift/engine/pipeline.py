"""`pipeline(model)`: a video classifier in one call, in the shape the field's libraries use.

``classify = pipeline("best.pt")`` (or published weights by name, or a `PublishedWeights`)
returns a `VideoClassificationPipeline`; ``classify(video)`` returns the ``top_k`` classes as
``[{"label": name, "score": probability}, ...]``, best first. A video is

- a path: a video file (anything PyAV opens) or a folder of JPEG frames;
- a uint8 array or tensor of frames (T, H, W, 3), RGB;

and a list of videos is classified in batches, giving one list per video. Each video is
sampled the way the model was trained (`predict.trained_sampler`: the segment centres of its
T segments for TSN sampling), resized and centre-cropped as in test (`predict.Predictor`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from temporal_shift.data.lists import DEFAULT_TEMPLATE
from temporal_shift.data.sources import find_sources
from temporal_shift.engine.predict import Predictor
from temporal_shift.hub.build import resolve_weights
from temporal_shift.hub.published import PublishedWeights

VideoInput = str | Path | np.ndarray | torch.Tensor


class VideoClassificationPipeline:
    """A checkpoint ready to classify videos (see the module docstring); `pipeline` builds it."""

    def __init__(self, predictor: Predictor, *, batch_size: int = 8) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.predictor = predictor
        self.batch_size = batch_size

    @property
    def class_names(self) -> list[str]:
        return self.predictor.class_names

    def __call__(
        self, videos: VideoInput | Sequence[VideoInput], *, top_k: int = 5
    ) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
        """The ``top_k`` classes of one video, or of each video of a list."""
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        items: list[VideoInput]
        if isinstance(videos, (str, Path, np.ndarray, torch.Tensor)):
            items, single = [videos], True
        else:
            items, single = list(videos), False
        if not items:
            raise ValueError("no video given")
        results: list[list[dict[str, Any]]] = []
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            clips = torch.stack(
                [self.predictor.transform(self.clip(video, index=start + k)) for k, video in enumerate(chunk)]
            )
            for probs in self.predictor.batch_probabilities(clips):
                results.append([{"label": name, "score": score} for _, name, score in self.predictor.top(probs, top_k)])
        return results[0] if single else results

    def clip(self, video: VideoInput, *, index: int = 0) -> torch.Tensor:
        """The uint8 (T, 3, H, W) clip the model sees of one video, sampled as it was trained."""
        if isinstance(video, (str, Path)):
            sources = find_sources(video, template=self.predictor.template)
            if len(sources) != 1:
                raise ValueError(f"{video}: a folder of {len(sources)} videos; pass them as a list of paths")
            return self.predictor.read(sources[0].path, sources[0].kind)
        frames = torch.as_tensor(video) if isinstance(video, np.ndarray) else video
        if not isinstance(frames, torch.Tensor):
            raise TypeError(f"video {index}: expected a path or a (T, H, W, 3) uint8 array, got {type(video).__name__}")
        if frames.dtype != torch.uint8 or frames.dim() != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
            raise ValueError(
                f"video {index}: expected uint8 frames (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}"
            )
        indices = self.predictor.sample(frames.shape[0], source=f"video {index}")
        return frames[indices].permute(0, 3, 1, 2).contiguous()


def pipeline(
    model: str | Path | PublishedWeights,
    *,
    device: str = "auto",
    classes: str | Path | None = None,
    batch_size: int = 8,
    size: int | None = None,
    scale_size: int | None = None,
    template: str = DEFAULT_TEMPLATE,
    compile: str | None = None,
) -> VideoClassificationPipeline:
    """A video classifier of ``model``: a checkpoint file (any supported layout), or published
    weights by name or entry (downloaded into the torch hub cache on first use). ``classes``
    replaces the checkpoint's class names; ``batch_size`` videos share a forward pass; ``size``
    and ``scale_size`` (the crop and the short side before it) default to the checkpoint's."""
    predictor = Predictor(
        resolve_weights(model),
        classes=classes,
        size=size,
        scale_size=scale_size,
        device=device,
        template=template,
        compile=compile,
    )
    return VideoClassificationPipeline(predictor, batch_size=batch_size)
