"""Evaluation: the paper's test protocols, score fusion, ensembles and metrics.

- `protocol`: which views of a video are scored (`EvalProtocol`: clips x crops) and how
  view scores (`fuse_views`) and ensemble members (`fuse_members`) are fused;
- `metrics`: pure functions of the fused scores and labels (`topk_accuracy`,
  `confusion_matrix`, `per_class_accuracy`, `mean_class_accuracy`, `compute_metrics`);
- `runner`: the scoring loop (`score_videos`, shared with the trainer's validation),
  ensemble members (`Member`) and `evaluate(...)`;
- `report`: what an evaluation returns (`EvalResult`) and the files it writes
  (``metrics.json``, ``per_class.csv``, ``predictions.csv``, ``confusion.npy``, ``confusion.png``).

`evaluate(...)` runs everything and returns an `EvalResult`. The names below are importable
from ``temporal_shift.engine.evaluate`` directly.
"""

from temporal_shift.engine.evaluate.metrics import (
    Metrics,
    compute_metrics,
    confusion_matrix,
    mean_class_accuracy,
    per_class_accuracy,
    topk_accuracy,
    topk_predictions,
)
from temporal_shift.engine.evaluate.protocol import (
    CLIP_PROTOCOLS,
    CROPS,
    FUSIONS,
    ClipProtocol,
    EvalProtocol,
    Fusion,
    fuse_members,
    fuse_views,
    normalize_weights,
)
from temporal_shift.engine.evaluate.report import (
    EvalResult,
    plot_confusion,
    write_per_class_csv,
    write_predictions_csv,
    write_results,
)
from temporal_shift.engine.evaluate.runner import (
    Member,
    VideoScores,
    evaluate,
    score_videos,
)

__all__ = [
    "CLIP_PROTOCOLS",
    "CROPS",
    "FUSIONS",
    "ClipProtocol",
    "EvalProtocol",
    "EvalResult",
    "Fusion",
    "Member",
    "Metrics",
    "VideoScores",
    "compute_metrics",
    "confusion_matrix",
    "evaluate",
    "fuse_members",
    "fuse_views",
    "mean_class_accuracy",
    "normalize_weights",
    "per_class_accuracy",
    "plot_confusion",
    "score_videos",
    "topk_accuracy",
    "topk_predictions",
    "write_per_class_csv",
    "write_predictions_csv",
    "write_results",
]
