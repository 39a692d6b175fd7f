"""`tsm reproduce`: arms differ only in the model, the seed statistics and the verdicts are
right, and each experiment runs end to end through `tsm train`'s machinery (tiny budgets)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import replace
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


def test_order_accuracy_by_pair_over_seeds_and_its_table() -> None:
    base = {"top1": 60.0, "temporal_top1": 50.0, "order_acc": 50.0, "params_m": 1.0, "gmacs": 0.5, "train_seconds": 1.0}
    runs = [
        {**base, "arm": "a", "order_acc_by_pair": {"0-1": 90.0, "2-3": 50.0}},
        {**base, "arm": "a", "order_acc_by_pair": {"0-1": 94.0, "2-3": 60.0}},
        {**base, "arm": "b", "order_acc_by_pair": {"0-1": 70.0, "2-3": 55.0}},
        {**base, "arm": "b"},  # a run recorded before the pairs were: b's pairs are not over its seeds
    ]
    a, b = rp.summarize_runs(runs, [rp.Arm("a", {}), rp.Arm("b", {})])
    assert a["order_acc_by_pair"]["0-1"] == {
        "mean": 92.0,
        "sd": pytest.approx(np.std([90, 94], ddof=1)),
        "min": 90.0,
        "max": 94.0,
        "n": 2,
    }
    assert "order_acc_by_pair" not in b
    table = common.pair_table([a, b], {"0-1": "right / left", "2-3": "down / up"})
    assert table.splitlines() == [
        "| arm | right / left | down / up |",
        "|---|---|---|",
        "| a | 92.0 ± 2.8 | 55.0 ± 7.1 |",
    ]
    assert common.pair_table([b], {}) == ""


def test_pair_names_come_from_the_datas_classes(tmp_path: Path) -> None:
    assert common.pair_names(tmp_path)["0-1"] == "0-1"  # no classes.txt: the bare keys
    (tmp_path / "classes.txt").write_text("".join(f"class_{i}\n" for i in range(12)))
    names = common.pair_names(tmp_path)
    assert list(names) == ["0-1", "2-3", "4-5", "6-7", "8-9"] and names["8-9"] == "class_8"


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
    assert main(["reproduce", "online", "--epochs", "0", "--out", str(tmp_path)]) == 2
    assert "--epochs must be at least 1, got 0" in capsys.readouterr().err
    assert main(["demo", "--jobs", "0", "--out", str(tmp_path), "--data", str(tmp_path / "d")]) == 2
    assert "--jobs must be at least 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()  # refused before any data is generated
    with pytest.raises(SystemExit):
        main(["reproduce", "nope"])
    with pytest.raises(ValueError, match="unknown --data 'easy'"):
        rp.reproduce("online", budget=TINY, data="easy", out_dir=tmp_path)


def test_several_experiments_run_in_their_order() -> None:
    from temporal_shift.apps.experiments.reproduce import _experiments

    assert _experiments(["zoo", "shift-proportion"]) == ["shift-proportion", "zoo"]
    assert _experiments(["online", "all"]) == list(rp.EXPERIMENTS)
    with pytest.raises(ValueError, match="no experiment given"):
        _experiments([])


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


def test_online_end_to_end_one_seed(tmp_path: Path, monkeypatch) -> None:
    """Three arms through train/evaluate, the stream frame by frame, the JSON, table and PNG; run
    again, nothing is trained."""
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
    assert [Path(r["checkpoint"]).parent.parent for r in result.runs] == [tmp_path / "runs"] * 3

    # a second invocation trains nothing: every run comes from the store, and the notes say so
    def no_training(arm, **kwargs):
        raise AssertionError(f"{arm.label} trained again")

    monkeypatch.setattr(common, "train_arm", no_training)
    (again,) = rp.reproduce("online", budget=TINY, seeds=1, out_dir=tmp_path, progress=False, log=lines.append)
    assert [r["top1"] for r in again.runs] == [r["top1"] for r in result.runs]
    assert all(r["reused_from"]["experiment"] == "online" for r in again.runs)
    assert sum("reused, not trained again" in note for note in again.notes) == 3
    assert "reused, not trained again" in again.files["markdown"].read_text()


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
    markdown = zoo_result.files["markdown"].read_text()  # each pair's order accuracy, named by its classes
    by_pair = markdown.split(common.PAIR_TABLE_TITLE)[1]
    assert zoo_result.pair_names["0-1"] in by_pair.splitlines()[2] and "| TSM |" in by_pair


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


def _setup(tmp_path: Path, data_root: Path, *, lines: list[str], budget: rp.Budget = TINY, fresh: bool = False):
    return rp.Setup(
        out_dir=tmp_path / "experiment",
        data_root=data_root,
        budget=budget,
        seeds=[0],
        store=rp.RunStore.at(tmp_path / "runs", fresh=fresh),
        device="cpu",
        progress=False,
        log=lines.append,
        jobs=1,
    )


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    from temporal_shift.apps.experiments.recipe import prepare_demo_data

    return prepare_demo_data(tmp_path_factory.mktemp("data"), num_videos=24, progress=False).root


def _count_training(monkeypatch) -> list[dict]:
    """Every `train_arm` call from now on (arm label, resume), the calls still made."""
    calls: list[dict] = []
    real = common.train_arm

    def counted(arm, **kwargs):
        calls.append({"arm": arm.label, "resume": kwargs["resume"]})
        return real(arm, **kwargs)

    monkeypatch.setattr(common, "train_arm", counted)  # where obtain_run looks it up
    return calls


def _a_first_run(tmp_path: Path, tiny_data: Path, monkeypatch) -> tuple[list[dict], list[str], rp.Arm, dict]:
    """A TSN run of experiment "one" in a fresh store: the training calls counted from now on,
    the lines logged, the arm and its record."""
    trained = _count_training(monkeypatch)
    lines: list[str] = []
    tsn = rp.Arm("TSN", {"shift": False}, "tsn")
    (first,) = rp.run_arms([tsn], name="one", setup=_setup(tmp_path, tiny_data, lines=lines))
    return trained, lines, tsn, first


def test_a_run_is_kept_and_reused_by_another_experiment_and_a_later_invocation(
    tmp_path: Path, tiny_data: Path, monkeypatch
) -> None:
    trained, lines, _, first = _a_first_run(tmp_path, tiny_data, monkeypatch)
    assert trained == [{"arm": "TSN", "resume": False}] and "reused_from" not in first
    key = rp.run_key(rp.Arm("x", {"shift": False}), data_root=tiny_data, budget=TINY, seed=0, device="cpu")
    record = json.loads((tmp_path / "runs" / f"{key}.json").read_text())  # written next to its run folder
    assert record["top1"] == first["top1"] and record["trained_by"] == {"experiment": "one", "arm": "TSN"}
    assert Path(first["checkpoint"]) == tmp_path / "runs" / key / "last.pt" and Path(first["checkpoint"]).is_file()

    # another experiment, in a later invocation (a new store object on the same folder): nothing trained
    (again,) = rp.run_arms(
        [rp.Arm("no shift", {"shift": False}, "0")], name="two", setup=_setup(tmp_path, tiny_data, lines=lines)
    )
    assert len(trained) == 1
    assert (again["arm"], again["group"]) == ("no shift", "0")
    assert again["reused_from"]["experiment"] == "one" and again["reused_from"]["arm"] == "TSN"
    assert {k: again[k] for k in ("top1", "order_acc", "checkpoint", "seed")} == {
        k: first[k] for k in ("top1", "order_acc", "checkpoint", "seed")
    }
    assert any("1 of them finished earlier" in line for line in lines)
    (note,) = common.reuse_notes([again])
    assert "no shift, seed 0, trained by one: TSN, finished 20" in note

    # a changed setting is another run: trained
    rp.run_arms(
        [rp.Arm("TSN", {"shift": False}, "tsn")],
        name="one",
        setup=_setup(tmp_path, tiny_data, lines=lines, budget=dataclasses.replace(TINY, batch_size=4)),
    )
    assert len(trained) == 2
    # --fresh: the runs of earlier invocations are trained again, once
    fresh = _setup(tmp_path, tiny_data, lines=lines, fresh=True)
    (renewed,) = rp.run_arms([rp.Arm("TSN", {"shift": False}, "tsn")], name="one", setup=fresh)
    (reused,) = rp.run_arms([rp.Arm("TSN", {"shift": False}, "tsn")], name="two", setup=fresh)
    assert len(trained) == 3 and "reused_from" not in renewed and reused["reused_from"]["experiment"] == "one"


def test_a_run_recorded_before_its_pairs_were_is_tested_again_not_trained(
    tmp_path: Path, tiny_data: Path, monkeypatch
) -> None:
    trained, lines, tsn, first = _a_first_run(tmp_path, tiny_data, monkeypatch)
    pairs = first["order_acc_by_pair"]
    assert list(pairs) == ["0-1", "2-3", "4-5", "6-7", "8-9"]
    path = tmp_path / "runs" / f"{rp.run_key(tsn, data_root=tiny_data, budget=TINY, seed=0, device='cpu')}.json"
    old = json.loads(path.read_text())
    del old["order_acc_by_pair"]  # as records were written before they kept the pairs
    path.write_text(json.dumps(old))

    (again,) = rp.run_arms([tsn], name="one", setup=_setup(tmp_path, tiny_data, lines=lines))
    assert len(trained) == 1  # tested again, not trained
    assert again["order_acc_by_pair"] == pairs and again["top1"] == first["top1"]
    completed = json.loads(path.read_text())
    assert completed["order_acc_by_pair"] == pairs and completed["finished_at"] == old["finished_at"]
    assert "pairs_tested_again_at" in completed
    assert any("1 finished run(s) from before" in line for line in lines)

    # a test that does not give the record's figure again: the record is left as it was, said so
    path.write_text(json.dumps({**old, "order_acc": old["order_acc"] + 1.0}))
    lines.clear()
    (kept,) = rp.run_arms([tsn], name="one", setup=_setup(tmp_path, tiny_data, lines=lines))
    assert "order_acc_by_pair" not in kept and "order_acc_by_pair" not in json.loads(path.read_text())
    assert any(str(path) in line and "record left as it was" in line for line in lines)
    assert len(trained) == 1
    (row,) = rp.summarize_runs([kept], [tsn])
    assert "order_acc_by_pair" not in row


def test_an_interrupted_invocation_keeps_the_finished_runs_and_resumes_the_interrupted_one(
    tmp_path: Path, tiny_data: Path, monkeypatch
) -> None:
    """Ctrl-C makes the trainer save last.pt and stop; the next invocation does not train the runs
    finished before the interruption again and continues the interrupted one from its last.pt."""
    import temporal_shift.engine.train as train_module

    arms = [rp.Arm("TSN", {"shift": False}, "tsn"), rp.Arm("TSM", {"shift": True}, "tsm")]
    two_epochs = dataclasses.replace(TINY, epochs=2)  # of one step each (12 training clips, batch 8)
    real_train = train_module.train

    def interrupt_the_tsm(config, **kwargs):  # as a Ctrl-C after its first step
        if config.model.shift:
            config = dataclasses.replace(config, run=dataclasses.replace(config.run, stop_after_steps=1))
        return real_train(config, **kwargs)

    monkeypatch.setattr(train_module, "train", interrupt_the_tsm)
    lines: list[str] = []
    with pytest.raises(KeyboardInterrupt, match="TSM, seed 0: training interrupted"):
        rp.run_arms(arms, name="exp", setup=_setup(tmp_path, tiny_data, lines=lines, budget=two_epochs))
    monkeypatch.setattr(train_module, "train", real_train)
    trained = _count_training(monkeypatch)
    tsn, tsm = rp.run_arms(arms, name="exp", setup=_setup(tmp_path, tiny_data, lines=lines, budget=two_epochs))
    assert trained == [{"arm": "TSM", "resume": True}]  # TSN finished before the interruption: kept
    assert tsn["reused_from"]["experiment"] == "exp" and "reused_from" not in tsm
    assert tsm["resumed_at_step"] == 1 and tsm["steps"] == 2  # the whole budget
    assert any("1 to train (1 resumed from an interrupted sitting)" in line for line in lines)
    assert any("resumed at step 1" in line for line in lines)


def test_the_full_budget_is_the_demos_training() -> None:
    from temporal_shift.apps.experiments.recipe import DEMO_EPOCHS, DEMO_VIDEOS

    full = rp.BUDGETS["full"]
    assert (full.num_videos, full.epochs, full.batch_size) == (DEMO_VIDEOS, DEMO_EPOCHS, 16)
    assert full.seeds > rp.BUDGETS["small"].seeds


def _fake_training(arm, *, out_dir, seed, **kwargs):
    """`common.train_arm`'s record without the training (an empty last.pt), for what the run store
    and the results do with records; the real training is tested above."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "last.pt").write_bytes(b"")
    metrics = {"top1": 50.0 + seed, "temporal_top1": 40.0, "control_top1": 90.0, "order_acc": 60.0}
    return {
        "arm": arm.label,
        "group": arm.group,
        "seed": seed,
        "model": arm.model,
        **metrics,
        "params_m": 1.0,
        "gmacs": 0.1,
        "train_seconds": 1.0,
        "steps": 2,
        "checkpoint": str(out_dir / "last.pt"),
    }


