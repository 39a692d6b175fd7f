"""The overhead benchmark: TSM against TSN with identical weights, measured side by side.

Parameters and FLOPs come from the models themselves (`torch.utils.flop_counter`, which
counts a multiply-add as 2 FLOPs; the paper's "GFLOPs" are multiply-adds, reported here as
GMACs). Latency is measured with warm-up and interleaved repetitions: each repetition
times TSN and TSM back to back (alternating which goes first), so both see the same
machine state; the TSM/TSN ratio of each pair is the robust figure on a noisy machine.
With ``compile`` both models go through `compiled.compile_for_inference` (CUDA graphs on
CUDA) and are compiled and warmed up before the timed rounds. Training steps:
`temporal_shift.apps.bench.train.benchmark_training`.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from temporal_shift.engine.compiled import compile_for_inference, resolve_mode
from temporal_shift.models.base import ClipClassifier
from temporal_shift.models.factory import build_model
from temporal_shift.models.tsn import VideoRecognizer
from temporal_shift.ops.runtime import resolve_device


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, clips: torch.Tensor) -> int:
    """FLOPs of one forward pass on ``clips`` (2 per multiply-add), by torch.utils.flop_counter;
    a convolution counts its whole kernel at every output pixel (`small_maps.full_kernels`)."""
    from temporal_shift.ops.small_maps import full_kernels

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), full_kernels(model), counter:
        model(clips)
    return int(counter.get_total_flops())


def summarize(values: list[float]) -> dict[str, float]:
    """Median, quartiles, min and max of ``values``."""
    ordered = sorted(values)
    if len(ordered) >= 2:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q3 = ordered[0]
    return {
        "median": statistics.median(ordered),
        "q1": q1,
        "q3": q3,
        "min": ordered[0],
        "max": ordered[-1],
    }


def tsn_tsm_pair(
    *, arch: str, n_segment: int, num_classes: int = 400, seed: int = 0
) -> tuple[VideoRecognizer, VideoRecognizer]:
    """A TSN and a TSM model with identical weights (TSM only adds the shifts)."""
    torch.manual_seed(seed)
    tsn = build_model(arch, num_classes=num_classes, n_segment=n_segment, shift=False)
    tsm = build_model(arch, num_classes=num_classes, n_segment=n_segment, shift=True)
    plain = tsn.state_dict()
    # TSM's keys carry the shift wrapper's extra ``net`` level; the tensors are the same.
    tsm.load_state_dict({key: plain[key.replace(".net.", ".")] for key in tsm.state_dict()})
    assert isinstance(tsn, VideoRecognizer) and isinstance(tsm, VideoRecognizer)  # build_model's default family, tsn
    return tsn.eval(), tsm.eval()


def _timer(device: torch.device) -> Callable[[], float]:
    if device.type == "cuda":

        def synchronized() -> float:
            torch.cuda.synchronize(device)
            return time.perf_counter()

        return synchronized
    return time.perf_counter


def interleaved_latency(
    models: Mapping[str, Callable[[torch.Tensor], torch.Tensor]],
    clips: torch.Tensor | dict[str, torch.Tensor],
    *,
    repeats: int,
    warmup: int,
) -> dict[str, list[float]]:
    """Seconds per forward of each model, timed in interleaved rounds (order rotates).

    ``clips``: one input for all models, or one per model (models of different input shapes).
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    inputs = clips if isinstance(clips, dict) else dict.fromkeys(models, clips)
    now = _timer(next(iter(inputs.values())).device)
    names = list(models)
    times: dict[str, list[float]] = {name: [] for name in names}
    with torch.inference_mode():
        for _ in range(warmup):
            for name in names:
                models[name](inputs[name])
        for r in range(repeats):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                start = now()
                models[name](inputs[name])
                times[name].append(now() - start)
    return times


@dataclasses.dataclass
class OverheadResult:
    arch: str
    n_segment: int
    size: int
    batch_size: int
    device: str
    threads: int
    channels_last: bool
    repeats: int
    compile: str | None
    params: dict[str, int]
    gflops: dict[str, float]
    latency_ms: dict[str, dict[str, float]]
    clips_per_s: dict[str, float]
    ratio: dict[str, float]
    samples_ms: dict[str, list[float]]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    def table(self) -> str:
        lat = self.latency_ms
        lines = [
            f"{self.arch}, T={self.n_segment}, {self.size}x{self.size}, batch {self.batch_size}, "
            f"{self.device}, {self.threads} threads, "
            f"{'channels_last' if self.channels_last else 'contiguous'}, "
            f"{'compiled (' + self.compile + ')' if self.compile else 'eager'}, {self.repeats} interleaved pairs",
            f"{'model':<6}{'params (M)':>12}{'GFLOPs':>10}{'GMACs':>9}{'median ms':>12}{'IQR ms':>17}{'clips/s':>10}",
        ]
        for name in ("TSN", "TSM"):
            lines.append(
                f"{name:<6}{self.params[name] / 1e6:>12.2f}{self.gflops[name]:>10.1f}"
                f"{self.gflops[name] / 2:>9.1f}{lat[name]['median']:>12.1f}"
                f"{lat[name]['q1']:>8.1f}-{lat[name]['q3']:<8.1f}{self.clips_per_s[name]:>10.2f}"
            )
        r = self.ratio
        lines.append(
            f"TSM/TSN latency ratio (per pair): median {r['median']:.3f}, "
            f"IQR {r['q1']:.3f}-{r['q3']:.3f}, range {r['min']:.3f}-{r['max']:.3f}"
        )
        return "\n".join(lines)


