"""Host time per call of the shift on tiny tensors, where the per-call cost is all there is.

On a tiny tensor (8x16x2x2, one thread) a call's time is what the Python and dispatch
around the work cost: the figure that decides batch-1 latency on a GPU, where the host
launches kernels faster than nothing but slower than the GPU runs them. Rows (microseconds
per call, each the median of interleaved repetitions of ``--calls`` calls):

- ``native op``: ``torch.relu`` (the cost of one native op launch from Python);
- ``slice copy``: one ``out5[:, :-1, :f] = x5[:, 1:, :f]`` (one of the shift's copies);
- ``slice copies``: the whole shift written with slice copies (`shift_with_torch_ops`);
- ``raw op``: ``torch.ops.temporal_shift.shift``; ``temporal_shift()``: the public function;
- ``train shift``: forward + backward of ``temporal_shift`` on a tensor that needs a gradient,
  against ``slice copies x2``: the forward and the adjoint slice copies without autograd,
  and ``relu train``: forward + backward of a ReLU;
- ``conv`` / ``wrapper``: a 1x1 convolution alone and wrapped in `TemporalShift`, inference
  (``torch.inference_mode``); ``conv train`` / ``wrapper train``: forward + backward.

Derived figures are computed per repetition (then medians and IQR): ``train shift /
slice copies x2`` (target <= 1), ``wrapper - conv`` in units of ``slice copy`` (target <= 2),
``temporal_shift() - raw op`` (target <= 2 us). Only public names are used, so the same
script measures any commit; ``--against REV`` times the package at git revision ``REV``
in the same process, interleaved with the working tree's (`revision.import_revision`),
and adds the after/before ratio of every row:

    PYTHONPATH=src python benchmarks/shift_host_time.py                 # one thread, ~1 minute
    PYTHONPATH=src python benchmarks/shift_host_time.py --against main  # before/after, ~2 minutes
    PYTHONPATH=src python benchmarks/shift_host_time.py --device cuda   # the GPU's host time
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch

from temporal_shift.ops import shift as current


def quartiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    if len(ordered) < 2:
        return ordered[0], ordered[0], ordered[0]
    q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    return q1, statistics.median(ordered), q3


def interleaved(
    runs: dict[str, Callable[[], object]], *, repeats: int, calls: int, sync: Callable[[], None]
) -> dict[str, list[float]]:
    """Microseconds per call of each run: ``repeats`` rounds of ``calls`` calls, order rotating."""
    names = list(runs)
    for name in names:  # warm-up (first-call caches, lazy imports)
        for _ in range(max(1, calls // 10)):
            runs[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            run = runs[name]
            sync()
            start = time.perf_counter_ns()
            for _ in range(calls):
                run()
            sync()
            times[name].append((time.perf_counter_ns() - start) / calls / 1e3)
    return times


def build_runs(
    device: torch.device, ops: ModuleType = current, *, n_segment: int = 4
) -> dict[str, Callable[[], object]]:
    """The rows of the table (see the module doc), on an (8, 16, 2, 2) float32 tensor, for the
    ``temporal_shift.ops.shift`` module ``ops`` (this commit's, or another's: `revision`)."""
    TemporalShift, shift_with_torch_ops, temporal_shift = (
        ops.TemporalShift,
        ops.shift_with_torch_ops,
        ops.temporal_shift,
    )
    raw_op = getattr(torch.ops, ops.__name__.split(".")[0]).shift  # the package's op namespace
    x = torch.randn(2 * n_segment, 16, 2, 2, device=device)
    grad = torch.randn_like(x)
    leaf = x.clone().requires_grad_(True)
    fold = x.shape[1] // 8
    out5 = torch.empty_like(x).view(-1, n_segment, *x.shape[1:])
    x5 = x.view(out5.shape)
    conv = torch.nn.Conv2d(16, 16, 1, bias=False).to(device)  # a bottleneck's conv1
    wrapped = TemporalShift(conv, n_segment)
    with torch.inference_mode():
        frames = x.clone()  # an inference tensor, as a model sees inside inference_mode

    def slice_copy() -> None:
        out5[:, :-1, :fold] = x5[:, 1:, :fold]

    def train_shift() -> None:
        temporal_shift(leaf, n_segment).backward(grad)

    def slice_copies_twice() -> None:
        shift_with_torch_ops(x, n_segment, fold, 1, -1)
        shift_with_torch_ops(grad, n_segment, fold, -1, 1)

    def relu_train() -> None:
        torch.relu(leaf).backward(grad)

    def inference(module: torch.nn.Module) -> Callable[[], object]:
        def run() -> object:
            with torch.inference_mode():
                return module(frames)

        return run

    def train(module: torch.nn.Module) -> Callable[[], object]:
        return lambda: module(leaf).backward(grad)

    return {
        "native op": lambda: torch.relu(x),
        "slice copy": slice_copy,
        "slice copies": lambda: shift_with_torch_ops(x, n_segment, fold, 1, -1),
        "raw op": lambda: raw_op(x, n_segment, fold, 1, -1),
        "temporal_shift()": lambda: temporal_shift(x, n_segment),
        "train shift": train_shift,
        "slice copies x2": slice_copies_twice,
        "relu train": relu_train,
        "conv": inference(conv),
        "wrapper": inference(wrapped),
        "conv train": train(conv),
        "wrapper train": train(wrapped),
    }


DERIVED = {  # name -> the figure of repetition i
    "train shift / slice copies x2 (<= 1)": lambda t, i: t["train shift"][i] / t["slice copies x2"][i],
    "wrapper - conv, in slice copies (<= 2)": lambda t, i: (t["wrapper"][i] - t["conv"][i]) / t["slice copy"][i],
    "wrapper - conv, us": lambda t, i: t["wrapper"][i] - t["conv"][i],
    "temporal_shift() - raw op, us (<= 2)": lambda t, i: t["temporal_shift()"][i] - t["raw op"][i],
    "wrapper train / conv train": lambda t, i: t["wrapper train"][i] / t["conv train"][i],
    "train shift / relu train": lambda t, i: t["train shift"][i] / t["relu train"][i],
}


def print_table(times: dict[str, dict[str, list[float]]], repeats: int) -> None:
    """Each row's median (IQR) per version, the derived figures, and after/before per repetition."""
    versions = list(times)
    print(f"  {'row':40s}" + "".join(f" {v or 'median':>9s} {'IQR':>17s}" for v in versions), end="")
    print(f" {'after/before':>13s} {'IQR':>13s}" if len(versions) == 2 else "")
    rows = [(name, {v: times[v][name] for v in versions}) for name in times[versions[0]]]
    rows += [(name, {v: [fn(times[v], i) for i in range(repeats)] for v in versions}) for name, fn in DERIVED.items()]
    for name, values in rows:
        line = f"  {name:40s}"
        for v in versions:
            q1, med, q3 = quartiles(values[v])
            line += f" {med:9.2f} ({q1:7.2f} - {q3:7.2f})"
        if len(versions) == 2 and name in times[versions[0]]:
            q1, med, q3 = quartiles([a / b for a, b in zip(values["after"], values["before"], strict=True)])
            line += f" {med:13.2f} ({q1:5.2f} - {q3:5.2f})"
        print(line)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--against", metavar="REV", help="also time the package at this git revision, interleaved")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    with tempfile.TemporaryDirectory() as folder:
        versions = {"": current}
        if args.against:
            sys.path.insert(0, str(Path(__file__).parent))
            from revision import import_revision

            versions = {"after": current, "before": import_revision(args.against, "ops.shift", into=Path(folder))}
        runs = {f"{v}|{name}": run for v, ops in versions.items() for name, run in build_runs(device, ops).items()}
        timed = interleaved(runs, repeats=args.repeats, calls=args.calls, sync=sync)
    print(
        f"host time per call (us), (8, 16, 2, 2) float32, T=4, {device}, {torch.get_num_threads()} thread(s), "
        f"torch {torch.__version__}; medians (IQR) of {args.repeats} interleaved repetitions of {args.calls} calls"
        + (f"; before: {args.against}" if args.against else "")
    )
    times = {v: {key.split("|", 1)[1]: ts for key, ts in timed.items() if key.startswith(f"{v}|")} for v in versions}
    print_table(times, args.repeats)


if __name__ == "__main__":
    main()