@pytest.mark.parametrize("data", ["hard", "camouflage"])
def test_the_hard_data_is_its_own_dataset_runs_and_results(tmp_path: Path, monkeypatch, data) -> None:
    """``--data hard`` (or ``camouflage``): that scene's dataset, other run keys than the demo data's,
    results in ``<experiment>-hard`` (the training itself is the recipe's, tested above: faked here)."""
    from temporal_shift.data.synthetic import scene_classes

    monkeypatch.setattr(common, "train_arm", _fake_training)
    (result,) = rp.reproduce(  # jobs=1: in this process, where the fake is
        "placement", budget=TINY, data=data, out_dir=tmp_path, progress=False, log=lambda s: None, jobs=1
    )
    assert result.out_dir == tmp_path / f"placement-{data}" and result.data == data
    saved = json.loads(result.files["json"].read_text())
    assert saved["data"] == data and saved["recipe"]["data"]["scene"] == data
    assert saved["command"] == f"tsm reproduce placement --budget tiny --seeds 2 --data {data} --out {tmp_path}"
    assert f"Command: `{saved['command']}`" in result.files["markdown"].read_text()
    root = rp.data_folder(tmp_path, data, TINY)
    meta = json.loads((root / "meta.json").read_text())
    assert meta["classes"] == list(scene_classes(data))
    assert meta["settings"]["pair_hues"] is (data == "camouflage")  # the camouflage dots' hue names the pair
    arm = placement.arms()[0]
    keys = {
        rp.run_key(arm, data_root=folder, budget=TINY, seed=0, device="cpu")
        for folder in (root, rp.data_folder(tmp_path, "demo", TINY))
    }
    assert len(keys) == 2  # the data's generator settings are part of a run's key


