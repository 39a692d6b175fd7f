"""How long would `tsm reproduce` take on this machine? An estimate from timed training steps.

Lists the distinct runs of benchmarks/reproduce_full.sh's two commands (the zoo's on the
camouflage data, 48 epochs a run) and of ``all`` (a run two experiments share is trained
once), times a few training steps of each distinct model on in-memory clips as the recipe
trains them (ResNet-18 trunk where the family takes one, T=4, 32x32, batch 16, AdamW, one
torch thread per run as when runs train side by side on a CPU), and prints the seconds a step
of each model and the wall time of each command: the runs' steps plus an overhead guessed at
10% (loading JPEG batches, the validations and the test of 720 clips), divided among the runs
at once. Runs already in a run store (``--store``) are left out.

    python benchmarks/reproduce_time.py --json times.json     # reproduce_full.sh's two commands and all, 3 seeds
    python benchmarks/reproduce_time.py --seeds 5 --timings times.json --store runs/reproduce-full/runs

On a loaded machine the figures are the load's; docs/reproduce.md has them with the machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from temporal_shift.apps.experiments.recipe import DEMO_SEGMENTS, DEMO_SIZE, NUM_CLASSES, Arm, arm_config
from temporal_shift.apps.experiments.reproduce import (
    BUDGETS,
    EXPERIMENTS,
    data_folder,
    online,
    placement,
    shift_proportion,
    zoo,
)
from temporal_shift.apps.experiments.reproduce.common import Budget
from temporal_shift.apps.experiments.reproduce.store import RunStore, run_settings, settings_key
from temporal_shift.models.factory import model_from_config

OVERHEAD = 0.10  # of a run's training steps, guessed: JPEG loading, the validations (every other epoch) and the test
CAMOUFLAGE_EPOCHS = 48  # the camouflage zoo's (benchmarks/reproduce_full.sh): 8640 steps a run


def experiment_arms(name: str) -> list[Arm]:
    if name == "zoo":
        arms, not_run = zoo.arms(zoo.families(), n_segment=DEMO_SEGMENTS)
        return [a for a in arms if not any(n["family"] == a.group for n in not_run)]
    return {"shift-proportion": shift_proportion.arms, "placement": placement.arms, "online": online.arms}[name]()


def planned_runs(
    invocations: list[tuple[list[str], str]], *, budget: Budget, seeds: int, store: RunStore | None
) -> list[dict[str, Any]]:
    """Every distinct run of ``invocations`` ((experiments, data) pairs), by key, minus those in
    ``store`` (a `tsm reproduce --out DIR`'s ``DIR/runs``: its runs' keys are found with the data
    that invocation generated in ``DIR/data``)."""
    runs: dict[str, dict[str, Any]] = {}
    for names, data in invocations:
        # without a store no dataset is needed: a run's key differs between data variants anyway
        root = data_folder(store.root.parent, data, budget) if store else Path(f"(the {data} data)")
        for name in names:
            for seed in range(seeds):
                for arm in experiment_arms(name):
                    key = settings_key(run_settings(arm, data_root=root, budget=budget, seed=seed, device="cpu"))
                    if store is not None and store.finished(key) is not None:
                        continue
                    runs.setdefault(key, {"arm": arm, "data": data, "first": f"{name}: {arm.label}"})
    return list(runs.values())


def seconds_per_step(arm: Arm, *, budget: Budget, steps: int, warmup: int = 2) -> float:
    """Median seconds of a training step of ``arm``'s model, as the recipe trains it, on random clips."""
    config = arm_config(arm, data_root=Path("."), out_dir=Path("."), budget=budget, seed=0, device="cpu")
    torch.manual_seed(0)
    model = model_from_config(config.model_config()).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05, fused=True)
    clips = torch.randn(budget.batch_size, DEMO_SEGMENTS, 3, DEMO_SIZE, DEMO_SIZE)
    labels = torch.randint(0, NUM_CLASSES, (budget.batch_size,))
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        loss = F.cross_entropy(model(clips), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", choices=tuple(BUDGETS), default="full")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=4, help="timed steps per model (after 2 untimed)")
    p.add_argument("--jobs", type=int, default=2, help="runs at once (side by side: one per core)")
    p.add_argument("--store", type=Path, default=None, help="a run store: its finished runs are not counted")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument("--timings", type=Path, default=None, help="take the step times of an earlier --json file")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    budget = dataclasses.replace(BUDGETS[args.budget], seeds=args.seeds)
    store = RunStore.at(args.store) if args.store else None
    every = f"--budget {args.budget} --seeds {args.seeds}"
    invocations = {  # benchmarks/reproduce_full.sh runs the first two: (experiments, data, epochs)
        f"shift-proportion placement online {every}": (["shift-proportion", "placement", "online"], "demo", None),
        f"zoo {every} --data camouflage --epochs {CAMOUFLAGE_EPOCHS}": (["zoo"], "camouflage", CAMOUFLAGE_EPOCHS),
        f"all {every}": ([*EXPERIMENTS], "demo", None),
    }
    per_model: dict[str, float] = json.loads(args.timings.read_text())["seconds_per_step"] if args.timings else {}
    report: dict[str, Any] = {"jobs": args.jobs, "invocations": {}}
    for label, (names, data, epochs) in invocations.items():
        planned = dataclasses.replace(budget, epochs=epochs) if epochs else budget
        steps_per_run = planned.epochs * int(planned.num_videos * 0.8) // planned.batch_size
        runs = planned_runs([(names, data)], budget=planned, seeds=args.seeds, store=store)
        total = 0.0
        for run in runs:
            model = json.dumps(run["arm"].model, sort_keys=True)
            if model not in per_model:
                per_model[model] = seconds_per_step(run["arm"], budget=budget, steps=args.steps)
                print(f"{run['first']:>40}: {per_model[model]:.3f} s a step", flush=True)
            total += per_model[model] * steps_per_run * (1 + OVERHEAD)
        hours = total / args.jobs / 3600
        report["invocations"][label] = {
            "runs": len(runs),
            "steps_per_run": steps_per_run,
            "run_seconds": total,
            "wall_hours": hours,
        }
        print(f"tsm reproduce {label}: {len(runs)} runs of {steps_per_run} steps, about {hours:.1f} h", flush=True)
    report["seconds_per_step"] = per_model
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
