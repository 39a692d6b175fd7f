"""Compare implementations of the shift's data movement, alone and inside TSM-ResNet50.

Each variant must equal the library's `_shift` bit for bit. Timings are interleaved
(every round runs every variant, order rotating) and reported as median and IQR;
the model part compares TSN with TSM using the out-of-place shift and TSM using
`TemporalShift`'s in-place inference path, all with identical weights.

    .venv/bin/python benchmarks/shift_variants.py --repeats 30
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import temporal_shift.shift as shift_module
from temporal_shift.bench import tsn_tsm_pair

Shift = Callable[[torch.Tensor, int, int, str], torch.Tensor]


def slices_into_empty(x: torch.Tensor, n_segment: int, fold: int, mode: str) -> torch.Tensor:
    """The library's implementation at the time of writing (kept for reference)."""
    return LIBRARY_SHIFT(x, n_segment, fold, mode)


def clone_then_overwrite(x: torch.Tensor, n_segment: int, fold: int, mode: str) -> torch.Tensor:
    """One contiguous copy of everything, then rewrite only the shifted channels."""
    x5 = x.view((-1, n_segment) + tuple(x.shape[1:]))
    out = x5.clone(memory_format=torch.preserve_format)
    if mode == "bidirectional":
        out[:, :-1, :fold] = x5[:, 1:, :fold]
        out[:, -1:, :fold] = 0
        out[:, 1:, fold : 2 * fold] = x5[:, :-1, fold : 2 * fold]
        out[:, :1, fold : 2 * fold] = 0
    else:
        out[:, 1:, :fold] = x5[:, :-1, :fold]
        out[:, :1, :fold] = 0
    return out.view(x.shape)


LIBRARY_SHIFT: Shift = shift_module._shift
VARIANTS: dict[str, Shift] = {"slices": slices_into_empty, "clone": clone_then_overwrite}
# Input shapes of the shifted conv1 in TSM-ResNet50 (one clip of 8 frames, 224x224).
STAGES = [(64, 56), (256, 56), (512, 28), (1024, 14), (2048, 7)]


def summary(seconds: list[float]) -> str:
    ms = sorted(s * 1e3 for s in seconds)
    q = statistics.quantiles(ms, n=4)
    return f"{statistics.median(ms):8.2f} ms (IQR {q[0]:.2f}-{q[2]:.2f})"


def time_ops(repeats: int, n_segment: int) -> None:
    print("shift alone, channels_last, one clip:")
    for channels, hw in STAGES:
        x = torch.randn(n_segment, channels, hw, hw).contiguous(memory_format=torch.channels_last)
        expected = LIBRARY_SHIFT(x, n_segment, channels // 8, "bidirectional")
        for name, fn in VARIANTS.items():
            assert torch.equal(fn(x, n_segment, channels // 8, "bidirectional"), expected), name
        times: dict[str, list[float]] = {name: [] for name in VARIANTS}
        names = list(VARIANTS)
        for r in range(repeats):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                start = time.perf_counter()
                VARIANTS[name](x, n_segment, channels // 8, "bidirectional")
                times[name].append(time.perf_counter() - start)
        print(f"  C={channels:4d} {hw:2d}x{hw:<2d} " + "  ".join(f"{n}: {summary(t)}" for n, t in times.items()))


def time_models(repeats: int, n_segment: int, size: int) -> None:
    """TSN vs TSM with the out-of-place shift vs TSM with the in-place inference path."""
    tsn, tsm = tsn_tsm_pair(arch="resnet50", n_segment=n_segment)
    tsn = tsn.to(memory_format=torch.channels_last)
    tsm = tsm.to(memory_format=torch.channels_last)
    shifts = [m for m in tsm.modules() if isinstance(m, shift_module.TemporalShift)]
    clips = torch.randn(1, n_segment, 3, size, size)

    def tsm_with(inplace: bool) -> Callable[[], object]:
        def run() -> object:
            for m in shifts:
                m.inplace_inference = inplace
            return tsm(clips)
        return run

    runs: dict[str, Callable[[], object]] = {
        "tsn": lambda: tsn(clips),
        "tsm-out-of-place": tsm_with(False),
        "tsm-in-place": tsm_with(True),
    }
    with torch.inference_mode():
        assert torch.equal(runs["tsm-out-of-place"](), runs["tsm-in-place"]()), "paths differ"
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    with torch.inference_mode():
        for name in names:
            runs[name]()
        for r in range(repeats):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                start = time.perf_counter()
                runs[name]()
                times[name].append(time.perf_counter() - start)
    print(f"ResNet50, T={n_segment}, {size}x{size}, batch 1, channels_last, {torch.get_num_threads()} threads:")
    for name, t in times.items():
        line = f"  {name:18s} {summary(t)}"
        if name != "tsn":
            ratios = sorted(a / b for a, b in zip(t, times["tsn"]))
            q = statistics.quantiles(ratios, n=4)
            line += f"  TSM/TSN per round: median {statistics.median(ratios):.3f} (IQR {q[0]:.3f}-{q[2]:.3f})"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--skip-model", action="store_true")
    args = parser.parse_args()
    time_ops(args.repeats, args.segments)
    if not args.skip_model:
        time_models(args.repeats, args.segments, args.size)


if __name__ == "__main__":
    main()
