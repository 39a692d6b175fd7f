"""The shift's cost in bytes, and what that costs at a device's memory bandwidth.

The shift does no arithmetic: its cost is memory traffic. For each shifted layer of the
model this counts the elements of the layer's input (hooks on every `TemporalShift`),
then the bytes each implementation moves:

- out-of-place (training; the op and its Triton kernel): forward reads the input and
  writes the shifted copy (2 x); backward reads the gradient and writes its adjoint
  shift (2 x). Under torch.compile the backward adjoint fuses into the gradient sum
  that exists anyway, which leaves the forward's 2 x;
- in-place (inference): the shifted channels (2/fold_div of the tensor) are moved and
  later moved back: 4 x 2/fold_div, plus the edge frames kept aside (1/T of those);
- the old slice copies in training: the forward's 2 x plus, per CopySlices node, a
  clone of the whole gradient (5 slices: about 5 x 2 x more in backward).

Printed as bytes per step and as milliseconds at the given bandwidth (the floor: no
kernel can move those bytes faster), next to TSN times given on the command line.

    PYTHONPATH=src python benchmarks/shift_cost_model.py --bandwidth-gbs 4800 --batch-size 16 --dtype-bytes 4
"""

from __future__ import annotations

import argparse

import torch

from temporal_shift.models import build_model
from temporal_shift.ops.shift import TemporalShift


def shifted_input_elements(arch: str, n_segment: int, size: int) -> tuple[int, int]:
    """(elements of all shifted layers' inputs for one clip, fold_div) of a TSM model."""
    model = build_model(arch, num_classes=400, n_segment=n_segment).eval()
    total = 0
    fold_div = 8

    def hook(module: TemporalShift, args: tuple[torch.Tensor, ...]) -> None:
        nonlocal total, fold_div
        total += args[0].numel()
        fold_div = module.fold_div

    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, TemporalShift)]
    with torch.no_grad():
        model(torch.zeros(1, n_segment, 3, size, size))
    for handle in handles:
        handle.remove()
    return total, fold_div


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--dtype-bytes", type=int, default=4, help="4 for fp32, 2 for bf16/fp16")
    parser.add_argument(
        "--bandwidth-gbs",
        type=float,
        default=4800.0,
        help="memory bandwidth in GB/s (H100 SXM 3350, H200 4800: peak figures)",
    )
    parser.add_argument("--tsn-ms", type=float, default=None, help="measured TSN time per step, to print ratios")
    args = parser.parse_args()
    elements, fold_div = shifted_input_elements(args.arch, args.segments, args.size)
    one = elements * args.batch_size * args.dtype_bytes  # bytes of all shifted inputs, one pass
    moved = 2 / fold_div
    rows = {
        "out-of-place forward (inference)": 2 * one,
        "in-place forward (inference)": 4 * moved * one * (1 + 1 / args.segments),
        "out-of-place training step (eager: fwd + bwd)": 4 * one,
        "training step, compiled (bwd fused)": 2 * one,
    }
    print(
        f"{args.arch} T={args.segments} {args.size}x{args.size} batch {args.batch_size}, "
        f"{args.dtype_bytes}-byte values, fold_div {fold_div}: shifted inputs "
        f"{elements / 1e6:.2f} M elements per clip, {one / 1e9:.3f} GB per batch"
    )
    print(
        f"{'variant':48s}{'GB moved':>10}{'ms at ' + str(int(args.bandwidth_gbs)) + ' GB/s':>18}"
        + (f"{'x TSN':>8}" if args.tsn_ms else "")
    )
    for name, nbytes in rows.items():
        ms = nbytes / (args.bandwidth_gbs * 1e9) * 1e3
        line = f"{name:48s}{nbytes / 1e9:>10.3f}{ms:>18.3f}"
        if args.tsn_ms:
            line += f"{1 + ms / args.tsn_ms:>8.3f}"
        print(line)


if __name__ == "__main__":
    main()
