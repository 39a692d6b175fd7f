"""Data-loading benchmark: training clips per second from frame folders, mp4 and AVI, per video decoder.

Each sample is a full training clip: TSN sampling of ``segments`` frames (random frame
per segment), decoding, the paper's multi-scale crop + flip to ``size`` and float
normalisation, through a ``DataLoader`` with ``workers`` processes (0 = in the main
process). The sources are timed in interleaved repetitions (frames, mp4, mp4,
frames, ...) over the same samples, each repetition one pass over ``clips`` samples
with persistent workers already running; we report the median, min and max of clips/s,
per worker, and the frames/mp4 ratio of the medians. Videos are read once per
``decoders`` entry (``mp4``: PyAV, ``mp4 torchcodec``: TorchCodec); a decoder that
cannot read a source (TorchCodec not installed, or an AVI with B-frames it cannot read
frame-exactly) is reported with its reason instead of timed.

Without a dataset of your own, ``ensure_bench_data`` writes a small synthetic one with
frames of ``height x width`` (default 256x340: short side 256, as extracted for training)
as JPEG folders, as mp4 (H.264) and as AVI (MPEG-4 Part 2 with B-frames, as UCF101's),
and reuses it on later runs.
"""

from __future__ import annotations

import itertools
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from temporal_shift.apps.bench.turns import measuring
from temporal_shift.data.dataset import VideoDataset
from temporal_shift.data.decode import Decoder
from temporal_shift.data.encode import write_video
from temporal_shift.data.lists import read_list, write_video_list
from temporal_shift.data.sampling import TSNSampler
from temporal_shift.data.sources import VideoSource
from temporal_shift.data.synthetic import generate_synthetic
from temporal_shift.data.transforms import train_transform

SOURCES = ("frames", "mp4")
AVI_LIST = "train_videos_avi.txt"


@dataclass
class SourceTiming:
    source: str
    clips_per_s: list[float]  # one per repetition

    @property
    def median(self) -> float:
        return statistics.median(self.clips_per_s)


@dataclass
class DataBenchResult:
    workers: int
    clips: int
    segments: int
    size: int
    frame_size: tuple[int, int]
    timings: dict[str, SourceTiming] = field(default_factory=dict)
    not_timed: dict[str, str] = field(default_factory=dict)  # source: why (a decoder that cannot read it)

    def per_worker(self, source: str) -> float:
        return self.timings[source].median / max(self.workers, 1)

    def table(self) -> str:
        h, w = self.frame_size
        width = max(8, *(len(s) for s in [*self.timings, *self.not_timed]))
        lines = [
            f"{self.segments}-frame {self.size}x{self.size} training clips (multi-scale crop + flip) "
            f"from {h}x{w} frames, {self.workers} worker(s), {self.clips} clips x "
            f"{len(next(iter(self.timings.values())).clips_per_s)} interleaved repetitions",
            f"{'source':<{width}} {'clips/s median':>15} {'min':>8} {'max':>8} {'per worker':>11}",
        ]
        for source, t in self.timings.items():
            lines.append(
                f"{source:<{width}} {t.median:>15.1f} {min(t.clips_per_s):>8.1f} {max(t.clips_per_s):>8.1f} "
                f"{self.per_worker(source):>11.1f}"
            )
        lines += [f"{source:<{width}} not timed: {why}" for source, why in self.not_timed.items()]
        if set(SOURCES) <= set(self.timings):
            lines.append(
                f"frames / mp4 (ratio of medians): {self.timings['frames'].median / self.timings['mp4'].median:.2f}"
            )
        return "\n".join(lines)

    def to_json(self) -> str:
        data = asdict(self)
        for source, t in self.timings.items():
            data["timings"][source]["median"] = t.median
            data["timings"][source]["per_worker"] = self.per_worker(source)
        return json.dumps(data, indent=2) + "\n"


def ensure_bench_data(
    work_dir: str | Path,
    *,
    height: int = 256,
    width: int = 340,
    frames: int = 64,
    num_videos: int = 24,
    progress: bool = True,
) -> Path:
    """Write (or reuse) a synthetic benchmark dataset in ``work_dir``; returns its root. Its
    videos are also written as AVI (MPEG-4 Part 2, B-frames) listed in ``AVI_LIST``."""
    paths = generate_synthetic(
        work_dir, num_videos=num_videos, size=(height, width), frames=frames, seed=0, progress=progress
    )
    if not (paths.root / AVI_LIST).is_file():
        write_avi_copies(paths.root, "train_videos.txt")
    return paths.root


