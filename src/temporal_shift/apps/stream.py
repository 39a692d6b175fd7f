"""Streaming application: classify a video, a frame folder or a camera frame by frame.

`load_stream(checkpoint=...)` gives the model to run (PyTorch, or an exported step in onnxruntime,
ExecuTorch or OpenVINO) and its class
names; `run_stream` is the whole ``tsm stream`` command.
`stream_predictions(source, stream, classes=...)` reads frames from ``source``
(`data.sources.open_source`: a video file, a frame folder or a camera), keeps
every ``every``-th one, preprocesses it as at test time (resize the short side to
``short_side``, centre crop ``size``, ImageNet normalisation: ``data.transforms.test_transform``),
runs one step of an online TSM (`models.online.OnlineStream` in PyTorch or
`runtimes.ExportedStream` in the exported step's runtime) and yields one `StreamRecord` per processed frame:
frame index, time in seconds, the top-k classes of the smoothed scores and the current
(hysteresis-stable) label. `ScoreFilter` is the smoothing + hysteresis on its own.

Buffer lifecycle (when the shift buffers are reset)
---------------------------------------------------
The shift buffers hold features of the *previous processed frame*; the model was
trained on frames ``every`` source frames apart at a steady pace. So the stream (its
buffers, the smoothing window and the current label) is reset

- at the start of every source (a new source never continues the previous one);
- on a gap: the time between two processed frames exceeds ``every`` frame durations by
  more than half a frame (dropped frames, a seek forward), or is not positive (a seek
  backwards, a timestamp reset). Times are presentation times (`data.decode.decode_video_frames`:
  in display order, so B-frames never look like a step back; an offset of all timestamps
  changes nothing) for videos and cameras, and frame number / ``fps`` for frame folders
  (which therefore never have gaps). The frame duration is the median of the steps seen
  so far with the nominal ``1 / fps`` (a variable-rate phone video's average rate is
  skewed by the very drops it has);
- on request: `StreamPredictor.request_reset()` resets before the next processed frame.

Without these resets the model would mix features of unrelated moments, which it
never saw in training. With a live camera, pick ``every`` so the model keeps up:
frames the driver drops show up as gaps and reset the stream.
"""

from __future__ import annotations

import copy
import json
import statistics
import time
from collections import deque
from collections.abc import Iterable, Iterator, MutableSequence, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, Protocol

import av
import numpy as np
import torch

from temporal_shift.data.lists import DEFAULT_TEMPLATE, read_classes
from temporal_shift.data.sources import SourceFrame, open_source, parse_source  # noqa: F401 (stream's sources)
from temporal_shift.data.transforms import test_transform
from temporal_shift.engine.export import OnnxStream
from temporal_shift.engine.runtimes import ExportedStream
from temporal_shift.hub.published import PublishedWeights
from temporal_shift.models.online import OnlineStream

if TYPE_CHECKING:
    from temporal_shift.checkpoint.loading import LoadedCheckpoint


class Stream(Protocol):
    """What `stream_predictions` needs of a model: `OnlineStream` or an `ExportedStream`."""

    def update(self, frame: torch.Tensor) -> torch.Tensor: ...

    def reset(self) -> None: ...


# --- scores: smoothing + hysteresis ------------------------------------------------


