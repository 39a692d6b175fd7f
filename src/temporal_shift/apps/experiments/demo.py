"""`tsm demo`: the paper's central claim on the built-in synthetic temporal dataset.

TSN and TSM are trained with the same backbone (ResNet-18 from scratch), data, seed and
budget, then tested with `evaluate.evaluate` (one centre clip, centre crop). The table
compares overall top-1, top-1 on the five order-only temporal pairs (each pair's second
class is the first played backwards, so no single frame tells them apart) and on the
appearance control pair, and the *order accuracy*: on temporal-pair videos, how often
the true class scores above its time-reversed partner. TSN averages per-frame scores and
a clip's frames are as likely under its reversed class, so its order accuracy can only be
50% up to noise; TSM's shows what the shift learned. Params and FLOPs (equal) and
interleaved latency show what the shift costs.

The data (`DEMO_DATA`, also the data of `tsm reproduce`): 8-frame 32x32 clips on plain
backgrounds; both models see T=4 of the 8 frames. Each pair's object has its own hue
(``pair_hues``: one frame tells the pair, so an order-blind model's ceiling is exactly 50%
on every temporal pair), objects move 3x the generator's default speed (``motion``: 1.5-3.75
px a frame), the rotating classes draw a two-tone sail turning 2.5x the default speed
(``spin``: 20-50 degrees a frame) and the main object is 1.5x its default size
(``object_scale``). The CPU budget (`demo_budget`) is 3600 clips (2880 to train) and AdamW
for 8 epochs of 180 steps, TSN and TSM trained side by side (`side_by_side`), validated every
other epoch. On a GPU the demo trains on 4x the clips (the same 8 epochs: 720 steps each),
its batches loaded by worker processes, and says so.

Time: 5.7 minutes from scratch on this project's quiet 2-core CPU on 2026-12-04 (an AMD EPYC
host, epochs of 35-38 s side by side; TSM 99.8% order accuracy). On the host of 2026-12-02: 7
epochs took 7.6 minutes with the data on disk on a quiet day (TSM 94.7% order accuracy, the
rotating pair at 65/82%), and the 8th epoch is what got the rotating pair over there (95/82%,
order accuracy 97.7%); while that machine ran 1.3-1.6x slower (the models' latency 12-16 ms
against 10.4) 8 epochs took 10.0, 10.7 and 11.5 minutes from scratch. Another CPU's float
rounding trains another model from scratch, hence the hosts' different figures. It was 3
epochs in 10.5 minutes until an epoch got 2.3-3x cheaper (192 s to 60-82 s side by side;
`models.small_maps`: ResNet-18's 1x1 maps at 32x32; fused AdamW; `runtime.keep_freed_memory`:
no page faults a step).

On a GPU (one H200, torch 2.11, 2026-12-04) the previous GPU budget, 4x the clips for 2x the
epochs, trained at 700 clips/s (an epoch of 720 steps in 16.5 s): a step took 23 ms of which
the GPU computed 1.7 ms, the rest is the host launching kernels. TSM reached 99.97%
validation top-1 after 4 of its 16 epochs, and the two runs would have taken about 10
minutes; 8 epochs (the CPU's) on the 4x data take about 5 (16 epochs of 16.5-19 s, plus the
data and the tests; estimated from those epochs, not run to the end on the GPU).

Why these settings (issue 12; `benchmarks/synthetic_learnability.py`: TSM alone, in memory,
1200 training clips, batch 16, order accuracy per temporal pair on 240 validation clips):
TSM learns one pair's order at a time, and a pair is learned only when its cue is large
against the 4-pixel cells of the 8x8 map where ResNet-18's first shifted layer sees a 32x32
frame. At the generator's default speed (0.5-1.25 px a frame at 32x32) the moving pairs were
still at chance after 150 steps (T=8, 50% and 41%); at 3x they were at 66% and 99%. With
every class at 3x speed (T=4), moving, growing and fading pairs reached 98-100% in 450-525
steps, but the rotating pair stayed at 47-50%. Trained on the rotating pair alone, a clock
hand, a needle, a ball on a stick, a half disc and a ball orbiting an invisible centre all
stayed at 46-57% for 225-450 steps: the sense of a turn is not visible locally (a conv must
relate each part's motion to where the pivot is, or compare directions over three frames),
while a moving, growing or fading edge looks the same anywhere. The sail's leading half is
a light tint of its colour, so where it sweeps over the background the new pixels are light
in a clockwise clip and dark in the same clip backwards: a local cue, whatever the sail's
angle, and still only in the order (single frames are the same for both classes). Alone,
a sail half as wide as long was still at 52% after 150 steps (87% after 225); three
quarters as wide as long (the sail drawn now), it was at 100% after 75 steps. Among all 12
classes (2880 clips) it is learned last and slowly: 52-67% after 540 steps in five runs, 78%
and 88% after 720 and 900 steps of a 5-epoch run; in the demo 59% after 5 epochs, 74% after
7 and 88% after 8 (95/82; cosine schedules of those lengths). Neither a shaded trailing half, a
whiter leading half, a square sail, a slower spin (1.5), twice the learning rate nor batch 8
got it past 67% by 540 steps (one seed each).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from temporal_shift.engine.config import TrainConfig, config_from_dict
from temporal_shift.engine.evaluate import EvalResult, evaluate
from temporal_shift.engine.train import train
from temporal_shift.models.tsn import VideoRecognizer

DEMO_SIZE = 32
DEMO_FRAMES = 8  # frames per generated clip
DEMO_SEGMENTS = 4  # T of both models
# the synthetic data of the demo and of `tsm reproduce` (generate_synthetic's keywords)
DEMO_DATA: dict[str, Any] = {
    "size": DEMO_SIZE,
    "frames": DEMO_FRAMES,
    "clutter": False,
    "pair_hues": True,
    "motion": 3.0,
    "spin": 2.5,
    "object_scale": 1.5,
}
DEMO_VIDEOS = 3600  # 2,880 training and 720 validation clips
DEMO_EPOCHS = 8
DEMO_EVAL_EVERY = 2  # validate every other epoch (and after the last)
NUM_CLASSES = 12


@dataclasses.dataclass(frozen=True)
class DemoBudget:
    """How much the demo trains: clips generated (80% train), epochs, batch size, and the
    DataLoader worker processes of each run (`side_by_side.loader_workers`: none on a CPU)."""

    device: str
    num_videos: int
    epochs: int
    batch_size: int
    workers: int = 0
    slots: str = ""  # how TSN and TSM share the machine (`side_by_side.Slots.describe`), once planned

    def describe(self) -> str:
        where = "GPU" if self.device.startswith("cuda") else "CPU"
        extra = " (a GPU is present: 4x the data of the CPU budget)" if where == "GPU" else ""
        loading = f"; {self.workers} loader process{'es' if self.workers > 1 else ''}" if self.workers else ""
        return (
            f"budget: {where} ({self.device}), {self.num_videos} clips ({int(self.num_videos * 0.8)} to train), "
            f"{self.epochs} epochs of batch {self.batch_size}{extra}"
            + (f"; {self.slots}" if self.slots else "")
            + loading
        )


def demo_budget(device: str = "auto", *, epochs: int | None = None, num_videos: int | None = None) -> DemoBudget:
    """The demo's budget on ``device``: 8 epochs of 2880 clips on a CPU (5.7 minutes on a quiet
    2-core CPU, TSN and TSM side by side; see the module docstring); on a GPU the demo
    trains on 4x the clips for as many epochs (4x the steps), its batches loaded by worker
    processes (`side_by_side.loader_workers`).
    ``epochs``/``num_videos`` override it."""
    from temporal_shift.apps.experiments.side_by_side import loader_workers
    from temporal_shift.ops.runtime import resolve_device

    dev = resolve_device(device)
    gpu = dev.type == "cuda"
    return DemoBudget(
        device=str(dev),
        num_videos=num_videos or (4 * DEMO_VIDEOS if gpu else DEMO_VIDEOS),
        epochs=epochs or DEMO_EPOCHS,
        batch_size=16,
        workers=loader_workers(str(dev)),
    )


@dataclasses.dataclass
class DemoResult:
    """Side-by-side numbers of TSN and TSM trained with the same backbone, data, seed and budget."""

    rows: dict[str, dict[str, float]]
    history: dict[str, list[dict[str, float]]]
    out_dir: Path
    budget: DemoBudget | None = None
    seconds: float = 0.0
    plot: Path | None = None

    def table(self) -> str:
        cols = [
            ("val top-1 %", "top1", "{:.1f}"),
            ("temporal pairs top-1 %", "temporal_top1", "{:.1f}"),
            ("control pair top-1 %", "control_top1", "{:.1f}"),
            ("order accuracy %", "order_acc", "{:.1f}"),
            ("params (M)", "params_m", "{:.2f}"),
            ("GFLOPs/clip", "gflops", "{:.3f}"),
            ("latency ms (median)", "latency_ms", "{:.2f}"),
            ("train s", "train_seconds", "{:.0f}"),
        ]
        names = list(self.rows)
        width = max(len(c[0]) for c in cols) + 2
        lines = [self.budget.describe()] if self.budget is not None else []
        lines.append(" " * width + "".join(f"{n:>10}" for n in names))
        for label, key, fmt in cols:
            lines.append(f"{label:<{width}}" + "".join(f"{fmt.format(self.rows[n][key]):>10}" for n in names))
        lines.append(
            f"chance: top-1 {100 / NUM_CLASSES:.1f}%; order accuracy 50% (all TSN can reach: it ignores frame order)"
        )
        return "\n".join(lines)


def prepare_demo_data(data_dir: str | Path, *, num_videos: int = DEMO_VIDEOS, seed: int = 0, progress: bool = True):
    """Generate (or reuse) the demo's synthetic dataset (`DEMO_DATA`) in ``data_dir``. A folder
    holding a dataset made with other settings (an older demo's, say) is an error, never overwritten."""
    from temporal_shift.data.synthetic import generate_synthetic

    try:
        return generate_synthetic(
            data_dir,
            num_videos=num_videos,
            seed=seed,
            workers=max(1, min(8, os.cpu_count() or 1)),
            progress=progress,
            **DEMO_DATA,
        )
    except ValueError as exc:
        if "other settings" not in str(exc):
            raise
        raise ValueError(
            f"{data_dir}: holds a synthetic dataset made with other settings than this demo's "
            "(an older version's?); give another folder with --data, or delete this one"
        ) from None


def demo_config(
    data_root: Path,
    out_dir: Path,
    *,
    shift: bool = True,
    model: dict[str, Any] | None = None,
    epochs: int = DEMO_EPOCHS,
    seed: int = 0,
    workers: int = 1,
    batch_size: int = 16,
    device: str = "auto",
    progress: bool = True,
) -> TrainConfig:
    """The training run of one demo model (TSN if ``shift`` is false, else TSM) on the demo
    data; ``model`` overrides other model settings (fold_div, place, mode, family, ...):
    `tsm reproduce` trains every arm of an experiment with this recipe."""
    from temporal_shift.data.synthetic import CLASSES_FILE, TRAIN_FRAMES_LIST, VAL_FRAMES_LIST

    return config_from_dict(
        {
            "model": {
                "arch": "resnet18",
                "n_segment": DEMO_SEGMENTS,
                "shift": shift,
                "dropout": 0.2,
                "small_maps": True,
                **(model or {}),
            },
            "data": {
                "root": str(data_root),
                "train_list": TRAIN_FRAMES_LIST,
                "val_list": VAL_FRAMES_LIST,
                "classes": CLASSES_FILE,
                "num_classes": NUM_CLASSES,
                "kind": "frames",
                "size": DEMO_SIZE,
                "scale_size": DEMO_SIZE,
                "scales": [1.0],
                "flip": False,
                "batch_size": batch_size,
                "workers": workers,
            },
            # from scratch in ~1440 steps: AdamW with a short warm-up and cosine decay
            "optim": {
                "optimizer": "adamw",
                "lr": 1e-3,
                "lr_batch": None,
                "weight_decay": 0.05,
                "schedule": "cosine",
                "warmup_epochs": min(0.5, epochs - 1),
                "epochs": epochs,
                "clip_grad": 20.0,
            },
            # validating every other epoch (and after the last) saves 4 of 8 passes over the 720
            # validation clips, 7 s each on one thread: the test after training scores them anyway
            "run": {
                "out_dir": str(out_dir),
                "seed": seed,
                "device": device,
                "progress": progress,
                "eval_every": DEMO_EVAL_EVERY,
            },
        },
        source="tsm demo",
    )


def order_accuracy(scores: np.ndarray, labels: np.ndarray, pairs) -> float:
    """Percent of videos of the given (first, second) pairs whose true class scores above
    its partner (ties count half); NaN without such videos."""
    partner = {a: b for a, b in pairs} | {b: a for a, b in pairs}
    rows = [i for i, y in enumerate(labels.tolist()) if y in partner]
    if not rows:
        return float("nan")
    true = scores[rows, labels[rows]]
    other = scores[rows, [partner[int(labels[i])] for i in rows]]
    return 100.0 * float(np.mean((true > other) + 0.5 * (true == other)))


def _group_top1(result: EvalResult, classes: list[int]) -> float:
    mask = np.isin(result.labels, classes)
    if not mask.any():
        return float("nan")
    return 100.0 * float(np.mean(result.scores[mask].argmax(1) == result.labels[mask]))


def synthetic_metrics(result: EvalResult) -> dict[str, float]:
    """Top-1 overall, on the temporal pairs and on the control pair, and order accuracy (%)
    of a synthetic-data test result."""
    from temporal_shift.data.synthetic import CONTROL_PAIRS, TEMPORAL_PAIRS

    return {
        "top1": result.top1,
        "temporal_top1": _group_top1(result, [c for pair in TEMPORAL_PAIRS for c in pair]),
        "control_top1": _group_top1(result, [c for pair in CONTROL_PAIRS for c in pair]),
        "order_acc": order_accuracy(result.scores, result.labels, TEMPORAL_PAIRS),
    }


def train_and_test(
    name: str,
    *,
    shift: bool,
    data_root: str | Path,
    out_dir: str | Path,
    budget: DemoBudget,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Train one demo model (``name``: TSN if ``shift`` is false, else TSM) with ``budget`` and
    test it on the validation split: its metrics, history, checkpoint and training seconds.
    A module-level function, so that `run_demo` can run TSN and TSM in processes side by side."""
    from temporal_shift.data.synthetic import VAL_FRAMES_LIST

    config = demo_config(
        Path(data_root),
        Path(out_dir) / name.lower(),
        shift=shift,
        epochs=budget.epochs,
        seed=seed,
        workers=budget.workers,
        batch_size=budget.batch_size,
        device=budget.device,
        progress=progress,
    )
    t0 = time.perf_counter()
    result = train(config)
    seconds = time.perf_counter() - t0
    if result.interrupted:  # Ctrl-C/SIGTERM: the trainer saved last.pt; a half-trained model is no result
        raise KeyboardInterrupt(f"{name}: training interrupted")
    tested = evaluate(
        [result.last_checkpoint],
        list_file=VAL_FRAMES_LIST,
        root=Path(data_root),
        kind="frames",
        batch_size=32,
        workers=budget.workers,
        device=budget.device,
        progress=progress,
        out_dir=Path(out_dir) / name.lower() / "test",
    )
    return {
        "metrics": synthetic_metrics(tested),
        "history": result.history,
        "checkpoint": str(result.last_checkpoint),
        "train_seconds": seconds,
    }


def run_demo(
    *,
    out_dir: str | Path = "runs/demo",
    data_dir: str | Path = "data/synthetic_demo",
    epochs: int | None = None,
    num_videos: int | None = None,
    seed: int = 0,
    workers: int | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    progress: bool = True,
    plot: bool = True,
    jobs: int | None = None,
    log: Callable[[str], None] | None = None,
) -> DemoResult:
    """Generate the synthetic dataset (if absent), train TSN and TSM (ResNet-18, 4 segments
    of 8-frame 32x32 clips) with the same data, seed and budget (`demo_budget` for ``device``; ``epochs``,
    ``num_videos`` and ``batch_size`` override it), test both on the validation split and
    compare them (see the module docstring). On a CPU with two or more cores TSN and TSM train
    side by side, each in its own process with half the cores (`side_by_side`; ``jobs=1``
    trains them one after the other). Each model's run folder under ``out_dir`` gets its
    checkpoints and `evaluate`'s files (metrics, confusion); ``out_dir/demo.png`` the comparison."""
    from temporal_shift.apps.bench.overhead import count_flops, count_params, interleaved_latency, summarize
    from temporal_shift.apps.experiments.side_by_side import plan_slots, run_side_by_side
    from temporal_shift.checkpoint.loading import load_model

    started = time.perf_counter()
    budget = demo_budget(device, epochs=epochs, num_videos=num_videos)
    if batch_size is not None:
        budget = dataclasses.replace(budget, batch_size=batch_size)
    if workers is not None:
        budget = dataclasses.replace(budget, workers=workers)
    out = Path(out_dir)
    paths = prepare_demo_data(data_dir, num_videos=budget.num_videos, seed=seed, progress=progress)
    names = (("TSN", False), ("TSM", True))
    slots = plan_slots(budget.device, len(names), jobs=jobs)
    budget = dataclasses.replace(budget, slots=slots.describe())
    if log is not None:
        log(budget.describe())
    # side by side, two progress bars would overwrite each other: the epoch lines remain
    calls = [
        {
            "name": name,
            "shift": shift,
            "data_root": str(paths.root),
            "out_dir": str(out),
            "budget": budget,
            "seed": seed,
            "progress": progress and slots.runs == 1,
        }
        for name, shift in names
    ]
    done = run_side_by_side(train_and_test, calls, slots)
    rows: dict[str, dict[str, float]] = {}
    history: dict[str, list[dict[str, float]]] = {}
    models: dict[str, VideoRecognizer] = {}
    for (name, _), record in zip(names, done):
        model = load_model(record["checkpoint"])
        clip = torch.zeros(1, DEMO_SEGMENTS, 3, DEMO_SIZE, DEMO_SIZE)
        rows[name] = {
            **record["metrics"],
            "params_m": count_params(model) / 1e6,
            "gflops": count_flops(model, clip) / 1e9,
            "train_seconds": record["train_seconds"],
        }
        history[name] = record["history"]
        models[name] = model.eval()
    clip = torch.randn(1, DEMO_SEGMENTS, 3, DEMO_SIZE, DEMO_SIZE)
    times = interleaved_latency(models, clip, repeats=30, warmup=3)
    for name in rows:
        rows[name]["latency_ms"] = 1000.0 * summarize(times[name])["median"]
    demo = DemoResult(rows=rows, history=history, out_dir=out, budget=budget)
    if plot:
        demo.plot = _plot_demo(demo, out / "demo.png")
    demo.seconds = time.perf_counter() - started
    return demo


def _plot_demo(demo: DemoResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (bars, curves) = plt.subplots(1, 2, figsize=(11, 4))
    groups = [
        ("overall\ntop-1", "top1"),
        ("temporal pairs\ntop-1", "temporal_top1"),
        ("control pair\ntop-1", "control_top1"),
        ("order accuracy\n(vs reversed class)", "order_acc"),
    ]
    width = 0.38
    for i, (name, colour) in enumerate(zip(demo.rows, ("tab:grey", "tab:orange"))):
        values = [demo.rows[name][key] for _, key in groups]
        xs = [g + (i - 0.5) * width for g in range(len(groups))]
        bars.bar(xs, values, width, label=name, color=colour)
        for x, v in zip(xs, values):
            bars.text(x, v + 1, f"{v:.0f}", ha="center", fontsize=8)
    bars.hlines(100 / 12, -0.5, 2.5, color="k", lw=0.8, ls=":", label="chance (12 classes; order: 50%)")
    bars.hlines(50, 2.5, 3.5, color="k", lw=0.8, ls=":")
    bars.set_xticks(range(len(groups)), [g for g, _ in groups])
    bars.set_ylabel("validation accuracy (%)")
    bars.set_ylim(0, 105)
    bars.set_title("TSN vs TSM, same ResNet-18, data, seed, budget")
    bars.legend(fontsize=8)
    for name, colour in zip(demo.history, ("tab:grey", "tab:orange")):
        epochs = [row["epoch"] for row in demo.history[name]]
        validated = [row for row in demo.history[name] if not math.isnan(row["val_top1"])]
        curves.plot(
            [row["epoch"] for row in validated],
            [row["val_top1"] for row in validated],
            "o-",
            color=colour,
            label=f"{name} val",
        )
        curves.plot(
            epochs, [row["train_top1"] for row in demo.history[name]], "--", color=colour, label=f"{name} train"
        )
    curves.set_xlabel("epoch")
    curves.xaxis.get_major_locator().set_params(integer=True)
    curves.set_ylabel("top-1 (%)")
    curves.set_title("learning curves")
    curves.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
