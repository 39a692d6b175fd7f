"""``tsm reproduce online``: causal (online) TSM against bidirectional (offline) TSM and TSN.

Arms: TSN, bidirectional TSM and causal TSM on the shared recipe; the causal model is also
run as a stream (`models.online.OnlineRecognizer`, one frame at a time with its shift
buffers; the running mean of its per-frame scores), its accuracy after each frame
(`streaming_accuracy`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from temporal_shift.apps.experiments.recipe import NUM_CLASSES, Arm, order_accuracy
from temporal_shift.apps.experiments.reproduce import common

NAME = "online"


def arms() -> list[Arm]:
    """TSN, bidirectional TSM (group ``offline``) and causal TSM (group ``online``)."""
    return [
        Arm(label="TSN", model={"shift": False}, group="tsn"),
        Arm(label="TSM bidirectional (offline)", model={"shift": True, "mode": "bidirectional"}, group="offline"),
        Arm(label="TSM causal (online)", model={"shift": True, "mode": "causal"}, group="online"),
    ]


def streaming_accuracy(
    checkpoint: str | Path, *, data_root: Path, device: str = "auto", batch_size: int = 64
) -> dict[str, list[float]]:
    """The causal checkpoint run as a stream (`OnlineRecognizer`: one frame at a time, shift
    buffers carried over) on every validation clip: top-1 and order accuracy (%) of the
    running mean of the per-frame scores after 1, 2, ..., T frames. After T frames this is
    the offline causal model's prediction on the clip."""
    from torch.utils.data import DataLoader

    from temporal_shift.checkpoint.loading import load_checkpoint
    from temporal_shift.data.dataset import VideoDataset
    from temporal_shift.data.sampling import TSNSampler
    from temporal_shift.data.synthetic import TEMPORAL_PAIRS, VAL_FRAMES_LIST
    from temporal_shift.data.transforms import test_transform
    from temporal_shift.models.online import OnlineRecognizer
    from temporal_shift.ops.runtime import resolve_device

    dev = resolve_device(device)
    loaded = load_checkpoint(checkpoint)
    t = loaded.config.n_segment
    online = OnlineRecognizer(loaded.model).to(dev)
    # the clips `evaluate` scores: centre frames of T segments, the checkpoint's test transform
    transform = test_transform(size=loaded.input_size, scale_size=loaded.scale_size, normalize=loaded.normalize)
    dataset = VideoDataset(
        list_file=data_root / VAL_FRAMES_LIST,
        root=data_root,
        kind="frames",
        sampler=TSNSampler(n_segment=t, train=False),
        transform=transform,
        num_classes=NUM_CLASSES,
    )
    sums: list[list[np.ndarray]] = [[] for _ in range(t)]
    labels: list[np.ndarray] = []
    with torch.inference_mode():
        for clips, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            clips = clips.to(dev)
            buffers = online.initial_buffers(batch_size=clips.shape[0], size=tuple(clips.shape[-2:]))
            running = torch.zeros(clips.shape[0], NUM_CLASSES, device=dev)
            for step in range(t):
                logits, *buffers = online(clips[:, step], *buffers)
                running += logits
                sums[step].append((running / (step + 1)).cpu().double().numpy())
            labels.append(y.numpy())
    y = np.concatenate(labels)
    top1, order = [], []
    for step in range(t):
        scores = np.concatenate(sums[step])
        top1.append(100.0 * float(np.mean(scores.argmax(1) == y)))
        order.append(order_accuracy(scores, y, TEMPORAL_PAIRS))
    return {"frames": list(range(1, t + 1)), "top1": top1, "order_acc": order}


def run(setup: common.Setup) -> common.ExperimentResult:
    """Train and test the three arms with every seed, stream every causal run's checkpoint
    (its curve in its record), write the results and the plot."""
    started = time.perf_counter()
    chosen = arms()
    runs = common.run_arms(
        chosen,
        name=NAME,
        setup=setup,
    )
    streams = []
    for record in runs:
        if record["group"] == "online":
            curve = streaming_accuracy(record["checkpoint"], data_root=setup.data_root, device=setup.device)
            record["streaming"] = curve
            streams.append(curve)
    summary = common.summarize_runs(runs, chosen)
    streaming = _streaming_summary(streams)
    table, notes = _table_and_notes(summary, streaming)
    result = setup.result(
        NAME,
        runs=runs,
        summary=summary,
        table=table,
        notes=notes,
        extra={"streaming": streaming},
        seconds=time.perf_counter() - started,
    )
    return common.write_result(result, lambda path: plot(summary, streaming, seeds=len(setup.seeds), path=path))


