"""How fast do TSM (and other models) learn each temporal pair of a synthetic-data variant?

The diagnosis behind the synthetic data of `tsm demo` and `tsm reproduce` (docs/demo.md and
docs/reproduce.md have the figures): renders clips in memory with `data.synthetic.render_clip`
under the given knobs, trains each model of ``--models`` (ResNet-18 from scratch, the recipe's
``small_maps``) on them with the demo's optimizer (AdamW lr 1e-3, weight decay 0.05,
half-epoch warm-up, cosine decay, gradient clip 20, dropout 0.2) and prints after every epoch
the validation top-1 and the *order accuracy per temporal pair* (how often a clip's true
class scores above its time-reversed partner), then one line per model. A pair whose order
accuracy stays at 50% has not been learned.

    python benchmarks/synthetic_learnability.py --pair-hues --motion 3 --spin 2.5 --object-scale 1.5 --segments 4
    python benchmarks/synthetic_learnability.py --scene hard --motion 3 --segments 4 --models late_fusion,tsn,tsm

Examples: ``--classes 0,1,2,3,10,11`` trains on the first two temporal pairs and the control
pair only; ``--models`` takes tsm, tsn and the other families of `models.factory.FAMILIES`.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from temporal_shift.data.synthetic import CLASSES, SCENES, TEMPORAL_PAIRS, render_clip, scene_classes
from temporal_shift.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from temporal_shift.models.factory import FAMILIES, build_model
from temporal_shift.ops.runtime import resolve_device


def render(n: int, *, seed: int, classes: list[int], args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` normalised clips (n, frames, 3, size, size), classes in turn, and their indices into ``classes``."""
    clips, labels = [], []
    for i in range(n):
        label = classes[i % len(classes)]
        clip, _ = render_clip(
            label,
            rng=np.random.default_rng([seed, i]),
            size=args.size,
            frames=args.frames,
            clutter=args.clutter,
            motion=args.motion,
            pair_hues=args.pair_hues,
            object_scale=args.object_scale,
            spin=args.spin,
            scene=args.scene,
        )
        clips.append(clip)
        labels.append(classes.index(label))
    x = torch.from_numpy(np.stack(clips)).permute(0, 1, 4, 2, 3).float() / 255
    mean = torch.tensor(IMAGENET_MEAN).view(1, 1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 1, 3, 1, 1)
    return (x - mean) / std, torch.tensor(labels)


def sample(x: torch.Tensor, segments: int, *, train: bool, rng: np.random.Generator) -> torch.Tensor:
    """TSN sampling of ``segments`` frames: a random frame per segment in training, the centre one in test."""
    frames = x.shape[1]
    if segments == frames:
        return x
    length = frames / segments
    if train:
        index = [int(length * k + rng.integers(0, max(1, int(length)))) for k in range(segments)]
    else:
        index = [int(length * k + length / 2) for k in range(segments)]
    return x[:, index]


def pair_order(
    scores: torch.Tensor, labels: torch.Tensor, pairs: list[tuple[int, int]], names: list[str]
) -> dict[str, float]:
    """Order accuracy (%) per pair (label indices), keyed by the name of the pair's first class."""
    out = {}
    for a, b in pairs:
        mask = (labels == a) | (labels == b)
        if not mask.any():
            continue
        true = scores[mask, labels[mask]]
        other = scores[mask][torch.arange(int(mask.sum())), torch.where(labels[mask] == a, b, a)]
        out[names[a]] = 100.0 * float((true > other).float().mean())
    return out


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--segments", type=int, default=8, help="T, frames the model sees (default 8)")
    p.add_argument("--frames", type=int, default=8, help="frames per rendered clip (default 8)")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--scene", choices=SCENES, default="single", help="single (one object per clip), hard or camouflage")
    p.add_argument("--motion", type=float, default=1.0)
    p.add_argument("--spin", type=float, default=1.0)
    p.add_argument("--object-scale", type=float, default=1.0)
    p.add_argument("--pair-hues", action="store_true")
    p.add_argument(
        "--clutter", action="store_true", help="textured backgrounds (and, in the single scene, distractors)"
    )
    p.add_argument(
        "--models",
        default="tsm",
        help="comma-separated: tsm, tsn or another family of models.factory.FAMILIES, each trained in turn "
        "on the same clips (default tsm)",
    )
    p.add_argument("--no-shift", action="store_true", help="TSN instead of TSM (same as --models tsn)")
    p.add_argument("--classes", default="all", help="comma-separated class indices (default all 12)")
    p.add_argument("--train", type=int, default=1200, help="training clips")
    p.add_argument("--val", type=int, default=240, help="validation clips")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument("--json", action="store_true", help="print one JSON line per epoch instead of text")
    args = p.parse_args(argv)
    args.class_list = list(range(len(CLASSES))) if args.classes == "all" else [int(c) for c in args.classes.split(",")]
    if any(not 0 <= c < len(CLASSES) for c in args.class_list) or len(set(args.class_list)) != len(args.class_list):
        p.error(f"--classes: distinct indices in 0..{len(CLASSES) - 1}, got {args.classes}")
    if args.train < args.batch_size:
        p.error(f"--train {args.train} is smaller than one batch ({args.batch_size})")
    args.model_list = ["tsn"] if args.no_shift else args.models.split(",")
    unknown = [m for m in args.model_list if m != "tsm" and m not in FAMILIES]
    if unknown:
        p.error(f"--models: unknown {unknown[0]!r}; expected tsm or one of {', '.join(FAMILIES)}")
    return args


