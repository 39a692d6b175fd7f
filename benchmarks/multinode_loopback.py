"""Training throughput of two torchrun nodes against one node, on one machine (loopback).

The same `tsm train` run (TSM ResNet-18, T=4, 32x32 frames, total batch 8 clips a step) as
- ``two-nodes``: two agents (``--nnodes 2 --rdzv-backend c10d`` on 127.0.0.1), one process each;
- ``one-node``: one agent of two processes (``--standalone --nproc-per-node 2``);
- ``one-process``: a single process with the whole batch (no DDP);
in interleaved rounds. Each run's clips/s is the median over its epochs after the first (from its
log.csv: clips of the epoch over its mean per-process time); the table gives the median over
rounds with the spread, and each round's two-nodes/one-node ratio. Two nodes on one machine run
the same processes as one node plus a second agent and a TCP rendezvous: the ratio measures what
the multi-node machinery costs, not a second machine's speed.

    PYTHONPATH=src python benchmarks/multinode_loopback.py --rounds 3 --epochs 3 --clips 96
"""

from __future__ import annotations

import argparse
import csv
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

SETUPS = ("two-nodes", "one-node", "one-process")


def make_data(root: Path, clips: int) -> None:
    from temporal_shift.data.encode import write_frame_folder
    from temporal_shift.data.lists import write_frame_list

    rng = np.random.default_rng(0)
    rows = []
    for i in range(clips + 16):
        clip = rng.integers(0, 120, size=(8, 32, 32, 3)).astype(np.uint8)
        clip[..., 0 if i % 2 == 0 else 2] += 120
        write_frame_folder(root / f"v{i:04d}", clip, quality=90)
        rows.append((f"v{i:04d}", 8, i % 2))
    write_frame_list(root / "train.txt", rows[:clips])
    write_frame_list(root / "val.txt", rows[clips:])


def write_config(root: Path, *, epochs: int) -> Path:
    data = {
        "model": {"arch": "resnet18", "n_segment": 4, "dropout": 0.3},
        "data": {
            "root": str(root),
            "train_list": "train.txt",
            "val_list": "val.txt",
            "num_classes": 2,
            "size": 32,
            "scale_size": 32,
            "batch_size": 4,
            "workers": 0,
        },
        "optim": {"lr": 0.02, "lr_batch": 8, "schedule": "cosine", "epochs": epochs},
        "run": {"out_dir": str(root / "unused"), "seed": 1, "progress": False},
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(setup: str, config: Path, out: Path, threads: int) -> float:
    """The run's median clips/s over the epochs after the first."""
    train = ["-m", "temporal_shift.cli", "train", "--config", str(config), f"run.out_dir={out}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if setup == "one-process":
        commands = [[sys.executable, *train, "data.batch_size=8"]]
    elif setup == "one-node":
        commands = [[sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *train]]
    else:
        rdzv = [
            "--rdzv-backend",
            "c10d",
            "--rdzv-endpoint",
            f"127.0.0.1:{free_port()}",
            "--rdzv-id",
            str(time.time_ns()),
        ]
        node = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1", *rdzv, *train]
        commands = [node, node]
    procs = [
        subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for c in commands
    ]
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(f"{setup} failed:\n{err[-2000:]}")
    with (out / "log.csv").open() as f:
        rows = list(csv.DictReader(f))
    return statistics.median(float(r["clips_per_s"]) for r in rows[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--clips", type=int, default=96, help="training clips (a multiple of 8)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_data(root / "data", args.clips)
        config = write_config(root / "data", epochs=args.epochs)
        speeds: dict[str, list[float]] = {s: [] for s in SETUPS}
        for r in range(args.rounds):
            for setup in SETUPS:
                speeds[setup].append(run(setup, config, root / f"{setup}_{r}", args.threads))
            print(f"round {r + 1}: " + ", ".join(f"{s} {speeds[s][-1]:.1f}" for s in SETUPS), flush=True)
    print(
        f"\nclips/s, median of {args.rounds} rounds (min-max); {os.cpu_count()} CPUs, {args.threads} thread(s)/process"
    )
    for s in SETUPS:
        print(f"{s:12s} {statistics.median(speeds[s]):7.1f}  ({min(speeds[s]):.1f}-{max(speeds[s]):.1f})")
    ratios = [a / b for a, b in zip(speeds["two-nodes"], speeds["one-node"], strict=True)]
    print(f"two-nodes / one-node per round: {', '.join(f'{x:.2f}' for x in ratios)}")


if __name__ == "__main__":
    main()
