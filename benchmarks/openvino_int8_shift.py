"""OpenVINO int8: TSM/TSN latency with and without `engine.openvino_int8.quantize_after_shift`.

Exports TSN and TSM (identical weights, `apps.bench.overhead.tsn_tsm_pair`, as `tsm bench runtimes`
does) to int8 OpenVINO models calibrated on the same random clips, the TSM twice: as NNCF leaves it
(a quantizer on each part of every shift) and rewritten (one quantizer after each shift). Prints how
many convolutions OpenVINO's execution graph runs in f32 in each, then times the three in one run of
interleaved rounds on the CPU (batch 1, f32 precision hint, as `engine.runtimes` loads them) and
prints the per-round TSM/TSN ratios (median and IQR):

    python benchmarks/openvino_int8_shift.py --arch mobilenet_v2 --rounds 40
"""

from __future__ import annotations

import argparse
import collections
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from temporal_shift.apps.bench.overhead import tsn_tsm_pair
from temporal_shift.engine import export
from temporal_shift.engine.openvino_int8 import runtime_precisions


def _keep(model) -> int:
    """`quantize_after_shift` that leaves NNCF's model as it is."""
    return 0


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="mobilenet_v2")
    p.add_argument("--segments", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)

    import openvino as ov

    tsn, tsm = tsn_tsm_pair(arch=args.arch, n_segment=args.segments)
    generator = torch.Generator().manual_seed(0)
    clips = [torch.randn(1, args.segments, 3, args.size, args.size, generator=generator) for _ in range(4)]
    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": args.threads}
    compiled = {}
    with tempfile.TemporaryDirectory() as work:
        for name, model, rewrite in (("TSN", tsn, True), ("TSM as NNCF quantizes it", tsm, False), ("TSM", tsm, True)):
            path = Path(work) / f"{len(compiled)}.xml"
            with mock.patch.object(export, "quantize_after_shift", export.quantize_after_shift if rewrite else _keep):
                export.export_model(model, path, format="openvino", size=args.size, quantize="int8", calibration=clips)
            compiled[name] = core.compile_model(core.read_model(str(path)), "CPU", config)
            print(f"{name}: convolutions by precision {runtime_precisions(compiled[name])}")
    x = clips[0].numpy()
    requests = {name: c.create_infer_request() for name, c in compiled.items()}
    times: dict[str, list[float]] = collections.defaultdict(list)
    names = list(requests)
    for r in range(args.rounds + 3):  # the first 3 rounds warm up
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            requests[name].infer({0: x})
            if r >= 3:
                times[name].append(time.perf_counter() - start)
    result = {}
    for name in names[1:]:
        ratios = [a / b for a, b in zip(times[name], times["TSN"], strict=True)]
        q1, _, q3 = statistics.quantiles(ratios, n=4)
        result[name] = {"ratio": statistics.median(ratios), "q1": q1, "q3": q3, "ms": 1e3 * np.median(times[name])}
        print(
            f"{name}/TSN: {result[name]['ratio']:.3f} (IQR {q1:.3f}-{q3:.3f}); {result[name]['ms']:.1f} ms, "
            f"TSN {1e3 * np.median(times['TSN']):.1f} ms"
        )
    return result


if __name__ == "__main__":
    main()
