"""`temporal_shift.pipeline`: paths, frame folders and (T, H, W, 3) arrays -> [{"label", "score"}], batched,
each video sampled the way its checkpoint was trained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import temporal_shift
from conftest import frame_ids, index_frames
from temporal_shift.checkpoint.format import save_checkpoint
from temporal_shift.data.encode import write_frame_folder, write_video
from temporal_shift.data.sampling import DenseSampler, TSNSampler
from temporal_shift.data.sources import VideoSource
from temporal_shift.engine.predict import Predictor
from temporal_shift.models.factory import build_model

NAMES = ["red", "green", "blue"]
DATA = {"size": 32, "scale_size": 36}

pytestmark = pytest.mark.usefixtures("one_thread")


def checkpoint(path: Path, *, data: dict | None = None, **model: object) -> Path:
    torch.manual_seed(0)
    net = build_model("resnet18", num_classes=3, n_segment=4, **model)
    torch.nn.init.normal_(net.head.weight, 0.0, 0.3)
    return save_checkpoint(net, path, extra={"class_names": NAMES, "config": {"data": {**DATA, **(data or {})}}})


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pipeline")
    rng = np.random.default_rng(0)
    write_video(root / "a.mp4", rng.integers(0, 255, size=(12, 40, 48, 3)).astype(np.uint8), fps=25, crf=10)
    write_video(root / "b.mp4", rng.integers(0, 255, size=(9, 40, 48, 3)).astype(np.uint8), fps=25, crf=10)
    write_frame_folder(root / "frames", rng.integers(0, 255, size=(7, 40, 48, 3)).astype(np.uint8), quality=95)
    return {"root": root, "a": root / "a.mp4", "b": root / "b.mp4", "frames": root / "frames"}


def test_paths_arrays_and_lists_give_the_same_scores(files: dict[str, Path], tmp_path: Path) -> None:
    classify = temporal_shift.pipeline(checkpoint(tmp_path / "m.pt"), device="cpu", batch_size=2)
    top = classify(files["a"], top_k=2)
    assert [set(d) for d in top] == [{"label", "score"}] * 2 and top[0]["label"] in NAMES
    assert top[0]["score"] >= top[1]["score"] and 0 < top[0]["score"] <= 1
    everything = classify(files["a"], top_k=10)  # top_k beyond the classes: all of them
    assert sorted(d["label"] for d in everything) == sorted(NAMES)
    assert sum(d["score"] for d in everything) == pytest.approx(1.0, abs=1e-5)
    # the decoded frames as an array (numpy or torch) are sampled like the file: the same scores
    frames = torch.stack([f.image for f in VideoSource(files["a"]).frames()]).permute(0, 2, 3, 1)
    for video in (frames.numpy(), frames):
        same = classify(video, top_k=3)
        assert [d["label"] for d in same] == [d["label"] for d in everything]
        assert [d["score"] for d in same] == pytest.approx([d["score"] for d in everything], abs=1e-5)
    # a list: batches of 2 (and a last one of 1), each result as the one-by-one call's
    videos = [files["a"], files["frames"], files["b"]]
    batched = classify(videos, top_k=3)
    assert len(batched) == 3
    for video, result in zip(videos, batched, strict=True):
        alone = classify(video, top_k=3)
        assert [d["label"] for d in result] == [d["label"] for d in alone]
        assert [d["score"] for d in result] == pytest.approx([d["score"] for d in alone], abs=1e-5)
    assert classify.class_names == NAMES


def test_frames_are_sampled_as_the_model_was_trained(tmp_path: Path) -> None:
    frames = index_frames(30)
    tsn = temporal_shift.pipeline(checkpoint(tmp_path / "tsn.pt"), device="cpu")
    assert frame_ids(tsn.clip(frames)) == TSNSampler(n_segment=4, train=False)(30)[0].tolist()
    dense_ckpt = checkpoint(tmp_path / "dense.pt", data={"sampling": "dense", "dense_window": 8})
    dense = temporal_shift.pipeline(dense_ckpt, device="cpu")
    expected = DenseSampler(n_segment=4, train=False, window=8, num_clips=1)(30)[0].tolist()
    assert frame_ids(dense.clip(frames)) == expected
    assert np.diff(expected).tolist() == [2, 2, 2]  # one window, frames 2 apart: not the segment centres
    odd = checkpoint(tmp_path / "odd.pt", data={"sampling": "random"})
    with pytest.raises(ValueError, match=r"odd.pt: data.sampling is 'random'; expected 'tsn' or 'dense'"):
        temporal_shift.pipeline(odd, device="cpu")


def test_bad_inputs_are_one_line_errors(files: dict[str, Path], tmp_path: Path) -> None:
    classify = temporal_shift.pipeline(checkpoint(tmp_path / "m.pt"), device="cpu")
    cases = [
        (lambda: classify(torch.zeros(4, 8, 8, 3)), ValueError, r"video 0: expected uint8 frames \(T, H, W, 3\)"),
        (lambda: classify(np.zeros((4, 8, 8), np.uint8)), ValueError, r"video 0: expected uint8 frames"),
        (lambda: classify([files["a"], np.zeros((0, 8, 8, 3), np.uint8)]), ValueError, r"video 1: expected uint8"),
        (lambda: classify([files["a"], 3]), TypeError, r"video 1: expected a path or a \(T, H, W, 3\) uint8 array"),
        (lambda: classify(files["root"]), ValueError, r"a folder of 2 videos; pass them as a list of paths"),
        (lambda: classify([]), ValueError, r"no video given"),
        (lambda: classify(files["a"], top_k=0), ValueError, r"top_k must be at least 1"),
    ]
    for call, kind, message in cases:
        with pytest.raises(kind, match=message) as info:
            call()
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        temporal_shift.pipeline(tmp_path / "m.pt", batch_size=0)
    flow = checkpoint(tmp_path / "flow.pt", modality="flow", flow_length=2)
    with pytest.raises(ValueError, match=r"flow.pt: a flow model; prediction takes RGB models"):
        Predictor(flow, device="cpu")