def test_the_hard64_data_and_the_epochs_given_make_every_run_and_its_key(tmp_path: Path, monkeypatch) -> None:
    """``--data hard64 --epochs 3``: the hard scene's dataset at 64x64, every run's config at that
    size and those epochs instead of the budget's (in its key, so other runs than the budget's),
    and the command written says so."""
    seen = []

    def fake(arm, *, data_root, budget, **kwargs):
        seen.append(rp.arm_config(arm, data_root=data_root, out_dir=tmp_path, budget=budget, seed=0, device="cpu"))
        return _fake_training(arm, **kwargs)

    monkeypatch.setattr(common, "train_arm", fake)
    (result,) = rp.reproduce(
        "placement",
        budget=TINY,
        data="hard64",
        epochs=3,
        out_dir=tmp_path,
        progress=False,
        log=lambda s: None,
        jobs=1,
        device="cpu",
    )
    assert result.out_dir == tmp_path / "placement-hard64"
    saved = json.loads(result.files["json"].read_text())
    # the device kind is part of every run's key: the command says which
    command = f"tsm reproduce placement --budget tiny --seeds 2 --data hard64 --out {tmp_path} --epochs 3 --device cpu"
    assert saved["command"] == command
    root = rp.data_folder(tmp_path, "hard64", TINY)
    settings = json.loads((root / "meta.json").read_text())["settings"]
    assert (settings["scene"], settings["height"], settings["width"], settings["object_scale"]) == ("hard", 64, 64, 1.5)
    assert seen and {(c.data.size, c.data.scale_size, c.optim.epochs) for c in seen} == {(64, 64, 3)}
    arm = placement.arms()[0]
    keys = {rp.run_key(arm, data_root=root, budget=b, seed=0, device="cpu") for b in (TINY, replace(TINY, epochs=3))}
    assert len(keys) == 2
    with pytest.raises(ValueError, match="--epochs must be at least 1, got 0"):
        rp.reproduce("placement", budget=TINY, epochs=0, out_dir=tmp_path)


