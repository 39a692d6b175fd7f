"""Training loop: `train(config)` for single-process, CUDA/CPU, AMP and torchrun DDP runs.

What a run writes to ``config.run.out_dir`` (only rank 0 writes):

    config.yaml    the resolved config (loadable with `config.load_config`)
    last.pt        our checkpoint format + ``train_state`` (optimizer, scheduler, scaler,
                   epoch, step, best metric, RNG states of every rank): `--resume` source;
                   + ``class_names`` when ``data.classes`` is set
    best.pt        weights with the best validation top-1 so far (+ config, class_names)
    log.csv        one row per epoch (same numbers as the TensorBoard scalars)
    tb/            TensorBoard event files

Reproducibility: the training order comes from a DistributedSampler seeded with
``run.seed`` and the epoch, each sample's crop/frames from the dataset's
(seed, epoch, index) generators, and dropout from torch's RNG, whose state is saved in
checkpoints. A run resumed from ``last.pt`` (written at the end of every epoch, when
interrupted by SIGINT/SIGTERM, or at ``run.stop_after_steps``) therefore continues like
the uninterrupted run, also from the middle of an epoch.

Under ``torchrun`` (``RANK``/``WORLD_SIZE`` in the environment) the model is wrapped in
DistributedDataParallel (gloo on CPU, nccl on CUDA), each process reads its share of
the data, and metrics are summed over processes. ``data.batch_size`` is per process.

On a CPU, the process keeps freed memory for reuse (`runtime.keep_freed_memory`): without it
glibc faults every step's large tensors in afresh, 11% of a small-frame step.

The loop in parts: `_build` (datasets, model, optimizer, schedule: a `_Trainer`),
`_train_epoch` (the epoch's `_step`s) and `_end_epoch` (validate with the scoring loop of
``tsm test``, log, write best.pt and last.pt). `RunState` is where the run is: what
last.pt saves (`_train_state`) and ``--resume`` restores (`_restore`).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from temporal_shift.checkpoint.backbone import load_backbone_weights
from temporal_shift.checkpoint.format import CheckpointError, load_state_strict, read_checkpoint, save_checkpoint
from temporal_shift.checkpoint.loading import Published, load_checkpoint
from temporal_shift.data.dataset import VideoDataset, collate_skipping
from temporal_shift.data.factory import build_dataset, build_sampler
from temporal_shift.data.lists import DEFAULT_TEMPLATE, read_classes
from temporal_shift.engine.config import TrainConfig, save_config
from temporal_shift.engine.evaluate import score_videos, topk_predictions
from temporal_shift.models.base import ClipClassifier
from temporal_shift.models.config import model_name
from temporal_shift.models.factory import model_from_config
from temporal_shift.models.optim_groups import param_groups
from temporal_shift.ops.runtime import (
    Distributed,
    distributed,
    ignore_sigint,
    keep_freed_memory,
    resolve_device,
    unwrap,
)

LAST = "last.pt"
BEST = "best.pt"
CONFIG_FILE = "config.yaml"
LOG_CSV = "log.csv"
TB_DIR = "tb"
CSV_FIELDS = (
    "epoch",
    "step",
    "lr",
    "train_loss",
    "train_top1",
    "val_loss",
    "val_top1",
    "val_top5",
    "clips_per_s",
    "epoch_seconds",
)


@dataclasses.dataclass
class TrainResult:
    """What `train` did: where, how far, and the per-epoch metrics."""

    out_dir: Path
    epochs_completed: int
    global_step: int
    best_top1: float
    best_epoch: int
    history: list[dict[str, float]]
    interrupted: bool
    last_checkpoint: Path
    best_checkpoint: Path | None


# --- pieces ---------------------------------------------------------------------------


def _datasets(config: TrainConfig) -> tuple[VideoDataset, VideoDataset]:
    """The training and validation data of ``config`` (`data.factory.build_dataset`); a flow
    model's lists are the flow lists of `tsm prepare flow` (reference layout)."""
    c = config.data
    model = config.model_config()
    if model.modality == "flow" and (c.template != DEFAULT_TEMPLATE or c.kind == "videos"):
        raise ValueError(
            "model.modality is flow: data.train_list/val_list are flow lists of tsm prepare flow "
            "(flow_x_/flow_y_ folders), so data.template and data.kind: videos do not apply; leave them unset"
        )

    def dataset(list_file: Path, *, train: bool) -> VideoDataset:
        sampler = build_sampler(
            sampling=c.sampling,
            n_segment=model.n_segment,
            train=train,
            frames_per_segment=model.frames_per_segment,
            dense_window=c.dense_window,
        )
        return build_dataset(
            modality=model.modality,
            list_file=list_file,
            root=c.root,
            sampler=sampler,
            train=train,
            size=c.size,
            scales=c.scales,
            flip=c.flip,
            scale_size=c.scale_size,
            normalize=c.normalize,
            flow_length=model.flow_length,
            kind=c.kind,
            template=c.template,
            flow_template=c.flow_template,
            decoder=c.decoder,
            num_classes=c.num_classes,
            seed=config.run.seed,
            on_error=c.on_error,
        )

    return dataset(config.train_list_path(), train=True), dataset(config.val_list_path(), train=False)


