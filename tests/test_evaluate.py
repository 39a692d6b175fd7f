"""Evaluation: protocols (view counts), score fusion, metrics by hand, ensembles, outputs, CLI errors."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from temporal_shift.checkpoint.format import save_checkpoint
from temporal_shift.checkpoint.loading import load_model
from temporal_shift.data.dataset import VideoDataset
from temporal_shift.data.encode import write_frame_folder
from temporal_shift.data.lists import write_classes, write_frame_list
from temporal_shift.engine.evaluate import (
    EvalProtocol,
    Member,
    compute_metrics,
    confusion_matrix,
    evaluate,
    fuse_members,
    fuse_views,
    mean_class_accuracy,
    normalize_weights,
    per_class_accuracy,
    topk_accuracy,
    topk_predictions,
)
from temporal_shift.models.factory import build_model

NAMES = ["red", "green", "blue"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six 10-frame 40x48 clips of three colour classes, a list, a class file."""
    root = tmp_path_factory.mktemp("evaldata")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(6):
        label = i % 3
        clip = rng.integers(0, 100, size=(10, 40, 48, 3)).astype(np.uint8)
        clip[..., label] += 120
        write_frame_folder(root / f"v{i}", clip, quality=90)
        rows.append((f"v{i}", 10, label))
    write_frame_list(root / "test.txt", rows)
    write_classes(root / "classes.txt", NAMES)
    return root


def _checkpoint(path: Path, *, t: int, classes: int = 3, shift: bool = True, seed: int = 0, **extra) -> Path:
    torch.manual_seed(seed)
    model = build_model("resnet18", num_classes=classes, n_segment=t, shift=shift)
    torch.nn.init.normal_(model.head.weight, 0.0, 0.3)  # scores that differ between views
    return save_checkpoint(model, path, extra=extra or None)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("evalckpt")
    return {
        "t4": _checkpoint(d / "t4.pt", t=4, class_names=NAMES, config={"data": {"size": 32, "scale_size": 36}}),
        "t8": _checkpoint(d / "t8.pt", t=8, shift=False, seed=1),
        "k5": _checkpoint(d / "k5.pt", t=4, classes=5),
    }


# --- protocols: views per video ----------------------------------------------------------


@pytest.mark.parametrize("clips,num_clips", [("single", 1), ("twice", 2), ("dense", 10)])
@pytest.mark.parametrize("crops", [1, 3, 5, 10])
def test_each_protocol_gives_clips_times_crops_views(data: Path, clips: str, num_clips: int, crops: int) -> None:
    protocol = EvalProtocol(clips=clips, crops=crops, dense_window=8, size=32, scale_size=36)
    assert protocol.num_clips == num_clips and protocol.views == num_clips * crops
    ds = VideoDataset(
        list_file=data / "test.txt", root=data, sampler=protocol.sampler(4), transform=protocol.transform()
    )
    clip, _ = ds[0]
    side = 36 if crops == 3 else 32  # 3 crops are full-resolution squares of the short side
    expected = (4, 3, side, side) if protocol.views == 1 else (protocol.views, 4, 3, side, side)
    assert tuple(clip.shape) == expected
    assert f"= {protocol.views} view" in protocol.describe()


def test_twice_sample_and_dense_clips_differ(data: Path) -> None:
    twice = EvalProtocol(clips="twice").sampler(4)(10)
    assert twice.tolist() == [[1, 3, 6, 8], [0, 2, 5, 7]]  # segment centres, then segment starts
    dense = EvalProtocol(clips="dense", dense_window=8, dense_clips=3).sampler(4)(10)
    assert dense.tolist() == [[0, 2, 4, 6], [2, 4, 6, 8], [3, 5, 7, 9]]


def test_protocol_errors() -> None:
    with pytest.raises(ValueError, match="crops must be 1, 3, 5 or 10"):
        EvalProtocol(crops=2)
    with pytest.raises(ValueError, match="clips must be one of"):
        EvalProtocol(clips="triple")
    with pytest.raises(ValueError, match="fusion must be"):
        EvalProtocol(fusion="max")
    with pytest.raises(ValueError, match=r"dense_window \(4\) must be at least n_segment \(8\)"):
        EvalProtocol(clips="dense", dense_window=4).sampler(8)


