"""What every experiment of `tsm reproduce` shares: the budget, what an experiment is run with
(`Setup`), running arms side by side through the run store (`store`: a run trained once, by any
experiment or invocation, is reused), the seed statistics and tables, and writing the results.

Arms are compared over seeds: mean ± standard deviation (`seed_stats`), and a difference
smaller than the seed spread (max - min over seeds) of either arm is reported as within the
spread (`compare`). Each experiment writes ``results.json`` (budget, machine, every run, the
summary), ``results.md`` (the table) and its PNG (`write_result`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from temporal_shift.apps.bench.turns import heavy_run
from temporal_shift.apps.experiments.recipe import (
    DEMO_EPOCHS,
    DEMO_VIDEOS,
    Arm,
    recipe_settings,
    train_and_test,
)
from temporal_shift.apps.experiments.reproduce.store import (
    RunStore,
    run_settings,
    settings_key,
    when,
    write_atomic,
)

METRICS: tuple[tuple[str, str], ...] = (
    ("top1", "top-1 %"),
    ("temporal_top1", "temporal pairs %"),
    ("order_acc", "order acc. %"),
)
# each temporal pair's order accuracy in a run's record ({"a-b": %}, `recipe.synthetic_metrics`)
BY_PAIR = "order_acc_by_pair"
PAIR_TABLE_TITLE = "Order accuracy by temporal pair, % (each pair named by its first class; the second is it backwards)"


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
    data: str = "demo"  # the synthetic data variant (`recipe.DATA_VARIANTS`)
    command: str = ""  # the tsm reproduce command that gives these results
    pair_names: dict[str, str] = dataclasses.field(default_factory=dict)  # "a-b": its classes' names

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "command": self.command,
            "data": self.data,
            "budget": dataclasses.asdict(self.budget),
            "seeds": self.seeds,
            "machine": machine(),
            "recipe": recipe_settings(self.data),
            "seconds": self.seconds,
            "summary": self.summary,
            "pair_names": self.pair_names,
            "notes": self.notes,
            "runs": self.runs,
            **self.extra,
        }


@dataclasses.dataclass(frozen=True)
class Setup:
    """What an experiment runs with: its output folder, the data (folder and variant), the
    budget and seeds, the run store, the device, and how runs share a CPU (``jobs``)."""

    out_dir: Path
    data_root: Path
    budget: Budget
    seeds: list[int]
    store: RunStore
    data: str = "demo"
    device: str = "auto"
    progress: bool = True
    log: Callable[[str], None] = print
    jobs: int | None = None
    command: str = ""  # the tsm reproduce command that gives this experiment's results

    def result(self, experiment: str, **fields: Any) -> ExperimentResult:
        """The experiment's `ExperimentResult` with this setup's budget, seeds, folder, data and command."""
        return ExperimentResult(
            experiment=experiment,
            budget=self.budget,
            seeds=self.seeds,
            out_dir=self.out_dir,
            data=self.data,
            command=self.command,
            pair_names=pair_names(self.data_root),
            **fields,
        )


def pair_names(data_root: Path) -> dict[str, str]:
    """Each temporal pair's key in a run's ``order_acc_by_pair`` ("a-b") and its name: its first
    class's in the data's classes.txt (the second is that class played backwards); the bare
    key where the data has no names."""
    from temporal_shift.data.lists import read_classes
    from temporal_shift.data.synthetic import CLASSES_FILE, TEMPORAL_PAIRS

    path = Path(data_root) / CLASSES_FILE
    names = read_classes(path) if path.is_file() else []
    return {f"{a}-{b}": names[a] if max(a, b) < len(names) else f"{a}-{b}" for a, b in TEMPORAL_PAIRS}


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


PROGRESS_FILE = "progress.json"  # in an interrupted run's folder: its training seconds so far


def train_arm(
    arm: Arm,
    *,
    data_root: Path,
    out_dir: Path,
    budget: Budget,
    seed: int,
    device: str = "auto",
    progress: bool = True,
    resume: bool = False,
) -> dict[str, Any]:
    """Train one arm with one seed in ``out_dir`` (with ``resume``, on from its last.pt there) and
    test it (`recipe.train_and_test`); its record: arm, group, seed, model settings, metrics,
    params, GMACs, training time (summed over its sittings; one killed without a chance to note
    its time is not counted), steps, checkpoint. Interrupted, it notes the training time so far in ``out_dir`` and
    raises KeyboardInterrupt."""
    earlier = _seconds_so_far(out_dir) if resume else 0.0
    started = time.perf_counter()
    try:
        run = train_and_test(
            arm,
            data_root=data_root,
            out_dir=out_dir,
            budget=budget,
            seed=seed,
            device=device,
            progress=progress,
            resume=resume,
        )
    except KeyboardInterrupt:
        write_atomic(Path(out_dir) / PROGRESS_FILE, {"train_seconds": earlier + time.perf_counter() - started})
        raise
    return {
        "arm": arm.label,
        "group": arm.group,
        "seed": seed,
        "model": arm.model,
        **run["metrics"],
        "params_m": run["params_m"],
        "gmacs": run["flops"] / 2e9,
        "train_seconds": earlier + run["train_seconds"],
        "steps": run["steps"],
        "checkpoint": run["checkpoint"],
    }


def _seconds_so_far(out_dir: Path) -> float:
    try:
        return float(json.loads((Path(out_dir) / PROGRESS_FILE).read_text())["train_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def _resume_step(run_dir: Path) -> tuple[int | None, str | None]:
    """The step an interrupted run's last.pt resumes at, or None and why it cannot be resumed
    (damaged, truncated, no training state)."""
    from temporal_shift.checkpoint.format import CheckpointError, read_checkpoint

    try:
        return int(read_checkpoint(run_dir / "last.pt")["train_state"]["global_step"]), None
    except CheckpointError as exc:
        return None, str(exc).splitlines()[0]
    except (KeyError, TypeError, ValueError) as exc:
        return None, f"{run_dir / 'last.pt'}: no training state to resume ({type(exc).__name__}: {exc})"


def obtain_run(
    arm: Arm,
    *,
    key: str,
    settings: dict[str, Any],
    store: RunStore,
    experiment: str,
    data_root: Path,
    budget: Budget,
    seed: int,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """The finished run ``key`` (``settings``: `store.run_settings`): its record from ``store`` if
    another process finished it meanwhile, else trained in its run folder (`train_arm`, resumed
    from an interrupted sitting's last.pt when it has one) and saved. Holds the run's lock, so
    two invocations never train one run at once, and starts it only when no benchmark is timing on
    the machine (`turns.heavy_run`). The record says who trained it and whether it was trained now
    (``trained_now``)."""
    with store.lock(key):
        done = store.finished(key)
        if done is not None:
            return done
        run_dir = store.run_dir(key)
        step, unresumable = _resume_step(run_dir) if store.start(key, settings) else (None, None)
        if step is None:  # nothing to resume, or a last.pt that cannot be: from scratch, and said so
            store.restart(key, settings)
        with heavy_run(f"{experiment}: {arm.label}, seed {seed}"):  # never while a benchmark times
            record = train_arm(
                arm,
                data_root=data_root,
                out_dir=run_dir,
                budget=budget,
                seed=seed,
                device=device,
                progress=progress,
                resume=step is not None,
            )
        from temporal_shift.ops.runtime import resolve_device

        saved = store.save(
            key,
            {
                **record,
                "trained_by": {"experiment": experiment, "arm": arm.label},
                "resumed_at_step": step,
                "restarted_because": unresumable,
                "device": str(resolve_device(device)),
                "settings": settings,
            },
        )
        return {**saved, "trained_now": True}


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
    """Per arm (in ``arms`` order): mean, sd, min, max and n over seeds of every metric, and of
    each pair's order accuracy (``order_acc_by_pair``) where every run of the arm has them."""
    rows = []
    for arm in arms:
        mine = [r for r in runs if r["arm"] == arm.label]
        if not mine:
            continue
        row: dict[str, Any] = {"arm": arm.label, "group": arm.group, "model": arm.model}
        for key, _ in METRICS:
            row[key] = seed_stats([r[key] for r in mine])
        by_pair: list[dict[str, float]] = [r[BY_PAIR] for r in mine if isinstance(r.get(BY_PAIR), dict)]
        if len(by_pair) == len(mine) and all(p.keys() == by_pair[0].keys() for p in by_pair):  # else: runs from before
            row[BY_PAIR] = {pair: seed_stats([p[pair] for p in by_pair]) for pair in by_pair[0]}
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


def pair_table(summary: Sequence[dict[str, Any]], names: dict[str, str]) -> str:
    """Each arm's order accuracy by temporal pair (mean ± sd over seeds) as a markdown table,
    the pairs named by ``names`` (`pair_names`); arms whose runs lack them are left out, and
    with none that has them the table is empty."""
    rows = [row for row in summary if BY_PAIR in row]
    if not rows:
        return ""
    pairs = list(rows[0][BY_PAIR])
    lines = ["| arm | " + " | ".join(names.get(p, p) for p in pairs) + " |", "|" + "---|" * (len(pairs) + 1)]
    lines += ["| " + " | ".join([row["arm"]] + [format_stats(row[BY_PAIR][p]) for p in pairs]) + " |" for row in rows]
    return "\n".join(lines)


def with_pairs_tested(
    record: dict[str, Any], *, key: str, store: RunStore, data_root: Path, device: str, log: Callable[[str], None]
) -> dict[str, Any]:
    """A finished run's record, with its order accuracy by pair: a run finished before records
    kept them has its last.pt tested again as the recipe tests it (`recipe.evaluate_on_val`) and
    the pairs added to its record in the store (``pairs_tested_again_at``), when the test gives
    the record's order accuracy again (to 0.05 points); else the record stays as it was, and
    the line logged says so."""
    if BY_PAIR in record:
        return record
    from temporal_shift.apps.experiments.recipe import evaluate_on_val, synthetic_metrics

    with store.lock(key), heavy_run(f"run {key}: testing its last.pt again"):
        current = store.finished(key)
        if current is None or BY_PAIR in current:  # gone meanwhile, or another invocation tested it
            return current or record
        metrics = synthetic_metrics(evaluate_on_val(current["checkpoint"], data_root=data_root, device=device))
        if abs(metrics["order_acc"] - current["order_acc"]) > 0.05:
            log(
                f"{store.record_path(key)}: its last.pt tested again gives order accuracy "
                f"{metrics['order_acc']:.2f}%, its record {current['order_acc']:.2f}%: record left as it was, "
                "without its pairs' figures"
            )
            return current
        return store.add_fields(key, {BY_PAIR: metrics[BY_PAIR], "pairs_tested_again_at": time.time()})


def _arm_job(*, tolerate: bool = False, **kwargs: Any) -> dict[str, Any]:
    """`obtain_run` in a side-by-side process; with ``tolerate`` a RuntimeError or ValueError
    (a family that cannot take the recipe's input) comes back as ``{"error": reason}``."""
    try:
        return obtain_run(**kwargs)
    except (RuntimeError, ValueError) as exc:
        if not tolerate:
            raise
        return {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}


def run_arms(
    arms: Sequence[Arm],
    *,
    name: str,
    setup: Setup,
    tolerate: Callable[[Arm], bool] = lambda arm: False,
) -> list[dict[str, Any]]:
    """Every arm with every seed (seed-major: the first runs to finish have every arm once); the
    records in that order, each under this experiment's arm label. A run whose record is in the
    run store (same settings: `store.run_settings`; trained by any experiment, in this invocation
    or an earlier one) is not trained again: its record carries ``reused_from`` (who trained it,
    when). The others train side by side on a CPU (`side_by_side`), an interrupted one resumed
    from its last.pt, and each is saved to the store as it finishes, so an interrupted invocation
    loses only the runs under way. An arm for which ``tolerate`` is true and that fails with a
    RuntimeError or ValueError gives ``{"arm": label, "group": group, "seed": seed, "error": reason}``."""
    from temporal_shift.apps.experiments.side_by_side import (
        plan_slots,
        run_side_by_side,
    )
    from temporal_shift.ops.runtime import resolve_device

    everything = [(seed, arm) for seed in setup.seeds for arm in arms]
    settings = [
        run_settings(arm, data_root=setup.data_root, budget=setup.budget, seed=seed, device=setup.device)
        for seed, arm in everything
    ]
    keys = [settings_key(s) for s in settings]
    found = {key: record for key in dict.fromkeys(keys) if (record := setup.store.finished(key)) is not None}
    if untested := [key for key, record in found.items() if BY_PAIR not in record]:
        setup.log(
            f"[{name}] {len(untested)} finished run(s) from before run records kept the order accuracy by pair: "
            "testing their last.pt again, as the recipe tests it"
        )
        for key in untested:
            found[key] = with_pairs_tested(
                found[key],
                key=key,
                store=setup.store,
                data_root=setup.data_root,
                device=setup.device,
                log=setup.log,
            )
    plan = {key: i for i, key in reversed(list(enumerate(keys))) if key not in found}  # first arm with each key
    plan = dict(sorted(plan.items(), key=lambda item: item[1]))
    slots = plan_slots(str(resolve_device(setup.device)), max(1, len(plan)), jobs=setup.jobs)
    _log_plan(name, setup, total=len(everything), found=found, keys=keys, plan=plan, slots=slots.describe())
    calls = [
        {
            "arm": everything[i][1],
            "key": key,
            "settings": settings[i],
            "store": setup.store,
            "experiment": name,
            "data_root": setup.data_root,
            "budget": setup.budget,
            "seed": everything[i][0],
            "device": setup.device,
            "progress": setup.progress and slots.runs == 1,
            "tolerate": tolerate(everything[i][1]),
        }
        for key, i in plan.items()
    ]
    done = _progress_lines(name=name, plan=[everything[i] for i in plan.values()], log=setup.log)
    trained = run_side_by_side(_arm_job, calls, slots, on_done=done) if calls else []
    by_key = found | dict(zip(plan, trained, strict=True))
    return [_as_arm(by_key[key], arm, seed, experiment=name) for (seed, arm), key in zip(everything, keys, strict=True)]


def _log_plan(
    name: str,
    setup: Setup,
    *,
    total: int,
    found: dict[str, dict[str, Any]],
    keys: Sequence[str],
    plan: dict[str, int],
    slots: str,
) -> None:
    """One line: how many runs, how many the store already holds, how many to train (and resume)."""
    reused = sum(key in found for key in keys)
    resume = sum((setup.store.run_dir(key) / "last.pt").is_file() for key in plan)
    line = f"[{name}] {total} runs"
    if reused:
        line += f", {reused} of them finished earlier (same model, recipe, data and seed): reused"
    if plan:
        line += f"; {len(plan)} to train" + (f" ({resume} resumed from an interrupted sitting)" if resume else "")
        line += f", {slots}"
    setup.log(line)


def _as_arm(record: dict[str, Any], arm: Arm, seed: int, *, experiment: str) -> dict[str, Any]:
    """A run's record under this experiment's arm: its label, group and model; ``reused_from``
    when it was not trained by this experiment just now."""
    if "error" in record:
        return {"arm": arm.label, "group": arm.group, "seed": seed, "error": record["error"]}
    mine = {k: v for k, v in record.items() if k not in ("trained_now", "settings")}
    mine.update({"arm": arm.label, "group": arm.group, "seed": seed, "model": arm.model})
    trained_by = record.get("trained_by", {})
    if not (record.get("trained_now") and trained_by.get("experiment") == experiment):
        mine["reused_from"] = {**trained_by, "finished": when(record)}
    return mine


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
        how = "" if record.get("trained_now") else " (finished meanwhile by another invocation)"
        resumed = "" if record.get("resumed_at_step") is None else f", resumed at step {record['resumed_at_step']}"
        if record.get("restarted_because"):
            resumed = f", trained from scratch: the interrupted sitting's {record['restarted_because']}"
        log(
            f"[{name} {finished}/{len(plan)}] {arm.label}, seed {seed}: top-1 {record['top1']:.1f}%, order "
            f"{record['order_acc']:.1f}%, {record['gmacs']:.3f} GMACs ({record['train_seconds']:.0f} s training"
            f"{resumed}; {time.perf_counter() - started:.0f} s since the first run started){how}"
        )

    return done


def reuse_notes(runs: Sequence[dict[str, Any]]) -> list[str]:
    """A line per arm with reused runs: its seeds, which experiment's arm trained them, and when."""
    reused: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        if "reused_from" in run:
            origin = run["reused_from"]
            reused.setdefault((run["arm"], f"{origin.get('experiment')}: {origin.get('arm')}"), []).append(run)
    notes = []
    for (arm, origin), mine in reused.items():
        seeds = ", ".join(str(r["seed"]) for r in mine)
        times = sorted(r["reused_from"]["finished"] for r in mine)
        span = times[0] if times[0] == times[-1] else f"{times[0]} to {times[-1]}"
        notes.append(
            f"reused, not trained again (same model, recipe, data and seed): {arm}, seed{'s' * (len(mine) > 1)} "
            f"{seeds}, trained by {origin}, finished {span}"
        )
    return notes


def write_result(result: ExperimentResult, plot: Callable[[Path], Path] | None) -> ExperimentResult:
    """Note the reused runs, write ``results.json``, ``results.md`` and (with ``plot``, given the
    path) ``<experiment>.png`` to the experiment's folder; ``result`` with its ``files``."""
    out = result.out_dir
    out.mkdir(parents=True, exist_ok=True)
    result.notes += reuse_notes(result.runs)
    json_path = out / "results.json"
    json_path.write_text(json.dumps(result.to_dict(), indent=2, default=str) + "\n")
    md = [f"# {result.experiment} ({result.data} data, {result.budget.name} budget, seeds {result.seeds})"]
    md += ["", result.table, ""]
    if by_pair := pair_table(result.summary, result.pair_names):
        md += [f"{PAIR_TABLE_TITLE}:", "", by_pair, ""]
    md += [f"- {note}" for note in result.notes]
    m = machine()
    md += [""] + ([f"Command: `{result.command}`", ""] if result.command else [])
    md += [
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
