"""Prediction: the top-k classes of a video file, a frame folder or a folder of videos.

Each input is sampled and cropped like the single-view test protocol: the checkpoint's
``n_segment`` segment centres (TSN test sampling), the short side resized to
``scale_size``, one centre crop of ``size`` (both default to the checkpoint's training
settings, else 224/256), the softmax of the model's logits.

Inputs (`find_inputs`):

- a video file (anything PyAV opens; `data.sources.VideoSource`);
- a frame folder: JPEG frames named by ``template`` (``img_00001.jpg`` ...) as in the
  data lists, or, if no file matches the template, the folder's ``*.jpg``/``*.jpeg``
  files sorted by name (`data.sources.open_folder`);
- a folder of videos (``.mp4``, ``.webm``, ``.avi``, ``.mkv``, ``.mov``, ``.m4v``; not
  searched recursively): each video is predicted.

Unreadable input is an error naming the file; nothing is skipped.

``compile`` (a mode of `compiled.MODES`, e.g. ``"auto"``) runs the model through
`compiled.compile_for_inference`: compiled and warmed up once when the `Predictor` is
built (seconds to minutes), then each clip is one CUDA-graph replay on CUDA. Every clip
has the same shape (T, 3, size, size), so one compilation serves all inputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from tqdm import tqdm

from temporal_shift.checkpoint.loading import Published, load_checkpoint, resolve_class_names
from temporal_shift.data.lists import DEFAULT_TEMPLATE
from temporal_shift.data.sampling import TSNSampler
from temporal_shift.data.sources import VideoSource, find_sources, open_folder
from temporal_shift.data.transforms import test_transform
from temporal_shift.ops.runtime import resolve_device

InputKind = Literal["video", "frames"]


@dataclasses.dataclass(frozen=True)
class Prediction:
    """The top-k classes of one input: (label, name, probability), best first."""

    input: str
    topk: list[tuple[int, str, float]]

    def to_dict(self) -> dict[str, Any]:
        return {"input": self.input, "topk": [{"label": i, "name": name, "prob": p} for i, name, p in self.topk]}

    def lines(self) -> list[str]:
        width = max(len(name) for _, name, _ in self.topk)
        return [f"{name:<{width}}  {p:.4f}" for _, name, p in self.topk]


def find_inputs(path: str | Path) -> list[tuple[Path, InputKind]]:
    """What ``path`` holds: one video, one frame folder, or the videos of a folder (`data.sources.find_sources`)."""
    return [(source.path, source.kind) for source in find_sources(path)]


def read_clip(path: str | Path, kind: InputKind, *, n_segment: int, template: str = DEFAULT_TEMPLATE) -> torch.Tensor:
    """The uint8 (T, 3, H, W) test clip of one input (TSN segment centres)."""
    source = VideoSource(path) if kind == "video" else open_folder(path, template=template)
    sampler = TSNSampler(n_segment=n_segment, train=False)
    return source.read(sampler(source.num_frames, source=str(path))[0].tolist())


class Predictor:
    """A checkpoint ready to classify inputs (see the module docstring)."""

    def __init__(
        self,
        checkpoint: str | Path | Published,
        *,
        n_segment: int | None = None,
        classes: str | Path | None = None,
        size: int | None = None,
        scale_size: int | None = None,
        device: str = "auto",
        template: str = DEFAULT_TEMPLATE,
        compile: str | None = None,
    ) -> None:
        loaded = load_checkpoint(checkpoint, n_segment=n_segment)
        self.checkpoint = loaded.path
        self.device = resolve_device(device)
        self.model = loaded.model.to(self.device).eval()
        self.class_names = resolve_class_names([loaded], classes)
        self.size = size or loaded.input_size
        self.scale_size = scale_size or loaded.scale_size
        if self.scale_size < self.size:
            raise ValueError(f"scale_size ({self.scale_size}) must be at least size ({self.size})")
        self.transform = test_transform(size=self.size, scale_size=self.scale_size, views=1, normalize=loaded.normalize)
        self.template = template
        self.forward: Callable[[torch.Tensor], torch.Tensor] = self.model
        if compile is not None:
            from temporal_shift.engine.compiled import compile_for_inference

            example = torch.zeros(1, self.n_segment, 3, self.size, self.size, device=self.device)
            self.forward = compile_for_inference(self.model, mode=compile, example=example)

    @property
    def n_segment(self) -> int:
        return self.model.config.n_segment

    @torch.inference_mode()
    def probabilities(self, clip: torch.Tensor) -> torch.Tensor:
        """uint8 (T, 3, H, W) clip -> (num_classes,) softmax probabilities."""
        x = self.transform(clip)
        return self.forward(x[None].to(self.device)).float().softmax(dim=-1)[0].cpu()

    def predict_one(self, path: str | Path, kind: InputKind, *, topk: int = 5) -> Prediction:
        probs = self.probabilities(read_clip(path, kind, n_segment=self.n_segment, template=self.template))
        values, indices = probs.topk(min(topk, len(probs)))
        return Prediction(
            input=str(path),
            topk=[(int(i), self.class_names[int(i)], float(p)) for p, i in zip(values, indices, strict=True)],
        )


def predict(
    inputs: str | Path | Sequence[str | Path],
    *,
    checkpoint: str | Path | Published,
    topk: int = 5,
    n_segment: int | None = None,
    classes: str | Path | None = None,
    size: int | None = None,
    scale_size: int | None = None,
    device: str = "auto",
    template: str = DEFAULT_TEMPLATE,
    progress: bool = False,
    compile: str | None = None,
) -> list[Prediction]:
    """Top-k predictions for each input (a video, a frame folder or a folder of videos)."""
    if topk < 1:
        raise ValueError(f"topk must be at least 1, got {topk}")
    paths: Iterable[str | Path] = [inputs] if isinstance(inputs, (str, Path)) else inputs
    found = [item for p in paths for item in find_inputs(p)]  # check every path before loading
    if not found:
        raise ValueError("no input given")
    predictor = Predictor(
        checkpoint,
        n_segment=n_segment,
        classes=classes,
        size=size,
        scale_size=scale_size,
        device=device,
        template=template,
        compile=compile,
    )
    bar = tqdm(found, desc="predict", unit="video", disable=not progress or len(found) < 2, leave=False)
    return [predictor.predict_one(path, kind, topk=topk) for path, kind in bar]
