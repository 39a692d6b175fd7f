"""The one training recipe of the experiments on the built-in synthetic data (`demo`, `reproduce`).

An experiment trains *arms* (`Arm`: a label and its model settings) and nothing else differs
between them: every arm trains with `demo_config` (ResNet-18 from scratch, T=4 of 8-frame
32x32 clips, AdamW with a short warm-up and cosine decay, validation every other epoch) on
the same data (`DEMO_DATA`, made by `prepare_demo_data`), is tested with `evaluate.evaluate`
(one centre clip, centre crop) and scored with `synthetic_metrics`: top-1 overall, on the
five order-only temporal pairs (each pair's second class is the first played backwards, so
no single frame tells them apart) and on the appearance control pair, and the *order
accuracy* (`order_accuracy`: on temporal-pair videos, how often the true class scores above
its time-reversed partner). `train_and_test` is one arm with one seed.

The data: 8-frame 32x32 clips on plain backgrounds; the models see T=4 of the 8 frames. Each
pair's object has its own hue (``pair_hues``: one frame tells the pair, so an order-blind
model's ceiling is exactly 50% on every temporal pair), objects move 3x the generator's
default speed (``motion``: 1.5-3.75 px a frame), the rotating classes draw a two-tone sail
turning 2.5x the default speed (``spin``: 20-50 degrees a frame) and the main object is 1.5x
its default size (``object_scale``).

Why these settings: TSM learns a pair's order only when the cue is large against the 4-pixel
cells of the 8x8 map where ResNet-18's first shifted layer sees a 32x32 frame (hence the 3x
motion), and the sense of a turn is not visible locally, so the rotating classes draw a sail
whose light leading half makes the direction a local cue that is still only in the order.
`benchmarks/synthetic_learnability.py` measures how fast TSM learns each pair of a variant;
the figures, with the command and machine, are in docs/demo.md.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from temporal_shift.engine.config import TrainConfig, config_from_dict

if TYPE_CHECKING:
    from temporal_shift.engine.evaluate import EvalResult

DEMO_SIZE = 32
DEMO_FRAMES = 8  # frames per generated clip
DEMO_SEGMENTS = 4  # T of every arm
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
# the harder variant (`tsm reproduce --data hard`): the same classes' structure (five order-only
# pairs and an appearance control pair) acted out by a square and a circle among look-alike moving
# distractors, so that the order cue is a local relation (`data.synthetic`'s hard scene); same size,
# frames and motion as the demo's so that the recipe and budgets carry over
HARD_DATA: dict[str, Any] = {
    "scene": "hard",
    "size": DEMO_SIZE,
    "frames": DEMO_FRAMES,
    "clutter": False,
    "motion": 3.0,
}
# the hard data at 64x64, the objects 1.5 times the size (`tsm reproduce --data hard64`): TSM did
# not learn the hard scene's order at 32x32; at 64x64 it learned the same relations with the
# actors alone, in about 2500 steps, and the hard scene itself needs more steps than 4320
# (docs/reproduce.md): give it --epochs, on a GPU
HARD64_DATA: dict[str, Any] = {**HARD_DATA, "size": 64, "object_scale": 1.5}
# the camouflage scene (`tsm reproduce --data camouflage`): the same pairs' structure, a disc cut
# from a random-dot texture like its background's, seen only by how it moves (`data.synthetic`'s
# camouflage scene): within a pair no frame tells one class from the other, nor the disc from the
# background; the dots' hue names the pair (``pair_hues``), as the demo's objects' does, so that an
# order-blind model's ceiling is 50% on every temporal pair here too
CAMOUFLAGE_DATA: dict[str, Any] = {
    "scene": "camouflage",
    "size": DEMO_SIZE,
    "frames": DEMO_FRAMES,
    "clutter": False,
    "pair_hues": True,
    "motion": 3.0,
}
DATA_VARIANTS: dict[str, dict[str, Any]] = {
    "demo": DEMO_DATA,
    "hard": HARD_DATA,
    "hard64": HARD64_DATA,
    "camouflage": CAMOUFLAGE_DATA,
}
DEMO_VIDEOS = 3600  # 2,880 training and 720 validation clips
DEMO_EPOCHS = 8
DEMO_EVAL_EVERY = 2  # validate every other epoch (and after the last)
NUM_CLASSES = 12


@dataclasses.dataclass(frozen=True)
class Arm:
    """One model variant of an experiment: a label and its `ModelConfig` settings."""

    label: str
    model: dict[str, Any]
    group: str = ""  # e.g. the shift proportion, for grouped plots

    @property
    def slug(self) -> str:
        keep = "".join(c if c.isalnum() else "_" for c in self.label.lower())
        return "_".join(part for part in keep.split("_") if part)


class TrainingBudget(Protocol):
    """What an experiment's budget gives each run of the recipe (`demo.DemoBudget`, `reproduce.Budget`)."""

    @property
    def epochs(self) -> int: ...

    @property
    def batch_size(self) -> int: ...