def write_avi_copies(root: str | Path, videos_list: str | Path) -> Path:
    """The videos of ``videos_list`` (under ``root``) as AVI next to them (MPEG-4 Part 2 with
    B-frames, UCF101's encoding), listed in ``root/AVI_LIST``; returns that list."""
    root = Path(root)
    entries = []
    for record in read_list(root / videos_list, kind="videos"):
        avi = Path(record.path).with_suffix(".avi")
        with VideoSource(root / record.path) as source:
            frames_rgb = np.stack([f.image.permute(1, 2, 0).numpy() for f in source.frames()])
        write_video(root / avi, frames_rgb, codec="mpeg4", bframes=2, gop=12)
        entries.append((avi.as_posix(), record.label))
    return write_video_list(root / AVI_LIST, entries)


def _loader(dataset: VideoDataset, indices: list[int], *, workers: int, batch_size: int) -> DataLoader:
    return DataLoader(
        Subset(dataset, indices),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )


def _time_pass(loader: DataLoader) -> tuple[float, int]:
    """Seconds and clips of one pass over ``loader``, while no heavy run starts on the machine (`turns.measuring`)."""
    with measuring("data loading"):
        start = time.perf_counter()
        n = 0
        for clips, _ in loader:
            n += clips.shape[0]
        return time.perf_counter() - start, n


def benchmark_data(
    *,
    root: str | Path,
    frames_list: str | Path,
    videos_list: str | Path,
    workers: int = 1,
    clips: int = 64,
    repeats: int = 5,
    segments: int = 8,
    size: int = 224,
    batch_size: int = 8,
    threads: int | None = 1,
    avi_list: str | Path | None = None,
    decoders: Sequence[Decoder] = ("pyav", "torchcodec"),
) -> DataBenchResult:
    """Time training-clip loading from ``frames_list``, ``videos_list`` (mp4) and ``avi_list``
    under ``root``, the videos with each of ``decoders``."""
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if clips < 1 or repeats < 1 or batch_size < 1:
        raise ValueError("clips, repeats and batch_size must be >= 1")
    if threads is not None:
        torch.set_num_threads(threads)
    sampler = TSNSampler(n_segment=segments, train=True)
    transform = train_transform(size=size)
    datasets = {
        "frames": VideoDataset(list_file=frames_list, root=root, sampler=sampler, transform=transform, kind="frames")
    }
    videos = {"mp4": videos_list, **({"avi": avi_list} if avi_list is not None else {})}
    for (kind, list_file), decoder in itertools.product(videos.items(), decoders):
        datasets[kind if decoder == "pyav" else f"{kind} {decoder}"] = VideoDataset(
            list_file=list_file, root=root, sampler=sampler, transform=transform, kind="videos", decoder=decoder
        )
    result = DataBenchResult(
        workers=workers, clips=clips, segments=segments, size=size, frame_size=_frame_hw(datasets["frames"])
    )
    result.not_timed = _unreadable(datasets)
    n = min(len(d) for d in datasets.values())
    indices = [i % n for i in range(clips)]
    sources = [s for s in datasets if s not in result.not_timed]
    loaders = {s: _loader(datasets[s], indices, workers=workers, batch_size=batch_size) for s in sources}
    for source in sources:  # warm-up: start workers, fill caches (frame counts, page cache)
        _time_pass(loaders[source])
        result.timings[source] = SourceTiming(source, [])
    for rep in range(repeats):
        order = sources if rep % 2 == 0 else sources[::-1]
        for source in order:
            seconds, count = _time_pass(loaders[source])
            result.timings[source].clips_per_s.append(count / seconds)
    return result


def _unreadable(datasets: dict[str, VideoDataset]) -> dict[str, str]:
    """The sources whose first clip a non-default decoder cannot read, with the reason (PyAV's
    errors are raised: the data is broken)."""
    refused = {}
    for source, dataset in datasets.items():
        try:
            dataset[0]
        except ValueError as exc:
            if getattr(dataset, "decoder", "pyav") == "pyav":
                raise
            refused[source] = str(exc).splitlines()[0]
    return refused


def _frame_hw(dataset: VideoDataset) -> tuple[int, int]:
    from temporal_shift.data.decode import read_frame_folder

    record = dataset.records[0]
    frame = read_frame_folder(dataset.root / record.path, [0], template=dataset.template)
    return int(frame.shape[2]), int(frame.shape[3])


def plot_data_bench(result: DataBenchResult, path: str | Path) -> Path:
    """Box plot of clips/s per source (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    names = list(result.timings)
    ax.boxplot([result.timings[s].clips_per_s for s in names])
    ax.set_xticks(range(1, len(names) + 1), names)
    ax.set_ylabel("clips/s")
    ax.set_title(f"{result.segments}x{result.size}^2 training clips, {result.workers} worker(s)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
