"""TSN-RGB, TSN-flow, TSN two-stream and TSM-RGB on the synthetic temporal data, same budget.

The data and recipe are `tsm demo`'s (plain-background 32x32 clips of 8 frames, ResNet-18
from scratch, T=4, AdamW, the same seed), with flow from `tsm prepare flow` (TV-L1 by
default) and L=3 flow fields per segment (8 frames give 7 fields). The two-stream model
is `tsm test` with the TSN-RGB and TSN-flow checkpoints, weights 1 : 1.5 (TSN's). Prints
one table: top-1, top-1 on the order-only pairs and on the control pair, order accuracy
(true class above its time-reversed partner), training seconds.

    python benchmarks/two_stream_synthetic.py --out runs/two_stream --videos 1200 --epochs 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from temporal_shift.apps.experiments.recipe import (
    DEMO_FRAMES,
    DEMO_SIZE,
    demo_config,
    synthetic_metrics,
)
from temporal_shift.data.flow import prepare_flow
from temporal_shift.data.synthetic import (
    TRAIN_FRAMES_LIST,
    VAL_FRAMES_LIST,
    generate_synthetic,
)
from temporal_shift.engine.evaluate import Member, evaluate
from temporal_shift.engine.train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/two_stream"))
    parser.add_argument("--data", type=Path, default=Path("data/synthetic_two_stream"))
    parser.add_argument("--videos", type=int, default=1200)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--flow-length", type=int, default=3)
    parser.add_argument("--method", default="tvl1", choices=("tvl1", "farneback"))
    parser.add_argument("--flow-weight", type=float, default=1.5)
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()

    started = time.perf_counter()
    paths = generate_synthetic(
        args.data,
        num_videos=args.videos,
        size=DEMO_SIZE,
        frames=DEMO_FRAMES,
        seed=0,
        workers=2,
        progress=False,
        clutter=False,
    )
    t0 = time.perf_counter()
    for name in (TRAIN_FRAMES_LIST, VAL_FRAMES_LIST):
        flow = prepare_flow(
            paths.root / name, root=paths.root, out_root=paths.root, method=args.method, workers=2, progress=False
        )
        if flow.extraction.failed:
            raise SystemExit(flow.summary())
    flow_seconds = time.perf_counter() - t0

    runs = {}
    for name, shift, modality in (("TSN-RGB", False, "rgb"), ("TSN-flow", False, "flow"), ("TSM-RGB", True, "rgb")):
        config = demo_config(
            paths.root, args.out / name.lower(), shift=shift, epochs=args.epochs, workers=args.workers, progress=False
        )
        if modality == "flow":
            config = dataclasses.replace(
                config,
                model=dataclasses.replace(config.model, modality="flow", flow_length=args.flow_length),
                data=dataclasses.replace(
                    config.data, train_list="train_frames_flow.txt", val_list="val_frames_flow.txt", kind="auto"
                ),
            )
        t = time.perf_counter()
        result = train(config)
        runs[name] = (result.last_checkpoint, time.perf_counter() - t)

    common = dict(
        list_file=VAL_FRAMES_LIST,
        root=paths.root,
        flow_list="val_frames_flow.txt",
        batch_size=32,
        workers=args.workers,
        progress=False,
    )
    tested = {
        "TSN-RGB": evaluate([runs["TSN-RGB"][0]], **common),
        "TSN-flow": evaluate([runs["TSN-flow"][0]], **common),
        "TSN two-stream": evaluate(
            [Member(runs["TSN-RGB"][0], weight=1.0), Member(runs["TSN-flow"][0], weight=args.flow_weight)], **common
        ),
        "TSM-RGB": evaluate([runs["TSM-RGB"][0]], **common),
    }
    rows = {
        name: {
            **synthetic_metrics(r),
            "train_s": runs["TSN-RGB"][1] + runs["TSN-flow"][1] if name == "TSN two-stream" else runs[name][1],
        }
        for name, r in tested.items()
    }
    header = f"{'':<26}" + "".join(f"{n:>16}" for n in rows)
    lines = [header]
    for label, key, fmt in (
        ("val top-1 %", "top1", "{:.1f}"),
        ("temporal pairs top-1 %", "temporal_top1", "{:.1f}"),
        ("control pair top-1 %", "control_top1", "{:.1f}"),
        ("order accuracy %", "order_acc", "{:.1f}"),
        ("train s", "train_s", "{:.0f}"),
    ):
        lines.append(f"{label:<26}" + "".join(f"{fmt.format(rows[n][key]):>16}" for n in rows))
    budget = (
        f"{args.videos} clips ({tested['TSN-RGB'].num_videos} val), {args.epochs} epochs, T=4, "
        f"flow {args.method} L={args.flow_length} ({flow_seconds:.0f} s to extract), "
        f"two-stream weights 1:{args.flow_weight}; total {time.perf_counter() - started:.0f} s"
    )
    print("\n".join(lines) + "\n" + budget)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "two_stream.json").write_text(json.dumps({"rows": rows, "budget": budget}, indent=2) + "\n")


if __name__ == "__main__":
    main()