def benchmark_overhead(
    *,
    arch: str = "resnet50",
    n_segment: int = 8,
    size: int = 224,
    batch_size: int = 1,
    repeats: int = 30,
    warmup: int = 3,
    device: str | None = None,
    threads: int | None = None,
    channels_last: bool = True,
    compile: str | None = None,
) -> OverheadResult:
    """Params, FLOPs and interleaved latency of TSN vs TSM with identical weights.

    ``compile``: None (eager) or a mode of `compiled.MODES` (``"auto"``: CUDA graphs on
    CUDA, inductor's default on CPU); compilation happens before the timed rounds.
    """
    if size < 32 or batch_size < 1:
        raise ValueError(f"need size >= 32 and batch_size >= 1, got {size} and {batch_size}")
    dev = resolve_device(device)
    if compile is not None:
        compile = resolve_mode(compile, dev)  # an unknown mode fails before any work
    if threads is not None:
        torch.set_num_threads(threads)
    tsn, tsm = tsn_tsm_pair(arch=arch, n_segment=n_segment)
    clips = torch.randn(batch_size, n_segment, 3, size, size)
    params = {"TSN": count_params(tsn), "TSM": count_params(tsm)}
    # FLOPs of the batch, counted on one clip (they scale with the batch; counting a
    # batch of 16 on the CPU would take longer than timing it on a GPU).
    gflops = {name: count_flops(m, clips[:1]) * batch_size / 1e9 for name, m in (("TSN", tsn), ("TSM", tsm))}
    models, clips = _on_device(
        {"TSN": tsn, "TSM": tsm}, clips, device=dev, channels_last=channels_last, compile=compile, warmup=warmup
    )
    times = interleaved_latency(models, clips, repeats=repeats, warmup=warmup)
    ratios = [b / a for a, b in zip(times["TSN"], times["TSM"], strict=True)]
    latency = {name: summarize([t * 1e3 for t in ts]) for name, ts in times.items()}
    return OverheadResult(
        arch=arch,
        n_segment=n_segment,
        size=size,
        batch_size=batch_size,
        device=str(dev),
        threads=torch.get_num_threads(),
        channels_last=channels_last,
        repeats=repeats,
        compile=compile,
        params=params,
        gflops=gflops,
        latency_ms=latency,
        clips_per_s={name: batch_size * 1e3 / latency[name]["median"] for name in latency},
        ratio=summarize(ratios),
        samples_ms={name: [t * 1e3 for t in ts] for name, ts in times.items()},
    )


def _on_device(
    models: dict[str, ClipClassifier],
    clips: Tensor,
    *,
    device: torch.device,
    channels_last: bool,
    compile: str | None,
    warmup: int,
) -> tuple[Mapping[str, Callable[[Tensor], Tensor]], Tensor]:
    """The models and the clips on ``device`` in the memory format timed, the models compiled with
    ``compile`` (a resolved mode) if given."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    placed = {name: model.to(device).to(memory_format=fmt) for name, model in models.items()}
    # (N, T, C, H, W) clips are folded to (N*T, C, H, W) frames inside; channels_last
    # applies to the frames, so lay the clip out as N*T channels-last frames.
    frames = clips.to(device).flatten(0, 1).contiguous(memory_format=fmt)
    clips = frames.view(clips.shape)
    if compile is None:
        return placed, clips
    compiled = {
        name: compile_for_inference(model, mode=compile, example=clips, warmup=max(warmup, 1))
        for name, model in placed.items()
    }
    return compiled, clips


def box_plot(samples_ms: dict[str, list[float]], path: str | Path, *, ylabel: str, title: str) -> Path:
    """Box plot of each model's per-round times (PNG); shared by the inference and training benches."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.boxplot(list(samples_ms.values()), tick_labels=list(samples_ms))
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_latencies(result: OverheadResult, path: str | Path) -> Path:
    """Box plot of per-repetition latencies of both models (PNG)."""
    return box_plot(
        result.samples_ms,
        path,
        ylabel="latency per batch (ms)",
        title=f"{result.arch} T={result.n_segment} {result.size}px: TSM/TSN {result.ratio['median']:.3f}",
    )
