"""Bytes autograd keeps for the backward pass: TSM against TSN with the same weights.

For each model and memory format, one training-mode forward of TSN and of TSM on the same
clips, counting the tensors autograd saves (`torch.autograd.graph.saved_tensors_hooks`),
each storage once: the memory a training step holds at its peak besides weights,
gradients and temporaries, and the only part of it where TSN and TSM can differ. With
``--compile`` the models run under `torch.compile` (Inductor decides what to save).
Deterministic: one measurement, no repetitions. Only public names are used, so the same
script measures any commit.

    PYTHONPATH=src python benchmarks/training_memory.py                  # R50 + MobileNetV2, ~1 minute
    PYTHONPATH=src python benchmarks/training_memory.py --compile --arch resnet18 --size 64
"""

from __future__ import annotations

import argparse

import torch

from temporal_shift.apps.bench.overhead import tsn_tsm_pair


def saved_bytes(forward) -> int:
    """Bytes of the storages of the tensors autograd saves while ``forward()`` runs."""
    storages: dict[tuple[torch.device, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[(t.device, storage.data_ptr())] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        forward()
    return sum(storages.values())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", action="append", help="repeatable; default resnet50 and mobilenet_v2")
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(
        f"saved for backward, T={args.segments}, {args.size}x{args.size}, batch {args.batch_size}, "
        f"{'torch.compile' if args.compile else 'eager'}, torch {torch.__version__}"
    )
    print(f"  {'model':14s} {'layout':14s} {'TSN MiB':>9s} {'TSM MiB':>9s} {'TSM/TSN':>8s}")
    for arch in args.arch or ["resnet50", "mobilenet_v2"]:
        for fmt in (torch.contiguous_format, torch.channels_last):
            tsn, tsm = tsn_tsm_pair(arch=arch, n_segment=args.segments)
            shape = (args.batch_size, args.segments, 3, args.size, args.size)
            frames = torch.randn(shape[0] * shape[1], *shape[2:], generator=torch.Generator().manual_seed(0))
            clips = frames.contiguous(memory_format=fmt).view(shape)
            mib = {}
            for name, model in (("TSN", tsn), ("TSM", tsm)):
                model = model.to(memory_format=fmt).train()
                run = torch.compile(model) if args.compile else model
                if args.compile:
                    run(clips).sum().backward()  # compile forward and backward first
                mib[name] = saved_bytes(lambda run=run, clips=clips: run(clips)) / 2**20
            layout = "channels_last" if fmt is torch.channels_last else "contiguous"
            print(f"  {arch:14s} {layout:14s} {mib['TSN']:9.1f} {mib['TSM']:9.1f} {mib['TSM'] / mib['TSN']:8.4f}")


if __name__ == "__main__":
    main()