class ScoreFilter:
    """Average probabilities over the last ``smooth`` steps; a label becomes current only
    after it is the top-1 of the averaged scores ``hysteresis`` steps in a row.

    ``update(probs) -> (averaged probs, current label index or None)``. Before any label
    has won ``hysteresis`` consecutive steps the current label is None.
    """

    def __init__(self, *, smooth: int = 1, hysteresis: int = 1) -> None:
        if smooth < 1:
            raise ValueError(f"smooth must be at least 1, got {smooth}")
        if hysteresis < 1:
            raise ValueError(f"hysteresis must be at least 1, got {hysteresis}")
        self.smooth = smooth
        self.hysteresis = hysteresis
        self.reset()

    def reset(self) -> None:
        self._window: deque[torch.Tensor] = deque(maxlen=self.smooth)
        self._candidate: int | None = None
        self._run = 0
        self.current: int | None = None

    def update(self, probs: torch.Tensor) -> tuple[torch.Tensor, int | None]:
        probs = torch.as_tensor(probs, dtype=torch.float64).reshape(-1)
        self._window.append(probs)
        averaged = torch.stack(tuple(self._window)).mean(dim=0)
        top = int(averaged.argmax())
        if top == self._candidate:
            self._run += 1
        else:
            self._candidate, self._run = top, 1
        if self._run >= self.hysteresis:
            self.current = top
        return averaged, self.current


# --- gap rule ------------------------------------------------------------------------


class GapDetector:
    """Is the next processed frame a continuation of the previous one?

    ``check(t)`` is True (a gap) when ``t - previous`` exceeds ``every`` frame durations by
    more than half a frame, or is not positive. The frame duration starts as ``1 / fps``
    and follows the median of the last steps seen (each divided by ``every``, the nominal
    duration counting as one of them), so one real drop stands out while a stream whose
    stated rate is off still runs on. The first call of a source is not a gap.
    """

    WINDOW = 15  # steps the frame duration is the median of

    def __init__(self, *, fps: float, every: int = 1) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.every = every
        self.nominal = 1.0 / fps
        self.steps: deque[float] = deque(maxlen=self.WINDOW)
        self.previous: float | None = None

    @property
    def frame_duration(self) -> float:
        return statistics.median([self.nominal, *self.steps])

    def reset(self) -> None:
        self.previous = None

    def check(self, t: float) -> bool:
        previous, self.previous = self.previous, t
        if previous is None:
            return False
        dt = t - previous
        if dt <= 0:
            return True
        duration = self.frame_duration
        self.steps.append(dt / self.every)
        return dt > (self.every + 0.5) * duration


# --- the loop --------------------------------------------------------------------------


@dataclass
class StreamRecord:
    """One processed frame; ``reset`` says why the stream was reset before it (or None)."""

    frame: int
    time: float
    topk: list[dict[str, Any]]
    label: str | None
    score: float | None
    reset: str | None = None
    latency_ms: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self))