def test_the_recipe_trains_at_the_frame_size_its_data_says(tmp_path: Path) -> None:
    from temporal_shift.apps.experiments.recipe import DEMO_SIZE, frame_size
    from temporal_shift.data.synthetic import generate_synthetic

    assert frame_size(tmp_path) == DEMO_SIZE  # no dataset there yet: the demo's
    generate_synthetic(tmp_path / "big", num_videos=24, size=48, frames=2, workers=1, progress=False)
    assert frame_size(tmp_path / "big") == 48
    (tmp_path / "meta.json").write_text(json.dumps({"settings": {"height": 48, "width": 64}}))
    with pytest.raises(ValueError, match=r"meta.json: frames of 48x64; the recipe trains on square frames"):
        frame_size(tmp_path)
    (tmp_path / "meta.json").write_text("{")
    with pytest.raises(ValueError, match=r"meta.json: not a synthetic dataset's meta.json"):
        frame_size(tmp_path)


def test_the_full_budget_script_runs_commands_the_cli_takes() -> None:
    """benchmarks/reproduce_full.sh (the full-budget figures in one resumable command): its two
    tsm reproduce commands parse, with the script's defaults."""
    import shlex

    from temporal_shift.cli import build_parser

    script = (Path(__file__).resolve().parents[1] / "benchmarks" / "reproduce_full.sh").read_text()
    lines = [line for line in script.splitlines() if "temporal_shift.cli reproduce" in line]
    assert len(lines) == 2
    for line in lines:
        words = shlex.split(line.replace('"$seeds"', "3").replace('"$out"', "runs/x").replace(' "$@"', ""))
        args = build_parser().parse_args(words[words.index("reproduce") :])
        assert (args.budget, args.seeds) == ("full", 3)
    assert (args.experiment, args.data, args.epochs) == (["zoo"], "camouflage", 48)
    assert "zoo-camouflage" in script  # where `reproduce` writes the zoo's results on that data


