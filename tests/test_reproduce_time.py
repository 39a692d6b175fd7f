"""benchmarks/reproduce_time.py: the runs it counts are the distinct runs `tsm reproduce` trains."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from conftest import benchmark_script


def _script():
    return benchmark_script("reproduce_time")


def test_it_counts_each_distinct_run_once(tmp_path: Path) -> None:
    script = _script()
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


def test_runs_finished_in_a_store_are_left_out(tmp_path: Path) -> None:
    """--store DIR/runs: a run `tsm reproduce --out DIR` finished (its key found with the data that
    invocation generated) is not counted; the others are."""
    from temporal_shift.apps.experiments.recipe import prepare_data
    from temporal_shift.apps.experiments.reproduce import BUDGETS, RunStore, data_folder, online, run_key
    from temporal_shift.apps.experiments.reproduce.store import run_settings

    script = _script()
    budget = dataclasses.replace(BUDGETS["full"], num_videos=24, seeds=1)
    prepare_data(data_folder(tmp_path, "demo", budget), num_videos=24, progress=False)
    store = RunStore.at(tmp_path / "runs")
    tsn = online.arms()[0]
    root = data_folder(tmp_path, "demo", budget)
    key = run_key(tsn, data_root=root, budget=budget, seed=0, device="cpu")
    store.start(key, run_settings(tsn, data_root=root, budget=budget, seed=0, device="cpu"))
    (store.run_dir(key) / "last.pt").write_bytes(b"")
    metrics = dict.fromkeys(("top1", "temporal_top1", "order_acc", "params_m", "gmacs", "train_seconds"), 1.0)
    settings = run_settings(tsn, data_root=root, budget=budget, seed=0, device="cpu")
    store.save(key, {**metrics, "settings": settings, "checkpoint": str(store.run_dir(key) / "last.pt")})
    left = script.planned_runs([(["online"], "demo")], budget=budget, seeds=1, store=store)
    assert [run["arm"].label for run in left] == [arm.label for arm in online.arms()[1:]]


def test_the_camouflage_zoo_is_counted_at_its_48_epochs(tmp_path: Path) -> None:
    """reproduce_full.sh's zoo runs on the camouflage data at 48 epochs: the estimate counts its
    runs at 8640 steps each (step times from a --timings file, so nothing is timed here)."""
    import json

    from temporal_shift.apps.experiments.reproduce import EXPERIMENTS

    script = _script()
    models = {json.dumps(arm.model, sort_keys=True) for name in EXPERIMENTS for arm in script.experiment_arms(name)}
    timings = tmp_path / "times.json"
    timings.write_text(json.dumps({"seconds_per_step": dict.fromkeys(models, 0.5)}))
    report = script.main(["--timings", str(timings), "--seeds", "3"])
    (zoo_label,) = [label for label in report["invocations"] if label.startswith("zoo ")]
    assert "--data camouflage --epochs 48" in zoo_label
    zoo = report["invocations"][zoo_label]
    assert zoo["steps_per_run"] == 8640 and zoo["runs"] == 3 * len(script.experiment_arms("zoo"))
    assert zoo["run_seconds"] == pytest.approx(zoo["runs"] * 0.5 * 8640 * (1 + script.OVERHEAD))
    assert report["invocations"]["all --budget full --seeds 3"]["steps_per_run"] == 1440
