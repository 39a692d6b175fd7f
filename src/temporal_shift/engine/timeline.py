"""Recognition over a long video: sliding windows, per-window scores, merged segments.

`predict_timeline(video, checkpoint=..., window=4, stride=1)` (``tsm predict VIDEO --window 4
--stride 1``) runs an offline model on clips of ``window`` seconds every ``stride`` seconds, each
sampled as in test (`predict.Predictor`: the model's T frames of the window, sampled as it was
trained, resized and centre-cropped). The video is decoded once, in order: each frame is
transformed as it arrives and kept while a window still needs it (at most one window of frames),
and a window is scored as soon as its last frame is in. The last window ends at the video's end.

Segments: the timeline is cut at every window start and end; each piece scores the mean of the
probabilities of the windows that cover it (so a class boundary is placed within one stride),
optionally averaged over ``smooth`` seconds; consecutive pieces with the same best class make a
segment (label, start, end, score: the mean probability of its label over it), and a segment
shorter than ``min_length`` seconds is given to the neighbour whose class scores higher over it.

`Timeline` writes JSON (windows and segments), two CSV files and a PNG (`plot_timeline`).
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from temporal_shift.data.lists import DEFAULT_TEMPLATE
from temporal_shift.data.sources import DEFAULT_FPS, FolderSource, VideoSource, find_sources, open_folder
from temporal_shift.engine.predict import Predictor
from temporal_shift.hub.published import PublishedWeights


@dataclasses.dataclass(frozen=True)
class Segment:
    """A stretch of the video given one class: [start, end) in seconds, its mean probability."""

    label: int
    name: str
    start: float
    end: float
    score: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Timeline:
    """The windows of a video and their scores, and the segments merged from them."""

    video: str
    fps: float
    num_frames: int
    window: float  # seconds asked for
    stride: float
    smooth: float
    min_length: float
    class_names: list[str]
    starts: np.ndarray  # (W,) first frame of each window
    ends: np.ndarray  # (W,) one past its last frame
    scores: np.ndarray  # (W, K) softmax probabilities
    segments: list[Segment]
    times: np.ndarray  # (num_frames + 1,) time of each frame, and the end of the last one

    @property
    def duration(self) -> float:
        return float(self.times[-1])

    def window_rows(self, topk: int = 5) -> list[dict[str, Any]]:
        """Each window: start, end (s) and its ``topk`` classes, best first."""
        rows = []
        for s, e, p in zip(self.starts, self.ends, self.scores, strict=True):
            best = np.argsort(-p, kind="stable")[:topk]
            rows.append(
                {
                    "start": float(self.times[s]),
                    "end": float(self.times[e]),
                    "label": int(best[0]),
                    "name": self.class_names[int(best[0])],
                    "score": float(p[best[0]]),
                    "topk": [{"label": int(i), "name": self.class_names[int(i)], "score": float(p[i])} for i in best],
                }
            )
        return rows

    def to_dict(self, topk: int = 5) -> dict[str, Any]:
        return {
            "video": self.video,
            "fps": self.fps,
            "frames": self.num_frames,
            "duration": self.duration,
            "window": self.window,
            "stride": self.stride,
            "smooth": self.smooth,
            "min_length": self.min_length,
            "classes": self.class_names,
            "windows": self.window_rows(topk),
            "segments": [s.to_dict() for s in self.segments],
        }

    def write(self, out_dir: str | Path, *, topk: int = 5, plot: bool = False) -> dict[str, Path]:
        """``<stem>.timeline.json``, ``<stem>.windows.csv``, ``<stem>.segments.csv`` (and with
        ``plot`` ``<stem>.timeline.png``) in ``out_dir``; returns them by kind."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = Path(self.video).stem
        files = {
            "json": out / f"{stem}.timeline.json",
            "windows": out / f"{stem}.windows.csv",
            "segments": out / f"{stem}.segments.csv",
        }
        files["json"].write_text(json.dumps(self.to_dict(topk), indent=2) + "\n", encoding="utf-8")
        _write_windows_csv(files["windows"], self.window_rows(topk), topk)
        with files["segments"].open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["label", "name", "start", "end", "score"])
            for s in self.segments:
                w.writerow([s.label, s.name, f"{s.start:.3f}", f"{s.end:.3f}", f"{s.score:.4f}"])
        if plot:
            files["plot"] = plot_timeline(self, out / f"{stem}.timeline.png")
        return files

    def lines(self) -> list[str]:
        """The segments as text: start-end (s), class, score."""
        width = max((len(s.name) for s in self.segments), default=0)
        return [f"{s.start:8.2f} - {s.end:8.2f} s  {s.name:<{width}}  {s.score:.3f}" for s in self.segments]