def _class_names(config: TrainConfig) -> list[str] | None:
    """The names of ``data.classes``, checked against ``data.num_classes`` (None if unset)."""
    path = config.classes_path()
    if path is None:
        return None
    names = read_classes(path)
    if len(names) != config.data.num_classes:
        raise ValueError(
            f"{path}: {len(names)} class names but data.num_classes is {config.data.num_classes}; "
            "fix data.classes or data.num_classes"
        )
    return names


def _loader(dataset: VideoDataset, indices: list[int], config: TrainConfig, *, train: bool, seed: int) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=config.data.batch_size,
        sampler=indices,
        num_workers=config.data.workers,
        collate_fn=collate_skipping,
        drop_last=train,
        pin_memory=False,
        # a private generator: creating the iterator must not consume torch's global RNG
        generator=torch.Generator().manual_seed(seed),
        worker_init_fn=ignore_sigint,
    )


def _optimizer(groups: list[dict[str, Any]], config: TrainConfig, lr: float) -> torch.optim.Optimizer:
    o = config.optim
    if o.optimizer == "adamw":
        # fused: one kernel over all parameters instead of a dozen ops per tensor; on one CPU thread
        # ResNet-18's AdamW step took 26 ms fused vs 146 ms per tensor, a fifth of a 32x32 training step
        return torch.optim.AdamW(groups, lr=lr, betas=(o.momentum, 0.999), fused=True)
    return torch.optim.SGD(groups, lr=lr, momentum=o.momentum, nesterov=o.nesterov)


