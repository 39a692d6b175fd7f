"""`tsm serve --demo`: a small causal TSM trained once on the built-in synthetic data.

So that the page works on a fresh machine with nothing else, ``--demo`` trains a causal
(online) TSM ResNet-18 on a small synthetic dataset (`DEMO_SERVE_DATA`: 12 classes of 32x32
clips on plain backgrounds, each pair's object in its own hue, `data.synthetic`), saves it with its class names and
input size
and reuses it afterwards. The budget (`DemoServeBudget`) is about two minutes on a 2-core CPU:
enough to tell the pairs apart (one frame does: each pair has its own hue) and the control pair
(a still red vs a still blue object), and part of the order within the temporal pairs; the model
is a working example of the pipeline, not a good recognizer.

Where it is cached: ``cache_dir`` if given, else ``$TSM_SERVE_CACHE``, else
``$XDG_CACHE_HOME/temporal-shift/serve-demo`` (default ``~/.cache/...``); never inside the
package. A folder holds ``causal.pt``, ``classes.txt``, ``step.onnx`` (for ``--runtime
onnxruntime``, exported on first use) and ``demo.json`` (budget, accuracy, time). A cached
model trained with another budget is retrained.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

# plain backgrounds, and each pair's object in its own hue: one frame tells the pair, so the page
# shows a sensible label after a short training; the order within a temporal pair is what TSM adds
DEMO_SERVE_DATA: dict[str, Any] = {"size": 32, "frames": 8, "clutter": False, "pair_hues": True}
DEMO_SERVE_SEGMENTS = 4
CHECKPOINT_NAME = "causal.pt"
ONNX_NAME = "step.onnx"
INFO_NAME = "demo.json"
CACHE_ENV = "TSM_SERVE_CACHE"


class DemoTrainingInterrupted(KeyboardInterrupt):
    """Training the demo model was stopped (Ctrl-C, SIGTERM): an interruption, not a failure."""


@dataclasses.dataclass(frozen=True)
class DemoServeBudget:
    """Clips generated (80% train), epochs and batch size of the ``--demo`` model."""

    num_videos: int = 1440
    epochs: int = 4
    batch_size: int = 16
    seed: int = 0


def demo_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """Where the ``--demo`` model lives: ``cache_dir``, ``$TSM_SERVE_CACHE`` or the user cache."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return base / "temporal-shift" / "serve-demo"


@dataclasses.dataclass
class DemoModel:
    """The cached ``--demo`` model: checkpoint, class names file, whether it was trained now."""

    checkpoint: Path
    classes: Path
    info: dict[str, Any]
    trained_now: bool

    @property
    def folder(self) -> Path:
        return self.checkpoint.parent

    def onnx(self) -> Path:
        """The streaming step of the checkpoint in ONNX (exported and verified once, then cached)."""
        from temporal_shift.checkpoint.loading import load_online
        from temporal_shift.engine.export import export_online, verify_online_export

        path = self.folder / ONNX_NAME
        if not path.is_file():
            online = load_online(self.checkpoint)
            size = int(self.info["size"])
            tmp = path.with_suffix(".onnx.part")
            export_online(online, tmp, size=size)
            error = verify_online_export(online, tmp, size=size, steps=8)
            if not error < 1e-3:
                tmp.unlink(missing_ok=True)
                raise RuntimeError(f"{path}: the exported step differs from PyTorch (relative error {error:.2e})")
            tmp.replace(path)
        return path


def _config(data_root: Path, out_dir: Path, budget: DemoServeBudget, *, progress: bool):
    from temporal_shift.data.synthetic import CLASSES, CLASSES_FILE, TRAIN_FRAMES_LIST, VAL_FRAMES_LIST
    from temporal_shift.engine.config import config_from_dict

    size = DEMO_SERVE_DATA["size"]
    return config_from_dict(
        {
            "model": {
                "arch": "resnet18",
                "n_segment": DEMO_SERVE_SEGMENTS,
                "shift": True,
                "mode": "causal",
                "dropout": 0.2,
                "small_maps": True,
            },
            "data": {
                "root": str(data_root),
                "train_list": TRAIN_FRAMES_LIST,
                "val_list": VAL_FRAMES_LIST,
                "classes": CLASSES_FILE,
                "num_classes": len(CLASSES),
                "kind": "frames",
                "size": size,
                "scale_size": size,
                "scales": [1.0],
                "flip": False,
                "batch_size": budget.batch_size,
                "workers": 0,
            },
            "optim": {
                "optimizer": "adamw",
                "lr": 2e-3,
                "lr_batch": None,
                "weight_decay": 0.05,
                "schedule": "cosine",
                "warmup_epochs": min(0.5, budget.epochs - 1),
                "epochs": budget.epochs,
                "clip_grad": 20.0,
            },
            "run": {"out_dir": str(out_dir), "seed": budget.seed, "device": "auto", "progress": progress},
        },
        source="tsm serve --demo",
    )


def ensure_demo_model(
    *,
    cache_dir: str | Path | None = None,
    budget: DemoServeBudget = DemoServeBudget(),
    progress: bool = True,
    log=print,
) -> DemoModel:
    """The cached ``--demo`` model, trained first if absent (or trained with another budget).

    ``log`` receives one-line progress messages (where it is cached, how long it took).
    """
    from temporal_shift.data.synthetic import generate_synthetic
    from temporal_shift.engine.train import train

    folder = demo_cache_dir(cache_dir)
    checkpoint, classes, info_path = folder / CHECKPOINT_NAME, folder / "classes.txt", folder / INFO_NAME
    wanted = {"budget": dataclasses.asdict(budget), "data": DEMO_SERVE_DATA, "segments": DEMO_SERVE_SEGMENTS}
    if checkpoint.is_file() and classes.is_file() and info_path.is_file():
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            info = {}
        if {k: info.get(k) for k in wanted} == wanted:
            log(
                f"tsm serve: demo model cached in {folder} (val top-1 {info.get('val_top1', float('nan')):.1f}%); "
                f"delete that folder to retrain"
            )
            return DemoModel(checkpoint, classes, info, trained_now=False)
    folder.mkdir(parents=True, exist_ok=True)
    work = folder / "work"
    shutil.rmtree(work, ignore_errors=True)
    log(
        f"tsm serve: training the demo model once ({budget.num_videos} synthetic clips, {budget.epochs} epochs; "
        f"about 2 minutes on a 2-core CPU), cached in {folder}"
    )
    started = time.perf_counter()
    data = generate_synthetic(
        work / "data",
        num_videos=budget.num_videos,
        seed=budget.seed,
        workers=max(1, min(4, os.cpu_count() or 1)),
        progress=progress,
        **DEMO_SERVE_DATA,
    )
    result = train(_config(data.root, work / "run", budget, progress=progress))
    if result.interrupted:
        raise DemoTrainingInterrupted(f"training the demo model was interrupted; run again to retrain ({work})")
    shutil.copyfile(data.classes, classes)
    for stale in (folder / ONNX_NAME,):
        stale.unlink(missing_ok=True)
    shutil.copyfile(result.last_checkpoint, checkpoint)
    last = result.history[-1] if result.history else {}
    info = {
        **wanted,
        "size": DEMO_SERVE_DATA["size"],
        "seconds": round(time.perf_counter() - started, 1),
        "val_top1": float(last.get("val_top1", float("nan"))),
    }
    info_path.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(work, ignore_errors=True)
    log(
        f"tsm serve: demo model trained in {info['seconds']:.0f} s (val top-1 {info['val_top1']:.1f}%), "
        f"cached in {folder}"
    )
    return DemoModel(checkpoint, classes, info, trained_now=True)
