"""The online step in OpenVINO: its shift buffers fed in and out each frame, or kept as states.

Exports the streaming step (`engine.export.export_online`) of a TSN and of a causal TSM with
identical weights (`apps.bench.overhead.tsn_tsm_pair`, as `tsm bench runtimes` does) to OpenVINO,
in f32 and int8 (NNCF, calibrated on random frames), then times in one run of interleaved rounds
(``--threads`` threads; the order alternates from round to round; each round ``--steps`` frames):

- ``TSN``: the TSN step (no buffers);
- ``fed``: the TSM step with its buffers as inputs and outputs, fed back by Python each frame
  (`engine.runtimes.load_runtime` on the file: what `ExportedStream` did before);
- ``states``: the TSM step with its buffers as OpenVINO states (`runtimes.buffers_as_states`,
  what `ExportedStream` does now);
- int8 only, ``states, NNCF's cut``: the same without `engine.openvino_int8.quantize_new_buffers`
  (NNCF's quantizers after the f32 cut of each shifted layer's features into buffer and rest).

It prints the per-round TSM/TSN ratios (median and IQR) and how far apart the two TSM forms' logits
and buffers are over the frames streamed (f32: identical; int8: the two compile to different int8
roundings, see `engine.openvino_int8.quantize_new_buffers`):

    python benchmarks/openvino_stream_states.py --rounds 30

The figures are in docs/deploy.md.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import torch

from temporal_shift.apps.bench.overhead import tsn_tsm_pair
from temporal_shift.apps.bench.runtimes import _causal_copy
from temporal_shift.engine import export
from temporal_shift.engine.export import export_online
from temporal_shift.engine.runtimes import ExportedStream, load_runtime
from temporal_shift.models.online import OnlineRecognizer

PRECISIONS = ("f32", "int8")


class _Fed:
    """A stream over the plain runtime: the buffers go in and come out each frame."""

    def __init__(self, path: Path, threads: int) -> None:
        self.runtime = load_runtime(path, format="openvino", threads=threads)
        self.buffers = [torch.zeros(shape) for shape in self.runtime.input_shapes[1:]]  # type: ignore[arg-type]

    def update(self, frame: torch.Tensor) -> torch.Tensor:
        logits, *self.buffers = self.runtime(frame, *self.buffers)
        return logits[0]


def _difference(states: ExportedStream, fed: _Fed) -> float:
    """The largest difference between the buffers kept as states and those fed back."""
    kept = {state.name: torch.from_numpy(state.state.data) for state in states.runtime.request.query_state()}  # type: ignore[attr-defined]
    return max((kept[f"buffer_{i}"] - b).abs().max().item() for i, b in enumerate(fed.buffers))


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--precisions", default="f32,int8")
    p.add_argument("--arch", default="mobilenet_v2")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--steps", type=int, default=20, help="frames streamed per timing (default 20)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    precisions = args.precisions.split(",")
    unknown = sorted(set(precisions) - set(PRECISIONS))
    if unknown:
        p.error(f"--precisions: unknown {', '.join(unknown)}; expected some of {', '.join(PRECISIONS)}")
    torch.set_num_threads(args.threads)

    tsn, tsm = tsn_tsm_pair(arch=args.arch, n_segment=8)
    steps = {"TSN": OnlineRecognizer(tsn), "TSM": OnlineRecognizer(_causal_copy(tsm))}
    generator = torch.Generator().manual_seed(0)
    frames = torch.randn(args.steps, 1, 3, args.size, args.size, generator=generator)
    runners: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        for precision in precisions:
            quantize = "int8" if precision == "int8" else None
            paths = {}
            for name, step in steps.items():
                paths[name] = Path(tmp) / f"{name}-{precision}.xml"
                export_online(
                    step,
                    paths[name],
                    format="openvino",
                    size=args.size,
                    quantize=quantize,
                    calibration=[frames[:4].transpose(0, 1)] if quantize else None,
                )
            runners[f"{precision}/TSN"] = ExportedStream(paths["TSN"], threads=args.threads).update
            fed, states = _Fed(paths["TSM"], args.threads), ExportedStream(paths["TSM"], threads=args.threads)
            assert getattr(states.runtime, "states", 0) == steps["TSM"].num_buffers
            runners[f"{precision}/fed"], runners[f"{precision}/states"] = fed.update, states.update
            if quantize:
                nncf_cut = Path(tmp) / "TSM-nncf-cut.xml"
                with mock.patch.object(export, "quantize_new_buffers", lambda model: 0):
                    export_online(
                        steps["TSM"],
                        nncf_cut,
                        format="openvino",
                        size=args.size,
                        quantize=quantize,
                        calibration=[frames[:4].transpose(0, 1)],
                    )
                runners[f"{precision}/states, NNCF's cut"] = ExportedStream(nncf_cut, threads=args.threads).update
            logits = [(states.update(f) - fed.update(f)).abs().max().item() for f in frames]
            print(
                f"{precision}: states against fed buffers, max abs difference: "
                f"logits {max(logits):.2e}, buffers {_difference(states, fed):.2e}"
            )
        times: dict[str, list[float]] = collections.defaultdict(list)
        names = list(runners)
        for r in range(args.rounds + 2):  # the first 2 rounds warm up
            for name in names if r % 2 == 0 else names[::-1]:
                start = time.perf_counter()
                for frame in frames:
                    runners[name](frame)
                if r >= 2:
                    times[name].append((time.perf_counter() - start) / len(frames))
    result = {}
    for precision in precisions:
        tsn_times = times[f"{precision}/TSN"]
        for form in ("fed", "states", "states, NNCF's cut"):
            name = f"{precision}/{form}"
            if name not in times:
                continue
            ratios = [a / b for a, b in zip(times[name], tsn_times, strict=True)]
            q1, _, q3 = statistics.quantiles(ratios, n=4)
            ms, tsn_ms = 1e3 * statistics.median(times[name]), 1e3 * statistics.median(tsn_times)
            result[name] = {"ratio": statistics.median(ratios), "q1": q1, "q3": q3, "ms": ms, "tsn_ms": tsn_ms}
            print(
                f"{name}: TSM/TSN {result[name]['ratio']:.3f} (IQR {q1:.3f}-{q3:.3f}); "
                f"{ms:.2f} ms a frame, TSN {tsn_ms:.2f} ms"
            )
    return result


if __name__ == "__main__":
    main()
