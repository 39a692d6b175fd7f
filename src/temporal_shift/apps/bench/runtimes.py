"""`tsm bench runtimes`: TSN and TSM latency in the runtimes models are deployed to, side by side.

For each backbone (ResNet-50 and MobileNetV2 by default; T=8, 224x224, batch 1) a TSN and a
TSM with identical weights (`overhead.tsn_tsm_pair`) are run in each runtime: PyTorch eager,
``torch.compile`` (inductor), onnxruntime, ExecuTorch with XNNPACK and OpenVINO on the CPU
(f32 hint), plus ExecuTorch and OpenVINO int8 builds (``int8=True``; calibrated on random
clips: latency only, the accuracy of int8 models is measured on trained ones, see
docs/deploy.md). The online MobileNetV2 step (one frame through a causal TSM, the shift
buffers as inputs and outputs) is timed in each runtime too, next to the TSN per-frame step: in
PyTorch the step itself, in an exported runtime one `engine.runtimes.ExportedStream` update (what
``tsm stream`` runs a frame: the buffers fed back, or in OpenVINO kept as states); each timing is
20 consecutive frames of one stream (``online_frames``), reported per frame.

Every exported graph is the one `engine.export` writes for a static batch of one clip (``tsm
export --batch-size 1``: the latency measured is batch 1's; in OpenVINO, a residual-shift ResNet
then shifts on the batch axis, `engine.split_form.shift_one_clip`), exported into ``work_dir``
and loaded through `engine.runtimes.load_runtime`. Each (model group, runtime) row runs in a
process of its own, so that no runtime's thread pool competes with another's. The timing is one
run of interleaved rounds: each round times every row, TSN and TSM back to back with alternating
order, the order of rows rotating from round to round; the TSM/TSN ratio is taken per pair, which
is the figure that survives a shared, noisy machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from temporal_shift.apps.bench.overhead import summarize, tsn_tsm_pair
from temporal_shift.models.online import OnlineRecognizer
from temporal_shift.models.tsn import VideoRecognizer

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
            rows = {
                row.split("/", 1)[1]: lat["TSM"]["median"]
                for row, lat in self.latency_ms.items()
                if row.split("/")[0] == group
            }
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
            lines.append(
                f"{row:<28}{tsn['median']:>9.1f}{tsm['median']:>9.1f}{tsm['q1']:>8.1f}-{tsm['q3']:<7.1f}"
                f"{r['median']:>9.3f}{r['q1']:>7.3f}-{r['q3']:<6.3f}{fps}"
            )
        for group, best in self.speedups().items():
            speed = best["speedup_over_eager"]
            lines.append(
                f"{group}: fastest TSM in {best['best']} ({best['ms']:.1f} ms"
                + (f", {speed:.2f}x PyTorch eager)" if speed else ")")
            )
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


def _export(
    model: VideoRecognizer | OnlineRecognizer, path: Path, *, format: str, size: int, quantize: str | None
) -> None:
    """Write ``path`` as ``tsm export --batch-size 1`` would (int8: calibrated on random clips),
    unless it exists."""
    from temporal_shift.engine.export import export_model, export_online

    if path.is_file():
        return
    if isinstance(model, OnlineRecognizer):
        clips = [torch.randn(1, 4, 3, size, size)] if quantize else None
        export_online(model, path, format=format, size=size, quantize=quantize, calibration=clips)
    else:
        clips = [torch.randn(1, model.config.n_segment, 3, size, size) for _ in range(4)] if quantize else None
        export_model(model, path, format=format, size=size, batch_size=1, quantize=quantize, calibration=clips)


@dataclasses.dataclass(frozen=True)
class _Row:
    """One (model group, runtime) row: what a worker process builds and times."""

    group: str  # an arch, or "online"
    runtime: str
    n_segment: int
    size: int
    threads: int
    work: str
    calls: int = 1  # consecutive calls a timing (the online rows: frames of one stream)

    @property
    def name(self) -> str:
        return f"{self.group}/{self.runtime}"

    def path(self, model: str) -> Path:
        base, _, quant = self.runtime.partition("-")
        suffix = {"onnx": ".onnx", "executorch": ".pte", "openvino": ".xml"}[_FORMAT[base]]
        tag = f"{ONLINE_ARCH}-online" if self.group == "online" else self.group
        return Path(self.work) / f"{tag}-{model.lower()}{'-' + quant if quant else ''}{suffix}"

    def models(self) -> dict[str, VideoRecognizer | OnlineRecognizer]:
        """TSN and TSM with identical weights (the online group: their streaming steps, TSM causal)."""
        arch = ONLINE_ARCH if self.group == "online" else self.group
        tsn, tsm = tsn_tsm_pair(arch=arch, n_segment=self.n_segment)
        if self.group == "online":
            return {"TSN": OnlineRecognizer(tsn), "TSM": OnlineRecognizer(_causal_copy(tsm))}
        return {"TSN": tsn, "TSM": tsm}

    def inputs(self, models: dict[str, VideoRecognizer | OnlineRecognizer]) -> dict[str, tuple[torch.Tensor, ...]]:
        generator = torch.Generator().manual_seed(1)
        if self.group == "online":
            frame = torch.randn(1, 3, self.size, self.size, generator=generator)
            return {
                name: (frame, *m.initial_buffers(size=(self.size, self.size)))
                for name, m in models.items()
                if isinstance(m, OnlineRecognizer)
            }
        clips = torch.randn(1, self.n_segment, 3, self.size, self.size, generator=generator)
        return dict.fromkeys(models, (clips,))

    def runners(self, models: dict[str, VideoRecognizer | OnlineRecognizer]) -> dict[str, Callable[..., Any]]:
        from temporal_shift.engine.runtimes import load_runtime

        if self.runtime == "eager":
            return dict(models)
        if self.runtime == "compile":
            if self.group == "online":  # the step takes the frame and its buffers
                return {name: torch.compile(m) for name, m in models.items()}
            from temporal_shift.engine.compiled import compile_for_inference

            # the library's compiled inference: TSM-ResNet in its split form (`engine.split_form`)
            return {name: compile_for_inference(m) for name, m in models.items()}
        format = _FORMAT[self.runtime.partition("-")[0]]
        if self.group == "online":  # a stream's update: the frame in, the buffers kept by the stream
            return {name: _stream_step(self.path(name), format=format, threads=self.threads) for name in models}
        return {name: load_runtime(self.path(name), format=format, threads=self.threads) for name in models}


def _stream_step(path: Path, *, format: str, threads: int) -> Callable[..., Any]:
    """One `ExportedStream` update per call; called with the step's inputs, it takes the frame."""
    from temporal_shift.engine.runtimes import ExportedStream

    stream = ExportedStream(path, format=format, threads=threads)

    def step(frame: torch.Tensor, *buffers: torch.Tensor) -> torch.Tensor:
        return stream.update(frame)

    return step


