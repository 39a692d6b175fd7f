"""`tsm reproduce`: the paper's ablations in miniature, on the synthetic order-only data.

Each experiment trains a set of *arms* (model variants) with one recipe: the demo's data
(`demo.DEMO_DATA`), its training recipe (`demo.demo_config`: ResNet-18 from scratch, T=4
of 8-frame 32x32 clips, AdamW, cosine schedule) and the same budget, seed set and optimizer for
every arm; only the model settings differ. Every arm goes through `train.train` and
`evaluate.evaluate` like ``tsm train``/``tsm test`` runs, and is scored with the demo's
metrics (top-1 overall, on the order-only temporal pairs, order accuracy).

- ``shift-proportion``: no shift (TSN), 1/16, 1/8, 1/4 (the paper's default, fold_div 8),
  1/2 and all channels shifted; plus the inference latency of each proportion against TSN
  with identical weights, interleaved on this machine (`bench.interleaved_latency`).
- ``placement``: residual shift (inside the residual branch) vs in-place shift (on the
  block's input, every path) at 1/8, 1/4 and 1/2.
- ``online``: causal (online) vs bidirectional (offline) TSM and TSN, and the streaming
  model's accuracy after each frame (`models.online.OnlineRecognizer`, one frame at a time
  with its shift buffers; the running mean of its per-frame scores).
- ``zoo``: accuracy vs GMACs (bubble area = params) of TSN, TSM and every other family of
  `temporal_shift.models.zoo.FAMILIES` that is installed; a family that cannot take the
  recipe's input is listed with the reason, never dropped silently.

``all`` runs the four, training each distinct run once: shift-proportion's no-shift and
1/8-1/2 runs are also placement's residual arms, online's TSN and offline TSM and zoo's TSN
and TSM (same model settings, recipe, data and seed: `run_key`), so later experiments reuse
them and their notes say which.

Each writes ``<out>/<experiment>/results.json`` (budget, machine, every run, the summary),
``results.md`` (the table) and ``<experiment>.png``, and returns the table. Arms are
compared over seeds: mean ± standard deviation, and a difference smaller than the seed
spread (max - min over seeds) of either arm is reported as within the spread.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from temporal_shift.apps.experiments import demo
from temporal_shift.apps.experiments.demo import (
    DEMO_EPOCHS,
    DEMO_SEGMENTS,
    DEMO_SIZE,
    DEMO_VIDEOS,
    NUM_CLASSES,
    demo_config,
    order_accuracy,
    prepare_demo_data,
    synthetic_metrics,
)
from temporal_shift.models.base import ClipClassifier
from temporal_shift.models.factory import FAMILIES

EXPERIMENTS: tuple[str, ...] = ("shift-proportion", "placement", "online", "zoo")
METRICS: tuple[tuple[str, str], ...] = (
    ("top1", "top-1 %"),
    ("temporal_top1", "temporal pairs %"),
    ("order_acc", "order acc. %"),
)


@dataclasses.dataclass(frozen=True)
class Budget:
    """What every arm of an experiment gets: the data (clips generated, 80% to train), the
    training (epochs, batch size), the seeds, and the latency benchmark's model and rounds."""

    name: str
    num_videos: int
    epochs: int
    seeds: int
    batch_size: int = 16
    bench_arch: str = "resnet50"
    bench_size: int = 112
    bench_repeats: int = 15

    def __post_init__(self) -> None:
        for key in ("num_videos", "epochs", "seeds", "batch_size", "bench_repeats"):
            if getattr(self, key) < 1:
                raise ValueError(f"budget {self.name}: {key} must be at least 1, got {getattr(self, key)}")
        if self.num_videos < 24:
            raise ValueError(f"budget {self.name}: num_videos must be at least 24 (every class in train and val)")


BUDGETS: dict[str, Budget] = {
    # at most ~15 minutes per experiment on a quiet 2-core CPU (6 arms x 2 seeds of 180 steps,
    # two runs side by side): TSM has begun to learn the order by then (on this data its first
    # pairs come after 150-360 steps), the demo's 1440 learn all five
    "small": Budget(
        "small", num_videos=1800, epochs=2, seeds=2, bench_arch="resnet50", bench_size=112, bench_repeats=15
    ),
    # the demo's data and epochs (1440 steps per run), five seeds, ResNet-50 at the paper's
    # 224x224 for latency: hours on a CPU, minutes on a GPU
    "full": Budget(
        "full",
        num_videos=DEMO_VIDEOS,
        epochs=DEMO_EPOCHS,
        seeds=5,
        bench_arch="resnet50",
        bench_size=224,
        bench_repeats=30,
    ),
}


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


@dataclasses.dataclass
class ExperimentResult:
    """What one experiment measured, and where it wrote it."""

    experiment: str
    budget: Budget
    seeds: list[int]
    runs: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    table: str
    notes: list[str]
    extra: dict[str, Any]
    out_dir: Path
    seconds: float = 0.0
    files: dict[str, Path] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "budget": dataclasses.asdict(self.budget),
            "seeds": self.seeds,
            "machine": machine(),
            "recipe": recipe(),
            "seconds": self.seconds,
            "summary": self.summary,
            "notes": self.notes,
            "runs": self.runs,
            **self.extra,
        }


