"""Per-frame latency of online TSM-MobileNetV2 vs plain MobileNetV2 on one frame.

Both models have identical weights (the online one only adds the buffered shifts).
PyTorch eager and onnxruntime are measured side by side, interleaved round by round
(order rotating); the report gives median, p95 and the per-round online/plain ratio.

    .venv/bin/python benchmarks/online_latency.py --repeats 200
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from temporal_shift.bench import tsn_tsm_pair
from temporal_shift.export import OnnxStream, export_online
from temporal_shift.models.online import OnlineRecognizer, OnlineStream


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    plain_model, tsm_model = tsn_tsm_pair(arch="mobilenet_v2", n_segment=8, num_classes=27)
    # the pair is bidirectional; rebuild TSM as causal with the same weights
    from temporal_shift.models import build_model

    causal = build_model("mobilenet_v2", num_classes=27, n_segment=8, mode="causal").eval()
    causal.load_state_dict(tsm_model.state_dict())
    online, plain = OnlineRecognizer(causal), OnlineRecognizer(plain_model)
    assert online.num_buffers == 10 and plain.num_buffers == 0

    runners: dict[str, Callable[[torch.Tensor], object]] = {
        "torch plain": OnlineStream(plain).update,
        "torch online": OnlineStream(online).update,
    }
    with tempfile.TemporaryDirectory() as tmp:
        runners["onnxruntime plain"] = OnnxStream(export_online(plain, Path(tmp) / "plain.onnx", size=args.size)).update
        runners["onnxruntime online"] = OnnxStream(export_online(online, Path(tmp) / "online.onnx", size=args.size)).update

    frame = torch.randn(3, args.size, args.size)
    names = list(runners)
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.warmup):
        for name in names:
            runners[name](frame)
    for r in range(args.repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            runners[name](frame)
            times[name].append((time.perf_counter() - start) * 1e3)

    print(f"MobileNetV2, {args.size}x{args.size}, one frame per step, {torch.get_num_threads()} torch threads, "
          f"{args.repeats} interleaved rounds")
    for name in names:
        t = times[name]
        print(f"  {name:20s} median {statistics.median(t):7.2f} ms  p95 {percentile(t, 0.95):7.2f} ms  "
              f"{1e3 / statistics.median(t):6.1f} frames/s")
    for runtime in ("torch", "onnxruntime"):
        ratios = [a / b for a, b in zip(times[f"{runtime} online"], times[f"{runtime} plain"])]
        q = statistics.quantiles(ratios, n=4)
        print(f"  {runtime} online/plain ratio: median {statistics.median(ratios):.3f} (IQR {q[0]:.3f}-{q[2]:.3f})")


if __name__ == "__main__":
    main()