def model_named(name: str, *, num_classes: int, segments: int) -> torch.nn.Module:
    """``tsm`` (ResNet-18 TSM, the recipe's), ``tsn``, or another family with a ResNet-18 trunk
    where it takes one, as `tsm reproduce zoo` builds them."""
    if name in ("tsm", "tsn"):
        family, options = "tsn", {"shift": name == "tsm", "small_maps": True}
    else:
        family, options = name, {}
    arch = "resnet18" if "resnet18" in FAMILIES[family].archs else FAMILIES[family].archs[0]
    return build_model(arch, num_classes=num_classes, n_segment=segments, family=family, dropout=0.2, **options)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse(argv)
    classes = args.class_list
    if args.threads:
        torch.set_num_threads(args.threads)
    data = (
        *render(args.train, seed=1, classes=classes, args=args),
        *render(args.val, seed=2, classes=classes, args=args),
    )
    names = [scene_classes(args.scene)[c] for c in classes]
    pairs = [(classes.index(a), classes.index(b)) for a, b in TEMPORAL_PAIRS if a in classes and b in classes]
    rows = []
    for name in args.model_list:
        rows += train_one(name, data, pairs=pairs, names=names, args=args)
    if len(args.model_list) > 1 and not args.json:
        print("\nafter the last epoch:")
        for row in rows:
            if row["epoch"] == args.epochs:
                order = f"order {row['order_acc']:.1f}%"
                print(f"  {row['model']:>12}: top-1 {row['top1']:.1f}%, {order} ({row['seconds']:.0f} s)")
    return rows


def train_one(name: str, data: tuple, *, pairs: list[tuple[int, int]], names: list[str], args) -> list[dict]:
    """Train model ``name`` from scratch on ``data`` (train clips, labels, val clips, labels); a row per epoch."""
    x_train, y_train, x_val, y_val = data
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    device = resolve_device(args.device)
    model = model_named(name, num_classes=len(names), segments=args.segments).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05, fused=True)  # as `tsm train`
    per_epoch = args.train // args.batch_size
    total, warm = args.epochs * per_epoch, max(1, per_epoch // 2)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm))),
    )
    rows, step, started = [], 0, time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(x_train))
        for b in range(per_epoch):
            idx = order[b * args.batch_size : (b + 1) * args.batch_size]
            clips = sample(x_train[idx], args.segments, train=True, rng=rng).to(device)
            loss = F.cross_entropy(model(clips), y_train[idx].to(device))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 20.0)
            optimizer.step()
            schedule.step()
            step += 1
        model.eval()
        with torch.no_grad():
            scores = torch.cat(
                [
                    model(sample(x_val[i : i + 64], args.segments, train=False, rng=rng).to(device)).cpu()
                    for i in range(0, len(x_val), 64)
                ]
            )
        per_pair = pair_order(scores, y_val, pairs, names)
        row = {
            "model": name,
            "epoch": epoch,
            "step": step,
            "seconds": round(time.perf_counter() - started, 1),
            "top1": 100.0 * float((scores.argmax(1) == y_val).float().mean()),
            "order_acc": float(np.mean(list(per_pair.values()))) if per_pair else float("nan"),
            "order_per_pair": per_pair,
        }
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            pairs_text = " ".join(f"{pair} {value:.0f}" for pair, value in per_pair.items())
            print(
                f"{name} epoch {epoch} step {step} ({row['seconds']:.0f} s): top-1 {row['top1']:.1f}%, order "
                f"{row['order_acc']:.1f}% | per pair: {pairs_text}",
                flush=True,
            )
    return rows


if __name__ == "__main__":
    main()