def _lr_lambda(config: TrainConfig, steps_per_epoch: int):
    o = config.optim
    total = o.epochs * steps_per_epoch
    warmup = round(o.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if o.schedule == "cosine":
            progress = min((step - warmup) / max(total - warmup, 1), 1.0)
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        epoch = step // steps_per_epoch
        return o.lr_gamma ** sum(epoch >= s for s in o.lr_steps)

    return factor


def effective_lr(config: TrainConfig, world_size: int) -> float:
    """``optim.lr`` scaled linearly with the total batch size (``lr_batch`` clips -> ``lr``)."""
    if config.optim.lr_batch is None:
        return config.optim.lr
    return config.optim.lr * config.data.batch_size * world_size / config.optim.lr_batch


def _finetune(model: ClipClassifier, path: str | Path | Published) -> bool:
    """Load another run's weights; the head is kept fresh when its shape differs. Returns
    whether the head was replaced."""
    # ours keep their own T (the weights do not depend on it); other layouts get the run's
    state = load_checkpoint(path, default_n_segment=model.config.n_segment).model.state_dict()
    own = model.state_dict()
    head = [k for k in own if k.startswith("head.")]
    replace = any(k not in state or state[k].shape != own[k].shape for k in head)
    if replace:
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
        state.update({k: own[k] for k in head})
    load_state_strict(model, state, source=f"{path} (--finetune-from)")
    return replace


@contextmanager
def _stop_on_signals() -> Iterator[dict[str, str | None]]:
    """Turn SIGINT/SIGTERM into a flag the loop checks after each step."""
    flag: dict[str, str | None] = {"signal": None}

    def handler(signum: int, frame: Any) -> None:
        if flag["signal"] is not None:  # second Ctrl-C: give up immediately
            raise KeyboardInterrupt
        flag["signal"] = signal.Signals(signum).name

    import threading

    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _check_resumable(saved: dict[str, Any], config: TrainConfig, path: Path) -> None:
    now = config.to_dict()
    checked = (("model", None), ("data", ("num_classes",)), ("optim", ("optimizer",)), ("run", ("seed",)))
    for section, keys in checked:
        for key in keys or now[section]:
            old = saved.get(section, {}).get(key, "sgd" if key == "optimizer" else None)  # older runs: sgd
            if old != now[section][key]:
                raise ValueError(
                    f"{path}: cannot resume, {section}.{key} was {old!r} in that run and is "
                    f"{now[section][key]!r} now; use the same config or a new run.out_dir"
                )


# --- run state: what resume restores and checkpoints save ------------------------------


@dataclasses.dataclass
class EpochMeter:
    """This process's sums over the steps of the epoch under way."""

    loss_sum: float = 0.0
    correct: float = 0.0
    count: float = 0.0
    seconds: float = 0.0

    def add(self, *, loss: float, correct: int, count: int, seconds: float) -> None:
        self.loss_sum += loss * count
        self.correct += correct
        self.count += count
        self.seconds += seconds


@dataclasses.dataclass
class RunState:
    """Where a run is. ``last.pt`` saves it (with the optimizer, scheduler, scaler and every
    process's RNG, `_train_state`) and ``--resume`` restores it (`_restore`): after a
    finished epoch ``step_in_epoch`` is 0 and ``epoch`` the next one, after a stop inside
    an epoch they say where to continue."""

    epoch: int = 0  # the epoch under way (0-based) = epochs completed
    step_in_epoch: int = 0  # optimizer steps done in it
    global_step: int = 0
    best_top1: float = -1.0
    best_epoch: int = -1  # 1-based, -1: none yet
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)  # one row per epoch
    meter: EpochMeter = dataclasses.field(default_factory=EpochMeter)


@dataclasses.dataclass
class _Trainer:
    """What the run is built from (`_build`); fixed while it runs."""

    config: TrainConfig
    d: Distributed
    device: torch.device
    model: nn.Module  # the weights (any model family) (saved in checkpoints)
    net: nn.Module  # what a step calls: the model, or DDP around it
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    trainable: list[nn.Parameter]
    train_ds: VideoDataset
    val_ds: VideoDataset
    sampler: DistributedSampler  # this process's share of the training order
    steps_per_epoch: int
    base_lr: float
    amp_dtype: torch.dtype | None  # autocast dtype, None without run.amp
    extra: dict[str, Any]  # class_names for every checkpoint, when data.classes is set
    replaced_head: bool  # --finetune-from gave a new head
    writer: Any = None  # TensorBoard SummaryWriter, on the main process

    @property
    def out(self) -> Path:
        return Path(self.config.run.out_dir)


# --- the loop -------------------------------------------------------------------------


def train(
    config: TrainConfig, *, resume: bool = False, finetune_from: str | Path | Published | None = None
) -> TrainResult:
    """Train (or resume) the run described by ``config``; see the module docstring."""
    if resume and finetune_from is not None:
        raise ValueError("--resume and --finetune-from cannot be combined (resume restores the run's own weights)")
    with distributed(config.run.device) as d:
        return _train(config, d, resume=resume, finetune_from=finetune_from)