# --- score fusion -------------------------------------------------------------------------


def test_fuse_views_softmax_and_logits_by_hand() -> None:
    ln3 = math.log(3.0)
    logits = torch.tensor([[[0.0, 0.0], [ln3, 0.0]]])  # one video, two views
    # softmax: [1/2, 1/2] and [3/4, 1/4] -> mean [5/8, 3/8]; logits: mean [ln3/2, 0]
    torch.testing.assert_close(fuse_views(logits, "softmax"), torch.tensor([[0.625, 0.375]]))
    torch.testing.assert_close(fuse_views(logits, "logits"), torch.tensor([[ln3 / 2, 0.0]]))
    with pytest.raises(ValueError, match="videos, views, classes"):
        fuse_views(torch.zeros(2, 3))


def test_fuse_members_normalises_weights() -> None:
    a, b = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    np.testing.assert_allclose(fuse_members([a, b], [3, 1]), [[0.75, 0.25]])
    np.testing.assert_allclose(fuse_members([a, b]), [[0.5, 0.5]])
    assert normalize_weights([2, 2, 4]) == [0.25, 0.25, 0.5]
    for bad in ([0, 1], [-1.0], [float("nan")]):
        with pytest.raises(ValueError, match="positive"):
            normalize_weights(bad)
    with pytest.raises(ValueError, match="2 members but 3 weights"):
        fuse_members([a, b], [1, 1, 1])


# --- metrics ------------------------------------------------------------------------------


def test_metrics_against_hand_computed_values() -> None:
    # 5 videos, 4 classes; class 3 never occurs as a label.
    scores = np.array(
        [
            [0.7, 0.2, 0.1, 0.0],  # label 0, top-1 0            correct
            [0.1, 0.3, 0.6, 0.0],  # label 1, top-1 2, top-2 has 1
            [0.2, 0.1, 0.3, 0.4],  # label 2, top-1 3 (absent class), top-2 has 2
            [0.5, 0.5, 0.0, 0.0],  # label 1, tie 0/1 -> lower index 0 wins, top-2 has 1
            [0.0, 0.1, 0.2, 0.7],  # label 0, top-1 3, 0 is last
        ]
    )
    labels = np.array([0, 1, 2, 1, 0])
    assert topk_predictions(scores, 2).tolist() == [[0, 1], [2, 1], [3, 2], [0, 1], [3, 2]]
    assert topk_accuracy(scores, labels, 1) == pytest.approx(20.0)
    assert topk_accuracy(scores, labels, 2) == pytest.approx(80.0)
    assert topk_accuracy(scores, labels, 5) == pytest.approx(100.0)  # k capped at 4 classes
    confusion = confusion_matrix(labels, topk_predictions(scores, 1)[:, 0], 4)
    assert confusion.tolist() == [
        [1, 0, 0, 1],
        [1, 0, 1, 0],
        [0, 0, 0, 1],
        [0, 0, 0, 0],
    ]
    per_class = per_class_accuracy(confusion)
    np.testing.assert_allclose(per_class[:3], [50.0, 0.0, 0.0])
    assert math.isnan(per_class[3])  # no video of class 3
    assert mean_class_accuracy(confusion) == pytest.approx(50.0 / 3)  # mean over classes 0..2
    m = compute_metrics(scores, labels, 4)
    assert (m.top1, m.top5) == (pytest.approx(20.0), pytest.approx(100.0))
    assert m.mean_class == pytest.approx(50.0 / 3)
    np.testing.assert_array_equal(m.confusion, confusion)


def test_metric_errors() -> None:
    with pytest.raises(ValueError, match=r"label out of range \[0, 2\)"):
        confusion_matrix(np.array([0, 2]), np.array([0, 1]), 2)
    with pytest.raises(ValueError, match="no videos"):
        topk_accuracy(np.zeros((0, 3)), np.zeros(0, dtype=int))
    with pytest.raises(ValueError, match="no videos"):
        mean_class_accuracy(np.zeros((3, 3), dtype=int))
    with pytest.raises(ValueError, match=r"shape \(videos, 3\)"):
        compute_metrics(np.zeros((2, 4)), np.zeros(2, dtype=int), 3)