@dataclass
class StreamSummary:
    frames_read: int = 0
    frames_processed: int = 0
    resets: dict[str, int] = field(default_factory=lambda: {"start": 0, "gap": 0, "request": 0})
    seconds: float = 0.0
    latencies_ms: MutableSequence[float] = field(default_factory=list, repr=False)  # tsm serve: a bounded deque

    def to_dict(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        p95 = lat[min(len(lat) - 1, int(np.ceil(0.95 * len(lat))) - 1)] if lat else None
        return {
            "frames_read": self.frames_read,
            "frames_processed": self.frames_processed,
            "resets": dict(self.resets),
            "seconds": round(self.seconds, 4),
            "fps": round(self.frames_processed / self.seconds, 2) if self.seconds > 0 else None,
            "step_latency_ms_median": round(statistics.median(lat), 3) if lat else None,
            "step_latency_ms_p95": round(p95, 3) if p95 is not None else None,
        }

    def line(self) -> str:
        d = self.to_dict()
        return (
            f"{d['frames_processed']}/{d['frames_read']} frames processed in {d['seconds']:.2f} s "
            f"({d['fps']} frames/s), model step median {d['step_latency_ms_median']} ms, "
            f"p95 {d['step_latency_ms_p95']} ms; resets: " + ", ".join(f"{n} {why}" for why, n in self.resets.items())
        )


class StreamPredictor:
    """Runs a `Stream` over sources; see the module docstring for the reset rule."""

    def __init__(
        self,
        stream: Stream,
        *,
        classes: Sequence[str],
        size: int = 224,
        short_side: int = 256,
        every: int = 1,
        smooth: int = 1,
        hysteresis: int = 1,
        topk: int = 3,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        if topk < 1:
            raise ValueError(f"topk must be at least 1, got {topk}")
        if short_side < size:
            raise ValueError(f"short_side ({short_side}) must be at least size ({size})")
        self.stream = stream
        self.classes = list(classes)
        self.every = every
        self.topk = min(topk, len(self.classes))
        self.filter = ScoreFilter(smooth=smooth, hysteresis=hysteresis)
        self.transform = test_transform(size=size, scale_size=short_side)
        self.size = size
        self.summary = StreamSummary()
        self._reset_requested = False
        self._warm = False

    def request_reset(self) -> None:
        """Reset the stream before the next processed frame."""
        self._reset_requested = True

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """uint8 (3, H, W) RGB -> normalised float (3, size, size), as at test time."""
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"expected an RGB frame (3, H, W), got shape {tuple(image.shape)}")
        return self.transform(image)

    def _reset(self, gaps: GapDetector, reason: str) -> None:
        self.stream.reset()
        self.filter.reset()
        gaps.reset()
        self.summary.resets[reason] = self.summary.resets.get(reason, 0) + 1

    def start(self, *, fps: float) -> None:
        """Begin a new source of nominal frame rate ``fps``: the stream is reset (reason
        ``start``) and the gap rule restarts. `run` calls it; a caller that has frames one at a
        time (``tsm serve``) calls it, then `step` for each frame."""
        self._gaps = GapDetector(fps=fps, every=self.every)
        if not self._warm:  # one untimed step first: the first calls pay for allocations
            self.stream.update(torch.zeros(3, self.size, self.size))
            self._warm = True
        self._reason: str | None = "start"
        self._reset(self._gaps, "start")
        self._position = 0

    def step(self, source_frame: SourceFrame) -> StreamRecord | None:
        """One source frame of the current source (`start` first): its record, or None when
        ``every`` skips it. Applies the reset rule (request, gap) before the model step."""
        gaps = getattr(self, "_gaps", None)
        if gaps is None:
            raise RuntimeError("StreamPredictor.step before start(fps=...): a source must be started first")
        position, self._position = self._position, self._position + 1
        self.summary.frames_read += 1
        if position % self.every:
            return None
        if self._reset_requested:
            self._reset_requested = False
            self._reason = "request"
            self._reset(gaps, "request")
        if gaps.check(source_frame.time):
            self._reason = "gap"
            self._reset(gaps, "gap")
            gaps.check(source_frame.time)
        x = self.preprocess(source_frame.image)
        t0 = time.perf_counter()
        logits = self.stream.update(x)
        latency = (time.perf_counter() - t0) * 1e3
        if logits.numel() != len(self.classes):
            raise ValueError(f"the model has {logits.numel()} classes but {len(self.classes)} class names were given")
        probs = torch.softmax(logits.detach().double().reshape(-1), dim=0)
        averaged, current = self.filter.update(probs)
        scores, indices = averaged.topk(self.topk)
        topk = [
            {"label": self.classes[int(i)], "index": int(i), "score": round(float(s), 6)}
            for s, i in zip(scores, indices, strict=True)
        ]
        self.summary.frames_processed += 1
        self.summary.latencies_ms.append(latency)
        reason, self._reason = self._reason, None
        return StreamRecord(
            frame=source_frame.index,
            time=round(source_frame.time, 6),
            topk=topk,
            label=self.classes[current] if current is not None else None,
            score=round(float(averaged[current]), 6) if current is not None else None,
            reset=reason,
            latency_ms=round(latency, 3),
        )

    def run(self, frames: Iterable[SourceFrame], *, fps: float) -> Iterator[StreamRecord]:
        """Records for the processed frames of one source (a new source: reset first)."""
        self.start(fps=fps)
        started = time.perf_counter()
        try:
            for source_frame in frames:
                record = self.step(source_frame)
                if record is not None:
                    yield record
        finally:
            self.summary.seconds += time.perf_counter() - started


def stream_predictions(
    source: str | int | Path | Iterable[SourceFrame],
    stream: Stream,
    *,
    classes: Sequence[str],
    size: int = 224,
    short_side: int = 256,
    every: int = 1,
    smooth: int = 1,
    hysteresis: int = 1,
    topk: int = 3,
    fps: float | None = None,
    summary: StreamSummary | None = None,
    template: str = DEFAULT_TEMPLATE,
) -> Iterator[StreamRecord]:
    """One `StreamRecord` per processed frame of ``source``.

    ``source`` is a video path, a JPEG folder (its ``template`` files, else its JPEGs by
    name: `data.sources.open_folder`), a camera index, or an iterable of `SourceFrame`
    (then ``fps`` is needed for the gap rule; default 25). ``fps`` overrides the source's
    frame rate (frame folders: default 25). Pass a `StreamSummary` to get the frame counts
    and step latencies when the generator is done.
    """
    predictor = StreamPredictor(
        stream,
        classes=classes,
        size=size,
        short_side=short_side,
        every=every,
        smooth=smooth,
        hysteresis=hysteresis,
        topk=topk,
    )
    if summary is not None:
        predictor.summary = summary
    if not isinstance(source, (str, int, Path)):
        yield from predictor.run(source, fps=fps if fps is not None else 25.0)
        return
    with open_source(source, fps=fps, template=template) as opened:
        yield from predictor.run(opened.frames(), fps=opened.fps)


# --- annotated output video --------------------------------------------------------------


class AnnotatedVideoWriter:
    """Writes frames with the current label and score drawn on top (PIL text, else a bar)."""

    def __init__(self, path: str | Path, *, fps: float) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.container = av.open(str(self.path), "w")
        except av.FFmpegError as exc:
            raise OSError(f"{self.path}: cannot write video ({exc})") from None
        self.fps = Fraction(fps).limit_denominator(1001)
        self.stream: av.VideoStream | None = None  # added with the first frame's size
        self.frames = 0
        try:
            from PIL import Image, ImageDraw

            self._pil: tuple[ModuleType, ModuleType] | None = (Image, ImageDraw)
        except ImportError:  # pragma: no cover - pillow ships with matplotlib here
            self._pil = None

    def write(self, image: torch.Tensor, label: str | None, score: float | None) -> None:
        array = image.permute(1, 2, 0).contiguous().numpy()
        h, w = array.shape[0] // 2 * 2, array.shape[1] // 2 * 2
        array = np.ascontiguousarray(array[:h, :w])
        if self.stream is None:
            self.stream = self.container.add_stream("libx264", rate=self.fps)
            self.stream.width, self.stream.height, self.stream.pix_fmt = w, h, "yuv420p"
            self.stream.options = {"preset": "ultrafast", "crf": "20"}
        array = self._draw(array, label, score)
        for packet in self.stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
            self.container.mux(packet)
        self.frames += 1

    def _draw(self, array: np.ndarray, label: str | None, score: float | None) -> np.ndarray:
        text = f"{label} {score:.2f}" if label is not None and score is not None else "..."
        if self._pil is not None:
            Image, ImageDraw = self._pil
            img = Image.fromarray(array)
            draw = ImageDraw.Draw(img)
            box = draw.textbbox((4, 4), text)
            draw.rectangle((0, 0, box[2] + 4, box[3] + 4), fill=(0, 0, 0))
            draw.text((4, 4), text, fill=(255, 255, 255))
            return np.asarray(img)
        out = array.copy()
        bar = max(2, out.shape[0] // 20)
        out[:bar] = 0
        if score is not None:
            out[:bar, : int(out.shape[1] * score)] = (0, 200, 0)
        return out

    def close(self) -> None:
        if self.stream is not None:
            for packet in self.stream.encode():
                self.container.mux(packet)
        self.container.close()


# --- the whole application ----------------------------------------------------------------


@dataclass
class StreamModel:
    """A `Stream` ready to run and the names of its classes.

    ``input_size`` / ``scale_size``: the crop side and short side the checkpoint was trained
    with, when a checkpoint was given (else None). `new_stream` gives another stream of the
    same model with its own state (``tsm serve`` keeps one per connection).
    """

    stream: Stream
    classes: list[str]
    input_size: int | None = None
    scale_size: int | None = None

    def new_stream(self) -> Stream:
        """A stream sharing this one's model (weights, onnxruntime session) with its own
        zero state: shift buffers are per stream, the model is not copied. The model's
        steps must not run concurrently from several threads (PyTorch modules route the
        buffers through the model during a step)."""
        fresh = copy.copy(self.stream)
        fresh.reset()
        return fresh


def _load_causal(checkpoint: str | Path | PublishedWeights, *, n_segment: int | None):
    """`models.online.load_online`, keeping what the file says (class names, input size)."""
    from temporal_shift.checkpoint.loading import load_checkpoint
    from temporal_shift.models.online import OnlineRecognizer

    try:
        loaded = load_checkpoint(checkpoint, n_segment=n_segment)
        return OnlineRecognizer(loaded.model), loaded
    except ValueError as exc:
        if str(exc).startswith(str(checkpoint)):
            raise
        raise ValueError(f"{checkpoint}: {exc}") from exc


STEP_RUNTIMES = {"onnxruntime": "onnx", "executorch": "executorch", "openvino": "openvino"}
RUNTIMES = ("torch", *STEP_RUNTIMES)


def load_stream(
    *,
    runtime: Literal["torch", "onnxruntime", "executorch", "openvino"] = "torch",
    checkpoint: str | Path | PublishedWeights | None = None,
    onnx: str | Path | None = None,
    exported: str | Path | None = None,
    n_segment: int | None = None,
    classes: str | Path | None = None,
    threads: int | None = None,
) -> StreamModel:
    """The stream ``tsm stream`` runs: a causal checkpoint stepped in PyTorch
    (``runtime="torch"``, `OnlineStream`) or a streaming step exported with ``tsm export
    --online`` run in onnxruntime, ExecuTorch (XNNPACK) or OpenVINO (``exported``: the file
    in the runtime's format; ``onnx`` is its older name for onnxruntime), an `ExportedStream`.
    ``threads``: the runtime's CPU threads.

    Class names come from ``classes`` (a file, one name per line), else from published
    weights (``checkpoint=weights.get_weights(NAME)``: its dataset's names), else from the
    checkpoint (``tsm train`` with ``data.classes`` records them), else are the indices;
    the number of classes is the checkpoint's (also for an exported step, if one is given),
    else the exported step's output size. A class file of the wrong length is an error.
    """
    num_classes: int | None = None
    loaded = None
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if onnx is not None and exported is not None:
        raise ValueError("give --exported FILE or --onnx FILE, not both")
    step = exported if exported is not None else onnx
    if runtime == "torch":
        if checkpoint is None:
            raise ValueError("--checkpoint is required with --runtime torch (or --weights NAME)")
        if step is not None:
            raise ValueError(
                f"{'--onnx' if onnx is not None else '--exported'} is for --runtime "
                f"{'onnxruntime' if onnx is not None else 'onnxruntime, executorch or openvino'}"
            )
        online, loaded = _load_causal(checkpoint, n_segment=n_segment)
        num_classes = online.config.num_classes
        stream: Stream = OnlineStream(online)
    else:
        if checkpoint is not None:
            online, loaded = _load_causal(checkpoint, n_segment=n_segment)
            num_classes = online.config.num_classes
        stream = _exported_stream(runtime, step, onnx_given=onnx is not None, threads=threads)
        if num_classes is None:
            num_classes = _probe_classes(stream)
    return StreamModel(
        stream=stream,
        classes=_class_names(classes, checkpoint=checkpoint, loaded=loaded, num_classes=num_classes),
        input_size=loaded.input_size if loaded else None,
        scale_size=loaded.scale_size if loaded else None,
    )


def _exported_stream(
    runtime: str, step: str | Path | None, *, onnx_given: bool, threads: int | None
) -> OnnxStream | ExportedStream:
    """The exported streaming step ``step`` in ``runtime`` (onnxruntime, executorch, openvino)."""
    format = STEP_RUNTIMES[runtime]
    if step is None:
        flag = "--onnx FILE" if runtime == "onnxruntime" else "--exported FILE"
        raise ValueError(f"--runtime {runtime} needs {flag} (from tsm export --online --format {format})")
    if onnx_given and runtime != "onnxruntime":
        raise ValueError(f"--onnx is for --runtime onnxruntime; give the {format} step as --exported FILE")
    if runtime == "onnxruntime":
        return OnnxStream(step, threads=threads)
    return ExportedStream(step, format=format, threads=threads)


def _class_names(
    classes: str | Path | None,
    *,
    checkpoint: str | Path | PublishedWeights | None,
    loaded: LoadedCheckpoint | None,
    num_classes: int | None,
) -> list[str]:
    """From ``classes``, else the published weights' dataset, else the checkpoint, else the indices."""
    if classes is not None:
        names = read_classes(classes)
        if num_classes is not None and len(names) != num_classes:
            raise ValueError(f"{classes}: {len(names)} class names, but the model has {num_classes} classes")
        return names
    if isinstance(checkpoint, PublishedWeights):
        return checkpoint.class_names()
    if loaded is not None and loaded.class_names is not None:
        return list(loaded.class_names)
    if num_classes is not None:
        return [str(i) for i in range(num_classes)]
    raise ValueError("cannot tell the number of classes; pass --classes or --checkpoint")


def _probe_classes(stream: ExportedStream) -> int | None:
    """The number of classes of an exported step: one step on a zero frame, then a fresh stream."""
    stream.update(torch.zeros(stream.frame_shape[1:]))
    stream.reset()
    return stream.num_classes


def run_stream(
    source: str | int | Path,
    stream: Stream,
    *,
    classes: Sequence[str],
    out: Any = None,
    out_video: str | Path | None = None,
    size: int = 224,
    short_side: int | None = None,
    every: int = 1,
    smooth: int = 1,
    hysteresis: int = 1,
    topk: int = 3,
    fps: float | None = None,
    template: str = DEFAULT_TEMPLATE,
) -> StreamSummary:
    """`tsm stream`: JSON lines to ``out`` (a text file object) and an optional annotated video.

    ``short_side`` defaults to ``size * 8/7`` (256 for 224). A folder's frames are its
    ``template`` files, as ``tsm predict`` reads them (`data.sources.open_folder`). The
    annotated video has every source frame (skipped ones carry the latest label).
    """
    if short_side is None:
        short_side = round(size * 8 / 7)
    frames = open_source(source, fps=fps, template=template)
    rate = frames.fps
    predictor = StreamPredictor(
        stream,
        classes=classes,
        size=size,
        short_side=short_side,
        every=every,
        smooth=smooth,
        hysteresis=hysteresis,
        topk=topk,
    )
    writer = AnnotatedVideoWriter(out_video, fps=rate) if out_video is not None else None
    last: list[StreamRecord | None] = [None]

    def tapped() -> Iterator[SourceFrame]:
        for f in frames.frames():
            yield f
            if writer is not None:
                rec = last[0]
                writer.write(f.image, rec.label if rec else None, rec.score if rec else None)

    try:
        for record in predictor.run(tapped(), fps=rate):
            last[0] = record
            if out is not None:
                out.write(record.to_json() + "\n")
                out.flush()
    finally:
        if writer is not None:
            writer.close()
        frames.close()
    return predictor.summary