def _serve(row: _Row, conn: Any) -> None:
    """A worker: build ``row``'s runners, warm them up, then time the model named by each request."""
    torch.set_num_threads(row.threads)
    try:
        models = row.models()
        runners, inputs = row.runners(models), row.inputs(models)
        with torch.inference_mode():
            for name, run in runners.items():  # the first calls compile / allocate: untimed
                run(*inputs[name])
        conn.send(("ready", None))
    except Exception as exc:  # reported by the parent, which stops all workers
        conn.send(("error", f"{row.name}: {type(exc).__name__}: {exc}"))
        return
    with torch.inference_mode():
        while (name := conn.recv()) is not None:
            started = time.perf_counter()
            for _ in range(row.calls):
                runners[name](*inputs[name])
            conn.send(("time", (time.perf_counter() - started) / row.calls))


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
    online_frames: int = 20,
    work_dir: str | Path = "bench_runtimes",
    log: Callable[[str], None] | None = print,
) -> RuntimesResult:
    """Batch-1 latency of TSN and TSM of each of ``archs`` in each of ``runtimes`` (and the int8
    builds with ``int8``), and of the online MobileNetV2 step (``online``); exported files are
    kept in ``work_dir`` and reused by a later run with the same settings, the same code that
    shapes the exported graphs and the same runtime versions (`export_fingerprint`). An online
    row's timing is ``online_frames`` consecutive steps of one stream (per-step time reported):
    a single 2-8 ms step between other processes' steps varied by up to 50% from round to round.

    Each row runs in a process of its own (spawned), so that no runtime's thread pool (PyTorch's
    OpenMP workers spin after each call, XNNPACK's and OpenVINO's have their own) competes with
    another's; only one process computes at a time, the others wait on a pipe."""
    from temporal_shift.models.backbones import BACKBONES

    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown:
        raise ValueError(f"unknown runtime {unknown[0]!r}; expected some of {', '.join(RUNTIMES)}")
    unknown = [a for a in archs if a not in BACKBONES]
    if unknown:
        raise ValueError(f"unknown arch {unknown[0]!r}; expected some of {', '.join(sorted(BACKBONES))}")
    if repeats < 1 or warmup < 0 or online_frames < 1:
        raise ValueError(
            f"need repeats >= 1, warmup >= 0 and online_frames >= 1, got {repeats}, {warmup} and {online_frames}"
        )
    torch.set_num_threads(threads)
    work = Path(work_dir) / f"t{n_segment}-{size}-batch1-{export_fingerprint()}"
    work.mkdir(parents=True, exist_ok=True)
    all_runtimes = list(runtimes) + ([f"{r}-int8" for r in INT8_RUNTIMES if r in runtimes] if int8 else [])
    groups = list(archs) + (["online"] if online else [])
    rows = [
        _Row(
            group=g,
            runtime=r,
            n_segment=n_segment,
            size=size,
            threads=threads,
            work=str(work),
            calls=online_frames if g == "online" else 1,
        )
        for g in groups
        for r in all_runtimes
    ]
    seconds = _export_rows(rows, size=size, log=log)
    times = _time_rows(rows, repeats=repeats, warmup=warmup, log=log)
    latency = {row: {name: summarize([t * 1e3 for t in ts]) for name, ts in per.items()} for row, per in times.items()}
    ratio = {row: summarize([b / a for a, b in zip(per["TSN"], per["TSM"], strict=True)]) for row, per in times.items()}
    notes = ["each row in its own process"]
    if online:
        notes.append(f"online rows: {online_frames} consecutive steps of one stream a timing, ms per step")
    if int8:
        notes[0] += "; int8 builds calibrated on random clips (latency only)"
    return RuntimesResult(
        n_segment=n_segment,
        size=size,
        threads=threads,
        repeats=repeats,
        machine=_machine(),
        latency_ms=latency,
        ratio=ratio,
        samples_ms={row: {n: [t * 1e3 for t in ts] for n, ts in per.items()} for row, per in times.items()},
        export_seconds=seconds,
        notes=notes,
    )


