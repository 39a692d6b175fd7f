"""`tsm reproduce`: arms differ only in the model, the seed statistics and the verdicts are
right, and each experiment runs end to end through `tsm train`'s machinery (tiny budgets)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from temporal_shift.apps.experiments import reproduce as rp
from temporal_shift.apps.experiments.reproduce import common, online, placement, shift_proportion, zoo
from temporal_shift.cli import main

TINY = rp.Budget(
    "tiny", num_videos=24, epochs=1, seeds=2, batch_size=8, bench_arch="resnet18", bench_size=32, bench_repeats=2
)


@pytest.mark.parametrize(
    "arms", [shift_proportion.arms(), placement.arms(), online.arms()], ids=["shift-proportion", "placement", "online"]
)
def test_arms_share_data_budget_seed_and_optimizer(tmp_path: Path, arms) -> None:
    configs = [
        rp.arm_config(arm, data_root=tmp_path, out_dir=tmp_path / "x", budget=rp.BUDGETS["small"], seed=3)
        for arm in arms
    ]
    first = configs[0]
    for arm, config in zip(arms, configs, strict=True):
        assert (config.data, config.optim, config.run) == (first.data, first.optim, first.run)
        for key, value in arm.model.items():
            assert getattr(config.model, key) == value, (arm.label, key)
        # everything the arm does not set is the recipe's
        untouched = {f.name for f in dataclasses.fields(config.model)} - set(arm.model)
        assert all(getattr(config.model, k) == getattr(first.model, k) for k in untouched - {"shift"})
    assert len({c.model for c in configs}) == len(arms)  # and every arm is a different model


def test_shift_proportions_are_the_papers() -> None:
    arms = shift_proportion.arms()
    assert [a.model.get("fold_div") for a in arms] == [None, 32, 16, 8, 4, 2]
    assert arms[0].model == {"shift": False}
    assert {a.model["place"] for a in placement.arms()} == {"blockres", "block"}
    assert [a.model.get("mode") for a in online.arms()] == [None, "bidirectional", "causal"]


def test_seed_statistics_and_spread_verdicts_by_hand() -> None:
    runs = [
        {
            "arm": "a",
            "top1": 80.0,
            "temporal_top1": 70.0,
            "order_acc": 90.0,
            "params_m": 1.0,
            "gmacs": 0.5,
            "train_seconds": 10.0,
        },
        {
            "arm": "a",
            "top1": 84.0,
            "temporal_top1": 74.0,
            "order_acc": 94.0,
            "params_m": 1.0,
            "gmacs": 0.5,
            "train_seconds": 12.0,
        },
        {
            "arm": "b",
            "top1": 60.0,
            "temporal_top1": 50.0,
            "order_acc": 50.0,
            "params_m": 1.0,
            "gmacs": 0.5,
            "train_seconds": 11.0,
        },
        {
            "arm": "b",
            "top1": 61.0,
            "temporal_top1": 51.0,
            "order_acc": 51.0,
            "params_m": 1.0,
            "gmacs": 0.5,
            "train_seconds": 11.0,
        },
    ]
    summary = rp.summarize_runs(runs, [rp.Arm("a", {}), rp.Arm("b", {})])
    a, b = summary
    assert a["top1"] == {"mean": 82.0, "sd": pytest.approx(np.std([80, 84], ddof=1)), "min": 80.0, "max": 84.0, "n": 2}
    assert rp.compare(a["top1"], b["top1"]) == "+21.5 (beyond the seed spread 4.0)"
    close = rp.seed_stats([81.0, 85.0])
    assert rp.compare(close, a["top1"]) == "+1.0 (within the seed spread 4.0)"
    assert "one seed" in rp.compare(rp.seed_stats([1.0]), rp.seed_stats([2.0]))
    table = rp.markdown_table(summary)
    assert "| a | 82.0 ± 2.8 | 72.0 ± 2.8 | 92.0 ± 2.8 | 1.00 | 0.500 |" in table


def test_zoo_takes_every_installed_family_and_names_those_it_cannot_run() -> None:
    families = zoo.families()
    assert "tsn" in families
    arms, not_run = zoo.arms(families, n_segment=8)
    assert [a.label for a in arms[:2]] == ["TSN", "TSM"]
    # every installed family is either an arm or listed with its reason: none dropped silently
    assert {a.group for a in arms[2:]} | {n["family"] for n in not_run} == set(families) - {"tsn"}

    class OnlySixteen:
        archs = ("resnet18",)

        @staticmethod
        def check_config(config) -> None:
            if config.n_segment != 16:
                raise ValueError(f"n_segment must be 16, got {config.n_segment}")

    _, refused = zoo.arms({"tsn": families["tsn"], "tsn_again": OnlySixteen}, n_segment=8)
    assert refused and refused[0]["family"] == "tsn_again"


def test_bad_arguments_are_one_line_errors(capsys, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown experiment 'nope'"):
        rp.reproduce("nope", budget=TINY, out_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown budget 'huge'"):
        rp.reproduce("online", budget="huge", out_dir=tmp_path)
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        rp.Budget("bad", num_videos=24, epochs=0, seeds=1)
    assert main(["reproduce", "online", "--seeds", "0", "--out", str(tmp_path)]) == 2
    assert "--seeds must be at least 1" in capsys.readouterr().err
    assert main(["reproduce", "online", "--jobs", "0", "--out", str(tmp_path)]) == 2
    assert "--jobs must be at least 1, got 0" in capsys.readouterr().err
    assert main(["demo", "--jobs", "0", "--out", str(tmp_path), "--data", str(tmp_path / "d")]) == 2
    assert "--jobs must be at least 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()  # refused before any data is generated
    with pytest.raises(SystemExit):
        main(["reproduce", "nope"])


def test_streaming_accuracy_after_all_frames_is_the_offline_causal_test(tmp_path: Path) -> None:
    """The stream (one frame at a time, shift buffers) after T frames scores each clip as
    `evaluate` scores the whole clip with the offline causal model."""
    from temporal_shift.apps.experiments.recipe import prepare_demo_data
    from temporal_shift.checkpoint.format import save_checkpoint
    from temporal_shift.data.synthetic import VAL_FRAMES_LIST
    from temporal_shift.engine.evaluate import evaluate
    from temporal_shift.models.factory import build_model

    data = prepare_demo_data(tmp_path / "data", num_videos=24, progress=False)
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=12, n_segment=4, mode="causal", dropout=0.2)
    with torch.no_grad():  # a non-trivial head, so that the scores differ between clips
        model.head.weight.normal_(0, 1)
    save_checkpoint(model, tmp_path / "causal.pt")
    curve = online.streaming_accuracy(tmp_path / "causal.pt", data_root=data.root, device="cpu", batch_size=5)
    tested = evaluate(
        [tmp_path / "causal.pt"],
        list_file=VAL_FRAMES_LIST,
        root=data.root,
        kind="frames",
        workers=0,
        device="cpu",
        progress=False,
    )  # both at the checkpoint's size (224, untrained)
    assert curve["frames"] == list(range(1, 5)) and len(curve["top1"]) == 4
    assert curve["top1"][-1] == pytest.approx(tested.top1)
    from temporal_shift.apps.experiments.recipe import synthetic_metrics

    assert curve["order_acc"][-1] == pytest.approx(synthetic_metrics(tested)["order_acc"])


def test_online_end_to_end_one_seed(tmp_path: Path) -> None:
    """Three arms through train/evaluate, the stream frame by frame, the JSON, table and PNG."""
    lines: list[str] = []
    (result,) = rp.reproduce("online", budget=TINY, seeds=1, out_dir=tmp_path, progress=False, log=lines.append)
    assert len(result.runs) == 3 and {r["seed"] for r in result.runs} == {0}
    assert {r["arm"] for r in result.runs} == {a.label for a in online.arms()}
    saved = json.loads(result.files["json"].read_text())
    assert len(saved["runs"]) == 3 and saved["budget"]["name"] == "tiny" and saved["machine"]["cpu_count"]
    assert result.files["png"].stat().st_size > 0
    assert "| TSM causal (online) |" in result.files["markdown"].read_text()
    for run in result.runs:
        if run["group"] == "online":
            curve = run["streaming"]
            assert curve["frames"] == list(range(1, 5))
            assert curve["top1"][-1] == pytest.approx(run["top1"])  # stream after T frames == offline test
    assert "frames seen" in rp.report(result) and any("online 3/3" in line for line in lines)


@pytest.mark.slow
def test_online_two_seeds_end_to_end_tiny(tmp_path: Path) -> None:
    (result,) = rp.reproduce("online", budget=TINY, out_dir=tmp_path, progress=False, log=lambda s: None)
    assert len(result.runs) == 6 and {r["seed"] for r in result.runs} == {0, 1}
    assert all(row["top1"]["n"] == 2 for row in result.summary)
    assert "seed spread" in result.table


@pytest.mark.slow
def test_shift_proportion_end_to_end_tiny(tmp_path: Path) -> None:
    (result,) = rp.reproduce(
        "shift-proportion", budget=TINY, seeds=1, out_dir=tmp_path, progress=False, log=lambda line: None
    )
    assert [r["arm"] for r in result.summary] == [a.label for a in shift_proportion.arms()]
    latency = result.extra["latency"]["per_proportion"]
    assert set(latency) == {label for label, _ in shift_proportion.PROPORTIONS}
    assert latency["0 (TSN)"]["ratio"]["median"] == 1.0
    assert all(len(r["checkpoint"]) and Path(r["checkpoint"]).is_file() for r in result.runs)
    assert result.files["png"].is_file() and "latency vs TSN" in result.table


@pytest.mark.slow
def test_placement_and_zoo_end_to_end_tiny(tmp_path: Path) -> None:
    results = rp.reproduce("placement", budget=TINY, seeds=1, out_dir=tmp_path, progress=False, log=lambda s: None)
    assert len(results[0].runs) == 6
    (zoo_result,) = rp.reproduce("zoo", budget=TINY, seeds=1, out_dir=tmp_path, progress=False, log=lambda s: None)
    ran = {r["arm"] for r in zoo_result.runs}
    assert {"TSN", "TSM"} <= ran
    assert any("families ran" in n for n in zoo_result.notes) and zoo_result.files["png"].is_file()


def test_an_interrupted_arm_stops_the_experiment(tmp_path: Path, monkeypatch) -> None:
    """Ctrl-C/SIGTERM makes the trainer save last.pt and return; reproduce must stop there,
    not test a half-trained arm and go on to the next."""
    import temporal_shift.engine.train as train_module
    from temporal_shift.apps.experiments.recipe import prepare_demo_data

    data = prepare_demo_data(tmp_path / "data", num_videos=24, progress=False)

    def interrupted(config, **kwargs):
        return train_module.TrainResult(
            out_dir=Path(config.run.out_dir),
            epochs_completed=0,
            global_step=1,
            best_top1=0.0,
            best_epoch=0,
            history=[],
            interrupted=True,
            last_checkpoint=Path(config.run.out_dir) / "last.pt",
            best_checkpoint=None,
        )

    monkeypatch.setattr(train_module, "train", interrupted)
    with pytest.raises(KeyboardInterrupt, match="TSN, seed 0: training interrupted"):
        rp.train_arm(
            online.arms()[0], data_root=data.root, out_dir=tmp_path / "arm", budget=TINY, seed=0, progress=False
        )


def test_run_key_is_the_resolved_run(tmp_path: Path) -> None:
    """`all` reuses a run when its full settings match: defaults filled in, nothing else ignored."""

    def key(model, seed=0, budget=TINY):
        return rp.run_key(rp.Arm("x", model), data_root=tmp_path, budget=budget, seed=seed, device="cpu")

    quarter = key({"shift": True})
    assert key({"shift": True, "fold_div": 8, "place": "blockres"}) == quarter  # placement's residual 1/4
    assert key({"shift": True, "fold_div": 4}) != quarter
    assert key({"shift": True, "place": "block"}) != quarter
    assert key({"shift": True}, seed=1) != quarter
    assert key({"shift": True}, budget=dataclasses.replace(TINY, epochs=2)) != quarter
    # each experiment's arms that `all` trains once: shift-proportion's no shift and 1/8-1/2 runs
    shift_keys = {key(a.model) for a in shift_proportion.arms()}
    assert {key(a.model) for a in placement.arms() if a.model["place"] == "blockres"} <= shift_keys
    assert {key(a.model) for a in online.arms() if a.model.get("mode") != "causal"} <= shift_keys


def test_an_identical_run_is_reused_not_trained_again(tmp_path: Path, monkeypatch) -> None:
    from temporal_shift.apps.experiments.recipe import prepare_demo_data

    data = prepare_demo_data(tmp_path / "data", num_videos=24, progress=False)
    reuse: dict = {}
    lines: list[str] = []
    settings = dict(
        data_root=data.root, budget=TINY, seeds=[0], device="cpu", progress=False, log=lines.append, jobs=1, reuse=reuse
    )
    (first,) = rp.run_arms([rp.Arm("TSN", {"shift": False}, "tsn")], name="one", out=tmp_path / "one", **settings)
    assert len(reuse) == 1 and "reused_from" not in first

    def no_training(**kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(common, "train_arm", no_training)  # where run_arms looks it up
    (again,) = rp.run_arms([rp.Arm("no shift", {"shift": False}, "0")], name="two", out=tmp_path / "two", **settings)
    assert again["reused_from"] == "one: TSN" and (again["arm"], again["group"]) == ("no shift", "0")
    assert {k: again[k] for k in ("top1", "order_acc", "checkpoint", "seed")} == {
        k: first[k] for k in ("top1", "order_acc", "checkpoint", "seed")
    }
    assert any("1 of them already trained" in line for line in lines)
    with pytest.raises(AssertionError, match="trained again"):  # a different run is trained
        rp.run_arms([rp.Arm("TSM", {"shift": True}, "tsm")], name="three", out=tmp_path / "three", **settings)


def test_the_full_budget_is_the_demos_training() -> None:
    from temporal_shift.apps.experiments.recipe import DEMO_EPOCHS, DEMO_VIDEOS

    full = rp.BUDGETS["full"]
    assert (full.num_videos, full.epochs, full.batch_size) == (DEMO_VIDEOS, DEMO_EPOCHS, 16)
    assert full.seeds > rp.BUDGETS["small"].seeds
