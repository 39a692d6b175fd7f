"""Metrics: pure functions of the fused per-video scores and the labels.

All accuracies are in percent. Ties between scores are broken towards the lower class index.
A class with no video in the labels has no per-class accuracy (NaN) and is left out of the
mean class accuracy (the mean over the classes that occur; MMAction2 does the same);
predictions of such a class still count as errors of the true class.
"""

from __future__ import annotations

import dataclasses

import numpy as np


def topk_predictions(scores: np.ndarray, k: int) -> np.ndarray:
    """(N, K) scores -> (N, min(k, K)) class indices, best first; ties go to the lower index."""
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"expected (videos, classes) scores, got shape {scores.shape}")
    k = min(k, scores.shape[1])
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    """Percent of videos whose label is among the ``k`` best scores (k is capped at K)."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        raise ValueError("no videos to score")
    top = topk_predictions(scores, k)
    return 100.0 * float((top == labels[:, None]).any(axis=1).mean())


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) counts; row = true class, column = predicted class."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    if labels.shape != predictions.shape:
        raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} differ in shape")
    for name, values in (("label", labels), ("prediction", predictions)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} out of range [0, {num_classes})")
    flat = np.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Percent correct per true class (the diagonal over the row sums); NaN for classes
    with no video."""
    confusion = np.asarray(confusion)
    counts = confusion.sum(axis=1).astype(np.float64)
    hits = np.diag(confusion).astype(np.float64)
    out = np.full(len(counts), np.nan)
    present = counts > 0
    out[present] = 100.0 * hits[present] / counts[present]
    return out


def mean_class_accuracy(confusion: np.ndarray) -> float:
    """Mean of the per-class accuracies of the classes that occur in the labels (percent)."""
    per_class = per_class_accuracy(confusion)
    present = ~np.isnan(per_class)
    if not present.any():
        raise ValueError("no videos to score")
    return float(per_class[present].mean())


@dataclasses.dataclass
class Metrics:
    top1: float
    top5: float
    mean_class: float
    per_class: np.ndarray
    confusion: np.ndarray


def compute_metrics(scores: np.ndarray, labels: np.ndarray, num_classes: int) -> Metrics:
    """Top-1, top-5, mean class accuracy, per-class accuracy and the confusion matrix."""
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[1] != num_classes:
        raise ValueError(f"expected scores of shape (videos, {num_classes}), got {scores.shape}")
    confusion = confusion_matrix(labels, topk_predictions(scores, 1)[:, 0], num_classes)
    return Metrics(
        top1=topk_accuracy(scores, labels, 1),
        top5=topk_accuracy(scores, labels, 5),
        mean_class=mean_class_accuracy(confusion),
        per_class=per_class_accuracy(confusion),
        confusion=confusion,
    )