def recipe_settings(data: str = "demo") -> dict[str, Any]:
    """The data (a variant of `DATA_VARIANTS`) and training settings every arm shares (those not in a budget)."""
    return {
        "data": {"variant": data, **DATA_VARIANTS[data]},
        "arch": "resnet18",
        "n_segment": DEMO_SEGMENTS,
        "optimizer": "adamw lr 1e-3 wd 0.05, cosine, warm-up 0.5 epoch, clip 20",
        "dropout": 0.2,
    }


def prepare_data(
    data_dir: str | Path,
    *,
    variant: str = "demo",
    num_videos: int = DEMO_VIDEOS,
    seed: int = 0,
    progress: bool = True,
):
    """Generate (or reuse) a synthetic dataset of `DATA_VARIANTS` (``demo``: `DEMO_DATA`, ``hard``:
    `HARD_DATA`, ``hard64``: `HARD64_DATA`, ``camouflage``: `CAMOUFLAGE_DATA`) in ``data_dir``. A
    folder holding a dataset made with other settings (an older version's, say) is an error, never overwritten."""
    from temporal_shift.data.synthetic import generate_synthetic

    if variant not in DATA_VARIANTS:
        raise ValueError(f"unknown synthetic data {variant!r}; expected one of {', '.join(DATA_VARIANTS)}")
    try:
        return generate_synthetic(
            data_dir,
            num_videos=num_videos,
            seed=seed,
            workers=max(1, min(8, os.cpu_count() or 1)),
            progress=progress,
            **DATA_VARIANTS[variant],
        )
    except ValueError as exc:
        if "other settings" not in str(exc):
            raise
        raise ValueError(
            f"{data_dir}: holds a synthetic dataset made with other settings than the {variant} data's "
            "(an older version's?); give another folder with --data, or delete this one"
        ) from None


def prepare_demo_data(data_dir: str | Path, *, num_videos: int = DEMO_VIDEOS, seed: int = 0, progress: bool = True):
    """Generate (or reuse) the demo's synthetic dataset (`DEMO_DATA`) in ``data_dir`` (`prepare_data`)."""
    return prepare_data(data_dir, variant="demo", num_videos=num_videos, seed=seed, progress=progress)


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
    size: int = DEMO_SIZE,
) -> TrainConfig:
    """The recipe's training run of one model on the demo data: TSN if ``shift`` is false, else
    TSM; ``model`` overrides other model settings (fold_div, place, mode, family, ...); ``size``:
    the frames' (`frame_size` of the data)."""
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
            "data": _demo_data(data_root, batch_size=batch_size, workers=workers, size=size),
            "optim": _demo_optim(epochs),
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


def _demo_data(data_root: Path, *, batch_size: int, workers: int, size: int) -> dict[str, Any]:
    """The demo data's section of a training config: the synthetic frame lists, no augmentation."""
    from temporal_shift.data.synthetic import CLASSES_FILE, TRAIN_FRAMES_LIST, VAL_FRAMES_LIST

    return {
        "root": str(data_root),
        "train_list": TRAIN_FRAMES_LIST,
        "val_list": VAL_FRAMES_LIST,
        "classes": CLASSES_FILE,
        "num_classes": NUM_CLASSES,
        "kind": "frames",
        "size": size,
        "scale_size": size,
        "scales": [1.0],
        "flip": False,
        "batch_size": batch_size,
        "workers": workers,
    }


def _demo_optim(epochs: int) -> dict[str, Any]:
    """From scratch in ~1440 steps: AdamW with a short warm-up and cosine decay."""
    return {
        "optimizer": "adamw",
        "lr": 1e-3,
        "lr_batch": None,
        "weight_decay": 0.05,
        "schedule": "cosine",
        "warmup_epochs": min(0.5, epochs - 1),
        "epochs": epochs,
        "clip_grad": 20.0,
    }


def arm_config(
    arm: Arm,
    *,
    data_root: Path,
    out_dir: Path,
    budget: TrainingBudget,
    seed: int,
    device: str = "auto",
    workers: int | None = None,
    progress: bool = True,
) -> TrainConfig:
    """The training run of one arm: the recipe (`demo_config`) with the arm's model settings and
    the budget's epochs and batch size, at the frame size of the data in ``data_root``
    (`frame_size`); nothing else differs between arms. ``workers`` (DataLoader
    processes) defaults to none on a CPU, where batches load in the training process, and to
    worker processes on a GPU (`side_by_side.loader_workers`)."""
    from temporal_shift.apps.experiments.side_by_side import loader_workers
    from temporal_shift.ops.runtime import resolve_device

    if workers is None:
        workers = loader_workers(str(resolve_device(device)))
    model = dict(arm.model)
    shift = bool(model.pop("shift", True))
    return demo_config(
        data_root,
        out_dir,
        shift=shift,
        model=model,
        epochs=budget.epochs,
        seed=seed,
        workers=workers,
        batch_size=budget.batch_size,
        device=device,
        progress=progress,
        size=frame_size(data_root),
    )