def _train(
    config: TrainConfig, d: Distributed, *, resume: bool, finetune_from: str | Path | Published | None
) -> TrainResult:
    saved = _read_last(config) if resume else None
    t = _build(config, d, saved=saved, finetune_from=finetune_from)
    if t.device.type == "cpu":
        keep_freed_memory()
    state = _restore(t, saved) if saved is not None else RunState()
    _open_log(t, state, resumed=saved is not None)
    last = t.out / LAST
    interrupted = False
    with _stop_on_signals() as stop:
        while state.epoch < config.optim.epochs:
            reason = _train_epoch(t, state, stop)
            if reason is not None and state.step_in_epoch < t.steps_per_epoch:  # inside the epoch
                _save_last(t, state)
                _say(
                    t,
                    f"stopped ({reason}) at epoch {state.epoch + 1} step {state.step_in_epoch}/"
                    f"{t.steps_per_epoch}; resumable checkpoint: {last}",
                )
                interrupted = True
                break
            _end_epoch(t, state)
            if reason is not None:
                interrupted = state.epoch < config.optim.epochs
                if interrupted:
                    _say(t, f"stopped ({reason}) after epoch {state.epoch}; resumable checkpoint: {last}")
                break
    if t.writer is not None:
        t.writer.close()
    return TrainResult(
        out_dir=t.out,
        epochs_completed=len(state.history),
        global_step=state.global_step,
        best_top1=state.best_top1,
        best_epoch=state.best_epoch,
        history=state.history,
        interrupted=interrupted,
        last_checkpoint=last,
        best_checkpoint=t.out / BEST if state.best_epoch > 0 else None,
    )


# --- build ----------------------------------------------------------------------------


def _device(config: TrainConfig, d: Distributed) -> torch.device:
    """``run.device``; under torchrun ``cuda`` is this process's GPU, made the current one."""
    try:
        device = resolve_device(config.run.device, local_rank=d.local_rank if d.world > 1 else None)
    except ValueError as exc:
        raise ValueError(f"run.device: {exc}") from None
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    return device


def _read_last(config: TrainConfig) -> dict[str, Any]:
    """The run's last.pt, checked to be a resumable state of this config."""
    path = Path(config.run.out_dir) / LAST
    if not path.is_file():
        raise FileNotFoundError(f"{path}: nothing to resume (no last checkpoint in run.out_dir)")
    data = read_checkpoint(path)
    if "train_state" not in data:
        raise CheckpointError(f"{path}: has no training state to resume from")
    _check_resumable(data["train_state"]["config"], config, path)
    return data


def _build(
    config: TrainConfig, d: Distributed, *, saved: dict[str, Any] | None, finetune_from: str | Path | Published | None
) -> _Trainer:
    """Datasets, model (initial, fine-tuned or resumed weights), optimizer, schedule, scaler."""
    device = _device(config, d)
    class_names = _class_names(config)
    torch.manual_seed(config.run.seed)
    train_ds, val_ds = _datasets(config)
    model = model_from_config(config.model_config())
    if config.model.backbone_weights and saved is None and finetune_from is None:
        load_backbone_weights(model, config.model.backbone_weights)
    replaced_head = _finetune(model, finetune_from) if finetune_from is not None else False
    if saved is not None:
        load_state_strict(model, saved["state_dict"], source=str(Path(config.run.out_dir) / LAST))
    if config.model.sync_bn and d.world > 1:
        if device.type != "cuda":
            raise ValueError("model.sync_bn=true needs CUDA (torch's SyncBatchNorm has no CPU kernel); set it to false")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)

    base_lr = effective_lr(config, d.world)
    groups = [
        {**g, "lr": base_lr * g["lr_mult"], "weight_decay": config.optim.weight_decay * g["decay_mult"]}
        for g in param_groups(model, fc_lr5=config.optim.fc_lr5)
    ]
    optimizer = _optimizer(groups, config, base_lr)
    sampler: DistributedSampler[int] = DistributedSampler(
        train_ds, num_replicas=d.world, rank=d.rank, shuffle=True, seed=config.run.seed
    )
    steps_per_epoch = len(sampler) // config.data.batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"{train_ds.list_file}: {len(train_ds)} training samples are fewer than one batch "
            f"(data.batch_size={config.data.batch_size} x {d.world} processes)"
        )
    net: nn.Module = model
    if d.world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return _Trainer(
        config=config,
        d=d,
        device=device,
        model=model,
        net=net,
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config, steps_per_epoch)),
        scaler=torch.amp.GradScaler(device.type, enabled=config.run.amp and device.type == "cuda"),
        trainable=[p for g in groups for p in g["params"]],
        train_ds=train_ds,
        val_ds=val_ds,
        sampler=sampler,
        steps_per_epoch=steps_per_epoch,
        base_lr=base_lr,
        amp_dtype=(torch.bfloat16 if device.type == "cpu" else torch.float16) if config.run.amp else None,
        extra={} if class_names is None else {"class_names": class_names},
        replaced_head=replaced_head,
    )


