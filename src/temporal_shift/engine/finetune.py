"""Fine-tuning on your own videos: `finetune(root, source=...)` (``tsm finetune``).

One call runs the whole path from a folder of class folders to a tested model with a model card:

1. prepare: `data.folder.prepare_folder` writes ``OUT/data/{classes,train,val}.txt`` (stratified
   split or the one given as ``ROOT/train`` and ``ROOT/val``; frames extracted with ``extract``);
   with ``flow=True`` the optical flow of every video (`data.flow.prepare_flow`) as well;
2. fine-tune (`train.train`) from published weights or a checkpoint: the model the source holds
   (arch, T, shift, modality) with a new head for your classes, trained with the reference
   release's fine-tuning recipe (`FinetuneRecipe`): SGD, ``lr`` for every ``lr_batch`` clips
   scaled linearly with the batch, the new head at 5x (weights) and 10x (biases) the backbone's
   rate, partial BN, dropout 0.8, steps at 40% and 80% of the epochs;
3. test the best checkpoint with the single-clip, centre-crop protocol (`evaluate.evaluate`:
   ``OUT/test/metrics.json``, ``confusion.png`` ...);
4. write the model card ``OUT/README.md``: data, classes, recipe, accuracy, confusion matrix.

Defaults differ by device (`device_defaults`): on a GPU a batch of 16 with AMP and 25 epochs (the
reference's), on a CPU a batch of 4 and 10 epochs. A flow stream (``flow=True``) starts from a
flow source such as the published ``tsm_r50_kinetics400_flow_8f`` (the release's Kinetics flow model,
"intended for transfer learning"); the flow then needs OpenCV (the ``flow`` extra).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from temporal_shift.checkpoint.loading import LoadedCheckpoint, load_checkpoint
from temporal_shift.data.folder import FolderDataset, prepare_folder
from temporal_shift.data.lists import DEFAULT_TEMPLATE
from temporal_shift.engine.config import TrainConfig, config_from_dict
from temporal_shift.engine.evaluate import EvalProtocol, EvalResult, evaluate
from temporal_shift.engine.train import BEST, LAST, TrainResult, train
from temporal_shift.hub.published import PublishedWeights
from temporal_shift.models.config import ModelConfig, model_name
from temporal_shift.ops.runtime import resolve_device

DATA_DIR = "data"
FLOW_DIR = "flow"
TEST_DIR = "test"
CARD = "README.md"
RESULT_FILE = "finetune.json"


@dataclasses.dataclass(frozen=True)
class FinetuneRecipe:
    """The reference release's fine-tuning recipe (its UCF101-from-Kinetics script,
    ``scripts/finetune_tsm_ucf101_rgb_8f.sh``: ``--lr 0.001 --batch-size 64 --lr_steps 10 20
    --epochs 25 --dropout 0.8``, ``main.py``: 5x/10x head rates for a new dataset, partial BN,
    weight decay 5e-4, gradient norm 20). Its README's rule for other batches: the rate scales
    linearly with the batch size (``lr * batch / lr_batch``)."""

    lr: float = 0.001  # for every lr_batch clips of a step
    lr_batch: int = 64
    momentum: float = 0.9
    weight_decay: float = 5e-4
    dropout: float = 0.8
    partial_bn: bool = True  # only the first BN layer trains
    head_lr: bool = True  # the new head at 5x (weights) / 10x (biases) the rate (fc_lr5)
    step_at: tuple[float, float] = (0.4, 0.8)  # lr x0.1 at these fractions of the epochs (10, 20 of 25)
    clip_grad: float = 20.0

    def lr_steps(self, epochs: int) -> list[int]:
        """Epochs at which the rate drops tenfold: ``step_at`` of ``epochs`` (10 and 20 of 25)."""
        return sorted({s for f in self.step_at if 0 < (s := max(1, round(f * epochs))) < epochs})

    def describe(self, *, batch: int, world: int = 1) -> str:
        """The rule with this run's numbers, as the output and the model card state it."""
        total = batch * world
        lr = self.lr * total / self.lr_batch
        procs = f" x {world} processes" if world > 1 else ""
        head = ", the new head at 5x (weights) / 10x (biases)" if self.head_lr else ""
        return (
            f"SGD, learning rate {self.lr:g} for every {self.lr_batch} clips scaled linearly with the batch "
            f"(the reference recipe): {self.lr:g} x {batch}{procs} / {self.lr_batch} = {lr:.4g}{head}; "
            f"partial BN: {'on' if self.partial_bn else 'off'}, dropout {self.dropout:g}, "
            f"weight decay {self.weight_decay:g}, gradient norm <= {self.clip_grad:g}"
        )


