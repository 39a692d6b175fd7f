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

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from temporal_shift.checkpoints import CheckpointError, load_state_strict, read_checkpoint, save_checkpoint
from temporal_shift.config import TrainConfig, save_config
from temporal_shift.data.dataset import VideoDataset, collate_skipping
from temporal_shift.data.lists import read_classes
from temporal_shift.data.sampling import DenseSampler, TSNSampler
from temporal_shift.data.transforms import test_transform, train_transform
from temporal_shift.loading import load_checkpoint
from temporal_shift.models.recognizer import VideoRecognizer, load_backbone_weights, param_groups
from temporal_shift.runtime import Distributed, distributed, ignore_sigint, resolve_device, unwrap

LAST = "last.pt"
BEST = "best.pt"
CONFIG_FILE = "config.yaml"
LOG_CSV = "log.csv"
TB_DIR = "tb"
CSV_FIELDS = (
    "epoch", "step", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5",
    "clips_per_s", "epoch_seconds",
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
    c = config.data
    t = config.model.n_segment
    if c.sampling == "tsn":
        train_sampler = TSNSampler(num_segments=t, train=True)
        val_sampler = TSNSampler(num_segments=t, train=False)
    else:
        train_sampler = DenseSampler(num_segments=t, train=True, window=c.dense_window)
        val_sampler = DenseSampler(num_segments=t, train=False, window=c.dense_window, num_clips=1)
    common = dict(root=c.root, kind=c.kind, template=c.template, num_classes=c.num_classes,
                  seed=config.run.seed, on_error=c.on_error)
    train_ds = VideoDataset(
        list_file=config.train_list_path(),
        sampler=train_sampler,
        transform=train_transform(size=c.size, scales=c.scales, flip=c.flip, normalize=c.normalize),
        **common,
    )
    val_ds = VideoDataset(
        list_file=config.val_list_path(),
        sampler=val_sampler,
        transform=test_transform(size=c.size, scale_size=c.scale_size, views=1, normalize=c.normalize),
        **common,
    )
    return train_ds, val_ds


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
        return torch.optim.AdamW(groups, lr=lr, betas=(o.momentum, 0.999))
    return torch.optim.SGD(groups, lr=lr, momentum=o.momentum, nesterov=o.nesterov)


def _lr_lambda(config: TrainConfig, steps_per_epoch: int):
    o = config.optim
    total = o.epochs * steps_per_epoch
    warmup = int(round(o.warmup_epochs * steps_per_epoch))

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


def _finetune(model: VideoRecognizer, path: str | Path) -> bool:
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


def _accuracy_counts(logits: Tensor, labels: Tensor, k: int) -> tuple[int, int]:
    k = min(k, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    hit = top == labels[:, None]
    return int(hit[:, 0].sum()), int(hit.any(dim=1).sum())


# --- the loop -------------------------------------------------------------------------


def train(
    config: TrainConfig, *, resume: bool = False, finetune_from: str | Path | None = None
) -> TrainResult:
    """Train (or resume) the run described by ``config``; see the module docstring."""
    if resume and finetune_from is not None:
        raise ValueError("--resume and --finetune-from cannot be combined (resume restores the run's own weights)")
    with distributed(config.run.device) as d:
        return _train(config, d, resume=resume, finetune_from=finetune_from)


def _device(config: TrainConfig, d: Distributed) -> torch.device:
    """``run.device``; under torchrun ``cuda`` is this process's GPU, made the current one."""
    try:
        device = resolve_device(config.run.device, local_rank=d.local_rank if d.world > 1 else None)
    except ValueError as exc:
        raise ValueError(f"run.device: {exc}") from None
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    return device


def _train(config: TrainConfig, d: Distributed, *, resume: bool, finetune_from: str | Path | None) -> TrainResult:
    device = _device(config, d)
    out = Path(config.run.out_dir)
    last_path, best_path = out / LAST, out / BEST
    resume_state: dict[str, Any] | None = None
    resume_weights: dict[str, Tensor] | None = None
    if resume:
        if not last_path.is_file():
            raise FileNotFoundError(f"{last_path}: nothing to resume (no last checkpoint in run.out_dir)")
        data = read_checkpoint(last_path)
        if "train_state" not in data:
            raise CheckpointError(f"{last_path}: has no training state to resume from")
        resume_state = data["train_state"]
        _check_resumable(resume_state["config"], config, last_path)
        resume_weights = data["state_dict"]

    class_names = _class_names(config)
    names_extra = {} if class_names is None else {"class_names": class_names}
    torch.manual_seed(config.run.seed)
    train_ds, val_ds = _datasets(config)
    model = VideoRecognizer(config.model_config())
    if config.model.backbone_weights and resume_weights is None and finetune_from is None:
        load_backbone_weights(model, config.model.backbone_weights)
    replaced_head = False
    if finetune_from is not None:
        replaced_head = _finetune(model, finetune_from)
    if resume_weights is not None:
        load_state_strict(model, resume_weights, source=str(last_path))
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
    trainable = [p for g in groups for p in g["params"]]

    per_rank = DistributedSampler(train_ds, num_replicas=d.world, rank=d.rank, shuffle=True, seed=config.run.seed)
    steps_per_epoch = len(per_rank) // config.data.batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"{train_ds.list_file}: {len(train_ds)} training samples are fewer than one batch "
            f"(data.batch_size={config.data.batch_size} x {d.world} processes)"
        )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config, steps_per_epoch))
    use_amp = config.run.amp
    amp_dtype = torch.bfloat16 if device.type == "cpu" else torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp and device.type == "cuda")

    ddp_model: nn.Module = model
    if d.world > 1:
        ddp_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    start_epoch, skip_steps, global_step = 0, 0, 0
    best_top1, best_epoch = -1.0, -1
    history: list[dict[str, float]] = []
    partial = {"loss_sum": 0.0, "correct": 0.0, "count": 0.0, "seconds": 0.0}
    if resume_state is not None:
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        scaler.load_state_dict(resume_state["scaler"])
        start_epoch = resume_state["epoch"]
        skip_steps = resume_state["step_in_epoch"]
        global_step = resume_state["global_step"]
        best_top1, best_epoch = resume_state["best_top1"], resume_state["best_epoch"]
        history = list(resume_state["history"])
        ranks = resume_state["rank_states"]
        mine = ranks[d.rank] if len(ranks) == d.world else ranks[0]
        if len(ranks) != d.world and d.main:
            print(f"warning: resuming a {len(ranks)}-process run with {d.world} processes; "
                  "the data order differs from the original run", file=sys.stderr)
        if skip_steps:
            partial = dict(mine["partial"])
        _set_rng_state(mine["rng"], device)

    writer = None
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(config, out / CONFIG_FILE)
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / TB_DIR), purge_step=global_step if resume_state else None)
        print(
            f"train: {config.model.arch} {'TSM' if config.model.shift else 'TSN'} T={config.model.n_segment}, "
            f"{len(train_ds)} train / {len(val_ds)} val clips, {d.world} process(es) on {device}, "
            f"batch {config.data.batch_size}x{d.world}, lr {base_lr:.4g}, {steps_per_epoch} steps/epoch"
            + (f", resumed at epoch {start_epoch + 1} step {skip_steps}" if resume_state else "")
            + (", head replaced" if replaced_head else ""),
            file=sys.stderr,
        )

    def train_state(epoch: int, step_in_epoch: int, partial_now: dict[str, float]) -> dict[str, Any]:
        rank_states = d.gather({"rng": _rng_state(device), "partial": dict(partial_now)})
        return {
            "config": config.to_dict(),
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "global_step": global_step,
            "best_top1": best_top1,
            "best_epoch": best_epoch,
            "history": history,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "world_size": d.world,
            "rank_states": rank_states,
        }

    criterion = nn.CrossEntropyLoss()
    interrupted = False
    stop_after = config.run.stop_after_steps
    val_indices = list(range(d.rank, len(val_ds), d.world))
    with _stop_on_signals() as stop_flag:
        for epoch in range(start_epoch, config.optim.epochs):
            train_ds.set_epoch(epoch)
            per_rank.set_epoch(epoch)
            indices = list(per_rank)[: steps_per_epoch * config.data.batch_size]
            first = skip_steps if epoch == start_epoch else 0
            if first == 0:
                partial = {"loss_sum": 0.0, "correct": 0.0, "count": 0.0, "seconds": 0.0}
            loader = _loader(train_ds, indices[first * config.data.batch_size:], config, train=True,
                             seed=config.run.seed * 100003 + epoch)
            ddp_model.train()
            bar = tqdm(total=steps_per_epoch, initial=first, desc=f"epoch {epoch + 1}/{config.optim.epochs}",
                       unit="step", disable=not (d.main and config.run.progress), dynamic_ncols=True, leave=False)
            tick = time.perf_counter()
            step_in_epoch = first
            stop_reason: str | None = None
            for batch in loader:
                clips, labels = batch.clips.to(device, non_blocking=True), batch.labels.to(device)
                if clips.numel() == 0:
                    continue
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                    logits = ddp_model(clips)
                loss = criterion(logits.float(), labels)
                if not torch.isfinite(loss):
                    raise ValueError(
                        f"training diverged: loss is {loss.item()} at epoch {epoch + 1} step {step_in_epoch + 1}; "
                        "lower optim.lr or enable optim.clip_grad"
                    )
                scaler.scale(loss).backward()
                if config.optim.clip_grad is not None:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(trainable, config.optim.clip_grad)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                global_step += 1
                step_in_epoch += 1
                n = labels.shape[0]
                correct = int((logits.detach().argmax(1) == labels).sum())
                partial["loss_sum"] += loss.item() * n
                partial["correct"] += correct
                partial["count"] += n
                now = time.perf_counter()
                partial["seconds"] += now - tick
                tick = now
                if d.main:
                    lr_now = optimizer.param_groups[0]["lr"]
                    bar.set_postfix(
                        loss=f"{partial['loss_sum'] / partial['count']:.3f}",
                        acc=f"{100 * partial['correct'] / partial['count']:.1f}",
                        lr=f"{lr_now:.3g}",
                        clips_s=f"{partial['count'] * d.world / max(partial['seconds'], 1e-9):.1f}",
                    )
                    bar.update()
                    assert writer is not None
                    writer.add_scalar("train/step_loss", loss.item(), global_step)
                    writer.add_scalar("train/lr", lr_now, global_step)
                wanted = stop_flag["signal"] or (
                    f"run.stop_after_steps={stop_after}" if stop_after is not None and global_step >= stop_after else None
                )
                if d.any(bool(wanted), device):
                    stop_reason = wanted or "another process was interrupted"
                    break
            bar.close()
            if stop_reason is not None and step_in_epoch < steps_per_epoch:
                state = train_state(epoch, step_in_epoch, partial)
                if d.main:
                    save_checkpoint(model, last_path, extra={"train_state": state, **names_extra})
                    print(f"stopped ({stop_reason}) at epoch {epoch + 1} step {step_in_epoch}/{steps_per_epoch}; "
                          f"resumable checkpoint: {last_path}", file=sys.stderr)
                interrupted = True
                break

            # end of the epoch: reduce, validate, log, checkpoint
            loss_sum, correct_sum, count, seconds = d.all_sum(
                [partial["loss_sum"], partial["correct"], partial["count"], partial["seconds"]], device
            )
            row: dict[str, float] = {
                "epoch": epoch + 1,
                "step": global_step,
                "lr": optimizer.param_groups[0]["lr"],
                "train_loss": loss_sum / count,
                "train_top1": 100.0 * correct_sum / count,
                "train_clips": count,
                "clips_per_s": count / max(seconds / d.world, 1e-9),
                "epoch_seconds": seconds / d.world,
            }
            if (epoch + 1) % config.run.eval_every == 0 or epoch + 1 == config.optim.epochs:
                row.update(_validate(ddp_model, val_ds, val_indices, config, d, device, use_amp, amp_dtype))
            else:
                row.update({"val_loss": float("nan"), "val_top1": float("nan"), "val_top5": float("nan")})
            history.append(row)
            is_best = not math.isnan(row["val_top1"]) and row["val_top1"] > best_top1
            if is_best:
                best_top1, best_epoch = row["val_top1"], epoch + 1
            state = train_state(epoch + 1, 0, partial)
            if d.main:
                assert writer is not None
                for key in CSV_FIELDS[2:]:
                    if not math.isnan(row[key]):
                        writer.add_scalar(f"epoch/{key}", row[key], epoch + 1)
                writer.flush()
                _append_csv(out / LOG_CSV, row)
                if is_best:
                    save_checkpoint(model, best_path, extra={"epoch": epoch + 1, "val_top1": best_top1,
                                                             "config": config.to_dict(), **names_extra})
                save_checkpoint(model, last_path, extra={"train_state": state, **names_extra})
                print(_summary(row, config.optim.epochs, is_best), file=sys.stderr)
            if stop_reason is not None:
                interrupted = epoch + 1 < config.optim.epochs
                if d.main and interrupted:
                    print(f"stopped ({stop_reason}) after epoch {epoch + 1}; resumable checkpoint: {last_path}",
                          file=sys.stderr)
                break
    if writer is not None:
        writer.close()
    return TrainResult(
        out_dir=out,
        epochs_completed=len(history),
        global_step=global_step,
        best_top1=best_top1,
        best_epoch=best_epoch,
        history=history,
        interrupted=interrupted,
        last_checkpoint=last_path,
        best_checkpoint=best_path if best_epoch > 0 else None,
    )


@torch.no_grad()
def _validate(
    model: nn.Module,
    dataset: VideoDataset,
    indices: list[int],
    config: TrainConfig,
    d: Distributed,
    device: torch.device,
    use_amp: bool,
    amp_dtype: torch.dtype,
) -> dict[str, float]:
    """Single centre clip top-1/top-5 over this process's share, summed over processes."""
    dataset.set_epoch(0)
    model.eval()
    net = unwrap(model)  # no DDP forward: ranks may hold different numbers of batches
    loss_sum, top1, top5, count = 0.0, 0, 0, 0
    for batch in _loader(dataset, indices, config, train=False, seed=0):
        if batch.clips.numel() == 0:
            continue
        clips, labels = batch.clips.to(device), batch.labels.to(device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
            logits = net(clips).float()
        loss_sum += float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
        c1, c5 = _accuracy_counts(logits, labels, 5)
        top1, top5, count = top1 + c1, top5 + c5, count + labels.shape[0]
    model.train()
    loss_sum, top1, top5, count = d.all_sum([loss_sum, top1, top5, count], device)
    if count == 0:
        raise ValueError(f"{dataset.list_file}: no validation clips could be read")
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
