"""What the two-stream baseline costs per clip, next to TSM, measured side by side.

TSM models motion inside one RGB network; the two-stream baseline (TSN RGB + TSN flow,
scores fused) needs optical flow first: for one test clip, T segments x L consecutive
flow fields, each from a pair of frames, then two forward passes. `benchmark_two_stream`
times, in interleaved rounds (order rotating), the TSM forward, the TSN-RGB and TSN-flow
forwards and the flow of one frame pair with TV-L1 and with Farneback (OpenCV on one
thread: frames/s per core, at the reference's 340x256 frames by default). A round's
two-stream time per clip is RGB forward + flow forward + T*L x the pair's flow time, so
the ratio to TSM is taken per round, like `overhead.benchmark_overhead`'s TSM/TSN ratio.
Decoding is not timed (TSM decodes T frames, the two-stream model T*(L+1) and T).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from temporal_shift.apps.bench.overhead import count_flops, summarize
from temporal_shift.data.flow import DEFAULT_FLOW_LENGTH, METHODS, FlowComputer, FlowMethod, require_opencv
from temporal_shift.models.base import ClipClassifier
from temporal_shift.models.factory import build_model
from temporal_shift.ops.runtime import resolve_device

FLOW_FRAME = (256, 340)  # (height, width): the reference's 340x256 frames


def moving_texture_pair(
    height: int, width: int, *, shift: tuple[int, int] = (2, 1), seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Two grayscale uint8 frames: a smooth random texture and the same moved (dx, dy) px."""
    cv2 = require_opencv()
    noise = np.random.default_rng(seed).random((height + 8, width + 8)).astype(np.float32)
    texture = cv2.GaussianBlur(noise, (0, 0), 2.0)
    texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    dx, dy = shift
    return texture[4 : 4 + height, 4 : 4 + width].copy(), texture[
        4 - dy : 4 - dy + height, 4 - dx : 4 - dx + width
    ].copy()


@dataclasses.dataclass
class TwoStreamCost:
    """Per-clip cost of TSM and of the two-stream baseline; times in ms (median, IQR, range)."""

    arch: str
    n_segment: int
    size: int
    flow_length: int
    flow_frame: tuple[int, int]
    device: str
    threads: int
    repeats: int
    gflops: dict[str, float]
    forward_ms: dict[str, dict[str, float]]  # TSM, TSN-RGB, TSN-flow
    flow_pair_ms: dict[str, dict[str, float]]  # per frame pair, one thread
    flow_fps: dict[str, float]  # frame pairs per second per core (median)
    per_clip_ms: dict[str, dict[str, float]]  # TSM, two-stream (tvl1), two-stream (farneback)
    ratio_to_tsm: dict[str, dict[str, float]]  # per round

    @property
    def flow_pairs_per_clip(self) -> int:
        return self.n_segment * self.flow_length

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    def table(self) -> str:
        h, w = self.flow_frame
        lines = [
            f"{self.arch}, T={self.n_segment}, {self.size}x{self.size}, batch 1, {self.device}, "
            f"{self.threads} torch threads; flow: L={self.flow_length} ({self.flow_pairs_per_clip} frame pairs per "
            f"clip) at {w}x{h}, OpenCV on 1 thread; {self.repeats} interleaved rounds",
            f"{'flow method':<14}{'ms/pair':>10}{'IQR':>18}{'pairs/s per core':>18}",
        ]
        for method, s in self.flow_pair_ms.items():
            lines.append(
                f"{method:<14}{s['median']:>10.1f}{s['q1']:>9.1f}-{s['q3']:<8.1f}{self.flow_fps[method]:>18.1f}"
            )
        lines.append(f"{'per clip':<26}{'GFLOPs':>8}{'median ms':>12}{'IQR ms':>20}{'x TSM (per round)':>20}")
        for name, s in self.per_clip_ms.items():
            flops = self.gflops["TSM"] if name == "TSM" else self.gflops["TSN-RGB"] + self.gflops["TSN-flow"]
            r = self.ratio_to_tsm[name]
            lines.append(
                f"{name:<26}{flops:>8.1f}{s['median']:>12.1f}{s['q1']:>10.1f}-{s['q3']:<9.1f}"
                f"{r['median']:>12.2f} ({r['q1']:.2f}-{r['q3']:.2f})"
            )
        f = self.forward_ms
        lines.append("forwards alone (median ms): " + ", ".join(f"{k} {v['median']:.1f}" for k, v in f.items()))
        return "\n".join(lines)