# --- shared pieces --------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """Where the figures were measured."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def recipe() -> dict[str, Any]:
    """The data and training settings every arm shares (those not in the budget)."""

    return {
        "data": dict(demo.DEMO_DATA),
        "arch": "resnet18",
        "n_segment": demo.DEMO_SEGMENTS,
        "optimizer": "adamw lr 1e-3 wd 0.05, cosine, warm-up 0.5 epoch, clip 20",
        "dropout": 0.2,
    }


def budget_named(name: str) -> Budget:
    if name not in BUDGETS:
        raise ValueError(f"unknown budget {name!r}; expected one of {', '.join(BUDGETS)}")
    return BUDGETS[name]


def _seed_list(budget: Budget, seeds: int | None) -> list[int]:
    n = budget.seeds if seeds is None else seeds
    if n < 1:
        raise ValueError(f"--seeds must be at least 1, got {n}")
    return list(range(n))


def arm_config(
    arm: Arm, *, data_root: Path, out_dir: Path, budget: Budget, seed: int, device: str = "auto", progress: bool = True
):
    """The training run of one arm: the demo's recipe (`demo.demo_config`) with the arm's model
    settings and the budget's epochs and batch size; nothing else differs between arms. Batches
    load in the training process on a CPU, in worker processes on a GPU (`side_by_side.loader_workers`)."""
    from temporal_shift.apps.experiments.side_by_side import loader_workers
    from temporal_shift.ops.runtime import resolve_device

    model = dict(arm.model)
    shift = bool(model.pop("shift", True))
    return demo_config(
        data_root,
        out_dir,
        shift=shift,
        model=model,
        epochs=budget.epochs,
        seed=seed,
        workers=loader_workers(str(resolve_device(device))),
        batch_size=budget.batch_size,
        device=device,
        progress=progress,
    )


