"""A static batch of one clip: the split form's shift on the batch axis against its (N, T, C, H*W) view.

Exports TSN and TSM (identical weights, `apps.bench.overhead.tsn_tsm_pair`, as `tsm bench runtimes`
does) at a static batch of one clip, the TSM twice: with the split form's shift on the (N, T, C,
H*W) view (`engine.split_form.shift_moved`) and on the batch axis (`shift_one_clip`), whichever
form the runtime takes by default. Then times the three of each runtime in one run of
interleaved rounds (batch 1, ``--threads`` threads; the order alternates from round to round)
and prints the per-round TSM/TSN ratios (median and IQR) and each TSM's difference from PyTorch:

    python benchmarks/one_clip_shift.py --runtimes openvino-int8,openvino,onnxruntime,compile --rounds 40

Runtimes: ``onnxruntime``, ``openvino``, ``openvino-int8`` (NNCF, calibrated on random clips) and
``compile`` (`engine.compiled.compile_for_inference`). The figures are in docs/deploy.md.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import torch

from temporal_shift.apps.bench.overhead import tsn_tsm_pair
from temporal_shift.engine import compiled as compiled_module
from temporal_shift.engine import export
from temporal_shift.engine.runtimes import load_runtime
from temporal_shift.engine.split_form import split_form

RUNTIMES = ("onnxruntime", "openvino", "openvino-int8", "compile")
_FORMAT = {"onnxruntime": ("onnx", None, ".onnx"), "openvino": ("openvino", None, ".xml")}
_FORMAT["openvino-int8"] = ("openvino", "int8", ".xml")


def _runner(runtime: str, model: torch.nn.Module, *, one_clip: bool, clips: list[torch.Tensor], work: Path) -> Callable:
    """``model`` built for ``runtime``, its split form shifting on the batch axis or not."""
    if runtime == "compile":
        form = mock.patch.object(compiled_module, "split_form", lambda m, **_: split_form(m, one_clip_shift=one_clip))
        with form:
            return compiled_module.compile_for_inference(model)
    fmt, quantize, suffix = _FORMAT[runtime]
    path = work / f"{runtime}-{len(list(work.iterdir()))}{suffix}"
    with mock.patch.object(export, "ONE_CLIP_FORMATS", (fmt,) if one_clip else ()):
        export.export_model(
            model, path, format=fmt, size=clips[0].shape[-1], batch_size=1, quantize=quantize, calibration=clips
        )
    return load_runtime(path, format=fmt, threads=torch.get_num_threads())


def _logits(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, list | tuple) else out


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runtimes", default="openvino-int8,openvino,onnxruntime,compile")
    p.add_argument("--arch", default="resnet50")
    p.add_argument("--segments", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    runtimes = args.runtimes.split(",")
    unknown = sorted(set(runtimes) - set(RUNTIMES))
    if unknown:
        p.error(f"--runtimes: unknown {', '.join(unknown)}; expected some of {', '.join(RUNTIMES)}")
    torch.set_num_threads(args.threads)

    tsn, tsm = tsn_tsm_pair(arch=args.arch, n_segment=args.segments)
    if split_form(tsm) is None:
        p.error(f"--arch {args.arch}: its TSM has no split form (a ResNet with residual shifts has)")
    generator = torch.Generator().manual_seed(0)
    clips = [torch.randn(1, args.segments, 3, args.size, args.size, generator=generator) for _ in range(4)]
    x = clips[0]
    runners: dict[str, Callable] = {}
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        work = Path(tmp)
        for runtime in runtimes:
            runners[f"{runtime}/TSN"] = _runner(runtime, tsn, one_clip=False, clips=clips, work=work)
            runners[f"{runtime}/view"] = _runner(runtime, tsm, one_clip=False, clips=clips, work=work)
            runners[f"{runtime}/batch axis"] = _runner(runtime, tsm, one_clip=True, clips=clips, work=work)
        expected = tsm(x)
        for name, run in runners.items():
            if not name.endswith("/TSN"):
                print(f"{name}: max abs difference from PyTorch {(_logits(run(x)) - expected).abs().max().item():.2e}")
        times: dict[str, list[float]] = collections.defaultdict(list)
        names = list(runners)
        for r in range(args.rounds + 2):  # the first 2 rounds warm up
            for name in names if r % 2 == 0 else names[::-1]:
                start = time.perf_counter()
                runners[name](x)
                if r >= 2:
                    times[name].append(time.perf_counter() - start)
    result = {}
    for runtime in runtimes:
        tsn_times = times[f"{runtime}/TSN"]
        for form in ("view", "batch axis"):
            name = f"{runtime}/{form}"
            ratios = [a / b for a, b in zip(times[name], tsn_times, strict=True)]
            q1, _, q3 = statistics.quantiles(ratios, n=4)
            ms, tsn_ms = 1e3 * statistics.median(times[name]), 1e3 * statistics.median(tsn_times)
            result[name] = {"ratio": statistics.median(ratios), "q1": q1, "q3": q3, "ms": ms, "tsn_ms": tsn_ms}
            print(
                f"{name}: TSM/TSN {result[name]['ratio']:.3f} (IQR {q1:.3f}-{q3:.3f}); {ms:.1f} ms, TSN {tsn_ms:.1f} ms"
            )
    return result


if __name__ == "__main__":
    main()