def benchmark_two_stream(
    *,
    arch: str = "resnet50",
    n_segment: int = 8,
    size: int = 224,
    flow_length: int = DEFAULT_FLOW_LENGTH,
    flow_frame: tuple[int, int] = FLOW_FRAME,
    methods: tuple[FlowMethod, ...] = METHODS,
    repeats: int = 5,
    warmup: int = 1,
    device: str | None = None,
    threads: int | None = None,
    num_classes: int = 400,
) -> TwoStreamCost:
    """Time TSM against the two-stream baseline per clip (see the module docstring)."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    cv2 = require_opencv()
    dev = resolve_device(device or "auto")
    if threads is not None:
        torch.set_num_threads(threads)
    models = _models(arch, n_segment=n_segment, flow_length=flow_length, num_classes=num_classes)
    inputs = {name: torch.randn(1, n_segment, m.config.input_channels, size, size) for name, m in models.items()}
    gflops = {name: count_flops(m.eval(), inputs[name]) / 1e9 for name, m in models.items()}
    models = {name: m.to(dev).eval() for name, m in models.items()}
    inputs = {name: x.to(dev) for name, x in inputs.items()}
    prev, nxt = moving_texture_pair(*flow_frame)
    computers = {method: FlowComputer(method) for method in methods}
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)

    def forward(name: str) -> None:
        models[name](inputs[name])
        sync()

    tasks: dict[str, Any] = {name: (lambda n=name: forward(n)) for name in models}
    tasks |= {f"flow:{m}": (lambda c=computers[m]: c(prev, nxt)) for m in methods}
    cv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        times = _interleaved(tasks, repeats=repeats, warmup=warmup)
    finally:
        cv2.setNumThreads(cv_threads)
    ms = {name: [1000.0 * t for t in values] for name, values in times.items()}
    pairs = n_segment * flow_length
    per_clip = {"TSM": ms["TSM"]}
    for m in methods:
        per_clip[f"two-stream ({m})"] = [
            rgb + flow + pairs * pair
            for rgb, flow, pair in zip(ms["TSN-RGB"], ms["TSN-flow"], ms[f"flow:{m}"], strict=True)
        ]
    return TwoStreamCost(
        arch=arch,
        n_segment=n_segment,
        size=size,
        flow_length=flow_length,
        flow_frame=(flow_frame[0], flow_frame[1]),
        device=str(dev),
        threads=torch.get_num_threads(),
        repeats=repeats,
        gflops=gflops,
        forward_ms={name: summarize(ms[name]) for name in models},
        flow_pair_ms={m: summarize(ms[f"flow:{m}"]) for m in methods},
        flow_fps={m: 1000.0 / summarize(ms[f"flow:{m}"])["median"] for m in methods},
        per_clip_ms={name: summarize(v) for name, v in per_clip.items()},
        ratio_to_tsm={
            name: summarize([a / b for a, b in zip(v, ms["TSM"], strict=True)]) for name, v in per_clip.items()
        },
    )


def _models(arch: str, *, n_segment: int, flow_length: int, num_classes: int) -> dict[str, ClipClassifier]:
    """TSM, TSN on RGB and TSN on flow stacks of ``flow_length`` fields, built from seed 0."""
    torch.manual_seed(0)
    return {
        "TSM": build_model(arch, num_classes=num_classes, n_segment=n_segment, shift=True),
        "TSN-RGB": build_model(arch, num_classes=num_classes, n_segment=n_segment, shift=False),
        "TSN-flow": build_model(
            arch, num_classes=num_classes, n_segment=n_segment, shift=False, modality="flow", flow_length=flow_length
        ),
    }


def _interleaved(tasks: dict[str, Callable[[], Any]], *, repeats: int, warmup: int) -> dict[str, list[float]]:
    """Seconds of each task per round: ``warmup`` untimed rounds, then ``repeats`` rounds each
    starting one task later (so no task always runs first), under inference mode."""
    names = list(tasks)
    times: dict[str, list[float]] = {name: [] for name in names}
    with torch.inference_mode():
        for _ in range(warmup):
            for name in names:
                tasks[name]()
        for r in range(repeats):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                start = time.perf_counter()
                tasks[name]()
                times[name].append(time.perf_counter() - start)
    return times
