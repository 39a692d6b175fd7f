"""Every GPU figure of the TSM/TSN overhead table in one run (run it as gpu_overhead.sh).

R50, 8 frames of 224x224, channels_last, TSN and TSM with identical weights, timed in
interleaved pairs (medians of the per-pair TSM/TSN ratio, with IQR):

    train-eager     training step, bf16 autocast, batch 32, eager
    train-compile   the same, torch.compile (default mode)
    infer-b16       inference fp32, batch 16
    infer-b1        inference fp32, batch 1, eager
    mbv2-b1         MobileNetV2 inference fp32, batch 1, eager
    infer-b1-graph  inference fp32, batch 1, torch.compile(mode="reduce-overhead") (CUDA graphs)

Each row runs in a fresh process (no compiled state, CUDA graph pool or allocator cache
carried from one row to the next); the table is printed at the end, and the rows' JSON
files (the format of `tsm bench overhead|train --json`) and the table go to --out. It needs
only torch and torchvision (`PYTHONPATH=src`, nothing installed: no matplotlib, tensorboard,
yaml, av).
Repeats are sized so that the whole run takes under 5 minutes on one H100/H200, the
compilations included; compiling dominates.

    benchmarks/gpu_overhead.sh                      # needs CUDA; fails clearly without it
    benchmarks/gpu_overhead.sh --smoke              # CPU, tiny sizes: checks the script end to end
    benchmarks/gpu_overhead.sh --rows infer-b1,infer-b1-graph --out runs/gpu
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# name -> (where, kind, arguments); the full-size settings of the table in docs/performance.md.
ROWS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "train-eager": (
        "training step, bf16 autocast, batch 32, eager",
        "train",
        dict(arch="resnet50", batch_size=32, amp="bf16", repeats=20, warmup=3),
    ),
    "train-compile": (
        "training step, bf16 autocast, batch 32, torch.compile",
        "train",
        dict(arch="resnet50", batch_size=32, amp="bf16", compile="default", repeats=20, warmup=3),
    ),
    "infer-b16": ("inference fp32, batch 16", "infer", dict(arch="resnet50", batch_size=16, repeats=40, warmup=5)),
    "infer-b1": (
        "inference fp32, batch 1, eager",
        "infer",
        dict(arch="resnet50", batch_size=1, repeats=100, warmup=10),
    ),
    "mbv2-b1": (
        "MobileNetV2 inference fp32, batch 1, eager",
        "infer",
        dict(arch="mobilenet_v2", batch_size=1, repeats=100, warmup=10),
    ),
    "infer-b1-graph": (
        "inference fp32, batch 1, compile reduce-overhead (CUDA graphs)",
        "infer",
        dict(arch="resnet50", batch_size=1, compile="reduce-overhead", repeats=100, warmup=5),
    ),
}
# --smoke: the same rows on the CPU at toy sizes (ResNet-18 for R50), only to prove the mechanics.
SMOKE = dict(size=32, n_segment=4, device="cpu", threads=1)
SMOKE_ROW = dict(batch_size=2, repeats=2, warmup=1)


def row_settings(name: str, *, smoke: bool) -> dict[str, Any]:
    _, _, settings = ROWS[name]
    settings = dict(settings, n_segment=8, size=224, device="cuda", channels_last=True)
    if smoke:
        settings.update(SMOKE, **SMOKE_ROW)
        if settings["arch"] == "resnet50":
            settings["arch"] = "resnet18"
        if settings.get("compile"):
            settings["warmup"] = 2  # compiled training needs 2 warm-up steps
            settings["compile"] = "default"  # CUDA graphs need CUDA
    return settings


def run_row(name: str, *, smoke: bool, out: Path) -> None:
    """Child process: measure one row, write its JSON to ``out``."""
    _, kind, _ = ROWS[name]
    settings = row_settings(name, smoke=smoke)
    if kind == "train":
        from temporal_shift.apps.bench.train import benchmark_training

        result = benchmark_training(**settings)
    else:
        from temporal_shift.apps.bench.overhead import benchmark_overhead

        result = benchmark_overhead(**settings)
    print(result.table(), flush=True)
    out.write_text(result.to_json())


def summary_line(name: str, data: dict[str, Any]) -> tuple[str, str, str, str]:
    """(where, TSN, TSM, TSM/TSN median (IQR)) of one row's JSON."""
    where = ROWS[name][0]
    if "step_ms" in data:  # training: clips/s
        tsn, tsm = (f"{data['clips_per_s'][m]:.1f} clips/s" for m in ("TSN", "TSM"))
    else:
        tsn, tsm = (f"{data['latency_ms'][m]['median']:.2f} ms" for m in ("TSN", "TSM"))
    r = data["ratio"]
    return where, tsn, tsm, f"{r['median']:.3f} ({r['q1']:.3f}-{r['q3']:.3f})"


