"""The training-cost benchmark: TSN against TSM training steps, measured side by side.

A step is what the trainer does per batch: forward (under autocast with ``amp``),
cross-entropy on float32 logits, backward, SGD with momentum on the recipe's parameter
groups (`param_groups`: no weight decay on biases and BN), with a `GradScaler` for
fp16. Both models start from identical weights (`tsn_tsm_pair`) and each keeps its own
optimizer; their weights drift apart over the rounds (each learns from the same random
batches), which changes nothing in the timing. Inputs are random clips and labels
already on the device, in the models' memory format (channels_last by default), so
data loading is not part of the figure (see `tsm bench data` for that).

Timing as in `overhead.benchmark_overhead`: warm-up steps (compilation happens there with
``compile``), then interleaved rounds, each timing one step of every model back to back
with the order rotating; the per-round TSM/TSN time ratio is the robust figure.

Peak memory (``peak_step_mb``): what one step allocates at its peak above what was
allocated before it (activations kept for backward, gradients, temporaries; the
weights and the optimizer state are not in it), measured on an extra untimed step per
model with all gradients freed first. CUDA: the caching allocator's counters
(`torch.cuda.max_memory_allocated`); CPU: the allocation events of `torch.profiler`
(``profile_memory=True``). The same quantity on both, by different meters.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from temporal_shift.apps.bench.overhead import _timer, box_plot, summarize, tsn_tsm_pair
from temporal_shift.engine.compiled import resolve_mode
from temporal_shift.models.base import ClipClassifier
from temporal_shift.models.optim_groups import param_groups
from temporal_shift.ops.runtime import resolve_device

AMP_MODES = ("off", "bf16", "fp16")
_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class TrainStep:
    """One training step of ``model`` (see the module doc): ``step(clips, labels)``."""

    def __init__(
        self,
        model: ClipClassifier,
        *,
        device: torch.device,
        amp: str = "off",
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        compile_mode: str | None = None,
    ) -> None:
        if amp not in AMP_MODES:
            raise ValueError(f"unknown amp {amp!r}; expected one of {', '.join(AMP_MODES)}")
        self.model = model.train()
        groups = [
            {"params": g["params"], "lr": lr * g["lr_mult"], "weight_decay": weight_decay * g["decay_mult"]}
            for g in param_groups(model)
        ]
        self.optimizer = torch.optim.SGD(groups, lr=lr, momentum=momentum)
        self.device = device
        self.amp_dtype = _AMP_DTYPES.get(amp)
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
        self.forward: Callable[[Tensor], Tensor] = model
        if compile_mode is not None:
            self.forward = torch.compile(model, mode=compile_mode, fullgraph=True, dynamic=False)

    def __call__(self, clips: Tensor, labels: Tensor) -> Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        autocast = (
            torch.autocast(self.device.type, dtype=self.amp_dtype)
            if self.amp_dtype is not None
            else contextlib.nullcontext()
        )
        with autocast:
            logits = self.forward(clips)
        loss = F.cross_entropy(logits.float(), labels)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach()


def interleaved_steps(
    steps: Mapping[str, Callable[[], object]], *, device: torch.device, repeats: int, warmup: int
) -> dict[str, list[float]]:
    """Seconds per call of each step, timed in interleaved rounds (order rotates)."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    now = _timer(device)
    names = list(steps)
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(warmup):
        for name in names:
            steps[name]()
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = now()
            steps[name]()
            times[name].append(now() - start)
    return times