# what shapes an exported graph: the models, the shift, the export and its rewrites, this bench's
# pair of models (and, in `export_fingerprint`, the source of `_export` and `_causal_copy`)
_EXPORT_SOURCES = (
    "models",
    "ops",
    "engine/export.py",
    "engine/split_form.py",
    "engine/openvino_int8.py",
    "apps/bench/overhead.py",
)
_EXPORT_PACKAGES = ("torch", "onnx", "onnxscript", "executorch", "openvino", "nncf")


def export_fingerprint(sources: Sequence[Path] | None = None) -> str:
    """A short hash of the source files that shape the exported graphs (``sources``, default: those
    of ``_EXPORT_SOURCES`` in this package) and of the versions of the exporters, so that a work
    folder's exports are reused only by the code and the runtimes that wrote them: a change to the
    export (a rewrite, a new form of the shift) gets fresh files rather than the stale ones."""
    import hashlib
    import inspect
    from importlib import metadata

    digest = hashlib.sha256()
    if sources is None:
        from importlib import resources

        package = Path(str(resources.files("temporal_shift")))  # this package's source folder
        sources = []
        for entry in _EXPORT_SOURCES:
            path = package / entry
            sources.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
        for function in (_export, _causal_copy):  # this module's part: not its timing code
            digest.update(inspect.getsource(function).encode())
    for path in sources:
        digest.update(path.read_bytes())
    for name in _EXPORT_PACKAGES:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "absent"
        digest.update(f"{name}=={version};".encode())
    return digest.hexdigest()[:10]