def _streaming_summary(streams: Sequence[dict[str, list[float]]]) -> dict[str, Any]:
    """The streams' top-1 and order accuracy after each frame over seeds (`common.seed_stats`), and the
    frames it takes to come within 1 point of the final top-1."""
    frames = streams[0]["frames"]
    top1 = [common.seed_stats([c["top1"][i] for c in streams]) for i in range(len(frames))]
    order = [common.seed_stats([c["order_acc"][i] for c in streams]) for i in range(len(frames))]
    final = top1[-1]["mean"]
    needed = next(f for f, s in zip(frames, top1, strict=True) if s["mean"] >= final - 1.0)
    return {"frames": frames, "top1": top1, "order_acc": order, "frames_to_within_1_point": needed}


def _table_and_notes(summary: Sequence[dict[str, Any]], streaming: dict[str, Any]) -> tuple[str, list[str]]:
    """The arms' table (each against offline TSM), the streaming table, and the notes."""
    by_group = {row["group"]: row for row in summary}
    online_row, offline_row = by_group["online"], by_group["offline"]
    frames = streaming["frames"]

    def vs_offline(row: dict[str, Any]) -> str:
        return "-" if row is offline_row else common.compare(row["top1"], offline_row["top1"])

    table = common.markdown_table(summary, extra=[("vs offline TSM (top-1)", vs_offline)])
    table += "\n\nStreaming (causal TSM, one frame at a time; running mean of the per-frame scores):\n\n"
    table += "| frames seen | " + " | ".join(str(f) for f in frames) + " |\n"
    table += "|---|" + "---|" * len(frames) + "\n"
    table += "| top-1 % | " + " | ".join(common.format_stats(s) for s in streaming["top1"]) + " |\n"
    table += "| order acc. % | " + " | ".join(common.format_stats(s) for s in streaming["order_acc"]) + " |"
    final = streaming["top1"][-1]["mean"]
    notes = [
        f"causal - bidirectional TSM (top-1): {common.compare(online_row['top1'], offline_row['top1'])}",
        f"causal TSM - TSN (top-1): {common.compare(online_row['top1'], by_group['tsn']['top1'])}",
        f"the stream is within 1 point of its final top-1 ({final:.1f}%) after "
        f"{streaming['frames_to_within_1_point']} of {len(frames)} frames",
    ]
    return table, notes


def plot(summary: Sequence[dict[str, Any]], streaming: dict[str, Any], *, seeds: int, path: Path) -> Path:
    """The arms' top-1 and order accuracy (mean ± sd over seeds), and the stream's accuracy after
    each frame against the offline model's on the whole clip."""
    offline_row = next(row for row in summary if row["group"] == "offline")
    plt = common.pyplot()
    fig, (bars, curve) = plt.subplots(1, 2, figsize=(11, 4))
    xs = list(range(len(summary)))
    for k, (key, label) in enumerate((("top1", "val top-1"), ("order_acc", "order accuracy"))):
        offs = [x + (k - 0.5) * 0.38 for x in xs]
        bars.bar(
            offs, [r[key]["mean"] for r in summary], 0.38, yerr=[r[key]["sd"] for r in summary], capsize=4, label=label
        )
    bars.set_xticks(xs, [r["arm"].replace(" (", "\n(") for r in summary], fontsize=8)
    bars.set_ylabel(f"% ({common.over_seeds(seeds)})")
    bars.set_ylim(0, 105)
    bars.set_title("online (causal) vs offline TSM, same budget")
    bars.legend(fontsize=8)
    frames, top1, order = streaming["frames"], streaming["top1"], streaming["order_acc"]
    curve.errorbar(
        frames,
        [s["mean"] for s in top1],
        yerr=[s["sd"] for s in top1],
        fmt="o-",
        capsize=3,
        label="streaming causal TSM, top-1",
    )
    curve.errorbar(
        frames,
        [s["mean"] for s in order],
        yerr=[s["sd"] for s in order],
        fmt="^:",
        capsize=3,
        label="streaming causal TSM, order accuracy",
    )
    curve.axhline(
        offline_row["top1"]["mean"], color="tab:orange", ls="--", lw=1, label="offline bidirectional TSM, whole clip"
    )
    curve.set_xlabel("frames seen")
    curve.set_ylabel("%")
    curve.set_ylim(0, 105)
    curve.set_title("streaming: accuracy after each frame")
    curve.legend(fontsize=8)
    return common.save_figure(fig, path)