def _damage(kind: str, path: Path, runs: Path) -> None:
    """Damage the run record at ``path`` as ``kind`` says."""
    text = path.read_text()
    record = json.loads(text)
    if kind == "truncated":
        path.write_text(text[: len(text) // 2])
        return
    if kind == "not a record":
        record = [record]
    elif kind == "another key":
        record["key"] = "0" * 16
    elif kind == "metric missing":
        del record["top1"]
    elif kind == "metric not a number":
        record["order_acc"] = "high"
    elif kind == "settings edited":
        record["settings"]["optim"]["lr"] *= 10
    elif kind == "checkpoint gone":
        (runs / record["checkpoint"]).unlink()
    path.write_text(json.dumps(record))


DAMAGES = [
    ("truncated", "not a readable run record"),
    ("not a record", "a run record is a JSON object, got list"),
    ("another key", "it is the record of run '0000000000000000'"),
    ("metric missing", "top1 is None, not a number"),
    ("metric not a number", "order_acc is 'high', not a number"),
    ("settings edited", "its settings are not those of its key"),
    ("checkpoint gone", "last.pt is missing"),
]


@pytest.mark.parametrize(("kind", "says"), DAMAGES, ids=[kind for kind, _ in DAMAGES])
def test_a_damaged_run_record_is_a_one_line_error_never_used_nor_replaced(
    tmp_path: Path, tiny_data: Path, monkeypatch, kind: str, says: str
) -> None:
    monkeypatch.setattr(common, "train_arm", _fake_training)
    arms = [rp.Arm("TSN", {"shift": False}, "tsn")]
    rp.run_arms(arms, name="exp", setup=_setup(tmp_path, tiny_data, lines=[]))
    (path,) = (tmp_path / "runs").glob("*.json")
    _damage(kind, path, tmp_path / "runs")
    damaged = path.read_bytes()
    with pytest.raises(ValueError, match="delete it") as error:
        rp.run_arms(arms, name="exp", setup=_setup(tmp_path, tiny_data, lines=[]))
    message = str(error.value)
    assert message.startswith(f"{path}: ") and says in message and "\n" not in message
    assert path.read_bytes() == damaged  # not replaced behind the user's back
    # --fresh trains every run again: the damaged record is replaced, not read
    (again,) = rp.run_arms(arms, name="exp", setup=_setup(tmp_path, tiny_data, lines=[], fresh=True))
    assert again["top1"] == 50.0 and "reused_from" not in again
    assert json.loads(path.read_text())["key"] == path.stem


def test_an_interrupted_run_whose_last_pt_is_damaged_is_trained_from_scratch_and_says_so(
    tmp_path: Path, tiny_data: Path, monkeypatch
) -> None:
    arm = rp.Arm("TSN", {"shift": False}, "tsn")
    key = rp.run_key(arm, data_root=tiny_data, budget=TINY, seed=0, device="cpu")
    folder = tmp_path / "runs" / key
    folder.mkdir(parents=True)
    (folder / "settings.json").write_text("{}")
    (folder / "last.pt").write_bytes(b"PK\x03\x04 cut off")  # a last.pt whose writing was cut short
    trained = _count_training(monkeypatch)
    lines: list[str] = []
    (run,) = rp.run_arms([arm], name="exp", setup=_setup(tmp_path, tiny_data, lines=lines))
    assert trained == [{"arm": "TSN", "resume": False}] and run["resumed_at_step"] is None
    assert run["steps"] == 1 and Path(run["checkpoint"]).stat().st_size > 1000  # the whole budget, saved
    assert "last.pt" in run["restarted_because"]
    assert any("trained from scratch: the interrupted sitting's" in line for line in lines)