def train_arm(
    arm: Arm,
    *,
    data_root: Path,
    out_dir: Path,
    budget: Budget,
    seed: int,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Train one arm with one seed through `train.train`, test it with `evaluate.evaluate`
    and return its record (metrics, params, GMACs, time, checkpoint)."""
    from temporal_shift.apps.bench.overhead import count_flops, count_params
    from temporal_shift.checkpoint.loading import load_model
    from temporal_shift.data.synthetic import VAL_FRAMES_LIST
    from temporal_shift.engine.evaluate import evaluate
    from temporal_shift.engine.train import train

    config = arm_config(
        arm, data_root=data_root, out_dir=out_dir, budget=budget, seed=seed, device=device, progress=progress
    )
    started = time.perf_counter()
    result = train(config)
    seconds = time.perf_counter() - started
    if result.interrupted:  # Ctrl-C/SIGTERM: the trainer saved last.pt; a half-trained arm is no result
        raise KeyboardInterrupt(f"{arm.label}, seed {seed}: training interrupted (resumable: {result.last_checkpoint})")
    tested = evaluate(
        [result.last_checkpoint],
        list_file=VAL_FRAMES_LIST,
        root=data_root,
        kind="frames",
        batch_size=32,
        workers=config.data.workers,
        device=device,
        progress=progress,
    )
    net = load_model(result.last_checkpoint).eval()
    clip = torch.zeros(1, config.model.n_segment, 3, DEMO_SIZE, DEMO_SIZE)
    return {
        "arm": arm.label,
        "group": arm.group,
        "seed": seed,
        "model": arm.model,
        **synthetic_metrics(tested),
        "params_m": count_params(net) / 1e6,
        "gmacs": count_flops(net, clip) / 2e9,
        "train_seconds": seconds,
        "steps": result.global_step,
        "checkpoint": str(result.last_checkpoint),
    }


def _stats(values: Sequence[float]) -> dict[str, float]:
    vals = [float(v) for v in values]
    return {
        "mean": statistics.fmean(vals),
        "sd": statistics.stdev(vals) if len(vals) > 1 else 0.0,
        "min": min(vals),
        "max": max(vals),
        "n": len(vals),
    }


def summarize_runs(runs: Sequence[dict[str, Any]], arms: Sequence[Arm]) -> list[dict[str, Any]]:
    """Per arm (in ``arms`` order): mean, sd, min, max and n over seeds of every metric."""
    rows = []
    for arm in arms:
        mine = [r for r in runs if r["arm"] == arm.label]
        if not mine:
            continue
        row: dict[str, Any] = {"arm": arm.label, "group": arm.group, "model": arm.model}
        for key, _ in METRICS:
            row[key] = _stats([r[key] for r in mine])
        row["params_m"] = mine[0]["params_m"]
        row["gmacs"] = mine[0]["gmacs"]
        row["train_seconds"] = _stats([r["train_seconds"] for r in mine])
        rows.append(row)
    return rows


def compare(a: dict[str, float], b: dict[str, float]) -> str:
    """``a`` minus ``b`` (two `_stats`) in points, and whether it is within the seed spread:
    smaller than the spread (max - min over seeds) of either arm."""
    diff = a["mean"] - b["mean"]
    if a["n"] < 2 and b["n"] < 2:
        return f"{diff:+.1f} (one seed: spread unknown)"
    spread = max(a["max"] - a["min"], b["max"] - b["min"])
    verdict = "within the seed spread" if abs(diff) <= spread else "beyond the seed spread"
    return f"{diff:+.1f} ({verdict} {spread:.1f})"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _over_seeds(n: int) -> str:
    """A plot label's statistic: mean ± sd over ``n`` seeds, or the one seed's value."""
    return "one seed" if n == 1 else f"mean ± sd, {n} seeds"


def _fmt(s: dict[str, float]) -> str:
    return f"{s['mean']:.1f} ± {s['sd']:.1f}" if s["n"] > 1 else f"{s['mean']:.1f}"


def markdown_table(
    summary: Sequence[dict[str, Any]],
    *,
    extra: Sequence[tuple[str, Callable[[dict[str, Any]], str]]] = (),
) -> str:
    """The summary as a markdown table: arm, the metrics (mean ± sd over seeds), params,
    GMACs, and ``extra`` columns (header, row -> text)."""
    header = ["arm"] + [label for _, label in METRICS] + ["params (M)", "GMACs"] + [h for h, _ in extra]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in summary:
        cells = [row["arm"]] + [_fmt(row[key]) for key, _ in METRICS]
        cells += [f"{row['params_m']:.2f}", f"{row['gmacs']:.3f}"] + [fn(row) for _, fn in extra]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _arm_job(*, tolerate: bool = False, **kwargs: Any) -> dict[str, Any]:
    """`train_arm` in a side-by-side process; with ``tolerate`` a RuntimeError or ValueError
    (a family that cannot take the recipe's input) comes back as ``{"error": reason}``."""
    try:
        return train_arm(**kwargs)
    except (RuntimeError, ValueError) as exc:
        if not tolerate:
            raise
        return {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}


def run_key(arm: Arm, *, data_root: Path, budget: Budget, seed: int, device: str) -> str:
    """What makes two runs the same run: the arm's full model settings (defaults filled in, so
    ``{"shift": True}`` and ``{"shift": True, "fold_div": 8}`` match), the training recipe
    with the budget's epochs and batch size, the data, the seed and the device."""
    config = arm_config(arm, data_root=data_root, out_dir=Path("."), budget=budget, seed=seed, device=device)
    recipe_now = {section: dataclasses.asdict(getattr(config, section)) for section in ("model", "data", "optim")}
    return json.dumps(
        {"recipe": recipe_now, "seed": seed, "device": device, "data_root": str(Path(data_root).resolve())},
        sort_keys=True,
        default=str,
    )


def _run_arms(
    arms: Sequence[Arm],
    *,
    name: str,
    out: Path,
    data_root: Path,
    budget: Budget,
    seeds: list[int],
    device: str,
    progress: bool,
    log: Callable[[str], None],
    jobs: int | None = None,
    tolerate: Callable[[Arm], bool] = lambda arm: False,
    reuse: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Every arm with every seed (seed-major: the first runs to finish have every arm once),
    side by side on a CPU (`side_by_side`); the records in that order. An arm for which
    ``tolerate`` is true and that fails with a RuntimeError or ValueError gives
    ``{"arm": label, "group": group, "seed": seed, "error": reason}``.

    ``reuse`` (``tsm reproduce all``: one dict for every experiment) maps `run_key` to the
    record of a run already trained: a run with the same key is not trained again, its record
    is taken under this arm's label with ``reused_from`` naming the original; every run
    trained here is added to it."""
    from temporal_shift.apps.experiments.side_by_side import plan_slots, run_side_by_side
    from temporal_shift.ops.runtime import resolve_device

    everything = [(seed, arm) for seed in seeds for arm in arms]
    keys = [
        run_key(arm, data_root=data_root, budget=budget, seed=seed, device=device) if reuse is not None else ""
        for seed, arm in everything
    ]
    known = reuse if reuse is not None else {}
    plan = [(seed, arm) for (seed, arm), key in zip(everything, keys) if key not in known]
    slots = plan_slots(str(resolve_device(device)), max(1, len(plan)), jobs=jobs)
    reused = len(everything) - len(plan)
    log(
        f"[{name}] {len(everything)} runs"
        + (
            f", {reused} of them already trained by an earlier experiment (same model, recipe, data and seed): reused"
            if reused
            else ""
        )
        + (f"; {len(plan)} to train, {slots.describe()}" if plan else "")
    )
    calls = [
        {
            "arm": arm,
            "data_root": data_root,
            "out_dir": out / arm.slug / f"seed{seed}",
            "budget": budget,
            "seed": seed,
            "device": device,
            "progress": progress and slots.runs == 1,
            "tolerate": tolerate(arm),
        }
        for seed, arm in plan
    ]
    started = time.perf_counter()
    finished = 0

    def done(i: int, record: dict[str, Any]) -> None:
        nonlocal finished
        finished += 1
        seed, arm = plan[i]
        if "error" in record:
            log(f"[{name} {finished}/{len(plan)}] {arm.label}, seed {seed}: not run: {record['error']}")
            return
        log(
            f"[{name} {finished}/{len(plan)}] {arm.label}, seed {seed}: top-1 {record['top1']:.1f}%, order "
            f"{record['order_acc']:.1f}%, {record['gmacs']:.3f} GMACs ({record['train_seconds']:.0f} s training; "
            f"{time.perf_counter() - started:.0f} s since the first run started)"
        )

    trained = iter(run_side_by_side(_arm_job, calls, slots, on_done=done) if plan else [])
    records = []
    for (seed, arm), key in zip(everything, keys):
        if key in known:
            earlier = known[key]
            record = {**copy.deepcopy(earlier), "arm": arm.label, "group": arm.group, "model": arm.model}
            record.setdefault("reused_from", f"{earlier['experiment']}: {earlier['arm']}")
            record.pop("experiment")
        else:
            record = next(trained)
            if "error" in record:
                record = {"arm": arm.label, "group": arm.group, "seed": seed, **record}
            elif reuse is not None:
                reuse[key] = {**copy.deepcopy(record), "experiment": name}
        records.append(record)
    return records


def _write(result: ExperimentResult, plot: Callable[[Path], Path] | None) -> ExperimentResult:
    out = result.out_dir
    out.mkdir(parents=True, exist_ok=True)
    reused: dict[str, set[str]] = {}
    for run in result.runs:
        if "reused_from" in run:
            reused.setdefault(f"{run['arm']} = {run['reused_from']}", set()).add(str(run["seed"]))
    result.notes += [
        f"not trained again, the same run (model, recipe, data, seed {', '.join(sorted(seeds))}): {what}"
        for what, seeds in reused.items()
    ]
    json_path = out / "results.json"
    json_path.write_text(json.dumps(result.to_dict(), indent=2, default=str) + "\n")
    md = [f"# {result.experiment} ({result.budget.name} budget, seeds {result.seeds})", "", result.table, ""]
    md += [f"- {note}" for note in result.notes]
    m = machine()
    md += [
        "",
        f"Machine: {m['processor']}, {m['cpu_count']} CPUs, torch {m['torch']}"
        + (f", {m['cuda']}" if m["cuda"] else "")
        + f"; {result.seconds / 60:.1f} min in all.",
        "",
    ]
    md_path = out / "results.md"
    md_path.write_text("\n".join(md))
    result.files = {"json": json_path, "markdown": md_path}
    if plot is not None:
        result.files["png"] = plot(out / f"{result.experiment}.png")
    return result


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _errorbars(ax, xs, summary, key, **kwargs) -> None:
    means = [row[key]["mean"] for row in summary]
    sds = [row[key]["sd"] for row in summary]
    ax.errorbar(xs, means, yerr=sds, capsize=4, **kwargs)


# --- shift proportion -------------------------------------------------------------------

PROPORTIONS: tuple[tuple[str, int | None], ...] = (
    ("0 (TSN)", None),
    ("1/16", 32),
    ("1/8", 16),
    ("1/4", 8),
    ("1/2", 4),
    ("1 (all)", 2),
)


def _shift_arms() -> list[Arm]:
    return [
        Arm(
            label=f"shift {label}",
            model={"shift": False} if fd is None else {"shift": True, "fold_div": fd},
            group=label,
        )
        for label, fd in PROPORTIONS
    ]


def shift_latency(
    *, arch: str, size: int, n_segment: int, repeats: int, device: str = "auto", warmup: int = 2
) -> dict[str, Any]:
    """Inference latency of TSN and TSM at every shift proportion (`PROPORTIONS`), all with
    TSN's weights, one clip, timed in interleaved rounds; per proportion the median and IQR
    of the per-round ratio to TSN."""
    from temporal_shift.apps.bench.overhead import interleaved_latency, summarize
    from temporal_shift.models.factory import build_model
    from temporal_shift.ops.runtime import resolve_device

    dev = resolve_device(device)
    torch.manual_seed(0)
    tsn = build_model(arch, num_classes=400, n_segment=n_segment, shift=False).eval()
    plain = tsn.state_dict()
    models: dict[str, torch.nn.Module] = {}
    for label, fd in PROPORTIONS:
        if fd is None:
            models[label] = tsn
            continue
        tsm = build_model(arch, num_classes=400, n_segment=n_segment, shift=True, fold_div=fd).eval()
        # TSM's keys carry the shift wrapper's extra ``net`` level; the tensors are TSN's
        tsm.load_state_dict({key: plain[key.replace(".net.", ".")] for key in tsm.state_dict()})
        models[label] = tsm
    fmt = torch.channels_last
    models = {k: m.to(dev, memory_format=fmt) for k, m in models.items()}
    clips = torch.randn(1, n_segment, 3, size, size)
    clips = clips.to(dev).flatten(0, 1).contiguous(memory_format=fmt).view(clips.shape)
    times = interleaved_latency(models, clips, repeats=repeats, warmup=warmup)
    base = PROPORTIONS[0][0]
    rows = {}
    for label, _ in PROPORTIONS:
        ratios = [b / a for a, b in zip(times[base], times[label])]
        rows[label] = {"latency_ms": summarize([t * 1e3 for t in times[label]]), "ratio": summarize(ratios)}
    return {
        "arch": arch,
        "size": size,
        "n_segment": n_segment,
        "batch_size": 1,
        "repeats": repeats,
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "per_proportion": rows,
    }


def run_shift_proportion(
    *,
    out_dir: Path,
    data_root: Path,
    budget: Budget,
    seeds: list[int],
    device: str = "auto",
    progress: bool = True,
    log: Callable[[str], None] = print,
    jobs: int | None = None,
    reuse: dict[str, dict[str, Any]] | None = None,
) -> ExperimentResult:

    started = time.perf_counter()
    arms = _shift_arms()
    runs = _run_arms(
        arms,
        name="shift-proportion",
        out=out_dir,
        data_root=data_root,
        budget=budget,
        seeds=seeds,
        device=device,
        progress=progress,
        log=log,
        jobs=jobs,
        reuse=reuse,
    )
    summary = summarize_runs(runs, arms)
    log(
        f"[shift-proportion] latency: {budget.bench_arch} {budget.bench_size}x{budget.bench_size}, "
        f"T={DEMO_SEGMENTS}, {budget.bench_repeats} interleaved rounds"
    )
    latency = shift_latency(
        arch=budget.bench_arch,
        size=budget.bench_size,
        n_segment=DEMO_SEGMENTS,
        repeats=budget.bench_repeats,
        device=device,
    )
    ref = next(r for r in summary if r["group"] == "1/4")
    tsn = summary[0]

    def overhead(row: dict[str, Any]) -> str:
        r = latency["per_proportion"][row["group"]]["ratio"]
        return f"{100 * (r['median'] - 1):+.1f}% ({100 * (r['q1'] - 1):+.1f}..{100 * (r['q3'] - 1):+.1f})"

    table = markdown_table(
        summary,
        extra=[
            ("vs 1/4 (top-1)", lambda row: "-" if row is ref else compare(row["top1"], ref["top1"])),
            (f"latency vs TSN ({latency['arch']}, {latency['size']}px)", overhead),
        ],
    )
    best = max(summary, key=lambda r: r["top1"]["mean"])
    notes = [
        f"best top-1: {best['arm']} ({_fmt(best['top1'])}); 1/4 vs no shift: "
        f"{compare(ref['top1'], tsn['top1'])}; all channels vs 1/4: {compare(summary[-1]['top1'], ref['top1'])}",
        "latency: median of the per-round ratio to TSN (IQR), identical weights, batch 1, "
        f"{latency['device']}, {latency['threads']} threads",
    ]
    result = ExperimentResult(
        "shift-proportion", budget, seeds, runs, summary, table, notes, {"latency": latency}, out_dir
    )
    result.seconds = time.perf_counter() - started

    def plot(path: Path) -> Path:
        plt = _pyplot()
        fig, (acc, lat) = plt.subplots(1, 2, figsize=(11, 4))
        xs = list(range(len(summary)))
        labels = [r["group"] for r in summary]
        for key, label, style in (
            ("top1", "val top-1", "o-"),
            ("temporal_top1", "temporal pairs top-1", "s--"),
            ("order_acc", "order accuracy", "^:"),
        ):
            _errorbars(acc, xs, summary, key, fmt=style, label=label)
        acc.set_xticks(xs, labels)
        acc.set_xlabel("proportion of channels shifted")
        acc.set_ylabel(f"accuracy % ({_over_seeds(len(seeds))})")
        acc.set_title("accuracy vs shift proportion")
        acc.legend(fontsize=8)
        ratio = [latency["per_proportion"][g]["ratio"] for g in labels]
        med = [100 * (r["median"] - 1) for r in ratio]
        err = [[100 * (r["median"] - r["q1"]) for r in ratio], [100 * (r["q3"] - r["median"]) for r in ratio]]
        lat.errorbar(xs, med, yerr=err, fmt="o-", capsize=4, color="tab:red")
        lat.axhline(0, color="k", lw=0.8)
        lat.set_xticks(xs, labels)
        lat.set_xlabel("proportion of channels shifted")
        lat.set_ylabel("latency overhead vs TSN % (median, IQR)")
        lat.set_title(f"{latency['arch']} {latency['size']}px T={latency['n_segment']}, {latency['device']}")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path

    return _write(result, plot)


# --- placement ----------------------------------------------------------------------------


def _placement_arms() -> list[Arm]:
    arms = []
    for label, fd in (("1/8", 16), ("1/4", 8), ("1/2", 4)):
        arms.append(
            Arm(label=f"residual {label}", model={"shift": True, "fold_div": fd, "place": "blockres"}, group=label)
        )
        arms.append(
            Arm(label=f"in-place {label}", model={"shift": True, "fold_div": fd, "place": "block"}, group=label)
        )
    return arms


def run_placement(
    *,
    out_dir: Path,
    data_root: Path,
    budget: Budget,
    seeds: list[int],
    device: str = "auto",
    progress: bool = True,
    log: Callable[[str], None] = print,
    jobs: int | None = None,
    reuse: dict[str, dict[str, Any]] | None = None,
) -> ExperimentResult:
    started = time.perf_counter()
    arms = _placement_arms()
    runs = _run_arms(
        arms,
        name="placement",
        out=out_dir,
        data_root=data_root,
        budget=budget,
        seeds=seeds,
        device=device,
        progress=progress,
        log=log,
        jobs=jobs,
        reuse=reuse,
    )
    summary = summarize_runs(runs, arms)
    by_label = {row["arm"]: row for row in summary}

    def vs_residual(row: dict[str, Any]) -> str:
        if row["model"]["place"] == "blockres":
            return "-"
        return compare(row["top1"], by_label[f"residual {row['group']}"]["top1"])

    table = markdown_table(summary, extra=[("in-place vs residual (top-1)", vs_residual)])
    notes = [
        f"{g}: in-place - residual = {compare(by_label[f'in-place {g}']['top1'], by_label[f'residual {g}']['top1'])}"
        for g in ("1/8", "1/4", "1/2")
        if f"in-place {g}" in by_label and f"residual {g}" in by_label
    ]
    result = ExperimentResult("placement", budget, seeds, runs, summary, table, notes, {}, out_dir)
    result.seconds = time.perf_counter() - started

    def plot(path: Path) -> Path:
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(6, 4))
        groups = [g for g in ("1/8", "1/4", "1/2") if f"residual {g}" in by_label]
        width = 0.38
        for i, (place, colour) in enumerate((("residual", "tab:orange"), ("in-place", "tab:blue"))):
            rows = [by_label[f"{place} {g}"] for g in groups]
            xs = [k + (i - 0.5) * width for k in range(len(groups))]
            ax.bar(
                xs,
                [r["top1"]["mean"] for r in rows],
                width,
                yerr=[r["top1"]["sd"] for r in rows],
                capsize=4,
                label=f"{place} shift",
                color=colour,
            )
        ax.set_xticks(range(len(groups)), groups)
        ax.set_xlabel("proportion of channels shifted")
        ax.set_ylabel(f"val top-1 % ({_over_seeds(len(seeds))})")
        ax.set_ylim(0, 105)
        ax.set_title("residual vs in-place shift")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path

    return _write(result, plot)


# --- online ------------------------------------------------------------------------------------


def _online_arms() -> list[Arm]:
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
        sampler=TSNSampler(num_segments=t, train=False),
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


def run_online(
    *,
    out_dir: Path,
    data_root: Path,
    budget: Budget,
    seeds: list[int],
    device: str = "auto",
    progress: bool = True,
    log: Callable[[str], None] = print,
    jobs: int | None = None,
    reuse: dict[str, dict[str, Any]] | None = None,
) -> ExperimentResult:
    started = time.perf_counter()
    arms = _online_arms()
    runs = _run_arms(
        arms,
        name="online",
        out=out_dir,
        data_root=data_root,
        budget=budget,
        seeds=seeds,
        device=device,
        progress=progress,
        log=log,
        jobs=jobs,
        reuse=reuse,
    )
    streams = []
    for record in runs:
        if record["group"] == "online":
            curve = streaming_accuracy(record["checkpoint"], data_root=data_root, device=device)
            record["streaming"] = curve
            streams.append(curve)
    summary = summarize_runs(runs, arms)
    by_group = {row["group"]: row for row in summary}
    frames = streams[0]["frames"]
    stream_top1 = [_stats([c["top1"][i] for c in streams]) for i in range(len(frames))]
    stream_order = [_stats([c["order_acc"][i] for c in streams]) for i in range(len(frames))]
    final = stream_top1[-1]["mean"]
    needed = next(f for f, s in zip(frames, stream_top1) if s["mean"] >= final - 1.0)
    online_row, offline_row = by_group["online"], by_group["offline"]
    table = markdown_table(
        summary,
        extra=[
            (
                "vs offline TSM (top-1)",
                lambda row: "-" if row is offline_row else compare(row["top1"], offline_row["top1"]),
            ),
        ],
    )
    table += "\n\nStreaming (causal TSM, one frame at a time; running mean of the per-frame scores):\n\n"
    table += "| frames seen | " + " | ".join(str(f) for f in frames) + " |\n"
    table += "|---|" + "---|" * len(frames) + "\n"
    table += "| top-1 % | " + " | ".join(_fmt(s) for s in stream_top1) + " |\n"
    table += "| order acc. % | " + " | ".join(_fmt(s) for s in stream_order) + " |"
    notes = [
        f"causal - bidirectional TSM (top-1): {compare(online_row['top1'], offline_row['top1'])}",
        f"causal TSM - TSN (top-1): {compare(online_row['top1'], by_group['tsn']['top1'])}",
        f"the stream is within 1 point of its final top-1 ({final:.1f}%) after {needed} of {len(frames)} frames",
    ]
    extra = {
        "streaming": {
            "frames": frames,
            "top1": stream_top1,
            "order_acc": stream_order,
            "frames_to_within_1_point": needed,
        }
    }
    result = ExperimentResult("online", budget, seeds, runs, summary, table, notes, extra, out_dir)
    result.seconds = time.perf_counter() - started

    def plot(path: Path) -> Path:
        plt = _pyplot()
        fig, (bars, curve) = plt.subplots(1, 2, figsize=(11, 4))
        xs = list(range(len(summary)))
        for k, (key, label) in enumerate((("top1", "val top-1"), ("order_acc", "order accuracy"))):
            offs = [x + (k - 0.5) * 0.38 for x in xs]
            bars.bar(
                offs,
                [r[key]["mean"] for r in summary],
                0.38,
                yerr=[r[key]["sd"] for r in summary],
                capsize=4,
                label=label,
            )
        bars.set_xticks(xs, [r["arm"].replace(" (", "\n(") for r in summary], fontsize=8)
        bars.set_ylabel(f"% ({_over_seeds(len(seeds))})")
        bars.set_ylim(0, 105)
        bars.set_title("online (causal) vs offline TSM, same budget")
        bars.legend(fontsize=8)
        curve.errorbar(
            frames,
            [s["mean"] for s in stream_top1],
            yerr=[s["sd"] for s in stream_top1],
            fmt="o-",
            capsize=3,
            label="streaming causal TSM, top-1",
        )
        curve.errorbar(
            frames,
            [s["mean"] for s in stream_order],
            yerr=[s["sd"] for s in stream_order],
            fmt="^:",
            capsize=3,
            label="streaming causal TSM, order accuracy",
        )
        curve.axhline(
            offline_row["top1"]["mean"],
            color="tab:orange",
            ls="--",
            lw=1,
            label="offline bidirectional TSM, whole clip",
        )
        curve.set_xlabel("frames seen")
        curve.set_ylabel("%")
        curve.set_ylim(0, 105)
        curve.set_title("streaming: accuracy after each frame")
        curve.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path

    return _write(result, plot)


# --- zoo -------------------------------------------------------------------------------------


def zoo_families() -> dict[str, type[ClipClassifier]]:
    """Every model family (`temporal_shift.models.factory.FAMILIES`)."""
    return dict(FAMILIES)


def _zoo_arms(families: dict[str, type[ClipClassifier]], *, n_segment: int) -> tuple[list[Arm], list[dict[str, str]]]:
    """TSN and TSM, then one arm per other family (ResNet-18 trunk where the family takes it,
    else its first arch), checked against the family's own ``check_config``; the families
    that cannot take the recipe are returned with the reason."""
    from temporal_shift.models.config import ModelConfig

    arms = [Arm(label="TSN", model={"shift": False}, group="tsn"), Arm(label="TSM", model={"shift": True}, group="tsn")]
    not_run = []
    for family, cls in families.items():
        if family == "tsn":
            continue
        arch = "resnet18" if "resnet18" in cls.archs else cls.archs[0]
        model = {"family": family, "arch": arch, "shift": False}
        try:
            cls.check_config(ModelConfig(num_classes=12, n_segment=n_segment, **model))
        except (TypeError, ValueError) as exc:
            not_run.append({"family": family, "reason": str(exc)})
            continue
        arms.append(Arm(label=f"{family} ({arch})", model=model, group=family))
    return arms, not_run


def run_zoo(
    *,
    out_dir: Path,
    data_root: Path,
    budget: Budget,
    seeds: list[int],
    device: str = "auto",
    progress: bool = True,
    log: Callable[[str], None] = print,
    jobs: int | None = None,
    reuse: dict[str, dict[str, Any]] | None = None,
) -> ExperimentResult:

    started = time.perf_counter()
    families = zoo_families()
    arms, not_run = _zoo_arms(families, n_segment=DEMO_SEGMENTS)
    runnable = [arm for arm in arms if not any(n["family"] == arm.group for n in not_run)]
    runs = _run_arms(
        runnable,
        name="zoo",
        out=out_dir,
        data_root=data_root,
        budget=budget,
        seeds=seeds,
        device=device,
        progress=progress,
        log=log,
        jobs=jobs,
        reuse=reuse,
        tolerate=lambda arm: arm.group != "tsn",
    )  # e.g. a 3D network whose pooling needs larger inputs
    for failed in [r for r in runs if "error" in r]:
        if not any(n["family"] == failed["group"] for n in not_run):
            not_run.append({"family": failed["group"], "reason": failed["error"]})
    runs = [r for r in runs if not any(n["family"] == r["group"] for n in not_run)]
    ran = [a for a in arms if any(r["arm"] == a.label for r in runs)]
    summary = summarize_runs(runs, ran)
    tsm = next(r for r in summary if r["arm"] == "TSM")
    table = markdown_table(
        summary,
        extra=[
            ("vs TSM (top-1)", lambda row: "-" if row is tsm else compare(row["top1"], tsm["top1"])),
        ],
    )
    notes = [f"families ran: {', '.join(sorted({a.group for a in ran}))} (installed: {', '.join(families)})"]
    notes += [f"not run: {n['family']}: {n['reason']}" for n in not_run]
    result = ExperimentResult("zoo", budget, seeds, runs, summary, table, notes, {"not_run": not_run}, out_dir)
    result.seconds = time.perf_counter() - started

    def plot(path: Path) -> Path:
        return plot_zoo(summary, len(seeds), path)

    return _write(result, plot)


_ZOO_COLOURS = ("tab:blue", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")


def plot_zoo(summary: Sequence[dict[str, Any]], seeds: int, path: Path) -> Path:
    """The zoo's accuracy vs GMACs bubbles (area: parameters) from its summary rows; TSM in
    orange, TSN in grey, every other family a colour of its own."""

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    biggest = max(r["params_m"] for r in summary)
    others = itertools.cycle(_ZOO_COLOURS)
    for row in summary:
        colour = "tab:orange" if row["arm"] == "TSM" else ("tab:grey" if row["arm"] == "TSN" else next(others))
        ax.scatter(
            row["gmacs"],
            row["top1"]["mean"],
            s=60 + 1500 * row["params_m"] / biggest,
            alpha=0.5,
            color=colour,
            edgecolors="k",
        )
        ax.errorbar(row["gmacs"], row["top1"]["mean"], yerr=row["top1"]["sd"], color="k", capsize=3, lw=0.8)
        ax.annotate(
            f"{row['arm']}\n{row['params_m']:.1f}M",
            (row["gmacs"], row["top1"]["mean"]),
            fontsize=7,
            xytext=(6, 6),
            textcoords="offset points",
        )
    ax.set_xscale("log")
    ax.set_xlabel(f"GMACs per clip (T={DEMO_SEGMENTS}, {DEMO_SIZE}x{DEMO_SIZE}; log scale)")
    ax.set_ylabel(f"val top-1 % ({_over_seeds(seeds)})")
    ax.set_title("accuracy vs compute (bubble area: parameters)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# --- entry point ---------------------------------------------------------------------------------

RUNNERS: dict[str, Callable[..., ExperimentResult]] = {
    "shift-proportion": run_shift_proportion,
    "placement": run_placement,
    "online": run_online,
    "zoo": run_zoo,
}


def reproduce(
    experiment: str,
    *,
    budget: str | Budget = "small",
    seeds: int | None = None,
    out_dir: str | Path = "runs/reproduce",
    device: str = "auto",
    progress: bool = True,
    log: Callable[[str], None] = print,
    jobs: int | None = None,
) -> list[ExperimentResult]:
    """Run ``experiment`` (one of `EXPERIMENTS`, or ``"all"``) with ``budget`` (a name of
    `BUDGETS` or a `Budget`) and ``seeds`` seeds (default: the budget's), writing under
    ``out_dir``: the shared data in ``out_dir/data``, each experiment in its own folder. On a
    CPU the runs train side by side, ``jobs`` at a time (default: one per core; `side_by_side`).
    A run that an earlier experiment of the same call already trained (same model settings,
    recipe, data and seed: `run_key`) is reused, not trained again; its record says so."""

    names = list(EXPERIMENTS) if experiment == "all" else [experiment]
    for name in names:
        if name not in RUNNERS:
            raise ValueError(f"unknown experiment {name!r}; expected one of {', '.join(EXPERIMENTS)} or all")
    plan = budget_named(budget) if isinstance(budget, str) else budget
    seed_list = _seed_list(plan, seeds)
    out = Path(out_dir)
    data = prepare_demo_data(
        out / "data" / f"synthetic_{plan.num_videos}", num_videos=plan.num_videos, seed=0, progress=progress
    )
    results = []
    reuse: dict[str, dict[str, Any]] = {}  # runs trained so far: `all` trains each distinct run once
    for name in names:
        log(
            f"[{name}] {plan.name} budget: {plan.num_videos} clips, {plan.epochs} epochs of batch "
            f"{plan.batch_size}, seeds {seed_list}"
        )
        result = RUNNERS[name](
            out_dir=out / name,
            data_root=data.root,
            budget=plan,
            seeds=seed_list,
            device=device,
            progress=progress,
            log=log,
            jobs=jobs,
            reuse=reuse,
        )
        results.append(result)
    return results


def report(result: ExperimentResult) -> str:
    """The experiment's table and notes, as printed by ``tsm reproduce``."""
    lines = [
        f"## {result.experiment} ({result.budget.name} budget, {_plural(len(result.seeds), 'seed')}, "
        f"{result.seconds / 60:.1f} min)",
        "",
        result.table,
        "",
    ]
    lines += [f"- {note}" for note in result.notes]
    lines += [f"wrote {', '.join(str(p) for p in result.files.values())}"]
    return "\n".join(lines)
