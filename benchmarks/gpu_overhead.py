"""Every GPU figure of the TSM/TSN overhead table in one run (run it as gpu_overhead.sh).

R50, 8 frames of 224x224, channels_last, TSN and TSM with identical weights, timed in
interleaved pairs (medians of the per-pair TSM/TSN ratio, with IQR), each against its target:

    train-eager     training step, bf16 autocast, batch 32, eager (and its peak memory)
    train-compile   the same, torch.compile (default mode) (and its peak memory)
    infer-b16       inference fp32, batch 16
    infer-b1        inference fp32, batch 1, eager
    mbv2-b1         MobileNetV2 inference fp32, batch 1, eager
    infer-b1-graph  inference fp32, batch 1, torch.compile(mode="reduce-overhead") (CUDA graphs)
    shift-host      host time per call of the shift on a tiny tensor (benchmarks/shift_host_time.py):
                    training forward+backward against its slice copies, the inference wrapper's
                    added time, temporal_shift() against the raw op
    shift-sizes     the shifted layers' inputs of R50 at batch 1 and 16: the in-place pair
                    (two launches) against one out-of-place launch, per call; the in-place pair
                    is used from ops.kernels.triton_shift.IN_PLACE_MIN_BYTES up

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
import statistics
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
    "shift-host": ("shift host time per call, 8x16x2x2 fp32", "host", dict(repeats=7, calls=500)),
    "shift-sizes": ("shift, in-place pair vs one out-of-place launch", "sizes", dict(repeats=20)),
}
# TSM/TSN targets (docs/shift-memory-and-host-time.md); memory rows are the training rows' peak memory.
TARGETS = {
    "train-eager": None,
    "train-compile": 1.04,
    "infer-b16": 1.05,
    "infer-b1": 1.15,
    "mbv2-b1": None,
    "infer-b1-graph": 1.08,
    "memory": 1.02,
}
# --smoke: the same rows on the CPU at toy sizes (ResNet-18 for R50), only to prove the mechanics.
SMOKE = dict(size=32, n_segment=4, device="cpu", threads=1)
SMOKE_ROW = dict(batch_size=2, repeats=2, warmup=1)


def row_settings(name: str, *, smoke: bool) -> dict[str, Any]:
    _, kind, settings = ROWS[name]
    if kind in ("host", "sizes"):
        settings = dict(settings, device="cpu" if smoke else "cuda")
        if smoke:
            settings.update(repeats=3, calls=20) if kind == "host" else settings.update(repeats=2)
        return settings
    settings = dict(settings, n_segment=8, size=224, device="cuda", channels_last=True)
    if smoke:
        settings.update(SMOKE, **SMOKE_ROW)
        if settings["arch"] == "resnet50":
            settings["arch"] = "resnet18"
        if settings.get("compile"):
            settings["warmup"] = 2  # compiled training needs 2 warm-up steps
            settings["compile"] = "default"  # CUDA graphs need CUDA
    return settings


def measure_host_time(*, device: str, repeats: int, calls: int) -> dict[str, Any]:
    """benchmarks/shift_host_time.py on ``device``: microseconds per call and the derived figures."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import torch

    from shift_host_time import DERIVED, build_runs, interleaved, quartiles  # a sibling script

    dev = torch.device(device)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    times = interleaved(build_runs(dev), repeats=repeats, calls=calls, sync=sync)
    for name, ts in times.items():
        q1, med, q3 = quartiles(ts)
        print(f"  {name:40s} {med:8.1f} us ({q1:.1f}-{q3:.1f})")
    return {"us": times, "derived": {name: [fn(times, i) for i in range(repeats)] for name, fn in DERIVED.items()}}


# (frames, channels, side) of the shifted layers' inputs in R50 at 224x224, per clip of 8 frames
R50_SHIFTED_INPUTS = [(8, 64, 56), (8, 256, 56), (8, 512, 28), (8, 1024, 14), (8, 2048, 7)]


