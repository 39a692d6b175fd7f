"""benchmarks/reproduce_time.py: the runs it counts are the distinct runs `tsm reproduce` trains."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "reproduce_time.py"


def test_it_counts_each_distinct_run_once(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("reproduce_time", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    from temporal_shift.apps.experiments.reproduce import BUDGETS, EXPERIMENTS, RunStore

    budget = dataclasses.replace(BUDGETS["full"], seeds=3)
    every = script.planned_runs([([*EXPERIMENTS], "demo")], budget=budget, seeds=3, store=None)
    # per seed: 6 proportions, 3 in-place arms, causal TSM, the zoo's families other than TSN and TSM
    zoo_arms = script.experiment_arms("zoo")
    assert len(every) == 3 * (6 + 3 + 1 + len(zoo_arms) - 2)
    hard = script.planned_runs([(["zoo"], "hard")], budget=budget, seeds=3, store=None)
    assert len(hard) == 3 * len(zoo_arms)  # other data: no run shared with the demo data's
    empty = RunStore.at(tmp_path)
    assert len(script.planned_runs([(["online"], "demo")], budget=budget, seeds=1, store=empty)) == 3
