"""Prediction: videos, frame folders (template or sorted names), folders of videos, JSON, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from temporal_shift.checkpoint.format import save_checkpoint
from temporal_shift.checkpoint.loading import load_model
from temporal_shift.data.encode import write_frame_folder, write_video
from temporal_shift.data.transforms import test_transform as make_test_transform
from temporal_shift.engine.predict import Predictor, find_inputs, predict, read_clip
from temporal_shift.models.factory import build_model

NAMES = ["red", "green", "blue"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("predict")
    rng = np.random.default_rng(0)
    clips = [rng.integers(0, 255, size=(9, 40, 48, 3)).astype(np.uint8) for _ in range(2)]
    write_frame_folder(root / "frames", clips[0], quality=95)
    other = root / "named"
    other.mkdir()
    for i, frame in enumerate(clips[0]):  # same frames, names that do not follow the template
        write_frame_folder(root / "tmp", frame[None], quality=95)
        (root / "tmp" / "img_00001.jpg").rename(other / f"frame{i:03d}.jpg")
    (root / "videos").mkdir()
    write_video(root / "videos" / "a.mp4", clips[0], fps=25, crf=10)
    write_video(root / "videos" / "b.mp4", clips[1], fps=25, crf=10)
    (root / "bad").mkdir()
    (root / "bad" / "broken.mp4").write_bytes(b"\x00" * 100)
    (root / "empty").mkdir()
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=3, n_segment=4)
    torch.nn.init.normal_(model.head.weight, 0.0, 0.3)
    save_checkpoint(
        model, root / "named.pt", extra={"class_names": NAMES, "config": {"data": {"size": 32, "scale_size": 36}}}
    )
    save_checkpoint(model, root / "plain.pt")
    return {
        "root": root,
        "frames": root / "frames",
        "named": other,
        "videos": root / "videos",
        "video": root / "videos" / "a.mp4",
        "bad": root / "bad",
        "empty": root / "empty",
        "ckpt": root / "named.pt",
        "plain": root / "plain.pt",
    }


def test_find_inputs(inputs: dict[str, Path]) -> None:
    assert find_inputs(inputs["video"]) == [(inputs["video"], "video")]
    assert find_inputs(inputs["frames"]) == [(inputs["frames"], "frames")]
    assert find_inputs(inputs["videos"]) == [
        (inputs["videos"] / "a.mp4", "video"),
        (inputs["videos"] / "b.mp4", "video"),
    ]


def test_prediction_is_the_centre_clip_centre_crop_softmax(inputs: dict[str, Path]) -> None:
    predictor = Predictor(inputs["ckpt"])
    assert (predictor.size, predictor.scale_size, predictor.n_segment) == (32, 36, 4)  # from the checkpoint
    clip = read_clip(inputs["frames"], "frames", n_segment=4)
    assert clip.shape == (4, 3, 40, 48) and clip.dtype == torch.uint8
    model = load_model(inputs["ckpt"])
    with torch.no_grad():
        expected = model(make_test_transform(size=32, scale_size=36)(clip)[None]).softmax(-1)[0]
    [got] = predict(inputs["frames"], checkpoint=inputs["ckpt"], topk=2)
    assert len(got.topk) == 2
    order = expected.argsort(descending=True)
    assert [i for i, _, _ in got.topk] == order[:2].tolist()
    assert got.topk[0][1] == NAMES[int(order[0])]
    assert got.topk[0][2] == pytest.approx(float(expected[order[0]]), rel=1e-5)
    # template-less folder (sorted names) gives the same frames
    torch.testing.assert_close(read_clip(inputs["named"], "frames", n_segment=4), clip)


def test_folder_of_videos_and_class_fallbacks(inputs: dict[str, Path], tmp_path: Path) -> None:
    results = predict(inputs["videos"], checkpoint=inputs["plain"], topk=5, size=32, scale_size=36)
    assert [Path(r.input).name for r in results] == ["a.mp4", "b.mp4"]
    assert len(results[0].topk) == 3  # capped at the class count
    assert {name for _, name, _ in results[0].topk} == {"0", "1", "2"}  # no names in the checkpoint
    assert sum(p for _, _, p in results[0].topk) == pytest.approx(1.0, rel=1e-5)
    (tmp_path / "c.txt").write_text("x\ny\nz\n")
    [named] = predict(inputs["video"], checkpoint=inputs["plain"], classes=tmp_path / "c.txt", size=32, scale_size=36)
    assert {name for _, name, _ in named.topk} == {"x", "y", "z"}


def test_cli_predict_text_and_json(inputs: dict[str, Path], run_cli) -> None:
    code, out, err = run_cli(["predict", str(inputs["video"]), "--checkpoint", str(inputs["ckpt"]), "--topk", "2"])
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 2 and lines[0].split()[0] in NAMES and 0.0 <= float(lines[0].split()[1]) <= 1.0
    code, out, err = run_cli(["predict", str(inputs["videos"]), "--checkpoint", str(inputs["ckpt"]), "--json"])
    assert code == 0, err
    data = json.loads(out)
    assert data["checkpoint"] == str(inputs["ckpt"]) and len(data["predictions"]) == 2
    first = data["predictions"][0]
    assert first["input"].endswith("a.mp4") and next(t["name"] for t in first["topk"]) in NAMES
    assert sorted(t["label"] for t in first["topk"]) == [0, 1, 2]


@pytest.mark.parametrize("case", ["missing", "image", "empty folder", "corrupt video", "missing checkpoint", "topk"])
def test_cli_predict_errors_are_one_line(case: str, inputs: dict[str, Path], run_cli) -> None:
    ckpt = str(inputs["ckpt"])
    argv, expected = {
        "missing": ([str(inputs["root"] / "nope.mp4"), "--checkpoint", ckpt], "nope.mp4: not found"),
        "image": ([str(inputs["frames"] / "img_00001.jpg"), "--checkpoint", ckpt], "a single image is not a video"),
        "empty folder": ([str(inputs["empty"]), "--checkpoint", ckpt], "no JPEG frames and no videos"),
        "corrupt video": ([str(inputs["bad"]), "--checkpoint", ckpt], "broken.mp4: cannot open video"),
        "missing checkpoint": (
            [str(inputs["video"]), "--checkpoint", str(inputs["root"] / "x.pt")],
            "checkpoint not found",
        ),
        "topk": ([str(inputs["video"]), "--checkpoint", ckpt, "--topk", "0"], "topk must be at least 1"),
    }[case]
    code, out, err = run_cli(["predict", *argv])
    assert code == 2 and out == ""
    assert err.startswith("tsm predict: error: ") and expected in err, err
    assert len(err.strip().splitlines()) == 1