def _write_windows_csv(path: Path, rows: list[dict[str, Any]], topk: int) -> None:
    k = min(topk, len(rows[0]["topk"])) if rows else 0
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["start", "end", *[f"{c}_{i}" for i in range(1, k + 1) for c in ("label", "name", "score")]])
        for row in rows:
            cells: list[Any] = [f"{row['start']:.3f}", f"{row['end']:.3f}"]
            for top in row["topk"][:k]:
                cells += [top["label"], top["name"], f"{top['score']:.4f}"]
            w.writerow(cells)


# --- windows ------------------------------------------------------------------------------------


def window_frames(window: float, stride: float, fps: float) -> tuple[int, int]:
    """``window`` and ``stride`` seconds as frame counts at ``fps`` (at least 1 each)."""
    if not window > 0 or not stride > 0:
        raise ValueError(f"window and stride must be positive seconds, got {window}, {stride}")
    if stride > window:
        raise ValueError(f"stride ({stride} s) must not exceed the window ({window} s): frames would go unseen")
    return max(1, round(window * fps)), max(1, round(stride * fps))


def _frames(source: VideoSource | FolderSource) -> Iterator[tuple[int, float, torch.Tensor]]:
    for frame in source.frames():
        yield frame.index, frame.time, frame.image


def score_windows(
    predictor: Predictor,
    source: VideoSource | FolderSource,
    *,
    length: int,
    step: int,
    batch_size: int = 8,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]:
    """Windows of ``length`` frames every ``step`` frames over one sequential decode of ``source``:
    (starts, ends, (W, K) probabilities, frame times). Only the last ``length`` transformed
    frames are kept; the last window ends at the last frame."""
    kept: collections.deque[torch.Tensor] = collections.deque(maxlen=length)
    starts: list[int] = []
    pending: list[torch.Tensor] = []
    scores: list[torch.Tensor] = []
    times: list[float] = []

    def add(start: int, end: int) -> None:  # the window [start, end): its frames are the last ones kept
        first = end - len(kept)
        pending.append(torch.stack([kept[start + i - first] for i in predictor.sample(end - start)]))
        starts.append(start)
        if len(pending) == batch_size:
            flush()

    def flush() -> None:
        if pending:
            scores.append(predictor.batch_probabilities(torch.stack(pending)))
            pending.clear()

    bar = tqdm(desc="windows", unit="frame", disable=not progress, leave=False)
    for index, time, image in _frames(source):
        kept.append(predictor.transform(image[None])[0])
        times.append(time)
        if index + 1 >= length and (index + 1 - length) % step == 0:
            add(index + 1 - length, index + 1)
        bar.update()
    bar.close()
    n = len(times)
    if n == 0:
        raise ValueError(f"{source.label}: no frames")
    if not starts or starts[-1] + length < n:  # the tail (or a video shorter than one window)
        add(max(0, n - length), n)
    flush()
    first = np.asarray(starts, dtype=np.int64)
    return first, np.minimum(first + length, n), torch.cat(scores).numpy(), times


# --- segments -------------------------------------------------------------------------------------