def device_defaults(device: str = "auto") -> dict[str, Any]:
    """Batch, loader workers, AMP and epochs for ``device``: a GPU takes the reference's 25 epochs
    with AMP and a batch of 16; a CPU a batch of 4 and 10 epochs (everything is slower there)."""
    cpus = os.cpu_count() or 1
    if resolve_device(device).type == "cuda":
        return {"batch_size": 16, "workers": min(8, cpus), "amp": True, "epochs": 25}
    return {"batch_size": 4, "workers": min(2, cpus), "amp": False, "epochs": 10}


@dataclasses.dataclass
class FinetuneResult:
    """What `finetune` did and wrote (everything under ``out_dir``)."""

    out_dir: Path
    data: FolderDataset
    config: TrainConfig
    source: str
    recipe: str  # the learning-rate rule with the numbers used
    training: TrainResult
    test: EvalResult
    checkpoint: Path  # the tested checkpoint (best.pt)
    card: Path

    def summary(self) -> str:
        return (
            f"fine-tuned {self.source} on {self.data.num_classes} classes: val top-1 {self.test.top1:.2f}% "
            f"(top-5 {self.test.top5:.2f}%, mean class {self.test.mean_class:.2f}%, "
            f"{self.test.num_videos} videos; chance {100 / self.data.num_classes:.1f}%)\n"
            f"checkpoint: {self.checkpoint}\nmodel card: {self.card}"
        )