def _export_rows(rows: Sequence[_Row], *, size: int, log: Callable[[str], None] | None) -> dict[str, float]:
    """Export every row's TSN and TSM, one at a time (files already there are reused); seconds per row."""
    seconds: dict[str, float] = {}
    for row in rows:
        if row.runtime in ("eager", "compile"):
            continue
        started = time.perf_counter()
        base, _, quant = row.runtime.partition("-")
        for name, model in row.models().items():
            if log and not row.path(name).is_file():
                log(f"exporting {row.name} {name} -> {row.path(name)}")
            _export(model, row.path(name), format=_FORMAT[base], size=size, quantize=quant or None)
        seconds[row.name] = time.perf_counter() - started
    return seconds


def _time_rows(
    rows: Sequence[_Row], *, repeats: int, warmup: int, log: Callable[[str], None] | None
) -> dict[str, dict[str, list[float]]]:
    """Start a worker process per row (each warms its runners up), then time them in interleaved rounds."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    workers: dict[str, tuple[Any, Any]] = {}
    try:
        for row in rows:
            if log:
                log(f"starting {row.name} ...")
            parent, child = context.Pipe()
            process = context.Process(target=_serve, args=(row, child), daemon=True)
            process.start()
            status, detail = parent.recv()
            if status == "error":
                raise RuntimeError(detail)
            workers[row.name] = (process, parent)
        return _interleaved(
            {name: conn for name, (_, conn) in workers.items()}, repeats=repeats, warmup=warmup, log=log
        )
    finally:
        for process, conn in workers.values():
            with contextlib.suppress(OSError):  # a worker that failed has closed its end
                conn.send(None)
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()


def _causal_copy(tsm: VideoRecognizer) -> VideoRecognizer:
    """The same weights with the causal shift (the online form)."""
    from temporal_shift.models.factory import build_model

    config = tsm.config
    causal = build_model(
        config.arch, num_classes=config.num_classes, n_segment=config.n_segment, shift=True, mode="causal"
    )
    assert isinstance(causal, VideoRecognizer)  # the tsn family of the arch
    causal.load_state_dict(tsm.state_dict())
    return causal.eval()


def _interleaved(
    workers: dict[str, Any], *, repeats: int, warmup: int, log: Callable[[str], None] | None
) -> dict[str, dict[str, list[float]]]:
    """Rounds over all rows (their order rotating), TSN and TSM of a row back to back (alternating)."""
    rows = list(workers)
    times: dict[str, dict[str, list[float]]] = {row: {"TSN": [], "TSM": []} for row in rows}
    for r in range(-warmup, repeats):
        shift = r % len(rows)
        for row in rows[shift:] + rows[:shift]:
            for name in ("TSN", "TSM") if r % 2 == 0 else ("TSM", "TSN"):
                workers[row].send(name)
                _, elapsed = workers[row].recv()
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
    for ax, group in zip(axes[0], groups, strict=True):
        rows = [row for row in result.latency_ms if row.split("/")[0] == group]
        names = [row.split("/", 1)[1] for row in rows]
        tsn = [result.latency_ms[row]["TSN"]["median"] for row in rows]
        tsm = [result.latency_ms[row]["TSM"]["median"] for row in rows]
        xs = range(len(rows))
        ax.bar([x - 0.2 for x in xs], tsn, width=0.4, label="TSN")
        ax.bar([x + 0.2 for x in xs], tsm, width=0.4, label="TSM")
        for x, row, value in zip(xs, rows, tsm, strict=True):
            ax.text(x + 0.2, value, f"{result.ratio[row]['median']:.2f}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(list(xs), names, rotation=35, ha="right", fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("ms per clip (online: per frame)" if group == "online" else "ms per clip, batch 1")
        ax.set_title(f"{group}: TSM/TSN on the bars", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(
        f"T={result.n_segment}, {result.size}px, {result.threads} threads, {result.repeats} rounds", fontsize=9
    )
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
