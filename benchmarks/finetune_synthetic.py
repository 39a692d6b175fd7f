"""`tsm finetune` on class folders of synthetic mp4s, then segments of long synthetic videos.

1. A source checkpoint: TSM-R18 (T=4, 32x32) trained with AdamW for ``--pretrain-epochs`` on five
   synthetic classes (class folders written by `generate_class_folders`, lists by `prepare_folder`).
2. `finetune` (the reference fine-tuning recipe, ``--lr`` for 64 clips) on class folders of other
   classes; its test (one centre clip, centre crop) gives the val top-1.
3. ``--videos`` long videos, each a sequence of new clips of the target classes with known
   boundaries on the stride grid, through `predict_timeline` with each (window, stride) of
   ``--windows`` (in frames at 12 fps): the boundary errors, and how many boundaries lie within one
   stride (a video whose segments do not have the true labels counts as a miss for each boundary).

The defaults are the run of tests/test_finetune.py.

    PYTHONPATH=src python benchmarks/finetune_synthetic.py [--targets still_red,moving_down,still_blue]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from temporal_shift.data.encode import write_video
from temporal_shift.data.folder import prepare_folder
from temporal_shift.data.synthetic import CLASSES, DEFAULT_FPS, generate_class_folders, render_sequence
from temporal_shift.engine.config import config_from_dict
from temporal_shift.engine.finetune import finetune
from temporal_shift.engine.timeline import predict_timeline
from temporal_shift.engine.train import train

RENDER = dict(size=32, clutter=False, pair_hues=True, object_scale=2.5)
SOURCE_CLASSES = ("moving_left", "shrinking", "rotating_clockwise", "appearing", "moving_up")


def pretrain(base: Path, *, epochs: int) -> Path:
    videos = base / "videos"
    root = generate_class_folders(videos, classes=SOURCE_CLASSES, videos_per_class=8, seed=1, frames=8, **RENDER)
    data = prepare_folder(root, out_dir=base / "data", progress=False)
    config = config_from_dict(
        {
            "model": {"arch": "resnet18", "n_segment": 4, "dropout": 0.3, "small_maps": True},
            "data": {
                "root": str(data.root),
                "train_list": str(data.train_list),
                "val_list": str(data.val_list),
                "num_classes": data.num_classes,
                "size": 32,
                "scale_size": 32,
                "scales": [1.0],
                "flip": False,
                "batch_size": 4,
                "workers": 0,
            },
            "optim": {"optimizer": "adamw", "lr": 1e-3, "lr_batch": None, "schedule": "cosine", "epochs": epochs},
            "run": {"out_dir": str(base / "run"), "progress": False},
        }
    )
    return train(config).last_checkpoint


def boundaries(checkpoint: Path, targets: list[str], *, videos: int, window: int, stride: int, base: Path) -> dict:
    """Boundary errors (s) over ``videos`` long videos of the target classes."""
    rng = np.random.default_rng(0)
    errors: list[float] = []
    misses = 0
    for v in range(videos):
        names = [targets[i] for i in rng.permutation(len(targets))] + [targets[int(rng.integers(len(targets)))]]
        names = [n for k, n in enumerate(names) if k == 0 or n != names[k - 1]]
        lengths = [int(rng.integers(12, 20)) * stride for _ in names]  # boundaries on the stride grid
        frames = render_sequence([CLASSES.index(n) for n in names], frames_each=lengths, seed=100 + v, **RENDER)
        video = write_video(base / f"long_{v}.mp4", frames, fps=DEFAULT_FPS)
        timeline = predict_timeline(
            video,
            checkpoint=checkpoint,
            window=window / DEFAULT_FPS,
            stride=stride / DEFAULT_FPS,
            min_length=0.5,
            device="cpu",
        )
        truth = np.cumsum(lengths)[:-1] / DEFAULT_FPS
        if [s.name for s in timeline.segments] != names:
            misses += len(truth)
            continue
        errors += np.abs(np.array([s.start for s in timeline.segments[1:]]) - truth).tolist()
    s = stride / DEFAULT_FPS
    within = sum(e <= s + 1e-6 for e in errors)
    return {"errors": errors, "within": within, "total": len(errors) + misses, "stride": s, "misses": misses}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="still_red,moving_down,still_blue")
    parser.add_argument("--videos-per-class", type=int, default=10)
    parser.add_argument("--pretrain-epochs", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.064, help="for 64 clips, scaled with the batch (4)")
    parser.add_argument("--videos", type=int, default=8, help="long videos")
    parser.add_argument("--windows", default="4:2,8:4,8:2", help="window:stride pairs in frames")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    targets = args.targets.split(",")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        source = pretrain(base / "pretrain", epochs=args.pretrain_epochs)
        root = generate_class_folders(
            base / "mine", classes=targets, videos_per_class=args.videos_per_class, seed=2, frames=8, **RENDER
        )
        result = finetune(
            root,
            source=source,
            out_dir=base / "run",
            epochs=args.epochs,
            batch_size=4,
            lr=args.lr,
            val_fraction=0.25,
            device="cpu",
            workers=0,
            progress=False,
            log=lambda line: None,
        )
        t = result.test
        train_videos = sum(result.data.counts["train"])
        print(f"fine-tune: {len(targets)} classes, {train_videos} / {t.num_videos} train/val videos")
        print(f"  val top-1 {t.top1:.1f}% (chance {100 / len(targets):.1f}%), mean class {t.mean_class:.1f}%")
        print(f"  {result.recipe}")
        for pair in args.windows.split(","):
            window, stride = map(int, pair.split(":"))
            b = boundaries(result.checkpoint, targets, videos=args.videos, window=window, stride=stride, base=base)
            e = b["errors"]
            print(
                f"window {window} frames, stride {stride} ({b['stride']:.3f} s): {b['within']}/{b['total']} boundaries "
                f"within one stride; error mean {statistics.mean(e) if e else float('nan'):.3f} s, "
                f"max {max(e) if e else float('nan'):.3f} s; {b['misses']} in videos with wrong segments"
            )
    print(f"{time.perf_counter() - start:.0f} s in all")


if __name__ == "__main__":
    main()
