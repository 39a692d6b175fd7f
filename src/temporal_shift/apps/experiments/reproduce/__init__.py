"""`tsm reproduce`: the paper's ablations in miniature, on the synthetic order-only data.

Each experiment trains a set of *arms* (model variants) with one recipe (`recipe`: the demo's
data, ResNet-18 from scratch, T=4 of 8-frame 32x32 clips, AdamW, cosine schedule) and the
same budget, seed set and optimizer for every arm; only the model settings differ. Every arm
goes through `train.train` and `evaluate.evaluate` like ``tsm train``/``tsm test`` runs, and
is scored with the recipe's metrics (top-1 overall, on the order-only temporal pairs, order
accuracy). One module per experiment:

- `shift_proportion`: no shift (TSN), 1/16, 1/8, 1/4 (the paper's default, fold_div 8),
  1/2 and all channels shifted; plus the inference latency of each proportion against TSN;
- `placement`: residual shift vs in-place shift at 1/8, 1/4 and 1/2;
- `online`: causal (online) vs bidirectional (offline) TSM and TSN, and the streaming
  model's accuracy after each frame;
- `zoo`: accuracy vs GMACs of TSN, TSM and every other installed model family;

and `common`, what they share: the budgets, running arms side by side, reusing runs, the
seed statistics and tables, writing the results.

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

from collections.abc import Callable
from pathlib import Path
from typing import Any

from temporal_shift.apps.experiments.recipe import Arm, arm_config, prepare_demo_data
from temporal_shift.apps.experiments.reproduce import (
    online,
    placement,
    shift_proportion,
    zoo,
)
from temporal_shift.apps.experiments.reproduce.common import (
    BUDGETS,
    METRICS,
    Budget,
    ExperimentResult,
    budget_named,
    compare,
    markdown_table,
    run_arms,
    run_key,
    seed_list,
    seed_stats,
    summarize_runs,
    train_arm,
)

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
    "arm_config",
    "compare",
    "markdown_table",
    "report",
    "reproduce",
    "run_arms",
    "run_key",
    "seed_stats",
    "summarize_runs",
    "train_arm",
]


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
    seeds_run = seed_list(plan, seeds)
    out = Path(out_dir)
    data = prepare_demo_data(
        out / "data" / f"synthetic_{plan.num_videos}", num_videos=plan.num_videos, seed=0, progress=progress
    )
    results = []
    reuse: dict[str, dict[str, Any]] = {}  # runs trained so far: `all` trains each distinct run once
    for name in names:
        log(
            f"[{name}] {plan.name} budget: {plan.num_videos} clips, {plan.epochs} epochs of batch "
            f"{plan.batch_size}, seeds {seeds_run}"
        )
        result = RUNNERS[name](
            out_dir=out / name,
            data_root=data.root,
            budget=plan,
            seeds=seeds_run,
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
    seeds = f"{len(result.seeds)} seed" + ("" if len(result.seeds) == 1 else "s")
    lines = [
        f"## {result.experiment} ({result.budget.name} budget, {seeds}, {result.seconds / 60:.1f} min)",
        "",
        result.table,
        "",
    ]
    lines += [f"- {note}" for note in result.notes]
    lines += [f"wrote {', '.join(str(p) for p in result.files.values())}"]
    return "\n".join(lines)
