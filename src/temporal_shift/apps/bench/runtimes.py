"""`tsm bench runtimes`: TSN and TSM latency in the runtimes models are deployed to, side by side.

For each backbone (ResNet-50 and MobileNetV2 by default; T=8, 224x224, batch 1) a TSN and a
TSM with identical weights (`overhead.tsn_tsm_pair`) are run in each runtime: PyTorch eager,
``torch.compile`` (inductor), onnxruntime, ExecuTorch with XNNPACK and OpenVINO on the CPU
(f32 hint), plus ExecuTorch and OpenVINO int8 builds (``int8=True``; calibrated on random
clips: latency only, the accuracy of int8 models is measured on trained ones, see
docs/deploy.md). The online MobileNetV2 step (one frame through a causal TSM, the shift
buffers as inputs and outputs) is timed in each runtime too, next to the TSN per-frame step.

Every exported graph is the one `engine.export` writes (the shift as `ops.shift.shift_export`),
exported into ``work_dir`` and loaded through `engine.runtimes.load_runtime`. The timing is
one run of interleaved rounds: each round times every (runtime, model) pair, TSN and TSM back
to back with alternating order, the order of runtimes rotating from round to round; the
TSM/TSN ratio is taken per pair, which is the figure that survives a shared, noisy machine.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from temporal_shift.apps.bench.overhead import summarize, tsn_tsm_pair

RUNTIMES = ("eager", "compile", "onnxruntime", "executorch", "openvino")
INT8_RUNTIMES = ("executorch", "openvino")
_FORMAT = {"onnxruntime": "onnx", "executorch": "executorch", "openvino": "openvino"}
ARCHS = ("resnet50", "mobilenet_v2")
ONLINE_ARCH = "mobilenet_v2"


@dataclasses.dataclass
class RuntimesResult:
    """Per row (``arch/runtime``, ``online/runtime``): TSN and TSM latency (ms, batch 1), the TSM/TSN
    ratio per pair; the online rows' frames/s; the best runtime's speed-up over eager."""

    n_segment: int
    size: int
    threads: int
    repeats: int
    machine: str
    latency_ms: dict[str, dict[str, dict[str, float]]]  # row -> TSN|TSM -> summary
    ratio: dict[str, dict[str, float]]  # row -> summary of per-pair TSM/TSN
    samples_ms: dict[str, dict[str, list[float]]]
    export_seconds: dict[str, float]
    notes: list[str] = dataclasses.field(default_factory=list)

    def fps(self, row: str) -> float:
        return 1e3 / self.latency_ms[row]["TSM"]["median"]

    def speedups(self) -> dict[str, dict[str, Any]]:
        """Per model group (arch or online): the fastest runtime for TSM and its speed-up over eager."""
        out: dict[str, dict[str, Any]] = {}
        for group in dict.fromkeys(row.split("/")[0] for row in self.latency_ms):
            rows = {row.split("/", 1)[1]: lat["TSM"]["median"] for row, lat in self.latency_ms.items()
                    if row.split("/")[0] == group}
            best = min(rows, key=rows.__getitem__)
            eager = rows.get("eager")
            out[group] = {"best": best, "ms": rows[best], "speedup_over_eager": eager / rows[best] if eager else None}
        return out

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["speedups"] = self.speedups()
        data["online_fps"] = {row: self.fps(row) for row in self.latency_ms if row.startswith("online/")}
        return json.dumps(data, indent=2)

    def table(self) -> str:
        lines = [
            f"T={self.n_segment}, {self.size}x{self.size}, batch 1, {self.threads} CPU threads, {self.repeats} "
            f"interleaved rounds; {self.machine}",
            f"{'model/runtime':<28}{'TSN ms':>9}{'TSM ms':>9}{'TSM IQR':>16}{'TSM/TSN':>9}{'ratio IQR':>14}{'fps':>8}",
        ]
        for row, lat in self.latency_ms.items():
            tsn, tsm, r = lat["TSN"], lat["TSM"], self.ratio[row]
            fps = f"{self.fps(row):8.1f}" if row.startswith("online/") else f"{'':8}"
            lines.append(f"{row:<28}{tsn['median']:>9.1f}{tsm['median']:>9.1f}{tsm['q1']:>8.1f}-{tsm['q3']:<7.1f}"
                         f"{r['median']:>9.3f}{r['q1']:>7.3f}-{r['q3']:<6.3f}{fps}")
        for group, best in self.speedups().items():
            speed = best["speedup_over_eager"]
            lines.append(f"{group}: fastest TSM in {best['best']} ({best['ms']:.1f} ms"
                         + (f", {speed:.2f}x PyTorch eager)" if speed else ")"))
        lines += self.notes
        return "\n".join(lines)


def _machine() -> str:
    import os
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores (shared machine: other work may run; ratios are per pair)"


def _exported(model: torch.nn.Module, path: Path, *, format: str, size: int, threads: int,
              quantize: str | None = None, online: bool = False) -> Callable[..., Any]:
    from temporal_shift.engine.export import export_model, export_online
    from temporal_shift.engine.runtimes import load_runtime

    if not path.is_file():
        if online:
            clips = [torch.randn(1, 4, 3, size, size)] if quantize else None
            export_online(model, path, format=format, size=size, quantize=quantize, calibration=clips)
        else:
            clips = [torch.randn(1, model.config.n_segment, 3, size, size) for _ in range(4)] if quantize else None
            export_model(model, path, format=format, size=size, quantize=quantize, calibration=clips)
    return load_runtime(path, format=format, threads=threads)


def _runners(tsn: torch.nn.Module, tsm: torch.nn.Module, *, runtime: str, size: int, threads: int,
             work_dir: Path, tag: str, online: bool, example: Sequence[torch.Tensor]) -> dict[str, Callable[..., Any]]:
    if runtime == "eager":
        return {"TSN": tsn, "TSM": tsm}
    if runtime == "compile":
        return {"TSN": torch.compile(tsn), "TSM": torch.compile(tsm)}
    base, _, quant = runtime.partition("-")
    format = _FORMAT[base]
    suffix = {"onnx": ".onnx", "executorch": ".pte", "openvino": ".xml"}[format]
    return {name: _exported(model, work_dir / f"{tag}-{name.lower()}{'-' + quant if quant else ''}{suffix}",
                            format=format, size=size, threads=threads, quantize=quant or None, online=online)
            for name, model in (("TSN", tsn), ("TSM", tsm))}


def benchmark_runtimes(
    *,
    archs: Sequence[str] = ARCHS,
    runtimes: Sequence[str] = RUNTIMES,
    int8: bool = True,
    online: bool = True,
    n_segment: int = 8,
    size: int = 224,
    repeats: int = 12,
    warmup: int = 2,
    threads: int = 2,
    work_dir: str | Path = "bench_runtimes",
    log: Callable[[str], None] | None = print,
) -> RuntimesResult:
    """Batch-1 latency of TSN and TSM of each of ``archs`` in each of ``runtimes`` (and the int8
    builds with ``int8``), and of the online MobileNetV2 step (``online``); exported files are
    kept in ``work_dir`` and reused by a later run with the same settings."""
    from temporal_shift.models.online import OnlineRecognizer

    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown:
        raise ValueError(f"unknown runtime {unknown[0]!r}; expected some of {', '.join(RUNTIMES)}")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    torch.set_num_threads(threads)
    work = Path(work_dir) / f"t{n_segment}-{size}"
    work.mkdir(parents=True, exist_ok=True)
    all_runtimes = list(runtimes) + ([f"{r}-int8" for r in INT8_RUNTIMES if r in runtimes] if int8 else [])
    groups: list[tuple[str, torch.nn.Module, torch.nn.Module, tuple[torch.Tensor, ...], bool]] = []
    for arch in archs:
        tsn, tsm = tsn_tsm_pair(arch=arch, n_segment=n_segment)
        groups.append((arch, tsn, tsm, (torch.randn(1, n_segment, 3, size, size),), False))
    if online:
        tsn, tsm = tsn_tsm_pair(arch=ONLINE_ARCH, n_segment=n_segment)
        causal = _causal_copy(tsm)
        tsn_step, tsm_step = OnlineRecognizer(tsn), OnlineRecognizer(causal)
        frame = torch.randn(1, 3, size, size)
        groups.append(("online", tsn_step, tsm_step, (frame,), True))
    pairs: dict[str, dict[str, Callable[..., Any]]] = {}
    inputs: dict[str, dict[str, tuple[torch.Tensor, ...]]] = {}
    seconds: dict[str, float] = {}
    for tag, tsn, tsm, example, is_online in groups:
        for runtime in all_runtimes:
            row = f"{tag}/{runtime}"
            if log:
                log(f"preparing {row} ...")
            started = time.perf_counter()
            pairs[row] = _runners(tsn, tsm, runtime=runtime, size=size, threads=threads, work_dir=work,
                                  tag=f"{ONLINE_ARCH}-online" if is_online else tag, online=is_online,
                                  example=example)
            if is_online:
                inputs[row] = {name: (example[0], *m.initial_buffers(size=(size, size)))
                               for name, m in (("TSN", tsn), ("TSM", tsm))}
            else:
                inputs[row] = {"TSN": example, "TSM": example}
            with torch.inference_mode():  # the first calls compile / allocate: untimed
                for name, run in pairs[row].items():
                    run(*inputs[row][name])
            seconds[row] = time.perf_counter() - started
    times = _interleaved(pairs, inputs, repeats=repeats, warmup=warmup, log=log)
    latency = {row: {name: summarize([t * 1e3 for t in ts]) for name, ts in per.items()} for row, per in times.items()}
    ratio = {row: summarize([b / a for a, b in zip(per["TSN"], per["TSM"])]) for row, per in times.items()}
    notes = ["int8 builds calibrated on random clips (latency only)"] if int8 else []
    return RuntimesResult(n_segment=n_segment, size=size, threads=threads, repeats=repeats, machine=_machine(),
                          latency_ms=latency, ratio=ratio,
                          samples_ms={row: {n: [t * 1e3 for t in ts] for n, ts in per.items()}
                                      for row, per in times.items()},
                          export_seconds=seconds, notes=notes)


def _causal_copy(tsm: torch.nn.Module) -> torch.nn.Module:
    """The same weights with the causal shift (the online form)."""
    from temporal_shift.models.factory import build_model

    config = tsm.config
    causal = build_model(config.arch, num_classes=config.num_classes, n_segment=config.n_segment, shift=True,
                         mode="causal")
    causal.load_state_dict(tsm.state_dict())
    return causal.eval()


def _interleaved(pairs: dict[str, dict[str, Callable[..., Any]]],
                 inputs: dict[str, dict[str, tuple[torch.Tensor, ...]]], *, repeats: int, warmup: int,
                 log: Callable[[str], None] | None) -> dict[str, dict[str, list[float]]]:
    rows = list(pairs)
    times: dict[str, dict[str, list[float]]] = {row: {"TSN": [], "TSM": []} for row in rows}
    with torch.inference_mode():
        for r in range(-warmup, repeats):
            shift = r % len(rows)
            for row in rows[shift:] + rows[:shift]:
                order = ("TSN", "TSM") if r % 2 == 0 else ("TSM", "TSN")
                for name in order:
                    run, args = pairs[row][name], inputs[row][name]
                    start = time.perf_counter()
                    run(*args)
                    elapsed = time.perf_counter() - start
                    if r >= 0:
                        times[row][name].append(elapsed)
            if log and r >= 0:
                log(f"round {r + 1}/{repeats} done")
    return times


def plot_runtimes(result: RuntimesResult, path: str | Path) -> Path:
    """Bars: TSM latency per runtime (log scale) with the TSM/TSN ratio written on each (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(row.split("/")[0] for row in result.latency_ms))
    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 4), squeeze=False)
    for ax, group in zip(axes[0], groups):
        rows = [row for row in result.latency_ms if row.split("/")[0] == group]
        names = [row.split("/", 1)[1] for row in rows]
        tsn = [result.latency_ms[row]["TSN"]["median"] for row in rows]
        tsm = [result.latency_ms[row]["TSM"]["median"] for row in rows]
        xs = range(len(rows))
        ax.bar([x - 0.2 for x in xs], tsn, width=0.4, label="TSN")
        ax.bar([x + 0.2 for x in xs], tsm, width=0.4, label="TSM")
        for x, row, value in zip(xs, rows, tsm):
            ax.text(x + 0.2, value, f"{result.ratio[row]['median']:.2f}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(list(xs), names, rotation=35, ha="right", fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("ms per clip (online: per frame)" if group == "online" else "ms per clip, batch 1")
        ax.set_title(f"{group}: TSM/TSN on the bars", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(f"T={result.n_segment}, {result.size}px, {result.threads} threads, {result.repeats} rounds",
                 fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