def piece_scores(starts: np.ndarray, ends: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The timeline cut at every window start and end: (edges (P+1,) in frames, (P, K) the mean
    probabilities of the windows covering each piece)."""
    edges = np.unique(np.concatenate([starts, ends]))
    mids = (edges[:-1] + edges[1:]) / 2
    cover = (starts[None, :] <= mids[:, None]) & (mids[:, None] < ends[None, :])  # (P, W)
    counts = cover.sum(axis=1, keepdims=True)
    return edges, (cover.astype(np.float64) @ scores) / np.maximum(counts, 1)


def smooth_pieces(edges: np.ndarray, pieces: np.ndarray, *, frames: float) -> np.ndarray:
    """Each piece's scores averaged (weighted by length) with the pieces whose centres lie within
    ``frames / 2`` of its centre; 0 leaves them as they are."""
    if frames <= 0:
        return pieces
    mids = (edges[:-1] + edges[1:]) / 2
    lengths = np.diff(edges).astype(np.float64)
    near = np.abs(mids[:, None] - mids[None, :]) <= frames / 2
    weights = near * lengths[None, :]
    return (weights @ pieces) / weights.sum(axis=1, keepdims=True)


def merge_segments(edges: np.ndarray, pieces: np.ndarray, *, min_frames: float = 0) -> list[tuple[int, int, int]]:
    """(label, first frame, end frame) of the runs of pieces with the same best class; a run
    shorter than ``min_frames`` goes to the neighbour whose class scores higher over it."""
    labels = pieces.argmax(axis=1)
    lengths = np.diff(edges).astype(np.float64)
    while True:
        runs = _runs(labels)
        short = [(sum(lengths[a:b]), k) for k, (_, a, b) in enumerate(runs) if sum(lengths[a:b]) < min_frames]
        if not short or len(runs) == 1:
            break
        _, k = min(short)
        _, a, b = runs[k]
        neighbours = [runs[j][0] for j in (k - 1, k + 1) if 0 <= j < len(runs)]
        weight = lengths[a:b] / lengths[a:b].sum()
        labels[a:b] = max(neighbours, key=lambda c: float(weight @ pieces[a:b, c]))
    return [(int(label), int(edges[a]), int(edges[b])) for label, a, b in _runs(labels)]


def _runs(labels: np.ndarray) -> list[tuple[int, int, int]]:
    """(label, first piece, end piece) of each run of equal labels."""
    cuts = [0, *(np.flatnonzero(np.diff(labels)) + 1).tolist(), len(labels)]
    return [(int(labels[a]), a, b) for a, b in itertools.pairwise(cuts)]


def segments_of(
    starts: np.ndarray,
    ends: np.ndarray,
    scores: np.ndarray,
    *,
    times: np.ndarray,
    class_names: list[str],
    fps: float,
    smooth: float = 0.0,
    min_length: float = 0.0,
) -> list[Segment]:
    """The merged segments of scored windows (see the module docstring); ``times`` maps frames to seconds."""
    edges, pieces = piece_scores(starts, ends, scores)
    pieces = smooth_pieces(edges, pieces, frames=smooth * fps)
    lengths = np.diff(edges).astype(np.float64)
    segments = []
    for label, first, end in merge_segments(edges, pieces, min_frames=min_length * fps):
        inside = (edges[:-1] >= first) & (edges[1:] <= end)
        score = float(lengths[inside] @ pieces[inside, label] / lengths[inside].sum())
        segments.append(Segment(label, class_names[label], float(times[first]), float(times[end]), score))
    return segments


def _check_settings(*, smooth: float, min_length: float, batch_size: int) -> None:
    if smooth < 0 or min_length < 0:
        raise ValueError(f"smooth and min_length must be >= 0 seconds, got {smooth}, {min_length}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")


def _one_source(video: str | Path, *, template: str, fps: float | None) -> VideoSource | FolderSource:
    """The one video or frame folder at ``video``, at ``fps`` if given."""
    sources = find_sources(video, template=template)
    if len(sources) != 1:
        raise ValueError(f"{video}: a folder of {len(sources)} videos; give one video (or frame folder)")
    source = sources[0]
    if fps is not None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        source = VideoSource(source.path, fps=fps) if source.kind == "video" else open_folder(source.path, fps=fps)
    return source


def predict_timeline(
    video: str | Path,
    *,
    checkpoint: str | Path | PublishedWeights | None = None,
    predictor: Predictor | None = None,
    window: float,
    stride: float,
    smooth: float = 0.0,
    min_length: float = 0.0,
    batch_size: int = 8,
    fps: float | None = None,
    classes: str | Path | None = None,
    size: int | None = None,
    scale_size: int | None = None,
    device: str = "auto",
    template: str = DEFAULT_TEMPLATE,
    progress: bool = False,
) -> Timeline:
    """Score sliding windows of ``video`` (a video file or a frame folder) with ``checkpoint`` (or
    a ready ``predictor``) and merge them into segments; see the module docstring. ``fps``
    overrides the frame rate (frame folders: 25 by default); ``classes``, ``size``, ``scale_size``
    and ``device`` are `Predictor`'s."""
    if (checkpoint is None) == (predictor is None):
        raise ValueError("give a checkpoint or a predictor")
    _check_settings(smooth=smooth, min_length=min_length, batch_size=batch_size)
    source = _one_source(video, template=template, fps=fps)
    rate = source.fps or DEFAULT_FPS
    length, step = window_frames(window, stride, rate)
    if predictor is None:
        predictor = Predictor(
            checkpoint,  # type: ignore[arg-type]
            classes=classes,
            size=size,
            scale_size=scale_size,
            device=device,
            template=template,
        )
    starts, ends, scores, frame_times = score_windows(
        predictor, source, length=length, step=step, batch_size=batch_size, progress=progress
    )
    times = np.asarray([*frame_times, frame_times[-1] + 1.0 / rate])
    segments = segments_of(
        starts,
        ends,
        scores,
        times=times,
        class_names=predictor.class_names,
        fps=rate,
        smooth=smooth,
        min_length=min_length,
    )
    return Timeline(
        video=str(video),
        fps=rate,
        num_frames=len(frame_times),
        window=window,
        stride=stride,
        smooth=smooth,
        min_length=min_length,
        class_names=predictor.class_names,
        starts=starts,
        ends=ends,
        scores=scores,
        segments=segments,
        times=times,
    )


def plot_timeline(timeline: Timeline, path: str | Path, *, classes: int = 6) -> Path:
    """A PNG: the segments as coloured bars over time, and the window scores of the classes that
    make them (and the best others, ``classes`` in all) at each window's centre."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = timeline
    shown = list(dict.fromkeys([s.label for s in t.segments] + np.argsort(-t.scores.mean(axis=0)).tolist()))
    shown = shown[: max(classes, len({s.label for s in t.segments}))]
    colours = {c: plt.get_cmap("tab10" if len(shown) <= 10 else "tab20")(i % 20) for i, c in enumerate(shown)}
    fig, (bars, curves) = plt.subplots(
        2, 1, figsize=(10, 4.5), sharex=True, gridspec_kw={"height_ratios": [1, 3]}, constrained_layout=True
    )
    for s in t.segments:
        bars.axvspan(s.start, s.end, color=colours[s.label], alpha=0.85)
        bars.text((s.start + s.end) / 2, 0.5, s.name, ha="center", va="center", fontsize=7, clip_on=True)
    bars.set_yticks([])
    bars.set_title(f"{Path(t.video).name}: window {t.window:g} s, stride {t.stride:g} s", fontsize=9)
    centres = (t.times[t.starts] + t.times[t.ends]) / 2
    for c in shown:
        curves.plot(centres, t.scores[:, c], color=colours[c], label=t.class_names[c], linewidth=1.2)
    curves.set_xlim(0, t.duration)
    curves.set_ylim(0, 1)
    curves.set_xlabel("time (s)")
    curves.set_ylabel("window score")
    curves.legend(fontsize=7, loc="upper right", ncol=2)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
