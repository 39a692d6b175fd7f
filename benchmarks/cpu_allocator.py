"""CPU training steps with glibc's default malloc settings and with `runtime.keep_freed_memory`.

A training step frees and allocates the same large tensors every time. With glibc's
defaults, blocks over its mmap threshold come from fresh ``mmap``s and the freed heap is
trimmed, so every step faults its memory in again; `keep_freed_memory` (what `train` does
on a CPU) keeps the blocks for reuse. The setting is process-wide and cannot be undone, so
each measurement is a fresh process; the two settings alternate, round after round, and
each process reports its median step time, minor page faults a step and peak RSS.

The step: AdamW (fused) on TSM ResNet-18 (or TSN with ``--tsn``), batch 16 x T=4 frames at
32x32, gradient clipping at 20, as `tsm demo` and `tsm reproduce` train it.

    PYTHONPATH=src python benchmarks/cpu_allocator.py --threads 1 --rounds 6
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

SETTINGS = ("default", "keep-freed")


def measure(setting: str, *, threads: int, steps: int, size: int, tsn: bool) -> dict[str, float]:
    """Median step time (ms), minor faults a step and peak RSS (MB) of one process."""
    import torch

    from temporal_shift.models.factory import build_model
    from temporal_shift.ops.runtime import keep_freed_memory

    if setting == "keep-freed" and not keep_freed_memory():
        raise SystemExit("keep_freed_memory() had no effect here (not glibc?)")
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=12, n_segment=4, shift=not tsn, dropout=0.2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05, fused=True)
    clips, labels = torch.randn(16, 4, 3, size, size), torch.randint(0, 12, (16,))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(clips), labels).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 20.0)
        optimizer.step()

    for _ in range(3):
        step()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    return {
        "step_ms": 1000 * statistics.median(times),
        "faults_per_step": faults / steps,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(sorted(values), n=4, method="inclusive")
    return q1, q2, q3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=6, help="processes of each setting, alternating")
    parser.add_argument("--steps", type=int, default=15, help="timed steps per process")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--tsn", action="store_true", help="time TSN instead of TSM")
    parser.add_argument("--child", choices=SETTINGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, threads=args.threads, steps=args.steps, size=args.size, tsn=args.tsn)))
        return
    results: dict[str, list[dict[str, float]]] = {s: [] for s in SETTINGS}
    for round_ in range(args.rounds):
        order = SETTINGS if round_ % 2 == 0 else SETTINGS[::-1]
        for setting in order:
            cmd = [
                sys.executable,
                __file__,
                "--child",
                setting,
                "--threads",
                str(args.threads),
                "--steps",
                str(args.steps),
                "--size",
                str(args.size),
            ] + (["--tsn"] if args.tsn else [])
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ.copy()).stdout
            results[setting].append(json.loads(out.strip().splitlines()[-1]))
    model = "TSN" if args.tsn else "TSM"
    print(
        f"{model} ResNet-18 training step, batch 16x4 at {args.size}x{args.size}, {args.threads} thread(s), "
        f"{args.rounds} processes per setting x {args.steps} steps"
    )
    for setting in SETTINGS:
        rows = results[setting]
        q1, med, q3 = _quartiles([r["step_ms"] for r in rows])
        faults = statistics.median(r["faults_per_step"] for r in rows)
        rss = statistics.median(r["peak_rss_mb"] for r in rows)
        print(
            f"  {setting:<11} step {med:7.1f} ms (IQR {q1:.1f}-{q3:.1f})  minor faults/step {faults:9.1f}  "
            f"peak RSS {rss:6.0f} MB"
        )
    ratios = [k["step_ms"] / d["step_ms"] for d, k in zip(results["default"], results["keep-freed"], strict=True)]
    q1, med, q3 = _quartiles(ratios)
    print(f"  keep-freed / default step time, per round: median {med:.3f} (IQR {q1:.3f}-{q3:.3f})")


if __name__ == "__main__":
    main()