def _restore(t: _Trainer, saved: dict[str, Any]) -> RunState:
    """The run state of last.pt; the optimizer, schedule, scaler and this process's RNG
    continue where they were."""
    s = saved["train_state"]
    t.optimizer.load_state_dict(s["optimizer"])
    t.scheduler.load_state_dict(s["scheduler"])
    t.scaler.load_state_dict(s["scaler"])
    ranks = s["rank_states"]
    mine = ranks[t.d.rank] if len(ranks) == t.d.world else ranks[0]
    if len(ranks) != t.d.world and t.d.main:
        print(
            f"warning: resuming a {len(ranks)}-process run with {t.d.world} processes; "
            "the data order differs from the original run",
            file=sys.stderr,
        )
    state = RunState(
        epoch=s["epoch"],
        step_in_epoch=s["step_in_epoch"],
        global_step=s["global_step"],
        best_top1=s["best_top1"],
        best_epoch=s["best_epoch"],
        history=list(s["history"]),
    )
    if state.step_in_epoch:
        state.meter = EpochMeter(**mine["partial"])
    _set_rng_state(mine["rng"], t.device)
    return state


def _train_state(t: _Trainer, state: RunState) -> dict[str, Any]:
    """last.pt's ``train_state``: the run state, optimizer, schedule, scaler, and every
    process's RNG and meter (a collective call: every process must make it)."""
    rank_states = t.d.gather({"rng": _rng_state(t.device), "partial": dataclasses.asdict(state.meter)})
    return {
        "config": t.config.to_dict(),
        "epoch": state.epoch,
        "step_in_epoch": state.step_in_epoch,
        "global_step": state.global_step,
        "best_top1": state.best_top1,
        "best_epoch": state.best_epoch,
        "history": state.history,
        "optimizer": t.optimizer.state_dict(),
        "scheduler": t.scheduler.state_dict(),
        "scaler": t.scaler.state_dict(),
        "world_size": t.d.world,
        "rank_states": rank_states,
    }


def _save_last(t: _Trainer, state: RunState) -> None:
    train_state = _train_state(t, state)
    if t.d.main:
        save_checkpoint(t.model, t.out / LAST, extra={"train_state": train_state, **t.extra})


def _open_log(t: _Trainer, state: RunState, *, resumed: bool) -> None:
    """The main process writes config.yaml, opens TensorBoard and says what it runs."""
    if not t.d.main:
        return
    c = t.config
    t.out.mkdir(parents=True, exist_ok=True)
    save_config(c, t.out / CONFIG_FILE)
    from torch.utils.tensorboard import SummaryWriter  # slow to import; only the main process needs it

    t.writer = SummaryWriter(str(t.out / TB_DIR), purge_step=state.global_step if resumed else None)
    print(
        f"train: {c.model.arch} {model_name(c.model)} T={c.model.n_segment}, "
        f"{len(t.train_ds)} train / {len(t.val_ds)} val clips, {t.d.world} process(es) on {t.device}, "
        f"batch {c.data.batch_size}x{t.d.world}, lr {t.base_lr:.4g}, {t.steps_per_epoch} steps/epoch"
        + (f", resumed at epoch {state.epoch + 1} step {state.step_in_epoch}" if resumed else "")
        + (", head replaced" if t.replaced_head else ""),
        file=sys.stderr,
    )


def _say(t: _Trainer, message: str) -> None:
    if t.d.main:
        print(message, file=sys.stderr)


# --- one epoch ------------------------------------------------------------------------


