"""The GPU check of the TensorRT path, in one command: parity and latency of TSN and TSM engines.

Builds TensorRT engines (fp32 and fp16) of TSN and TSM with identical weights (ResNet-50 and
MobileNetV2 by default, T=8, 224x224) from the ONNX graph ``tsm export --format tensorrt`` writes,
checks each against PyTorch fp32 on the GPU (max abs and relative difference of the logits on
random clips, top-1 agreement), then times batch-1 inference of every engine and of PyTorch eager
in interleaved rounds (CUDA-synchronised) and prints the TSM/TSN ratio per runtime.

Needs a CUDA device and TensorRT (``pip install tensorrt``, next to the ``deploy`` extra):

    python benchmarks/tensorrt_check.py [--archs resnet50,mobilenet_v2] [--repeats 50] [--json trt.json]

The same parity is a test: ``python -m pytest -m gpu tests/test_export.py -k tensorrt``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from temporal_shift.apps.bench.overhead import tsn_tsm_pair
from temporal_shift.engine.export import export_model
from temporal_shift.engine.runtimes import load_runtime

TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2}  # relative to the largest logit, as tsm export checks it


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", default="resnet50,mobilenet_v2")
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("tensorrt_check: no CUDA device here; run it on a machine with an NVIDIA GPU", file=sys.stderr)
        return 2
    rows: dict[str, dict] = {}
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.archs.split(","):
            tsn, tsm = tsn_tsm_pair(arch=arch, n_segment=args.segments)
            clips = torch.randn(4, args.segments, 3, args.size, args.size)
            runners = {}
            for name, model in (("TSN", tsn), ("TSM", tsm)):
                with torch.no_grad():
                    expected = model.cuda()(clips.cuda()).cpu()
                runners[f"{name}/eager"] = lambda x, m=model: m(x)
                for precision in ("fp32", "fp16"):
                    path = export_model(
                        model.cpu(),
                        Path(tmp) / f"{arch}-{name}-{precision}.engine",
                        format="tensorrt",
                        size=args.size,
                        precision=precision,
                    )
                    engine = load_runtime(path)
                    got = torch.cat([engine(c.unsqueeze(0))[0] for c in clips])
                    diff = float((got - expected).abs().max())
                    rel = diff / float(expected.abs().max())
                    agree = float((got.argmax(1) == expected.argmax(1)).float().mean())
                    ok = rel <= TOLERANCE[precision]
                    failed |= not ok
                    rows[f"{arch}/{name}/tensorrt-{precision}"] = {"max_abs": diff, "max_rel": rel, "top1_agree": agree}
                    print(
                        f"{arch} {name} TensorRT {precision}: max abs {diff:.2e}, relative {rel:.2e}, "
                        f"top-1 agreement {100 * agree:.0f}% {'ok' if ok else 'FAILED'}",
                        flush=True,
                    )
                    runners[f"{name}/tensorrt-{precision}"] = lambda x, e=engine: e(x)
                model.cuda()
            x = clips[:1].cuda()
            times: dict[str, list[float]] = {k: [] for k in runners}
            names = list(runners)
            with torch.inference_mode():
                for r in range(args.repeats + 5):
                    for key in names[r % len(names) :] + names[: r % len(names)]:
                        torch.cuda.synchronize()
                        start = time.perf_counter()
                        runners[key](x)
                        torch.cuda.synchronize()
                        if r >= 5:
                            times[key].append((time.perf_counter() - start) * 1e3)
            for runtime in ("eager", "tensorrt-fp32", "tensorrt-fp16"):
                tsn_ms, tsm_ms = (statistics.median(times[f"{n}/{runtime}"]) for n in ("TSN", "TSM"))
                ratios = [b / a for a, b in zip(times[f"TSN/{runtime}"], times[f"TSM/{runtime}"], strict=True)]
                rows[f"{arch}/{runtime}"] = {"TSN_ms": tsn_ms, "TSM_ms": tsm_ms, "ratio": statistics.median(ratios)}
                print(
                    f"{arch} {runtime:<14} TSN {tsn_ms:7.2f} ms  TSM {tsm_ms:7.2f} ms  TSM/TSN "
                    f"{statistics.median(ratios):.3f}  ({torch.cuda.get_device_name()})",
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
