"""`tsm reproduce`: the paper's ablations in miniature, on the synthetic order-only data.

Each experiment trains a set of *arms* (model variants) with one recipe (`recipe`: ResNet-18
from scratch, T=4 of 8-frame 32x32 synthetic clips, AdamW, cosine schedule) and the same
data, budget, seed set and optimizer for every arm; only the model settings differ. The data
is the demo's (``demo``: one object per clip) or the harder variant (``hard``: a square and a
circle acting the class among look-alike moving distractors, so that the order cue is local;
``hard64``: the same at 64x64, for runs longer than the budgets', ``epochs``; ``camouflage``: a
disc of the background's random-dot texture, seen only by how it moves).
Every arm goes through `train.train` and `evaluate.evaluate` like ``tsm train``/``tsm test``
runs, and is scored with the recipe's metrics (top-1 overall, on the order-only temporal
pairs, order accuracy). One module per experiment:

- `shift_proportion`: no shift (TSN), 1/16, 1/8, 1/4 (the paper's default, fold_div 8),
  1/2 and all channels shifted; plus the inference latency of each proportion against TSN;
- `placement`: residual shift vs in-place shift at 1/8, 1/4 and 1/2;
- `online`: causal (online) vs bidirectional (offline) TSM and TSN, and the streaming
  model's accuracy after each frame;
- `zoo`: accuracy vs GMACs of TSN, TSM and every other installed model family;

`common`, what they share (the budgets, the setup, running arms side by side, the seed
statistics and tables, writing the results), and `store`, the run store.

Every run is kept in the run store (``<out>/runs``) under a key of its resolved settings
(model, recipe, data, seed, device kind: `run_key`) and reused by any later experiment or
invocation: ``all`` trains each distinct run once (shift-proportion's no-shift and 1/8-1/2
runs are also placement's residual arms, online's TSN and offline TSM and zoo's TSN and
TSM), an interrupted invocation loses only the runs under way (resumed from their last.pt
on the next), and the notes say which runs were reused and from when.

Each writes ``<out>/<experiment>/results.json`` (budget, machine, every run, the summary),
``results.md`` (the table) and ``<experiment>.png``, and returns the table. Arms are
compared over seeds: mean ± standard deviation, and a difference smaller than the seed
spread (max - min over seeds) of either arm is reported as within the spread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from temporal_shift.apps.experiments.recipe import DATA_VARIANTS, Arm, arm_config, prepare_data
from temporal_shift.apps.experiments.reproduce import (
    online,
    placement,
    shift_proportion,
    zoo,
)
from temporal_shift.apps.experiments.reproduce.common import (
    BUDGETS,
    METRICS,
    PAIR_TABLE_TITLE,
    Budget,
    ExperimentResult,
    Setup,
    budget_named,
    compare,
    markdown_table,
    pair_table,
    run_arms,
    seed_list,
    seed_stats,
    summarize_runs,
    train_arm,
)
from temporal_shift.apps.experiments.reproduce.store import RunStore, run_key

EXPERIMENTS: tuple[str, ...] = ("shift-proportion", "placement", "online", "zoo")
RUNNERS: dict[str, Callable[..., ExperimentResult]] = {
    "shift-proportion": shift_proportion.run,
    "placement": placement.run,
    "online": online.run,
    "zoo": zoo.run,
}

__all__ = [
    "BUDGETS",
    "EXPERIMENTS",
    "METRICS",
    "RUNNERS",
    "Arm",
    "Budget",
    "ExperimentResult",
    "RunStore",
    "Setup",
    "arm_config",
    "compare",
    "data_folder",
    "markdown_table",
    "pair_table",
    "report",
    "reproduce",
    "run_arms",
    "run_key",
    "seed_stats",
    "summarize_runs",
    "train_arm",
]


def reproduce(
    experiment: str | Sequence[str],
    *,
    budget: str | Budget = "small",
    seeds: int | None = None,
    out_dir: str | Path = "runs/reproduce",
    data: str = "demo",
    device: str = "auto",
    progress: bool = True,
    log: Callable[[str], None] = print,
    jobs: int | None = None,
    fresh: bool = False,
    epochs: int | None = None,
) -> list[ExperimentResult]:
    """Run ``experiment`` (one of `EXPERIMENTS`, several, or ``"all"``) with ``budget`` (a name of
    `BUDGETS` or a `Budget`) and ``seeds`` seeds (default: the budget's) on the synthetic ``data``
    (``demo``, ``hard``, ``hard64`` or ``camouflage``: `recipe.DATA_VARIANTS`), writing under ``out_dir``: the data
    in ``out_dir/data``, every run in the run store ``out_dir/runs`` (`store`), each experiment's
    results in ``out_dir/<experiment>`` (``<experiment>-<data>`` on other data than the demo's). On
    a CPU the runs train side by side, ``jobs`` at a time (default: one per core; `side_by_side`).
    A run that is in the store already (same model settings, recipe, data, seed and device kind:
    `run_key`), trained by any experiment in this call or an earlier one, is reused, not trained
    again, and the tables say so; an interrupted one is resumed. ``fresh`` trains every run again
    (once). ``epochs``: every run's, instead of the budget's (a run of the budget's batch size is
    then ``epochs`` passes over the training clips)."""
    names = _experiments(experiment)
    plan = budget_named(budget) if isinstance(budget, str) else budget
    if epochs is not None:
        if epochs < 1:
            raise ValueError(f"--epochs must be at least 1, got {epochs}")
        plan = dataclasses.replace(plan, epochs=epochs)
    seeds_run = seed_list(plan, seeds)
    if data not in DATA_VARIANTS:
        raise ValueError(f"unknown --data {data!r}; expected one of {', '.join(DATA_VARIANTS)}")
    out = Path(out_dir)
    paths = prepare_data(data_folder(out, data, plan), variant=data, num_videos=plan.num_videos, progress=progress)
    store = RunStore.at(out / "runs", fresh=fresh)
    command = (
        f"tsm reproduce {' '.join(names)} --budget {plan.name} --seeds {len(seeds_run)} --data {data} --out {out}"
        + (f" --epochs {epochs}" if epochs is not None else "")
        + (f" --device {device}" if device != "auto" else "")
        + (" --fresh" if fresh else "")
    )
    results = []
    for name in names:
        log(
            f"[{name}] {data} data, {plan.name} budget: {plan.num_videos} clips, {plan.epochs} epochs of batch "
            f"{plan.batch_size}, seeds {seeds_run}; runs kept in {store.root}"
        )
        setup = Setup(
            out_dir=out / (name if data == "demo" else f"{name}-{data}"),
            data_root=paths.root,
            budget=plan,
            seeds=seeds_run,
            store=store,
            data=data,
            device=device,
            progress=progress,
            log=log,
            jobs=jobs,
            command=command,
        )
        results.append(RUNNERS[name](setup))
    return results


def data_folder(out_dir: str | Path, data: str, budget: Budget) -> Path:
    """Where `reproduce` with ``out_dir`` keeps the synthetic ``data`` of ``budget``'s size."""
    folder = "synthetic" if data == "demo" else data
    return Path(out_dir) / "data" / f"{folder}_{budget.num_videos}"


def _experiments(experiment: str | Sequence[str]) -> list[str]:
    """The experiments to run, in `EXPERIMENTS` order (``all``: every one)."""
    asked = [experiment] if isinstance(experiment, str) else list(experiment)
    if "all" in asked:
        return list(EXPERIMENTS)
    for name in asked:
        if name not in RUNNERS:
            raise ValueError(f"unknown experiment {name!r}; expected one of {', '.join(EXPERIMENTS)} or all")
    if not asked:
        raise ValueError(f"no experiment given; expected one of {', '.join(EXPERIMENTS)} or all")
    return [name for name in EXPERIMENTS if name in asked]


def report(result: ExperimentResult) -> str:
    """The experiment's table and notes, as printed by ``tsm reproduce``."""
    seeds = f"{len(result.seeds)} seed" + ("" if len(result.seeds) == 1 else "s")
    lines = [
        f"## {result.experiment} ({result.budget.name} budget, {seeds}, {result.seconds / 60:.1f} min)",
        "",
        result.table,
        "",
    ]
    if by_pair := pair_table(result.summary, result.pair_names):
        lines += [f"{PAIR_TABLE_TITLE}:", "", by_pair, ""]
    lines += [f"- {note}" for note in result.notes]
    lines += [f"wrote {', '.join(str(p) for p in result.files.values())}"]
    return "\n".join(lines)
