"""Per-frame latency of online TSM-MobileNetV2 vs plain MobileNetV2 on one frame.

Both models have identical weights (the online one only adds the buffered shifts).
Each runtime compares its own pair side by side, interleaved round by round (order
alternating), and reports median, p95 and the per-round online/plain ratio.

PyTorch eager and onnxruntime are measured one after the other, onnxruntime in a fresh
process: in one process PyTorch's OpenMP workers keep spinning for a while after each
step and compete with onnxruntime's own thread pool, which measures the contention,
not the models.

    .venv/bin/python benchmarks/online_latency.py --repeats 300
    .venv/bin/python benchmarks/online_latency.py --runtime onnxruntime --ort-threads 2 --spin
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from temporal_shift.apps.bench.overhead import tsn_tsm_pair
from temporal_shift.models import build_model
from temporal_shift.models.online import OnlineRecognizer, OnlineStream


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def models() -> tuple[OnlineRecognizer, OnlineRecognizer]:
    """(plain, online) streaming steps of MobileNetV2 with identical weights (27 classes)."""
    torch.manual_seed(0)
    plain_model, tsm_model = tsn_tsm_pair(arch="mobilenet_v2", n_segment=8, num_classes=27)
    causal = build_model("mobilenet_v2", num_classes=27, n_segment=8, mode="causal").eval()
    causal.load_state_dict(tsm_model.state_dict())
    online, plain = OnlineRecognizer(causal), OnlineRecognizer(plain_model)
    assert online.num_buffers == 10 and plain.num_buffers == 0
    return plain, online


def interleaved(
    runners: dict[str, Callable[[torch.Tensor], object]], frame: torch.Tensor, *, repeats: int, warmup: int
) -> dict[str, list[float]]:
    names = list(runners)
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(warmup):
        for name in names:
            runners[name](frame)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            runners[name](frame)
            times[name].append((time.perf_counter() - start) * 1e3)
    return times


def measure(runtime: str, args: argparse.Namespace) -> dict[str, list[float]]:
    plain, online = models()
    frame = torch.randn(3, args.size, args.size, generator=torch.Generator().manual_seed(1))
    if runtime == "torch":
        runners = {"plain": OnlineStream(plain).update, "online": OnlineStream(online).update}
        with torch.inference_mode():
            return interleaved(runners, frame, repeats=args.repeats, warmup=args.warmup)
    from temporal_shift.engine.export import OnnxStream, export_online

    with tempfile.TemporaryDirectory() as tmp:
        runners = {
            name: OnnxStream(
                export_online(model, Path(tmp) / f"{name}.onnx", size=args.size),
                threads=args.ort_threads,
                spin=args.spin,
            ).update
            for name, model in (("plain", plain), ("online", online))
        }
        return interleaved(runners, frame, repeats=args.repeats, warmup=args.warmup)


def report(runtime: str, times: dict[str, list[float]]) -> None:
    for name in ("plain", "online"):
        t = times[name]
        print(
            f"  {runtime:11s} {name:6s}  median {statistics.median(t):7.2f} ms  p95 {percentile(t, 0.95):7.2f} ms"
            f"  {1e3 / statistics.median(t):6.1f} frames/s"
        )
    ratios = [a / b for a, b in zip(times["online"], times["plain"], strict=True)]
    q = statistics.quantiles(ratios, n=4)
    print(
        f"  {runtime:11s} online/plain per-round ratio: median {statistics.median(ratios):.3f} "
        f"(IQR {q[0]:.3f}-{q[2]:.3f}); ratio of medians "
        f"{statistics.median(times['online']) / statistics.median(times['plain']):.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--ort-threads", type=int, default=None, help="onnxruntime intra-op threads")
    parser.add_argument("--spin", action="store_true", help="let onnxruntime's idle threads busy-wait")
    parser.add_argument("--runtime", choices=("torch", "onnxruntime", "both"), default="both")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # child process output
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.json:
        print(json.dumps(measure(args.runtime, args)))
        return
    print(
        f"MobileNetV2, {args.size}x{args.size}, one frame per step, {args.repeats} interleaved rounds; "
        f"torch threads {torch.get_num_threads()}, onnxruntime threads {args.ort_threads or 'default'}"
        f"{' (spinning)' if args.spin else ''}"
    )
    for runtime in ("torch", "onnxruntime"):
        if args.runtime not in (runtime, "both"):
            continue
        child = ["--repeats", args.repeats, "--warmup", args.warmup, "--size", args.size, "--runtime", runtime]
        child += ["--threads", args.threads] if args.threads else []
        child += ["--ort-threads", args.ort_threads] if args.ort_threads else []
        child += ["--spin"] if args.spin else []
        out = subprocess.run(
            [sys.executable, __file__, *map(str, child), "--json"], check=True, capture_output=True, text=True
        ).stdout
        report(runtime, json.loads(out.strip().splitlines()[-1]))


if __name__ == "__main__":
    main()