# --- evaluate ------------------------------------------------------------------------------


def _manual_scores(ckpt: Path, data: Path, protocol: EvalProtocol, fusion: str) -> np.ndarray:
    model = load_model(ckpt)
    ds = VideoDataset(
        list_file=data / "test.txt",
        root=data,
        sampler=protocol.sampler(model.config.n_segment),
        transform=protocol.transform(),
    )
    rows = []
    with torch.no_grad():
        for i in range(len(ds)):
            views = ds[i][0]
            views = views[None] if views.dim() == 4 else views
            logits = model(views)  # each view is one forward on (T, C, H, W)
            rows.append((logits.softmax(-1) if fusion == "softmax" else logits).mean(0).double().numpy())
    return np.stack(rows)


def test_ensemble_of_8f_and_16f_style_members_fuses_views_then_members(data: Path, ckpts: dict) -> None:
    protocol = EvalProtocol(clips="twice", crops=3, size=32, scale_size=36)
    result = evaluate(
        [Member(ckpts["t4"], weight=3.0), Member(ckpts["t8"], weight=1.0)],
        list_file="test.txt",
        root=data,
        protocol=protocol,
        workers=0,
        batch_size=4,
        progress=False,
    )
    assert result.views_per_video == 6 and result.num_videos == 6
    expected = 0.75 * _manual_scores(ckpts["t4"], data, protocol, "softmax") + 0.25 * _manual_scores(
        ckpts["t8"], data, protocol, "softmax"
    )
    np.testing.assert_allclose(result.scores, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.scores.sum(1), 1.0, rtol=1e-6)  # fused probabilities
    assert result.labels.tolist() == [0, 1, 2, 0, 1, 2]
    assert result.videos == [f"v{i}" for i in range(6)]
    assert [m["n_segment"] for m in result.members] == [4, 8]
    assert [m["weight"] for m in result.members] == [0.75, 0.25]
    assert result.class_names == NAMES  # from the first checkpoint
    m = compute_metrics(expected, result.labels, 3)
    assert (result.top1, result.top5, result.mean_class) == (m.top1, m.top5, m.mean_class)


def test_logits_fusion_and_training_size_defaults(data: Path, ckpts: dict, tmp_path: Path) -> None:
    result = evaluate(
        [ckpts["t4"]],
        list_file=data / "test.txt",
        root=data,
        protocol=EvalProtocol(crops=5, fusion="logits"),
        workers=0,
        progress=False,
        out_dir=tmp_path / "out",
    )
    assert (result.protocol.size, result.protocol.scale_size) == (32, 36)  # the checkpoint's training sizes
    assert result.views_per_video == 5
    expected = _manual_scores(ckpts["t4"], data, EvalProtocol(crops=5, size=32, scale_size=36), "logits")
    np.testing.assert_allclose(result.scores, expected, rtol=1e-5, atol=1e-5)
    # outputs
    files = result.files
    assert set(files) == {"metrics", "per_class", "predictions", "confusion", "confusion_png"}
    np.testing.assert_array_equal(np.load(files["confusion"]), result.confusion)
    assert result.confusion.sum() == 6 and files["confusion_png"].stat().st_size > 1000
    metrics = json.loads(files["metrics"].read_text())
    assert metrics["top1"] == pytest.approx(result.top1) and metrics["views_per_video"] == 5
    assert set(metrics["per_class_accuracy"]) == set(NAMES)
    with files["predictions"].open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and rows[0]["video"] == "v0" and rows[0]["name"] == "red"
    assert "score_3" in rows[0] and "pred_4" not in rows[0]  # top-k capped at 3 classes
    best = int(np.argmax(result.scores[0]))
    assert int(rows[0]["pred_1"]) == best and rows[0]["pred_name_1"] == NAMES[best]
    assert float(rows[0]["score_1"]) == pytest.approx(result.scores[0, best], rel=1e-5)
    with files["per_class"].open() as f:
        per_class = list(csv.DictReader(f))
    assert [r["videos"] for r in per_class] == ["2", "2", "2"]


