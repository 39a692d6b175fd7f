"""Small-map convolutions vs plain ones on small frames: a training step and one conv's backward.

On 32x32 frames ResNet-18's layer4 works on 1x1 maps, where oneDNN's backward pass of a
zero-padded 3x3 convolution runs the whole kernel though only the centre tap meets the input;
C3D on 4 frames runs conv4 and conv5 on a single frame, where only the middle temporal tap
does, and ECO's 3D part ends on 1x1x1 maps. This times, in interleaved rounds (order rotating, same weights and batch):

- ``conv``: forward + backward of one 512->512 3x3 convolution on a (64, 512, 1, 1) map
  (any other ``--family``: a 3x3x3 one on a (16, 512, 1, 2, 2) clip, C3D's conv5);
- ``step``: one AdamW training step of TSM (or TSN) ResNet-18 (``--family c3d``, ``eco_lite``,
  ``eco_full``: that model), batch 16 x T=4 at 32x32, as `tsm demo` and `tsm reproduce` train it;

with the library's convolutions (``small-map``) and with every one turned back into a plain
`nn.Conv2d`/`nn.Conv3d` (``plain``), and prints medians, IQR and the per-round ratio.

    PYTHONPATH=src python benchmarks/small_map_convs.py --threads 1 --rounds 15
    PYTHONPATH=src python benchmarks/small_map_convs.py --threads 1 --rounds 7 --family c3d
    PYTHONPATH=src python benchmarks/small_map_convs.py --threads 1 --rounds 7 --family eco_full
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from temporal_shift.models.factory import build_model
from temporal_shift.ops.small_maps import SmallMapConv2d, SmallMapConv3d

_PLAIN = {SmallMapConv2d: nn.Conv2d, SmallMapConv3d: nn.Conv3d}


def plain_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose small-map convolutions are plain `nn.Conv2d`/`nn.Conv3d`."""
    plain = copy.deepcopy(model)
    for layer in plain.modules():
        if type(layer) in _PLAIN:
            layer.__class__ = _PLAIN[type(layer)]
    return plain


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, q2, q3 = statistics.quantiles(sorted(values), n=4, method="inclusive")
    return q1, q2, q3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--tsn", action="store_true", help="time TSN instead of TSM")
    parser.add_argument(
        "--family",
        choices=("tsn", "c3d", "eco_lite", "eco_full"),
        default="tsn",
        help="tsn: ResNet-18 TSM/TSN (default); or that comparison model",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    video = args.family != "tsn"  # a 3D model
    conv = (SmallMapConv3d if video else SmallMapConv2d)(512, 512, 3, padding=1, bias=False)
    convs = {"small-map": conv, "plain": plain_copy(conv)}
    x_map = torch.randn(16, 512, 1, 2, 2) if video else torch.randn(64, 512, 1, 1)

    def conv_run(layer):
        def run():
            x = x_map.clone().requires_grad_()
            layer(x).sum().backward()

        return run

    if video:
        arch = "c3d" if args.family == "c3d" else "resnet18"
        model = build_model(arch, family=args.family, num_classes=12, n_segment=4).train()
    else:
        model = build_model("resnet18", num_classes=12, n_segment=4, shift=not args.tsn).train()
    models = {"small-map": model, "plain": plain_copy(model)}
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-3) for name, m in models.items()}
    clips = torch.randn(16, 4, 3, args.size, args.size)
    labels = torch.randint(0, 12, (16,))

    def step_run(name):
        def run():
            loss = F.cross_entropy(models[name](clips), labels)
            optimizers[name].zero_grad()
            loss.backward()
            optimizers[name].step()

        return run

    parts = {
        "conv": {name: conv_run(layer) for name, layer in convs.items()},
        "step": {name: step_run(name) for name in models},
    }
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), {args.rounds} rounds, "
        f"{args.family if video else 'TSN ResNet-18' if args.tsn else 'TSM ResNet-18'} batch 16 x T=4 at "
        f"{args.size}x{args.size}"
    )
    for part, runs in parts.items():
        names = list(runs)
        for name in names:  # warm-up
            runs[name]()
            runs[name]()
        times: dict[str, list[float]] = {name: [] for name in names}
        for r in range(args.rounds):
            for name in names[r % 2 :] + names[: r % 2]:
                start = time.perf_counter()
                runs[name]()
                times[name].append(time.perf_counter() - start)
        for name in names:
            q1, q2, q3 = _quartiles(times[name])
            print(f"{part:>5} {name:>10}: median {1000 * q2:8.1f} ms  IQR {1000 * q1:.1f}..{1000 * q3:.1f}")
        ratios = [a / b for a, b in zip(times["small-map"], times["plain"], strict=True)]
        q1, q2, q3 = _quartiles(ratios)
        print(f"{part:>5} small-map / plain per round: median {q2:.3f}  IQR {q1:.3f}..{q3:.3f}")


if __name__ == "__main__":
    main()
