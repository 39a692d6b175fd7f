"""What every experiment of `tsm reproduce` shares: the budget, running arms side by side,
reusing runs already trained, the seed statistics and tables, and writing the results.

Arms are compared over seeds: mean ± standard deviation (`seed_stats`), and a difference
smaller than the seed spread (max - min over seeds) of either arm is reported as within the
spread (`compare`). Each experiment writes ``results.json`` (budget, machine, every run, the
summary), ``results.md`` (the table) and its PNG (`write_result`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from temporal_shift.apps.experiments.recipe import (
    DEMO_EPOCHS,
    DEMO_VIDEOS,
    Arm,
    arm_config,
    recipe_settings,
    train_and_test,
)

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
            "recipe": recipe_settings(),
            "seconds": self.seconds,
            "summary": self.summary,
            "notes": self.notes,
            "runs": self.runs,
            **self.extra,
        }


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


def budget_named(name: str) -> Budget:
    """The budget of `BUDGETS` called ``name``."""
    if name not in BUDGETS:
        raise ValueError(f"unknown budget {name!r}; expected one of {', '.join(BUDGETS)}")
    return BUDGETS[name]


def seed_list(budget: Budget, seeds: int | None) -> list[int]:
    """Seeds 0..n-1: ``seeds`` of them, else the budget's."""
    n = budget.seeds if seeds is None else seeds
    if n < 1:
        raise ValueError(f"--seeds must be at least 1, got {n}")
    return list(range(n))


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
    """Train one arm with one seed and test it (`recipe.train_and_test`); its record: arm, group,
    seed, model settings, metrics, params, GMACs, time, steps, checkpoint."""
    run = train_and_test(
        arm, data_root=data_root, out_dir=out_dir, budget=budget, seed=seed, device=device, progress=progress
    )
    return {
        "arm": arm.label,
        "group": arm.group,
        "seed": seed,
        "model": arm.model,
        **run["metrics"],
        "params_m": run["params_m"],
        "gmacs": run["flops"] / 2e9,
        "train_seconds": run["train_seconds"],
        "steps": run["steps"],
        "checkpoint": run["checkpoint"],
    }


def seed_stats(values: Sequence[float]) -> dict[str, float]:
    """Mean, standard deviation, min, max and count of one metric over seeds."""
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
            row[key] = seed_stats([r[key] for r in mine])
        row["params_m"] = mine[0]["params_m"]
        row["gmacs"] = mine[0]["gmacs"]
        row["train_seconds"] = seed_stats([r["train_seconds"] for r in mine])
        rows.append(row)
    return rows


def compare(a: dict[str, float], b: dict[str, float]) -> str:
    """``a`` minus ``b`` (two `seed_stats`) in points, and whether it is within the seed spread:
    smaller than the spread (max - min over seeds) of either arm."""
    diff = a["mean"] - b["mean"]
    if a["n"] < 2 and b["n"] < 2:
        return f"{diff:+.1f} (one seed: spread unknown)"
    spread = max(a["max"] - a["min"], b["max"] - b["min"])
    verdict = "within the seed spread" if abs(diff) <= spread else "beyond the seed spread"
    return f"{diff:+.1f} ({verdict} {spread:.1f})"


def over_seeds(n: int) -> str:
    """A plot label's statistic: mean ± sd over ``n`` seeds, or the one seed's value."""
    return "one seed" if n == 1 else f"mean ± sd, {n} seeds"


def format_stats(s: dict[str, float]) -> str:
    """``mean ± sd`` of `seed_stats` (the value alone for one seed)."""
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
        cells = [row["arm"]] + [format_stats(row[key]) for key, _ in METRICS]
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


def run_arms(
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
    from temporal_shift.apps.experiments.side_by_side import (
        plan_slots,
        run_side_by_side,
    )
    from temporal_shift.ops.runtime import resolve_device

    everything = [(seed, arm) for seed in seeds for arm in arms]
    keys = [
        run_key(arm, data_root=data_root, budget=budget, seed=seed, device=device) if reuse is not None else ""
        for seed, arm in everything
    ]
    known = reuse if reuse is not None else {}
    plan = [(seed, arm) for (seed, arm), key in zip(everything, keys, strict=True) if key not in known]
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
    done = _progress_lines(name=name, plan=plan, log=log)
    trained = iter(run_side_by_side(_arm_job, calls, slots, on_done=done) if plan else [])
    return _records(everything, keys, known=known, trained=trained, reuse=reuse, name=name)


def _progress_lines(
    *,
    name: str,
    plan: Sequence[tuple[int, Arm]],
    log: Callable[[str], None],
) -> Callable[[int, dict[str, Any]], None]:
    """The ``on_done`` of `run_arms`' runs: a line per finished run (its metrics, or why it did not run)."""
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

    return done


def _records(
    everything: Sequence[tuple[int, Arm]],
    keys: Sequence[str],
    *,
    known: dict[str, dict[str, Any]],
    trained: Iterator[dict[str, Any]],
    reuse: dict[str, dict[str, Any]] | None,
    name: str,
) -> list[dict[str, Any]]:
    """`run_arms`' records in ``everything``'s order: a known run's record under this arm's label,
    else the next one trained (added to ``reuse``)."""
    records = []
    for (seed, arm), key in zip(everything, keys, strict=True):
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


def write_result(result: ExperimentResult, plot: Callable[[Path], Path] | None) -> ExperimentResult:
    """Note the reused runs, write ``results.json``, ``results.md`` and (with ``plot``, given the
    path) ``<experiment>.png`` to the experiment's folder; ``result`` with its ``files``."""
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


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    """Lay out ``fig``, write it to ``path`` as a PNG (120 dpi) and close it."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    pyplot().close(fig)
    return path