@contextlib.contextmanager
def _quiet_profiler_log() -> Iterator[None]:
    """Drop kineto's own start/stop lines (written to fd 2 by C++), keep anything else."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            log.seek(0)
            for line in log.read().decode(errors="replace").splitlines():
                if not (line.startswith("USDT:") or "gpuGetDeviceCount" in line):
                    print(line, file=sys.stderr)


def peak_step_bytes(step: Callable[[], object], device: torch.device) -> int:
    """Peak bytes allocated during ``step()`` above what was allocated before it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    if device.type != "cpu":
        raise ValueError(f"peak memory is measured on cpu and cuda, not {device.type}")
    from torch.profiler import ProfilerActivity, profile

    with _quiet_profiler_log(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = sorted(
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU
    )
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak


@dataclasses.dataclass
class TrainBenchResult:
    arch: str
    n_segment: int
    size: int
    batch_size: int
    device: str
    threads: int
    channels_last: bool
    amp: str
    compile: str | None
    repeats: int
    warmup: int
    step_ms: dict[str, dict[str, float]]
    clips_per_s: dict[str, float]
    ratio: dict[str, float]
    peak_step_mb: dict[str, float]
    memory_meter: str
    samples_ms: dict[str, list[float]]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    def table(self) -> str:
        ms = self.step_ms
        lines = [
            f"training step: {self.arch}, T={self.n_segment}, {self.size}x{self.size}, batch {self.batch_size}, "
            f"{self.device}, {self.threads} threads, {'channels_last' if self.channels_last else 'contiguous'}, "
            f"amp {self.amp}, {'compiled (' + self.compile + ')' if self.compile else 'eager'}, "
            f"{self.repeats} interleaved pairs after {self.warmup} warm-up steps",
            f"{'model':<6}{'median ms':>12}{'IQR ms':>19}{'clips/s':>10}{'peak MB':>10}",
        ]
        for name in ("TSN", "TSM"):
            lines.append(
                f"{name:<6}{ms[name]['median']:>12.1f}{ms[name]['q1']:>9.1f}-{ms[name]['q3']:<9.1f}"
                f"{self.clips_per_s[name]:>10.2f}{self.peak_step_mb[name]:>10.1f}"
            )
        r = self.ratio
        lines.append(
            f"TSM/TSN step-time ratio (per pair): median {r['median']:.3f}, "
            f"IQR {r['q1']:.3f}-{r['q3']:.3f}, range {r['min']:.3f}-{r['max']:.3f}"
        )
        lines.append(f"peak MB: {self.memory_meter}")
        return "\n".join(lines)


def benchmark_training(
    *,
    arch: str = "resnet50",
    n_segment: int = 8,
    size: int = 224,
    batch_size: int = 8,
    repeats: int = 20,
    warmup: int = 3,
    amp: str = "off",
    compile: str | None = None,
    device: str | None = None,
    threads: int | None = None,
    channels_last: bool = True,
    num_classes: int = 400,
) -> TrainBenchResult:
    """Interleaved TSN vs TSM training steps from identical weights; see the module doc.

    ``compile`` is a `torch.compile` mode of `compiled.MODES` (``"auto"``: ``"default"``,
    the mode training runs usually take) or None for eager. The whole model is compiled
    (``fullgraph=True``: a graph break is an error); its forward and backward are built
    during the warm-up, which then needs at least 2 steps. The optimizer step stays eager.
    """
    _check_arguments(amp=amp, size=size, batch_size=batch_size, repeats=repeats, warmup=warmup, compile=compile)
    dev = resolve_device(device)
    mode = None if compile is None else "default" if compile == "auto" else resolve_mode(compile, dev)
    if threads is not None:
        torch.set_num_threads(threads)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    pair = tsn_tsm_pair(arch=arch, n_segment=n_segment, num_classes=num_classes)
    steps = {
        name: TrainStep(model.to(dev).to(memory_format=fmt), device=dev, amp=amp, compile_mode=mode)
        for name, model in zip(("TSN", "TSM"), pair, strict=True)
    }
    generator = torch.Generator().manual_seed(0)
    frames = torch.randn(batch_size * n_segment, 3, size, size, generator=generator)
    clips = frames.to(dev).contiguous(memory_format=fmt).view(batch_size, n_segment, 3, size, size)
    labels = torch.randint(num_classes, (batch_size,), generator=generator).to(dev)
    calls = {name: (lambda s=step: s(clips, labels)) for name, step in steps.items()}
    times = interleaved_steps(calls, device=dev, repeats=repeats, warmup=warmup)
    peaks = _peak_step_mb(steps, calls, dev)
    step_ms = {name: summarize([t * 1e3 for t in ts]) for name, ts in times.items()}
    return TrainBenchResult(
        arch=arch,
        n_segment=n_segment,
        size=size,
        batch_size=batch_size,
        device=str(dev),
        threads=torch.get_num_threads(),
        channels_last=channels_last,
        amp=amp,
        compile=mode,
        repeats=repeats,
        warmup=warmup,
        step_ms=step_ms,
        clips_per_s={name: batch_size * 1e3 / s["median"] for name, s in step_ms.items()},
        ratio=summarize([b / a for a, b in zip(times["TSN"], times["TSM"], strict=True)]),
        peak_step_mb=peaks,
        memory_meter=MEMORY_METERS["cuda" if dev.type == "cuda" else "cpu"],
        samples_ms={name: [t * 1e3 for t in ts] for name, ts in times.items()},
    )


def _check_arguments(*, amp: str, size: int, batch_size: int, repeats: int, warmup: int, compile: str | None) -> None:
    if amp not in AMP_MODES:
        raise ValueError(f"unknown amp {amp!r}; expected one of {', '.join(AMP_MODES)}")
    if size < 32 or batch_size < 1:
        raise ValueError(f"need size >= 32 and batch_size >= 1, got {size} and {batch_size}")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    if compile is not None and warmup < 2:
        raise ValueError(f"compiled steps need warmup >= 2 (compilation happens there), got {warmup}")


# how the peak memory of a step is measured, per device type (`peak_step_bytes`)
MEMORY_METERS: dict[str, str] = {
    "cuda": "torch.cuda.max_memory_allocated during one step, minus what was allocated before it",
    "cpu": "torch.profiler CPU allocation events during one step, peak above its start",
}


def _peak_step_mb(
    steps: dict[str, TrainStep],
    calls: Mapping[str, Callable[[], Any]],
    device: torch.device,
) -> dict[str, float]:
    """Each model's peak step memory (MB, `peak_step_bytes`), every model's gradients freed first."""
    peaks = {}
    for name in calls:
        for step in steps.values():
            step.optimizer.zero_grad(set_to_none=True)
        peaks[name] = peak_step_bytes(calls[name], device) / 2**20
    return peaks


def plot_steps(result: TrainBenchResult, path: str | Path) -> Path:
    """Box plot of per-round training-step times of both models (PNG)."""
    mode = f"compiled ({result.compile})" if result.compile else "eager"
    return box_plot(
        result.samples_ms,
        path,
        ylabel="training step (ms)",
        title=f"{result.arch} T={result.n_segment} {result.size}px b{result.batch_size} {result.amp} {mode}\n"
        f"TSM/TSN {result.ratio['median']:.3f}",
    )