def test_unreadable_videos_are_left_out_with_on_error_skip(data: Path, ckpts: dict, tmp_path: Path) -> None:
    listed = tmp_path / "with_missing.txt"
    listed.write_text((data / "test.txt").read_text() + "gone 10 1\n")
    with pytest.raises(FileNotFoundError, match="gone"):
        evaluate([ckpts["t4"]], list_file=listed, root=data, workers=0, progress=False)
    result = evaluate([ckpts["t4"]], list_file=listed, root=data, workers=0, progress=False, on_error="skip")
    assert result.num_videos == 6 and len(result.skipped) == 1 and "gone" in result.skipped[0]
    assert "1 unreadable, left out" in result.summary()


def test_class_names_from_file_and_conflicts(data: Path, ckpts: dict, tmp_path: Path) -> None:
    from temporal_shift.checkpoint.loading import load_checkpoint, resolve_class_names

    t4, t8 = load_checkpoint(ckpts["t4"]), load_checkpoint(ckpts["t8"])
    assert t4.class_names == NAMES and t8.class_names is None
    assert resolve_class_names([t8]) == ["0", "1", "2"]
    assert resolve_class_names([t8, t4]) == NAMES
    write_classes(tmp_path / "c.txt", ["a", "b", "c"])
    assert resolve_class_names([t4], tmp_path / "c.txt") == ["a", "b", "c"]
    write_classes(tmp_path / "two.txt", ["a", "b"])
    with pytest.raises(ValueError, match=r"two.txt: 2 class names, but .*t4.pt has 3 classes"):
        resolve_class_names([t4], tmp_path / "two.txt")
    other = load_checkpoint(_checkpoint(tmp_path / "o.pt", t=4, class_names=["x", "y", "z"]))
    with pytest.raises(ValueError, match="carry different class names"):
        resolve_class_names([t4, other])


# --- CLI -----------------------------------------------------------------------------------