def measure_shift_sizes(*, device: str, repeats: int) -> dict[str, Any]:
    """Per call (host and device time, synchronised): the in-place pair (shift, then restore)
    and one out-of-place shift, on each shifted input of R50 at batch 1 and 16, channels_last."""
    import torch

    from temporal_shift.ops.shift import _in_place_kernels, shift_eager

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from shift_host_time import interleaved

    dev = torch.device(device)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    shapes = [(batch * t, c, side) for batch in (1, 16) for t, c, side in R50_SHIFTED_INPUTS]
    if dev.type != "cuda":
        shapes = [(8, 16, 4), (16, 64, 8)]  # smoke: toy sizes
    results = []
    for frames, channels, side in shapes:
        x = torch.randn(frames, channels, side, side, device=dev).contiguous(memory_format=torch.channels_last)
        kernels = _in_place_kernels(x)
        args = (8, channels // 8, 1, -1)

        def in_place(x=x, kernels=kernels, args=args) -> None:
            kernels.restore_in_place(x, kernels.shift_in_place(x, *args), *args)

        calls = max(5, min(500, int(2e9 / max(1, x.numel() * 4))))
        times = interleaved(
            {"out-of-place": lambda x=x, args=args: shift_eager(x, *args), "in-place": in_place},
            repeats=repeats,
            calls=calls,
            sync=sync,
        )
        megabytes = x.numel() * x.element_size() / 2**20
        used = "in-place" if kernels.prefers_in_place(x) else "out-of-place"
        results.append(
            {"shape": list(x.shape), "megabytes": megabytes, "us": times, "prefers_in_place": used == "in-place"}
        )
        out_of_place, pair = (statistics.median(times[k]) for k in ("out-of-place", "in-place"))
        print(
            f"  {tuple(x.shape)} {megabytes:7.1f} MB: out-of-place {out_of_place:8.1f} us, "
            f"in-place pair {pair:8.1f} us; used: {used}"
        )
    return {"sizes": results}


def run_row(name: str, *, smoke: bool, out: Path) -> None:
    """Child process: measure one row, write its JSON to ``out``."""
    _, kind, _ = ROWS[name]
    settings = row_settings(name, smoke=smoke)
    if kind == "host":
        out.write_text(json.dumps(measure_host_time(**settings)))
        return
    if kind == "sizes":
        out.write_text(json.dumps(measure_shift_sizes(**settings)))
        return
    if kind == "train":
        from temporal_shift.apps.bench.train import benchmark_training

        result = benchmark_training(**settings)
    else:
        from temporal_shift.apps.bench.overhead import benchmark_overhead

        result = benchmark_overhead(**settings)
    print(result.table(), flush=True)
    out.write_text(result.to_json())


def _ratio(values: list[float]) -> str:
    ordered = sorted(values)
    q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive") if len(ordered) > 1 else (ordered[0],) * 3
    return f"{statistics.median(ordered):.3f} ({q1:.3f}-{q3:.3f})"


def _target(value: float | None, unit: str = "") -> str:
    return "measured" if value is None else f"<= {value:g}{unit}"


def summary_lines(name: str, data: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(where, TSN, TSM, TSM/TSN median (IQR), target) lines of one row's JSON."""
    where = ROWS[name][0]
    if "derived" in data:  # shift-host: (baseline, ours, figure)
        us = {k: statistics.median(v) for k, v in data["us"].items()}
        derived = data["derived"]
        return [
            (
                f"{where}: training fwd+bwd / its slice copies",
                f"{us['slice copies x2']:.1f} us",
                f"{us['train shift']:.1f} us",
                _ratio(derived["train shift / slice copies x2 (<= 1)"]),
                "<= 1",
            ),
            (
                f"{where}: inference wrapper's added time, in slice copies",
                f"{us['slice copy']:.1f} us",
                f"{us['wrapper'] - us['conv']:.1f} us",
                _ratio(derived["wrapper - conv, in slice copies (<= 2)"]),
                "<= 2",
            ),
            (
                f"{where}: temporal_shift() - raw op, us",
                f"{us['raw op']:.1f} us",
                f"{us['temporal_shift()']:.1f} us",
                _ratio(derived["temporal_shift() - raw op, us (<= 2)"]),
                "<= 2 us",
            ),
        ]
    if "sizes" in data:  # shift-sizes: out-of-place against the in-place pair
        return [_size_line(where, size) for size in data["sizes"]]
    if "step_ms" in data:  # training: clips/s
        tsn, tsm = (f"{data['clips_per_s'][m]:.1f} clips/s" for m in ("TSN", "TSM"))
    else:
        tsn, tsm = (f"{data['latency_ms'][m]['median']:.2f} ms" for m in ("TSN", "TSM"))
    r = data["ratio"]
    lines = [(where, tsn, tsm, f"{r['median']:.3f} ({r['q1']:.3f}-{r['q3']:.3f})", _target(TARGETS.get(name)))]
    if "memory_ratio" in data:
        mb = data["peak_step_mb"]
        lines.append(
            (
                f"{where}: peak memory",
                f"{mb['TSN']:.0f} MB",
                f"{mb['TSM']:.0f} MB",
                f"{data['memory_ratio']:.3f}",
                _target(TARGETS["memory"]),
            )
        )
    return lines


def _size_line(where: str, size: dict[str, Any]) -> tuple[str, str, str, str, str]:
    times = size["us"]
    return (
        f"{where}, {'x'.join(map(str, size['shape']))} ({size['megabytes']:.0f} MB)",
        f"{statistics.median(times['out-of-place']):.1f} us",
        f"{statistics.median(times['in-place']):.1f} us",
        _ratio([b / a for a, b in zip(times["out-of-place"], times["in-place"], strict=True)]),
        f"uses {'in-place' if size['prefers_in_place'] else 'out-of-place'}",
    )


def format_table(lines: list[tuple[str, ...]]) -> str:
    header = ("where", "TSN", "TSM", "TSM/TSN median (IQR)", "target")
    rows = [header, *lines]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    text = ["| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + " |" for row in rows]
    text.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(text)


def check_shift_kernels(device: str) -> int:
    """The shift on ``device`` (Triton on CUDA) against the CPU's torch ops, bit for bit.

    Forward and backward of both modes, contiguous and channels_last, fp32/bf16/fp16, odd
    channel counts, inputs at an address that is not 16-byte aligned, the in-place pair
    (input restored), TemporalShift's inference path and its training node; every case
    twice, so that the second launch of each signature goes through the kept launcher.
    Returns the number of cases checked; raises AssertionError on the first mismatch.
    """
    import itertools

    import torch

    cases = 0
    dtypes = (torch.float32, torch.bfloat16, torch.float16)
    shapes = ((64, 8, 8), (67, 8, 8), (24, 4, 3), (16, 8, 1))
    for _, dtype, shape, channels_last, mode in itertools.product(
        range(2), dtypes, shapes, (False, True), ("bidirectional", "causal")
    ):
        _check_shift_case(device, dtype, *shape, channels_last=channels_last, mode=mode)
        cases += 1
    return cases


def _check_shift_case(device: str, dtype: Any, channels: int, fold_div: int, t: int, *, channels_last: bool, mode: str):
    """One case of `check_shift_kernels`."""
    import torch

    from temporal_shift.ops.shift import OFFSETS, TemporalShift, _in_place_kernels, temporal_shift

    where = f"{dtype}, C={channels}, fold_div={fold_div}, T={t}, channels_last={channels_last}, {mode}"
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
    assert torch.equal(out_dev.cpu(), out_cpu), f"forward differs: {where}"
    assert out_dev.stride() == leaf_dev.stride(), f"layout differs: {where}"
    assert torch.equal(leaf_dev.grad.cpu(), leaf_cpu.grad), f"backward differs: {where}"
    # an input 2 elements into its storage: not 16-byte aligned
    padded = torch.empty(x.numel() + 2, dtype=dtype, device=device)
    shifted = padded[2:].as_strided(x.shape, x.stride()).copy_(x)
    args = (t, channels // fold_div, *OFFSETS[mode])
    unaligned = temporal_shift(shifted, t, fold_div=fold_div, mode=mode)
    assert torch.equal(unaligned.cpu(), out_cpu), f"unaligned forward differs: {where}"
    kernels = _in_place_kernels(shifted)
    undo = kernels.shift_in_place(shifted, *args)
    assert torch.equal(shifted.cpu(), out_cpu.detach()), f"in-place shift differs: {where}"
    kernels.restore_in_place(shifted, undo, *args)
    assert torch.equal(shifted.cpu(), x), f"in-place input not restored: {where}"
    conv = torch.nn.Conv2d(channels, 4, 1).to(device, dtype)
    with torch.inference_mode():
        frames = x.to(device)
        fast = TemporalShift(conv, t, fold_div=fold_div, mode=mode)(frames)
        assert torch.equal(frames.cpu(), x), f"inference input changed: {where}"
        assert torch.equal(fast, conv(out_dev.detach())), f"inference differs: {where}"
    node = TemporalShift(conv, t, fold_div=fold_div, mode=mode)
    separate = torch.nn.Sequential(TemporalShift(torch.nn.Identity(), t, fold_div=fold_div, mode=mode), conv)
    grads = []
    for run in (node, separate):
        leaf = x.to(device).requires_grad_(True)
        conv.zero_grad(set_to_none=True)
        run(leaf).float().sum().backward()
        grads.append([leaf.grad, conv.weight.grad, conv.bias.grad])
    assert all(torch.equal(a, b) for a, b in zip(*grads, strict=True)), f"training node differs: {where}"


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
            lines.append((ROWS[name][0], "failed", "failed", f"exit status {code}, see above", ""))
            print(f"== {name}: FAILED (exit status {code}) after {seconds:.0f} s", flush=True)
            continue
        lines.extend(summary_lines(name, json.loads(row_json.read_text())))
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