def finetune(
    root: str | Path,
    *,
    source: str | Path | PublishedWeights,
    out_dir: str | Path,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    flow: bool = False,
    flow_method: str = "farneback",
    val_fraction: float = 0.2,
    seed: int = 0,
    extract: bool = False,
    size: int | None = None,
    scale_size: int | None = None,
    template: str = DEFAULT_TEMPLATE,
    device: str = "auto",
    workers: int | None = None,
    resume: bool = False,
    recipe: FinetuneRecipe = FinetuneRecipe(),
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> FinetuneResult:
    """Prepare ``root``, fine-tune ``source`` (a checkpoint file or published weights) on it, test
    and write the model card, all into ``out_dir``; see the module docstring. ``lr`` replaces the
    recipe's rate for every ``recipe.lr_batch`` clips (it is still scaled with the batch); ``None``
    values take `device_defaults`. ``resume`` continues an interrupted run in ``out_dir``."""
    out = Path(out_dir)
    if not resume and (out / LAST).is_file():
        raise ValueError(f"{out} already holds a run ({LAST}): pass --resume to continue it, or choose another --out")
    loaded = load_checkpoint(source, progress=progress)
    _check_source(loaded, flow=flow)
    processes = None if workers is None else max(1, workers)  # decoding frames and flow: at least one
    data = prepare_folder(
        root,
        out_dir=out / DATA_DIR,
        val_fraction=val_fraction,
        seed=seed,
        extract=extract,
        template=template,
        workers=processes,
        progress=progress,
    )
    log(data.summary())
    lists = _flow_lists(data, out, method=flow_method, workers=processes, progress=progress) if flow else None
    defaults = device_defaults(device)
    config = finetune_config(
        loaded,
        data,
        out_dir=out,
        lists=lists,
        epochs=epochs or defaults["epochs"],
        batch_size=batch_size or defaults["batch_size"],
        lr=lr,
        size=size,
        scale_size=scale_size,
        template=template,
        device=device,
        workers=defaults["workers"] if workers is None else workers,
        amp=defaults["amp"],
        seed=seed,
        recipe=recipe,
        progress=progress,
    )
    rule = dataclasses.replace(recipe, lr=config.optim.lr).describe(batch=config.data.batch_size)
    log(f"fine-tuning {_source_name(source)} -> {data.num_classes} classes: {rule}")
    training = train(config, resume=resume, finetune_from=None if resume else source)
    checkpoint = out / BEST if (out / BEST).is_file() else out / LAST
    test = _test(checkpoint, data, lists, config=config, device=device, progress=progress)
    log(test.summary())
    result = FinetuneResult(out, data, config, _source_name(source), rule, training, test, checkpoint, out / CARD)
    write_card(result)
    _write_result(result)
    return result


def _source_name(source: str | Path | PublishedWeights) -> str:
    return source.name if isinstance(source, PublishedWeights) else str(source)


def _check_source(loaded: LoadedCheckpoint, *, flow: bool) -> None:
    """A flow stream starts from a flow model, an RGB model from an RGB one."""
    modality = loaded.config.modality
    if flow and modality != "flow":
        raise ValueError(
            f"{loaded.path}: an RGB model; --flow fine-tunes a flow stream: start it from flow weights "
            "(e.g. --weights tsm_r50_kinetics400_flow_8f) or a flow checkpoint"
        )
    if not flow and modality == "flow":
        raise ValueError(f"{loaded.path}: a flow model (modality flow); add --flow to fine-tune the flow stream")


def _flow_lists(data: FolderDataset, out: Path, *, method: str, workers: int | None, progress: bool) -> dict[str, Any]:
    """The optical flow of every video (`prepare_flow`, resumable) and its train/val flow lists."""
    from temporal_shift.data.flow import prepare_flow

    flow_root = out / DATA_DIR / FLOW_DIR
    lists: dict[str, Any] = {"root": flow_root}
    for split, list_file in (("train", data.train_list), ("val", data.val_list)):
        result = prepare_flow(
            list_file,
            root=data.root,
            out_root=flow_root,
            out_list=out / DATA_DIR / f"{split}_flow.txt",
            method=method,  # type: ignore[arg-type]
            workers=workers,
            progress=progress,
        )
        if result.extraction.failed:
            video, reason = result.extraction.failed[0]
            raise ValueError(
                f"{video}: no optical flow ({reason}); {len(result.extraction.failed)} videos failed, listed in "
                f"{result.extraction.failures_file}"
            )
        lists[split] = result.list_file
    return lists


def finetune_config(
    loaded: LoadedCheckpoint,
    data: FolderDataset,
    *,
    out_dir: Path,
    lists: dict[str, Any] | None,
    epochs: int,
    batch_size: int,
    lr: float | None,
    size: int | None,
    scale_size: int | None,
    template: str,
    device: str,
    workers: int,
    amp: bool,
    seed: int,
    recipe: FinetuneRecipe,
    progress: bool,
) -> TrainConfig:
    """The training config of a fine-tuning run: the source's model with a head for ``data``'s
    classes, ``recipe``'s optimisation, the data of ``data`` (or its flow ``lists``)."""
    model: dict[str, Any] = {k: v for k, v in loaded.config.to_dict().items() if k != "num_classes"}
    model.update(dropout=recipe.dropout, partial_bn=recipe.partial_bn)
    size = size or loaded.input_size
    where = lists if lists is not None else {"root": data.root, "train": data.train_list, "val": data.val_list}
    section = {
        "root": str(where["root"]),
        "train_list": str(where["train"]),
        "val_list": str(where["val"]),
        "num_classes": data.num_classes,
        "classes": str(data.classes_file.resolve()),
        "size": size,
        "scale_size": scale_size or max(loaded.scale_size * size // loaded.input_size, size),
        "normalize": loaded.normalize,
        "batch_size": batch_size,
        "workers": workers,
    }
    if lists is None:
        section["template"] = template
    optim = {
        "lr": recipe.lr if lr is None else lr,
        "lr_batch": recipe.lr_batch,
        "momentum": recipe.momentum,
        "weight_decay": recipe.weight_decay,
        "schedule": "step",
        "lr_steps": recipe.lr_steps(epochs),
        "clip_grad": recipe.clip_grad,
        "epochs": epochs,
        "fc_lr5": recipe.head_lr,
    }
    run = {"out_dir": str(out_dir), "seed": seed, "device": device, "amp": amp, "progress": progress}
    return config_from_dict({"model": model, "data": section, "optim": optim, "run": run}, source="finetune")


def _test(
    checkpoint: Path,
    data: FolderDataset,
    lists: dict[str, Any] | None,
    *,
    config: TrainConfig,
    device: str,
    progress: bool,
) -> EvalResult:
    """The tested checkpoint on the val videos: one centre clip, one centre crop."""
    return evaluate(
        [checkpoint],
        list_file=data.val_list,
        root=data.root,
        protocol=EvalProtocol(),
        template=config.data.template,
        batch_size=config.data.batch_size,
        workers=config.data.workers,
        device=device,
        out_dir=Path(config.run.out_dir) / TEST_DIR,
        progress=progress,
        flow_list=None if lists is None else lists["val"],
        flow_root=None if lists is None else lists["root"],
    )


# --- the model card -------------------------------------------------------------------------


def write_card(result: FinetuneResult) -> Path:
    """``README.md`` in the run folder: what was trained on what, how, and how well."""
    c, d, t = result.config, result.data, result.test
    model = c.model_config()
    lines = [
        f"# {model_name(model)}-{model.arch} fine-tuned on {d.source.name}",
        "",
        f"{_describe_model(model)}, fine-tuned from `{result.source}` on {d.num_classes} classes "
        f"by `tsm finetune`. Checkpoint: `{result.checkpoint.name}` (in this folder).",
        "",
        "## Data",
        "",
        f"- videos: `{d.source}` ({'split as given' if d.split == 'given' else 'stratified split'}; "
        f"lists in `{DATA_DIR}/`, paths relative to `{d.root}`)",
        f"- {sum(d.counts['train'])} training and {sum(d.counts['val'])} validation videos",
        *([f"- skipped: {_skipped(d)}"] if d.skipped else []),
        "",
        "| class | train | val | val top-1 % |",
        "|---|---:|---:|---:|",
        *[
            f"| {name} | {d.counts['train'][i]} | {d.counts['val'][i]} | {_percent(t.per_class[i])} |"
            for i, name in enumerate(d.classes)
        ],
        "",
        "## Recipe",
        "",
        f"- {result.recipe}",
        f"- {c.optim.epochs} epochs, batch {c.data.batch_size}, steps (lr x0.1) at epochs "
        f"{', '.join(map(str, c.optim.lr_steps)) or 'none'}; input {c.data.size}x{c.data.size} crops, "
        f"T={model.n_segment}" + (f", flow L={model.flow_length}" if model.modality == "flow" else ""),
        f"- trained for {result.training.epochs_completed} epochs ({result.training.global_step} steps); "
        f"best val top-1 during training {result.training.best_top1:.2f}% (epoch {result.training.best_epoch})",
        "",
        *_accuracy_section(result),
        "## Use",
        "",
        "```bash",
        f"tsm predict clip.mp4 --checkpoint {result.checkpoint}",
        f"tsm predict long.mp4 --checkpoint {result.checkpoint} --window 4 --stride 1 --plot",
        "```",
        "",
    ]
    result.card.write_text("\n".join(lines), encoding="utf-8")
    return result.card


def _accuracy_section(result: FinetuneResult) -> list[str]:
    """The card's accuracy: the protocol, top-1 against chance, whether it is optimistic, the confusion matrix."""
    d, t = result.data, result.test
    optimistic = [
        "",
        f"The checkpoint is the epoch with the best top-1 on these videos ({result.checkpoint.name}), so this "
        "figure is optimistic: for an unbiased one, test it on videos it never saw (`tsm test`).",
    ]
    return [
        "## Accuracy",
        "",
        f"Test protocol: {t.protocol.describe()}, {t.num_videos} validation videos.",
        "",
        f"- top-1 **{t.top1:.2f}%** (chance {100 / d.num_classes:.1f}%), top-5 {t.top5:.2f}%, "
        f"mean class {t.mean_class:.2f}%",
        *(optimistic if result.checkpoint.name == BEST else []),
        "",
        *_confusion_table(t),
        "",
        f"Files: `{TEST_DIR}/metrics.json`, `{TEST_DIR}/per_class.csv`, `{TEST_DIR}/predictions.csv`, "
        f"`{TEST_DIR}/confusion.png`.",
        "",
    ]


def _describe_model(model: ModelConfig) -> str:
    what = f"{model_name(model)} ({model.arch}, T={model.n_segment}"
    if model.modality == "flow":
        what += f", optical flow stacks of L={model.flow_length}"
    return what + ")"


def _percent(value: float) -> str:
    return "-" if value != value else f"{value:.1f}"  # NaN: no val video


def _skipped(d: FolderDataset) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in sorted(d.skipped_counts().items()))


def _confusion_table(t: EvalResult) -> list[str]:
    """The confusion matrix as a table (rows true, columns predicted), up to 20 classes; the PNG always."""
    k = len(t.class_names)
    if k > 20:
        return [f"Confusion matrix: `{TEST_DIR}/confusion.png` ({k} classes)."]
    head = "| true \\ predicted | " + " | ".join(t.class_names) + " |"
    rule = "|---|" + "---:|" * k
    rows = [
        f"| {name} | " + " | ".join(str(int(v)) for v in row) + " |"
        for name, row in zip(t.class_names, t.confusion, strict=True)
    ]
    return ["Confusion matrix (rows: true class, columns: predicted):", "", head, rule, *rows]


def _write_result(result: FinetuneResult) -> None:
    record = {
        "source": result.source,
        "classes": result.data.classes,
        "recipe": result.recipe,
        "epochs": result.training.epochs_completed,
        "checkpoint": str(result.checkpoint),
        "test": result.test.to_dict(),
    }
    (result.out_dir / RESULT_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