def test_cli_test_prints_metrics_and_writes_files(data: Path, ckpts: dict, tmp_path: Path, run_cli) -> None:
    code, out, err = run_cli(
        [
            "test",
            "--checkpoint",
            str(ckpts["t4"]),
            "--checkpoint",
            str(ckpts["t8"]),
            "--ensemble-weights",
            "1",
            "1",
            "--data",
            str(data),
            "--list",
            "test.txt",
            "--clips",
            "twice",
            "--workers",
            "0",
            "--no-progress",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 0, err
    assert "2 clips (twice_sample) x 1 centre crop = 2 views" in out and "top-1 " in out and "mean class" in out
    assert (tmp_path / "o" / "confusion.png").is_file() and (tmp_path / "o" / "predictions.csv").is_file()


@pytest.mark.parametrize(
    "case",
    [
        "missing checkpoint",
        "missing list",
        "missing root",
        "label too big",
        "class mismatch",
        "empty list",
        "not a checkpoint",
        "weights count",
        "old ensemble weights",
        "classes file",
    ],
)
def test_cli_test_errors_are_one_line(case: str, data: Path, ckpts: dict, tmp_path: Path, run_cli) -> None:
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    (tmp_path / "big.txt").write_text("v0 10 0\nv1 10 3\n")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    write_classes(tmp_path / "two.txt", ["a", "b"])
    t4, t8, k5 = (str(ckpts[k]) for k in ("t4", "t8", "k5"))
    base = ["--data", str(data), "--list", "test.txt", "--workers", "0", "--no-progress"]
    argv, expected = {
        "missing checkpoint": (["--checkpoint", str(tmp_path / "nope.pt"), *base], "checkpoint not found: "),
        "missing list": (
            ["--checkpoint", t4, "--data", str(data), "--list", "absent.txt"],
            "absent.txt: list file not found",
        ),
        "missing root": (
            ["--checkpoint", t4, "--data", str(tmp_path / "nodata"), "--list", "x.txt"],
            "nodata: data root not found",
        ),
        "label too big": (
            ["--checkpoint", t4, "--data", str(data), "--list", str(tmp_path / "big.txt")],
            "big.txt:2: label 3 out of range: ",
        ),
        "class mismatch": (
            ["--checkpoint", t4, "--checkpoint", k5, *base],
            f"ensemble members disagree on the classes: {t4} has 3, {k5} has 5",
        ),
        "empty list": (
            ["--checkpoint", t4, "--data", str(data), "--list", str(tmp_path / "empty.txt")],
            "empty.txt: empty list",
        ),
        "not a checkpoint": (["--checkpoint", str(tmp_path / "junk.pt"), *base], "junk.pt: not a checkpoint"),
        "weights count": (
            ["--checkpoint", t4, "--checkpoint", t8, "--ensemble-weights", "1", *base],
            "--ensemble-weights: 1 values for 2 checkpoints",
        ),
        "old ensemble weights": (
            ["--checkpoint", t4, "--checkpoint", t8, "--weights", "1", *base],
            "--weights takes names of published weights, got '1'; ensemble weights are --ensemble-weights W ...",
        ),
        "classes file": (["--checkpoint", t4, "--classes", str(tmp_path / "two.txt"), *base], "two.txt: 2 class names"),
    }[case]
    code, _out, err = run_cli(["test", *argv])
    assert code == 2
    assert err.startswith("tsm test: error: ") and expected in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_debug_shows_the_exception(data: Path, tmp_path: Path) -> None:
    from temporal_shift.cli import main

    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        main(["--debug", "test", "--checkpoint", str(tmp_path / "nope.pt"), "--data", str(data), "--list", "test.txt"])


def test_score_videos_keeps_dataset_indices_and_skips(data: Path, ckpts: dict, tmp_path: Path) -> None:
    from temporal_shift.engine.evaluate import score_videos

    protocol = EvalProtocol(crops=3, size=32, scale_size=36)
    broken = tmp_path / "broken"  # found on disk, unreadable when loaded
    broken.mkdir()
    for i in range(1, 11):
        (broken / f"img_{i:05d}.jpg").write_bytes(b"not a jpeg")
    listed = tmp_path / "with_broken.txt"
    listed.write_text((data / "test.txt").read_text() + f"{broken} 10 1\n")
    ds = VideoDataset(
        list_file=listed, root=data, sampler=protocol.sampler(4), transform=protocol.transform(), on_error="skip"
    )
    scored = score_videos(
        load_model(ckpts["t4"]),
        ds,
        device=torch.device("cpu"),
        views=3,
        fusion="logits",
        indices=[6, 1, 3, 5],
        batch_size=2,
    )
    assert scored.indices.tolist() == [1, 3, 5] and list(scored.skipped) == [6]
    assert "broken" in scored.skipped[6]
    expected = _manual_scores(ckpts["t4"], data, protocol, "logits")[[1, 3, 5]]
    np.testing.assert_allclose(scored.scores, expected, rtol=1e-5, atol=1e-6)


def test_single_clip_centre_crop_reproduces_the_trainers_validation(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """best.pt of a run, tested with the default protocol and the sizes saved in it, gives the
    trainer's own validation top-1 (both score with `score_videos`); the class names of
    data.classes come along."""
    import temporal_shift.engine.train
    from temporal_shift.engine.config import config_from_dict
    from temporal_shift.engine.evaluate import score_videos
    from temporal_shift.engine.train import train

    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return score_videos(*args, **kwargs)

    monkeypatch.setattr(temporal_shift.engine.train, "score_videos", spy)

    config = config_from_dict(
        {
            "model": {"arch": "resnet18", "n_segment": 4, "dropout": 0.0},
            "data": {
                "root": str(data),
                "train_list": "test.txt",
                "val_list": "test.txt",
                "num_classes": 3,
                "classes": "classes.txt",
                "size": 32,
                "scale_size": 36,
                "batch_size": 3,
                "workers": 0,
            },
            "optim": {"lr": 0.01, "lr_batch": None, "epochs": 1},
            "run": {"out_dir": str(tmp_path / "run"), "progress": False, "device": "cpu"},
        }
    )
    run = train(config)
    assert run.best_checkpoint is not None
    assert [(c["views"], c["fusion"]) for c in calls] == [(1, "logits")]  # the validation of its one epoch
    result = evaluate([run.best_checkpoint], list_file="test.txt", root=data, workers=0, progress=False)
    assert (result.protocol.size, result.protocol.scale_size) == (32, 36)
    assert result.top1 == pytest.approx(run.best_top1)
    assert result.class_names == NAMES