def format_table(lines: list[tuple[str, str, str, str]]) -> str:
    header = ("where", "TSN", "TSM", "TSM/TSN median (IQR)")
    rows = [header, *lines]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    text = ["| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + " |" for row in rows]
    text.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(text)


def check_shift_kernels(device: str) -> int:
    """The shift on ``device`` (Triton on CUDA) against the CPU's torch ops, bit for bit.

    Forward and backward of both modes, contiguous and channels_last, fp32/bf16/fp16, odd
    channel counts, and TemporalShift's in-place inference pair (input restored).
    Returns the number of cases checked; raises AssertionError on the first mismatch.
    """
    import torch

    from temporal_shift.ops.shift import TemporalShift, temporal_shift

    cases = 0
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        for channels, fold_div, t in ((64, 8, 8), (67, 8, 8), (24, 4, 3), (16, 8, 1)):
            for channels_last in (False, True):
                for mode in ("bidirectional", "causal"):
                    x = torch.randn(2 * t, channels, 7, 5).to(dtype)
                    grad = torch.randn_like(x)
                    if channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    leaf_cpu = x.clone().requires_grad_(True)
                    leaf_dev = x.to(device).requires_grad_(True)
                    out_cpu = temporal_shift(leaf_cpu, t, fold_div=fold_div, mode=mode)
                    out_dev = temporal_shift(leaf_dev, t, fold_div=fold_div, mode=mode)
                    out_cpu.backward(grad)
                    out_dev.backward(grad.to(device))
                    where = f"{dtype}, C={channels}, fold_div={fold_div}, T={t}, channels_last={channels_last}, {mode}"
                    assert torch.equal(out_dev.cpu(), out_cpu), f"forward differs: {where}"
                    assert out_dev.stride() == leaf_dev.stride(), f"layout differs: {where}"
                    assert torch.equal(leaf_dev.grad.cpu(), leaf_cpu.grad), f"backward differs: {where}"
                    conv = torch.nn.Conv2d(channels, 4, 1).to(device, dtype)
                    with torch.inference_mode():
                        frames = x.to(device)
                        before = frames.clone()
                        fast = TemporalShift(conv, t, fold_div=fold_div, mode=mode)(frames)
                        assert torch.equal(frames, before), f"in-place input not restored: {where}"
                        assert torch.equal(fast, conv(out_dev.detach())), f"in-place differs: {where}"
                    cases += 1
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="CPU, toy sizes: check the script end to end")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {', '.join(ROWS)}")
    parser.add_argument("--out", type=Path, default=Path("runs/gpu_overhead"), help="row JSON files and table.md")
    parser.add_argument("--row", default=None, help=argparse.SUPPRESS)  # child process: one row
    parser.add_argument("--row-json", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.row is not None:
        run_row(args.row, smoke=args.smoke, out=args.row_json)
        return 0
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown or not rows:
        print(f"gpu_overhead: error: unknown rows {unknown}; choose from {', '.join(ROWS)}", file=sys.stderr)
        return 2

    import torch

    if args.smoke:
        device = "CPU (smoke run: toy sizes, ResNet-18 for ResNet-50; the figures mean nothing)"
    elif not torch.cuda.is_available():
        print(
            "gpu_overhead: error: no CUDA device visible to torch "
            f"{torch.__version__} (torch.cuda.is_available() is False); this script measures GPU "
            "figures: run it on a GPU machine, or with --smoke to check it on the CPU",
            file=sys.stderr,
        )
        return 2
    else:
        device = f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    if not args.smoke:  # never time kernels that give wrong results
        tick = time.perf_counter()
        cases = check_shift_kernels("cuda")
        print(
            f"gpu_overhead: shift on CUDA equals the CPU's bit for bit, values and gradients, "
            f"{cases} cases ({time.perf_counter() - tick:.0f} s)",
            flush=True,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"gpu_overhead: {device}; {len(rows)} rows, each in a fresh process; results in {args.out}", flush=True)
    start = time.perf_counter()
    lines, failed = [], []
    for name in rows:
        row_json = args.out / f"{name}.json"
        row_json.unlink(missing_ok=True)
        tick = time.perf_counter()
        print(f"\n== {name}: {ROWS[name][0]}", flush=True)
        cmd = [sys.executable, __file__, "--row", name, "--row-json", str(row_json)] + (
            ["--smoke"] if args.smoke else []
        )
        code = subprocess.run(cmd).returncode
        seconds = time.perf_counter() - tick
        if code != 0 or not row_json.exists():
            failed.append(name)
            lines.append((ROWS[name][0], "failed", "failed", f"exit status {code}, see above"))
            print(f"== {name}: FAILED (exit status {code}) after {seconds:.0f} s", flush=True)
            continue
        lines.append(summary_line(name, json.loads(row_json.read_text())))
        print(f"== {name}: {seconds:.0f} s", flush=True)
    table = format_table(lines)
    total = time.perf_counter() - start
    footer = (
        f"{device}; R50 unless named, T=8, 224x224, channels_last, identical weights, "
        f"medians of interleaved pairs; {total:.0f} s in all"
    )
    print(f"\n{table}\n{footer}")
    (args.out / "table.md").write_text(f"{table}\n\n{footer}\n")
    if failed:
        print(f"gpu_overhead: error: rows failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