def _train_epoch(t: _Trainer, state: RunState, stop: dict[str, str | None]) -> str | None:
    """Train the epoch under way from ``state.step_in_epoch``; returns why it stopped early
    (a signal, run.stop_after_steps, another process), else None."""
    c = t.config
    epoch, bs = state.epoch, c.data.batch_size
    t.train_ds.set_epoch(epoch)
    t.sampler.set_epoch(epoch)
    if state.step_in_epoch == 0:
        state.meter = EpochMeter()
    indices = list(t.sampler)[state.step_in_epoch * bs : t.steps_per_epoch * bs]
    loader = _loader(t.train_ds, indices, c, train=True, seed=c.run.seed * 100003 + epoch)
    t.net.train()
    bar = tqdm(
        total=t.steps_per_epoch,
        initial=state.step_in_epoch,
        desc=f"epoch {epoch + 1}/{c.optim.epochs}",
        unit="step",
        disable=not (t.d.main and c.run.progress),
        dynamic_ncols=True,
        leave=False,
    )
    tick = time.perf_counter()
    try:
        for batch in loader:
            clips, labels = batch.clips.to(t.device, non_blocking=True), batch.labels.to(t.device)
            if clips.numel() == 0:
                continue
            loss, logits = _step(t, clips, labels, where=f"epoch {epoch + 1} step {state.step_in_epoch + 1}")
            state.global_step += 1
            state.step_in_epoch += 1
            now = time.perf_counter()
            state.meter.add(
                loss=loss.item(),
                correct=int((logits.detach().argmax(1) == labels).sum()),
                count=labels.shape[0],
                seconds=now - tick,
            )
            tick = now
            if t.d.main:
                _log_step(t, state, bar, loss.item())
            stop_after = c.run.stop_after_steps
            wanted = stop["signal"] or (
                f"run.stop_after_steps={stop_after}"
                if stop_after is not None and state.global_step >= stop_after
                else None
            )
            if t.d.any(bool(wanted), t.device):
                return wanted or "another process was interrupted"
    finally:
        bar.close()
    return None


def _step(t: _Trainer, clips: Tensor, labels: Tensor, *, where: str) -> tuple[Tensor, Tensor]:
    """One optimizer step on a batch; returns the loss and the logits."""
    t.optimizer.zero_grad(set_to_none=True)
    with torch.autocast(t.device.type, dtype=t.amp_dtype or torch.bfloat16, enabled=t.amp_dtype is not None):
        logits = t.net(clips)
    loss = nn.functional.cross_entropy(logits.float(), labels)
    if not torch.isfinite(loss):
        raise ValueError(
            f"training diverged: loss is {loss.item()} at {where}; lower optim.lr or enable optim.clip_grad"
        )
    t.scaler.scale(loss).backward()
    if t.config.optim.clip_grad is not None:
        t.scaler.unscale_(t.optimizer)
        nn.utils.clip_grad_norm_(t.trainable, t.config.optim.clip_grad)
    t.scaler.step(t.optimizer)
    t.scaler.update()
    t.scheduler.step()
    return loss, logits


def _log_step(t: _Trainer, state: RunState, bar: tqdm, loss: float) -> None:
    m = state.meter
    lr = t.optimizer.param_groups[0]["lr"]
    bar.set_postfix(
        loss=f"{m.loss_sum / m.count:.3f}",
        acc=f"{100 * m.correct / m.count:.1f}",
        lr=f"{lr:.3g}",
        clips_s=f"{m.count * t.d.world / max(m.seconds, 1e-9):.1f}",
    )
    bar.update()
    t.writer.add_scalar("train/step_loss", loss, state.global_step)
    t.writer.add_scalar("train/lr", lr, state.global_step)


# --- end of epoch: validate, log, checkpoint -----------------------------------------


