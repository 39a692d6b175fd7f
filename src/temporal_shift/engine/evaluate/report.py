"""What an evaluation reports: `EvalResult` (metrics, fused scores, protocol, members), its
JSON form and one-paragraph summary, and the files `evaluate` writes from it.

``write_results`` writes ``metrics.json``, ``per_class.csv``, ``predictions.csv`` (video,
true label, top-5 labels, names and fused scores), ``confusion.npy`` (rows: true class,
columns: predicted) and ``confusion.png``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from temporal_shift.engine.evaluate.metrics import topk_predictions
from temporal_shift.engine.evaluate.protocol import EvalProtocol


@dataclasses.dataclass
class EvalResult:
    """What `evaluate` measured. Accuracies in percent; ``scores`` are the fused per-video
    scores (probabilities for softmax fusion, logits for logits fusion)."""

    top1: float
    top5: float
    mean_class: float
    per_class: np.ndarray  # (K,), NaN for classes without videos
    confusion: np.ndarray  # (K, K) int, rows true, columns predicted
    scores: np.ndarray  # (N, K)
    labels: np.ndarray  # (N,)
    videos: list[str]  # list paths, in list order
    class_names: list[str]
    protocol: EvalProtocol
    members: list[dict[str, Any]]  # checkpoint, weight (normalised), arch, n_segment, shift, modality
    skipped: list[str]  # reasons for videos left out (on_error="skip")
    seconds: float
    files: dict[str, Path] = dataclasses.field(default_factory=dict)

    @property
    def num_videos(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def views_per_video(self) -> int:
        return self.protocol.views

    def to_dict(self) -> dict[str, Any]:
        """JSON-able metrics and settings (no per-video scores)."""
        return {
            "top1": self.top1,
            "top5": self.top5,
            "mean_class_accuracy": self.mean_class,
            "videos": self.num_videos,
            "classes": self.num_classes,
            "views_per_video": self.views_per_video,
            "protocol": dataclasses.asdict(self.protocol),
            "members": [{k: str(v) if isinstance(v, Path) else v for k, v in m.items()} for m in self.members],
            "skipped": list(self.skipped),
            "seconds": round(self.seconds, 3),
            "per_class_accuracy": {
                name: (None if math.isnan(acc) else acc)
                for name, acc in zip(self.class_names, self.per_class.tolist(), strict=True)
            },
        }

    def summary(self) -> str:
        members = " + ".join(
            f"{m['checkpoint']} ({m['arch']}, T={m['n_segment']}"
            + (f", flow L={m['flow_length']}" if m.get("modality") == "flow" else "")
            + (f", weight {m['weight']:.3g}" if len(self.members) > 1 else "")
            + ")"
            for m in self.members
        )
        lines = [
            f"model: {members}",
            f"protocol: {self.protocol.describe()}",
            f"videos: {self.num_videos}" + (f" ({len(self.skipped)} unreadable, left out)" if self.skipped else ""),
            f"top-1 {self.top1:.2f}%  top-5 {self.top5:.2f}%  mean class {self.mean_class:.2f}%",
        ]
        return "\n".join(lines)


def write_predictions_csv(result: EvalResult, path: str | Path, *, k: int = 5) -> Path:
    """One row per video: video, true label and name, then the top-k labels, names, scores."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    top = topk_predictions(result.scores, k)
    k = top.shape[1]
    header = ["video", "label", "name"] + [f"{f}_{i}" for i in range(1, k + 1) for f in ("pred", "pred_name", "score")]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for video, label, row, score in zip(result.videos, result.labels.tolist(), top, result.scores, strict=True):
            cells: list[Any] = [video, label, result.class_names[label]]
            for j in row.tolist():
                cells += [j, result.class_names[j], f"{score[j]:.6g}"]
            w.writerow(cells)
    return path


def write_per_class_csv(result: EvalResult, path: str | Path) -> Path:
    path = Path(path)
    counts = result.confusion.sum(axis=1)
    hits = np.diag(result.confusion)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["label", "name", "videos", "correct", "accuracy"])
        for i, name in enumerate(result.class_names):
            acc = result.per_class[i]
            w.writerow([i, name, int(counts[i]), int(hits[i]), "" if math.isnan(acc) else f"{acc:.4f}"])
    return path


def plot_confusion(
    confusion: np.ndarray, class_names: Sequence[str], path: str | Path, *, title: str = "confusion matrix"
) -> Path:
    """Draw the row-normalised confusion matrix (recall per true class) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    confusion = np.asarray(confusion, dtype=np.float64)
    k = len(confusion)
    rows = confusion.sum(axis=1, keepdims=True)
    normalised = np.divide(confusion, rows, out=np.zeros_like(confusion), where=rows > 0)
    side = min(max(4.0, 0.3 * k + 2.0), 24.0)
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    image = ax.imshow(normalised, vmin=0.0, vmax=1.0, cmap="Blues", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if k <= 40:
        ax.set_xticks(range(k), labels=list(class_names), rotation=90, fontsize=7)
        ax.set_yticks(range(k), labels=list(class_names), fontsize=7)
        if k <= 15:
            for i in range(k):
                for j in range(k):
                    if confusion[i, j]:
                        ax.text(
                            j,
                            i,
                            str(int(confusion[i, j])),
                            ha="center",
                            va="center",
                            fontsize=7,
                            color="white" if normalised[i, j] > 0.5 else "black",
                        )
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_results(result: EvalResult, out_dir: str | Path) -> dict[str, Path]:
    """Write metrics.json, per_class.csv, predictions.csv, confusion.npy and confusion.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "metrics": out / "metrics.json",
        "per_class": out / "per_class.csv",
        "predictions": out / "predictions.csv",
        "confusion": out / "confusion.npy",
        "confusion_png": out / "confusion.png",
    }
    files["metrics"].write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    write_per_class_csv(result, files["per_class"])
    write_predictions_csv(result, files["predictions"])
    np.save(files["confusion"], result.confusion)
    plot_confusion(
        result.confusion,
        result.class_names,
        files["confusion_png"],
        title=f"top-1 {result.top1:.1f}%, mean class {result.mean_class:.1f}% "
        f"({result.num_videos} videos, {result.views_per_video} views each)",
    )
    return files
