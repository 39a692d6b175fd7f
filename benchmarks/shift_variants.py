"""Implementations of the shift side by side: alone, in a TSM training step, in inference.

Variants (each checked against the torch-ops shift, values and gradients, bit for bit):

- ``slices``: the torch-ops shift with autograd through its slice copies (what the
  library did before the registered op: one CopySlices node per copy, each of whose
  backward clones the whole gradient);
- ``op``: the registered ``temporal_shift::shift`` op (one autograd node, adjoint
  backward); on CUDA it runs the one-pass Triton kernel, elsewhere the torch ops;
- inference only: ``out-of-place`` (the op) vs ``in-place`` (TemporalShift's default
  inference path: Triton's fused pair on CUDA, slice copies of the moved channels elsewhere).

Every round runs every variant, order rotating; medians, IQR and per-round ratios to
TSN (same weights) are printed. Runs on the CPU or CUDA (``--device``).

    PYTHONPATH=src python benchmarks/shift_variants.py --part ops --part train --device cuda
    PYTHONPATH=src python benchmarks/shift_variants.py --part train --arch resnet18 --size 64 --batch-size 8
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from temporal_shift.apps.bench.overhead import tsn_tsm_pair
from temporal_shift.ops.shift import OFFSETS, TemporalShift, shift_with_torch_ops

# Input shapes of the shifted conv1 in TSM-ResNet50 (channels, side) at 224x224.
STAGES = [(64, 56), (256, 56), (512, 28), (1024, 14), (2048, 7)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleave(
    runs: dict[str, Callable[[], object]], repeats: int, device: torch.device, warmup: int = 3
) -> dict[str, list[float]]:
    names = list(runs)
    for _ in range(warmup):
        for name in names:
            runs[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            _sync(device)
            start = time.perf_counter()
            runs[name]()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    if len(ordered) < 2:
        return ordered[0], ordered[0], ordered[0]
    q1, _q2, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    return q1, statistics.median(ordered), q3


def report(title: str, times: dict[str, list[float]], baseline: str | None) -> None:
    print(title)
    for name, ts in times.items():
        q1, med, q3 = _quartiles([t * 1e3 for t in ts])
        line = f"  {name:16s} {med:9.3f} ms (IQR {q1:.3f}-{q3:.3f})"
        if baseline and name != baseline:
            r1, rm, r3 = _quartiles([a / b for a, b in zip(ts, times[baseline], strict=True)])
            line += f"   /{baseline}: {rm:.3f} (IQR {r1:.3f}-{r3:.3f})"
        print(line)


def use_slices(model: nn.Module) -> None:
    """Make every TemporalShift of ``model`` shift with autograd through slice copies."""
    for module in model.modules():
        if isinstance(module, TemporalShift):
            offsets = OFFSETS[module.mode]

            def forward(x: torch.Tensor, m: TemporalShift = module, o: tuple[int, int] = offsets) -> torch.Tensor:
                return m.net(shift_with_torch_ops(x, m.n_segment, x.shape[1] // m.fold_div, *o))

            module.forward = forward  # type: ignore[method-assign]


def time_ops(args: argparse.Namespace, device: torch.device) -> None:
    """Forward + backward of the shift alone, per stage shape of TSM-ResNet50."""
    print(
        f"shift alone, forward + backward, {args.batch_size} clip(s) x {args.segments} frames, channels_last, {device}:"
    )
    for channels, side in STAGES:
        x = torch.randn(args.batch_size * args.segments, channels, side, side, device=device)
        x = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
        grad = torch.randn_like(x)
        fold = channels // 8

        def slices(x: torch.Tensor = x, fold: int = fold, grad: torch.Tensor = grad) -> object:
            return torch.autograd.grad(shift_with_torch_ops(x, args.segments, fold, 1, -1), x, grad)

        def op(x: torch.Tensor = x, fold: int = fold, grad: torch.Tensor = grad) -> object:
            return torch.autograd.grad(torch.ops.temporal_shift.shift(x, args.segments, fold, 1, -1), x, grad)

        assert torch.equal(slices()[0], op()[0])
        times = interleave({"slices": slices, "op": op}, args.repeats, device)
        report(f" C={channels} {side}x{side}", times, "slices")


def _autocast(device: torch.device, amp: str):
    if amp == "off":
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def time_train(args: argparse.Namespace, device: torch.device) -> None:
    """One SGD step (forward, backward, update) of TSN and of TSM with each shift variant."""
    tsn, tsm = tsn_tsm_pair(arch=args.arch, n_segment=args.segments)
    _, tsm_slices = tsn_tsm_pair(arch=args.arch, n_segment=args.segments)
    use_slices(tsm_slices)
    models = {"tsn": tsn, "tsm-slices": tsm_slices, "tsm-op": tsm}
    fmt = torch.channels_last
    clips = torch.randn(args.batch_size * args.segments, 3, args.size, args.size, device=device)
    clips = clips.contiguous(memory_format=fmt).view(args.batch_size, args.segments, 3, args.size, args.size)
    labels = torch.randint(0, 400, (args.batch_size,), device=device)
    # the same first step for both shift variants, gradients bit for bit
    grads = {}
    for name in ("tsm-slices", "tsm-op"):
        model = models[name].to(device, memory_format=fmt).train()
        model.zero_grad()
        torch.manual_seed(0)  # the same dropout mask
        nn.functional.cross_entropy(model(clips), labels).backward()
        grads[name] = [p.grad.clone() for p in model.parameters()]
    pairs = zip(grads["tsm-slices"], grads["tsm-op"], strict=True)
    assert all(torch.equal(a, b) for a, b in pairs), "gradients differ"

    def step_fn(model: nn.Module) -> Callable[[], object]:
        model = model.to(device, memory_format=fmt).train()
        if args.compile:
            model = torch.compile(model)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

        def step() -> object:
            optimizer.zero_grad(set_to_none=True)
            with _autocast(device, args.amp):
                loss = nn.functional.cross_entropy(model(clips), labels)
            loss.backward()
            optimizer.step()
            return loss

        return step

    runs = {name: step_fn(model) for name, model in models.items()}
    times = interleave(runs, args.repeats, device)
    report(
        f"training step, {args.arch} T={args.segments} {args.size}x{args.size} batch {args.batch_size}, "
        f"amp {args.amp}, {'compiled' if args.compile else 'eager'}, {device}, {torch.get_num_threads()} threads:",
        times,
        "tsn",
    )


def time_inference(args: argparse.Namespace, device: torch.device) -> None:
    """TSN vs TSM with the out-of-place op vs TSM with the in-place inference path."""
    tsn, tsm = tsn_tsm_pair(arch=args.arch, n_segment=args.segments)
    fmt = torch.channels_last
    tsn = tsn.to(device, memory_format=fmt)
    tsm = tsm.to(device, memory_format=fmt)
    shifts = [m for m in tsm.modules() if isinstance(m, TemporalShift)]
    clips = torch.randn(args.batch_size * args.segments, 3, args.size, args.size, device=device)
    clips = clips.contiguous(memory_format=fmt).view(args.batch_size, args.segments, 3, args.size, args.size)

    def tsm_with(inplace: bool) -> Callable[[], object]:
        def run() -> object:
            for m in shifts:
                m.inplace_inference = inplace
            return tsm(clips)

        return run

    runs = {"tsn": lambda: tsn(clips), "tsm-out-of-place": tsm_with(False), "tsm-in-place": tsm_with(True)}
    with torch.inference_mode():
        assert torch.equal(runs["tsm-out-of-place"](), runs["tsm-in-place"]()), "paths differ"
        times = interleave(runs, args.repeats, device)
    report(
        f"inference, {args.arch} T={args.segments} {args.size}x{args.size} batch {args.batch_size}, fp32, "
        f"{device}, {torch.get_num_threads()} threads:",
        times,
        "tsn",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--part",
        action="append",
        choices=["ops", "train", "infer"],
        help="what to time (repeatable; default: all three)",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--amp", choices=["off", "bf16", "fp16"], default="off")
    parser.add_argument("--compile", action="store_true", help="torch.compile the training models")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    for part in args.part or ["ops", "train", "infer"]:
        {"ops": time_ops, "train": time_train, "infer": time_inference}[part](args, device)


if __name__ == "__main__":
    main()