def _end_epoch(t: _Trainer, state: RunState) -> None:
    """Sum the epoch's meters over processes, validate when due, move the run state to the
    next epoch, and (main process) log and write best.pt and last.pt."""
    c, d = t.config, t.d
    epoch = state.epoch + 1  # 1-based: the epoch just finished
    loss_sum, correct, count, seconds = d.all_sum(
        [state.meter.loss_sum, state.meter.correct, state.meter.count, state.meter.seconds], t.device
    )
    row: dict[str, float] = {
        "epoch": epoch,
        "step": state.global_step,
        "lr": t.optimizer.param_groups[0]["lr"],
        "train_loss": loss_sum / count,
        "train_top1": 100.0 * correct / count,
        "train_clips": count,
        "clips_per_s": count / max(seconds / d.world, 1e-9),
        "epoch_seconds": seconds / d.world,
    }
    if epoch % c.run.eval_every == 0 or epoch == c.optim.epochs:
        row.update(_validate(t))
    else:
        row.update({"val_loss": float("nan"), "val_top1": float("nan"), "val_top5": float("nan")})
    state.history.append(row)
    is_best = not math.isnan(row["val_top1"]) and row["val_top1"] > state.best_top1
    if is_best:
        state.best_top1, state.best_epoch = row["val_top1"], epoch
    state.epoch, state.step_in_epoch = epoch, 0
    train_state = _train_state(t, state)
    if d.main:
        for key in CSV_FIELDS[2:]:
            if not math.isnan(row[key]):
                t.writer.add_scalar(f"epoch/{key}", row[key], epoch)
        t.writer.flush()
        _append_csv(t.out / LOG_CSV, row)
        if is_best:
            save_checkpoint(
                t.model,
                t.out / BEST,
                extra={"epoch": epoch, "val_top1": state.best_top1, "config": c.to_dict(), **t.extra},
            )
        save_checkpoint(t.model, t.out / LAST, extra={"train_state": train_state, **t.extra})
        print(_summary(row, c.optim.epochs, is_best), file=sys.stderr)


def _validate(t: _Trainer) -> dict[str, float]:
    """One centre clip per video (the single-view test protocol, `evaluate.score_videos`)
    over this process's share of the validation list; loss, top-1 and top-5 summed over
    processes."""
    t.val_ds.set_epoch(0)
    net = unwrap(t.net)  # no DDP forward: processes may hold different numbers of batches
    net.eval()
    try:
        scored = score_videos(
            net,
            t.val_ds,
            device=t.device,
            views=1,
            fusion="logits",
            indices=range(t.d.rank, len(t.val_ds), t.d.world),
            batch_size=t.config.data.batch_size,
            workers=t.config.data.workers,
            amp_dtype=t.amp_dtype,
        )
    finally:
        t.net.train()
    labels = np.asarray(t.val_ds.labels, dtype=np.int64)[scored.indices]
    loss_sum = (
        float(nn.functional.cross_entropy(torch.from_numpy(scored.scores), torch.from_numpy(labels), reduction="sum"))
        if len(labels)
        else 0.0
    )
    hits = topk_predictions(scored.scores, 5) == labels[:, None] if len(labels) else np.zeros((0, 1), dtype=bool)
    loss_sum, top1, top5, count = t.d.all_sum(
        [loss_sum, float(hits[:, 0].sum()), float(hits.any(axis=1).sum()), float(len(labels))], t.device
    )
    if count == 0:
        raise ValueError(f"{t.val_ds.list_file}: no validation clips could be read")
    return {"val_loss": loss_sum / count, "val_top1": 100.0 * top1 / count, "val_top5": 100.0 * top5 / count}


def _append_csv(path: Path, row: dict[str, float]) -> None:
    new = not path.is_file()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        if new:
            w.writeheader()
        w.writerow({k: row[k] for k in CSV_FIELDS})


def _summary(row: dict[str, float], epochs: int, is_best: bool) -> str:
    val = (
        f"val loss {row['val_loss']:.4f} top1 {row['val_top1']:.2f}% top5 {row['val_top5']:.2f}%"
        if not math.isnan(row["val_top1"])
        else "val -"
    )
    return (
        f"epoch {int(row['epoch'])}/{epochs}  train loss {row['train_loss']:.4f} top1 {row['train_top1']:.2f}%  "
        f"{val}  lr {row['lr']:.4g}  {row['clips_per_s']:.1f} clips/s  {row['epoch_seconds']:.1f}s"
        + ("  *best*" if is_best else "")
    )