def frame_size(data_root: Path) -> int:
    """The frame size of the synthetic dataset in ``data_root`` (its meta.json); `DEMO_SIZE` for a
    folder without one (the recipe's data not yet generated there). A dataset of frames that are
    not square is an error naming the file."""
    from temporal_shift.data.synthetic import META_FILE

    meta = Path(data_root) / META_FILE
    if not meta.exists():
        return DEMO_SIZE
    try:
        settings = json.loads(meta.read_text())["settings"]
        height, width = int(settings["height"]), int(settings["width"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{meta}: not a synthetic dataset's meta.json ({type(exc).__name__}: {exc})") from None
    if height != width:
        raise ValueError(f"{meta}: frames of {height}x{width}; the recipe trains on square frames")
    return height


def order_accuracy(scores: np.ndarray, labels: np.ndarray, pairs) -> float:
    """Percent of videos of the given (first, second) pairs whose true class scores above
    its partner (ties count half); NaN without such videos."""
    partner = dict(pairs) | {b: a for a, b in pairs}
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


def synthetic_metrics(result: EvalResult) -> dict[str, Any]:
    """Top-1 overall, on the temporal pairs and on the control pair, and order accuracy (%)
    of a synthetic-data test result, over all temporal pairs and (``order_acc_by_pair``) of
    each, keyed ``"first-second"`` by the pair's class indices."""
    from temporal_shift.data.synthetic import CONTROL_PAIRS, TEMPORAL_PAIRS

    return {
        "top1": result.top1,
        "temporal_top1": _group_top1(result, [c for pair in TEMPORAL_PAIRS for c in pair]),
        "control_top1": _group_top1(result, [c for pair in CONTROL_PAIRS for c in pair]),
        "order_acc": order_accuracy(result.scores, result.labels, TEMPORAL_PAIRS),
        "order_acc_by_pair": {
            f"{a}-{b}": order_accuracy(result.scores, result.labels, [(a, b)]) for a, b in TEMPORAL_PAIRS
        },
    }


def evaluate_on_val(
    checkpoint: str | Path,
    *,
    data_root: Path,
    device: str = "auto",
    workers: int = 0,
    progress: bool = False,
    out_dir: Path | None = None,
) -> EvalResult:
    """A trained arm's checkpoint tested as every arm is: `evaluate.evaluate` on the validation
    split of ``data_root`` (one centre clip of T segments, centre crop, batch 32); score it with
    `synthetic_metrics`."""
    from temporal_shift.data.synthetic import VAL_FRAMES_LIST
    from temporal_shift.engine.evaluate import evaluate

    return evaluate(
        [checkpoint],
        list_file=VAL_FRAMES_LIST,
        root=Path(data_root),
        kind="frames",
        batch_size=32,
        workers=workers,
        device=device,
        progress=progress,
        out_dir=out_dir,
    )


def train_and_test(
    arm: Arm,
    *,
    data_root: Path,
    out_dir: Path,
    budget: TrainingBudget,
    seed: int,
    device: str = "auto",
    workers: int | None = None,
    progress: bool = True,
    test_dir: Path | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Train one arm with one seed (`arm_config`, in ``out_dir``; with ``resume`` continuing from
    its last.pt there) through `train.train`, test it on
    the validation split with `evaluate.evaluate` (its files in ``test_dir`` if given) and return
    its record: ``metrics`` (`synthetic_metrics`), ``params_m``, ``flops`` (a clip), ``train_seconds``,
    ``steps``, ``checkpoint`` and ``history``. A module-level function, so that experiments can run
    arms in processes side by side (`side_by_side`)."""
    from temporal_shift.apps.bench.overhead import count_flops, count_params
    from temporal_shift.checkpoint.loading import load_model
    from temporal_shift.engine.train import train

    config = arm_config(
        arm,
        data_root=data_root,
        out_dir=out_dir,
        budget=budget,
        seed=seed,
        device=device,
        workers=workers,
        progress=progress,
    )
    started = time.perf_counter()
    result = train(config, resume=resume)
    seconds = time.perf_counter() - started
    if result.interrupted:  # Ctrl-C/SIGTERM: the trainer saved last.pt; a half-trained arm is no result
        raise KeyboardInterrupt(f"{arm.label}, seed {seed}: training interrupted (resumable: {result.last_checkpoint})")
    tested = evaluate_on_val(
        result.last_checkpoint,
        data_root=data_root,
        device=device,
        workers=config.data.workers,
        progress=progress,
        out_dir=test_dir,
    )
    net = load_model(result.last_checkpoint).eval()
    clip = torch.zeros(1, config.model.n_segment, 3, config.data.size, config.data.size)
    return {
        "metrics": synthetic_metrics(tested),
        "params_m": count_params(net) / 1e6,
        "flops": count_flops(net, clip),
        "train_seconds": seconds,
        "steps": result.global_step,
        "checkpoint": str(result.last_checkpoint),
        "history": result.history,
    }
