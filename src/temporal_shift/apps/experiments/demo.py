"""`tsm demo`: the paper's central claim on the built-in synthetic temporal dataset.

A two-arm experiment on the shared recipe (`recipe`: ResNet-18 from scratch, the synthetic
order-only data, one training recipe): TSN and TSM (`demo_arms`) are trained with the same
data, seed and budget, then tested with `evaluate.evaluate` (one centre clip, centre crop).
The table compares overall top-1, top-1 on the five order-only temporal pairs and on the
appearance control pair, and the order accuracy (`recipe.synthetic_metrics`). TSN averages
per-frame scores and a clip's frames are as likely under its reversed class, so its order
accuracy can only be 50% up to noise; TSM's shows what the shift learned. Params and FLOPs
(equal) and interleaved latency show what the shift costs.

The CPU budget (`demo_budget`) is 3600 clips (2880 to train) and AdamW for 8 epochs of 180
steps, TSN and TSM trained side by side (`side_by_side`), validated every other epoch. On a
GPU the demo trains on 4x the clips (the same 8 epochs: 720 steps each), its batches loaded
by worker processes, and says so.

Why these settings (`benchmarks/synthetic_learnability.py` measures how fast TSM alone learns
each temporal pair of a data variant): TSM learns a pair's order only when the cue is large
against the 4-pixel cells of the 8x8 map where ResNet-18's first shifted layer sees a 32x32
frame, hence the 3x motion; at the default speed the moving pairs were still at chance after
150 steps. The sense of a turn is not visible locally (a clock hand, a needle, a half disc and
an orbiting ball stayed at chance for 225-450 steps), so the rotating classes draw a sail whose
light leading half makes the direction a local cue that is still only in the order: alone it
is learned in 75 steps, among the twelve classes last, which the 8 epochs pay for. On a CPU
`small_maps` (ResNet-18's 1x1 maps at 32x32), fused AdamW and validation every other epoch keep
an epoch cheap. The measured figures, with the command and machine: docs/demo.md.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from temporal_shift.apps.experiments.recipe import (
    DEMO_EPOCHS,
    DEMO_SEGMENTS,
    DEMO_SIZE,
    DEMO_VIDEOS,
    NUM_CLASSES,
    Arm,
    prepare_demo_data,
    train_and_test,
)
from temporal_shift.models.base import ClipClassifier


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


def demo_arms() -> list[Arm]:
    """The demo's two arms: TSN (no shift) and TSM (the default shift), otherwise the same model."""
    return [Arm(label="TSN", model={"shift": False}), Arm(label="TSM", model={"shift": True})]


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
    from temporal_shift.apps.experiments.side_by_side import (
        plan_slots,
        run_side_by_side,
    )

    started = time.perf_counter()
    budget = demo_budget(device, epochs=epochs, num_videos=num_videos)
    budget = dataclasses.replace(
        budget,
        batch_size=budget.batch_size if batch_size is None else batch_size,
        workers=budget.workers if workers is None else workers,
    )
    out = Path(out_dir)
    paths = prepare_demo_data(data_dir, num_videos=budget.num_videos, seed=seed, progress=progress)
    arms = demo_arms()
    slots = plan_slots(budget.device, len(arms), jobs=jobs)
    budget = dataclasses.replace(budget, slots=slots.describe())
    if log is not None:
        log(budget.describe())
    # side by side, two progress bars would overwrite each other: the epoch lines remain
    calls = [
        {
            "arm": arm,
            "data_root": paths.root,
            "out_dir": out / arm.slug,
            "test_dir": out / arm.slug / "test",
            "budget": budget,
            "seed": seed,
            "device": budget.device,
            "workers": budget.workers,
            "progress": progress and slots.runs == 1,
        }
        for arm in arms
    ]
    records = run_side_by_side(train_and_test, calls, slots)
    demo = DemoResult(
        rows=_measure(arms, records),
        history={arm.label: r["history"] for arm, r in zip(arms, records, strict=True)},
        out_dir=out,
        budget=budget,
    )
    if plot:
        demo.plot = _plot_demo(demo, out / "demo.png")
    demo.seconds = time.perf_counter() - started
    return demo


def _measure(arms: list[Arm], records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """The table's row of each arm: its test metrics, params, GFLOPs and training time, and its
    latency, the two models timed in interleaved rounds on this machine."""
    from temporal_shift.apps.bench.overhead import interleaved_latency, summarize
    from temporal_shift.checkpoint.loading import load_model

    rows: dict[str, dict[str, float]] = {}
    models: dict[str, ClipClassifier] = {}
    for arm, record in zip(arms, records, strict=True):
        rows[arm.label] = {
            **record["metrics"],
            "params_m": record["params_m"],
            "gflops": record["flops"] / 1e9,
            "train_seconds": record["train_seconds"],
        }
        models[arm.label] = load_model(record["checkpoint"]).eval()
    clip = torch.randn(1, DEMO_SEGMENTS, 3, DEMO_SIZE, DEMO_SIZE)
    times = interleaved_latency(models, clip, repeats=30, warmup=3)
    for name in rows:
        rows[name]["latency_ms"] = 1000.0 * summarize(times[name])["median"]
    return rows


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
    for i, (name, colour) in enumerate(zip(demo.rows, ("tab:grey", "tab:orange"), strict=True)):
        values = [demo.rows[name][key] for _, key in groups]
        xs = [g + (i - 0.5) * width for g in range(len(groups))]
        bars.bar(xs, values, width, label=name, color=colour)
        for x, v in zip(xs, values, strict=True):
            bars.text(x, v + 1, f"{v:.0f}", ha="center", fontsize=8)
    bars.hlines(100 / 12, -0.5, 2.5, color="k", lw=0.8, ls=":", label="chance (12 classes; order: 50%)")
    bars.hlines(50, 2.5, 3.5, color="k", lw=0.8, ls=":")
    bars.set_xticks(range(len(groups)), [g for g, _ in groups])
    bars.set_ylabel("validation accuracy (%)")
    bars.set_ylim(0, 105)
    bars.set_title("TSN vs TSM, same ResNet-18, data, seed, budget")
    bars.legend(fontsize=8)
    for name, colour in zip(demo.history, ("tab:grey", "tab:orange"), strict=True):
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
