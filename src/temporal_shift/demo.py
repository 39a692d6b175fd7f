"""`tsm demo`: the paper's central claim on the built-in synthetic temporal dataset.

TSN and TSM are trained with the same small backbone, data, seed and budget; the table
compares overall top-1, top-1 on the order-only temporal pairs (each pair's second class
is the first played backwards, so a single frame cannot tell them apart) and on the
appearance control pair, with params, FLOPs and interleaved CPU latency.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import torch
from torch import Tensor

from temporal_shift.config import TrainConfig
from temporal_shift.data.dataset import VideoDataset
from temporal_shift.models.recognizer import VideoRecognizer
from temporal_shift.train import _datasets, _loader, train

DEMO_SIZE = 32
DEMO_FRAMES = 8  # frames per generated clip
DEMO_SEGMENTS = 4  # T of both models
DEMO_VIDEOS = 600


@dataclasses.dataclass
class DemoResult:
    """Side-by-side numbers of TSN and TSM trained with the same backbone, data, seed and budget."""

    rows: dict[str, dict[str, float]]
    history: dict[str, list[dict[str, float]]]
    out_dir: Path
    plot: Path | None = None

    def table(self) -> str:
        cols = [
            ("val top-1 %", "top1", "{:.1f}"),
            ("temporal pairs %", "temporal_top1", "{:.1f}"),
            ("control pair %", "control_top1", "{:.1f}"),
            ("params (M)", "params_m", "{:.2f}"),
            ("GFLOPs/clip", "gflops", "{:.3f}"),
            ("latency ms (median)", "latency_ms", "{:.1f}"),
            ("train s", "train_seconds", "{:.0f}"),
        ]
        names = list(self.rows)
        width = max(len(c[0]) for c in cols) + 2
        lines = [" " * width + "".join(f"{n:>10}" for n in names)]
        for label, key, fmt in cols:
            lines.append(f"{label:<{width}}" + "".join(f"{fmt.format(self.rows[n][key]):>10}" for n in names))
        return "\n".join(lines)


def _demo_config(data_root: Path, out_dir: Path, *, shift: bool, epochs: int, seed: int, workers: int,
                 batch_size: int, progress: bool) -> TrainConfig:
    from temporal_shift.config import config_from_dict
    from temporal_shift.data.synthetic import CLASSES, TRAIN_FRAMES_LIST, VAL_FRAMES_LIST

    return config_from_dict(
        {
            "model": {"arch": "resnet18", "n_segment": DEMO_SEGMENTS, "shift": shift, "dropout": 0.2},
            "data": {"root": str(data_root), "train_list": TRAIN_FRAMES_LIST, "val_list": VAL_FRAMES_LIST,
                     "num_classes": len(CLASSES), "kind": "frames", "size": DEMO_SIZE, "scale_size": DEMO_SIZE,
                     "scales": [1.0], "flip": False, "batch_size": batch_size, "workers": workers},
            "optim": {"lr": 0.01, "lr_batch": 64, "schedule": "cosine", "warmup_epochs": min(1, epochs - 1), "epochs": epochs,
                      "weight_decay": 1e-4, "clip_grad": 20.0},
            "run": {"out_dir": str(out_dir), "seed": seed, "progress": progress},
        },
        source="tsm demo",
    )


@torch.no_grad()
def _class_predictions(model: VideoRecognizer, dataset: VideoDataset, config: TrainConfig) -> tuple[Tensor, Tensor]:
    model.eval()
    labels, preds = [], []
    for batch in _loader(dataset, list(range(len(dataset))), config, train=False, seed=0):
        labels.append(batch.labels)
        preds.append(model(batch.clips).argmax(1))
    return torch.cat(labels), torch.cat(preds)


def run_demo(
    *,
    out_dir: str | Path = "runs/demo",
    data_dir: str | Path = "data/synthetic_demo",
    epochs: int = 8,
    num_videos: int = DEMO_VIDEOS,
    seed: int = 0,
    workers: int = 1,
    batch_size: int = 16,
    progress: bool = True,
    plot: bool = True,
) -> DemoResult:
    """Generate the synthetic dataset (if absent), train TSN and TSM (ResNet-18, 4 segments
    of 8-frame 32x32 clips) with the same data, seed and budget, and compare them on the validation split:
    overall top-1, top-1 on the order-only temporal pairs and on the appearance control
    pair, params, FLOPs and interleaved CPU latency. Writes ``demo.png`` to ``out_dir``."""
    from temporal_shift.bench import count_flops, count_params, interleaved_latency, summarize
    from temporal_shift.checkpoints import load_model
    from temporal_shift.data.synthetic import CONTROL_PAIRS, TEMPORAL_PAIRS, generate_synthetic

    out = Path(out_dir)
    paths = generate_synthetic(data_dir, num_videos=num_videos, size=DEMO_SIZE, frames=DEMO_FRAMES,
                               seed=seed, workers=max(1, min(2, os.cpu_count() or 1)), progress=progress)
    temporal = [c for pair in TEMPORAL_PAIRS for c in pair]
    control = [c for pair in CONTROL_PAIRS for c in pair]
    rows: dict[str, dict[str, float]] = {}
    history: dict[str, list[dict[str, float]]] = {}
    models: dict[str, VideoRecognizer] = {}
    for name, shift in (("TSN", False), ("TSM", True)):
        config = _demo_config(paths.root, out / name.lower(), shift=shift, epochs=epochs, seed=seed,
                              workers=workers, batch_size=batch_size, progress=progress)
        started = time.perf_counter()
        result = train(config)
        seconds = time.perf_counter() - started
        model = load_model(result.last_checkpoint)
        _, val_ds = _datasets(config)
        labels, preds = _class_predictions(model, val_ds, config)
        hit = preds == labels

        def acc(classes: list[int]) -> float:
            mask = torch.isin(labels, torch.tensor(classes))
            return 100.0 * float(hit[mask].float().mean()) if mask.any() else float("nan")

        clip = torch.zeros(1, DEMO_SEGMENTS, 3, DEMO_SIZE, DEMO_SIZE)
        rows[name] = {
            "top1": 100.0 * float(hit.float().mean()),
            "temporal_top1": acc(temporal),
            "control_top1": acc(control),
            "params_m": count_params(model) / 1e6,
            "gflops": count_flops(model, clip) / 1e9,
            "train_seconds": seconds,
        }
        history[name] = result.history
        models[name] = model
    clip = torch.randn(1, DEMO_SEGMENTS, 3, DEMO_SIZE, DEMO_SIZE)
    times = interleaved_latency(models, clip, repeats=30, warmup=3)
    for name in rows:
        rows[name]["latency_ms"] = 1000.0 * summarize(times[name])["median"]
    demo = DemoResult(rows=rows, history=history, out_dir=out)
    if plot:
        demo.plot = _plot_demo(demo, out / "demo.png")
    return demo


def _plot_demo(demo: DemoResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (bars, curves) = plt.subplots(1, 2, figsize=(11, 4))
    groups = [("overall", "top1"), ("temporal pairs", "temporal_top1"), ("control pair", "control_top1")]
    width = 0.38
    for i, (name, colour) in enumerate(zip(demo.rows, ("tab:grey", "tab:orange"))):
        values = [demo.rows[name][key] for _, key in groups]
        xs = [g + (i - 0.5) * width for g in range(len(groups))]
        bars.bar(xs, values, width, label=name, color=colour)
        for x, v in zip(xs, values):
            bars.text(x, v + 1, f"{v:.0f}", ha="center", fontsize=8)
    bars.axhline(100 / 12, color="k", lw=0.8, ls=":", label="chance (12 classes)")
    bars.set_xticks(range(len(groups)), [g for g, _ in groups])
    bars.set_ylabel("validation top-1 (%)")
    bars.set_ylim(0, 105)
    bars.set_title("TSN vs TSM, same ResNet-18, data, seed, budget")
    bars.legend(fontsize=8)
    for name, colour in zip(demo.history, ("tab:grey", "tab:orange")):
        epochs = [row["epoch"] for row in demo.history[name]]
        curves.plot(epochs, [row["val_top1"] for row in demo.history[name]], "o-", color=colour, label=f"{name} val")
        curves.plot(epochs, [row["train_top1"] for row in demo.history[name]], "--", color=colour,
                    label=f"{name} train")
    curves.set_xlabel("epoch")
    curves.set_ylabel("top-1 (%)")
    curves.set_title("learning curves")
    curves.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
