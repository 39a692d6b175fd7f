"""Long videos (`engine.timeline`): the windows of one sequential decode, and segments from scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import frame_ids
from temporal_shift.data.sampling import TSNSampler
from temporal_shift.data.sources import VideoSource, open_folder
from temporal_shift.engine.timeline import (
    merge_segments,
    piece_scores,
    score_windows,
    segments_of,
    smooth_pieces,
    window_frames,
)


class IndexPredictor:
    """A stand-in for `Predictor` that scores a window by the frame indices it was given."""

    def __init__(self, n_segment: int = 4) -> None:
        self.class_names = ["a", "b"]
        self.sampler = TSNSampler(n_segment=n_segment, train=False)
        self.seen: list[list[int]] = []

    def transform(self, clip: torch.Tensor) -> torch.Tensor:
        return clip  # uint8 frames kept as they are: their red level says their index

    def sample(self, num_frames: int, *, source: str = "") -> list[int]:
        return self.sampler(num_frames)[0].tolist()

    def batch_probabilities(self, clips: torch.Tensor) -> torch.Tensor:
        for clip in clips:
            self.seen.append(frame_ids(clip))
        return torch.full((len(clips), 2), 0.5)


@pytest.mark.parametrize(("num_frames", "length", "step"), [(30, 8, 2), (31, 8, 3), (5, 8, 2), (8, 8, 8)])
def test_windows_cover_the_video_from_one_pass(tmp_path: Path, make_video, num_frames, length, step) -> None:
    video = make_video(tmp_path / "v.mp4", num_frames)
    predictor = IndexPredictor()
    starts, ends, scores, times = score_windows(predictor, VideoSource(video), length=length, step=step, batch_size=3)
    regular = list(range(0, max(num_frames - length, 0) + 1, step)) if num_frames >= length else []
    tail = [max(0, num_frames - length)] if not regular or regular[-1] + length < num_frames else []
    assert starts.tolist() == regular + tail and ends.tolist() == [min(s + length, num_frames) for s in starts]
    assert scores.shape == (len(starts), 2) and len(times) == num_frames
    sampler = TSNSampler(n_segment=4, train=False)
    for start, end, seen in zip(starts, ends, predictor.seen, strict=True):  # each window sampled as in test
        assert seen == (start + sampler(int(end - start))[0]).tolist()


def test_frame_folders_have_a_frame_rate(tmp_path: Path, make_frames) -> None:
    folder = open_folder(make_frames(tmp_path, "f", 12), fps=6)
    starts, _, _, times = score_windows(IndexPredictor(), folder, length=4, step=4)
    assert starts.tolist() == [0, 4, 8] and times[6] == pytest.approx(1.0)


def test_pieces_take_the_mean_of_the_windows_over_them() -> None:
    starts, ends = np.array([0, 2, 4]), np.array([4, 6, 8])
    scores = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    edges, pieces = piece_scores(starts, ends, scores)
    assert edges.tolist() == [0, 2, 4, 6, 8]
    np.testing.assert_allclose(pieces, [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
    smoothed = smooth_pieces(edges, pieces, frames=4)  # each piece with its neighbours (centres 2 apart)
    np.testing.assert_allclose(smoothed[0], [(1 + 0.75) / 2, (0 + 0.25) / 2])
    np.testing.assert_allclose(smooth_pieces(edges, pieces, frames=0), pieces)


def test_short_segments_join_the_better_neighbour() -> None:
    edges = np.arange(0, 14, 2)  # six pieces of 2 frames
    pieces = np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.1, 0.3, 0.6], [0.1, 0.8, 0.1], [0.0, 0.9, 0.1], [0, 1, 0]])
    assert merge_segments(edges, pieces) == [(0, 0, 4), (2, 4, 6), (1, 6, 12)]
    # the 2-frame run of class 2 goes to class 1, which scores higher over it than class 0
    assert merge_segments(edges, pieces, min_frames=3) == [(0, 0, 4), (1, 4, 12)]
    assert merge_segments(edges, pieces, min_frames=100) == [(1, 0, 12)]  # down to one segment
    times = np.arange(13) / 4.0
    segments = segments_of(
        np.array([0, 4, 8]), np.array([4, 8, 12]), np.eye(3)[[0, 2, 1]], times=times, class_names=["x", "y", "z"], fps=4
    )
    assert [(s.name, s.start, s.end, s.score) for s in segments] == [("x", 0, 1, 1), ("z", 1, 2, 1), ("y", 2, 3, 1)]


def test_window_and_stride_are_checked() -> None:
    assert window_frames(2.0, 0.5, 25) == (50, 12)  # 12.5 frames rounds to even: 12
    assert window_frames(0.01, 0.01, 25) == (1, 1)
    with pytest.raises(ValueError, match=r"stride \(3 s\) must not exceed the window \(2 s\)"):
        window_frames(2, 3, 25)
    with pytest.raises(ValueError, match="window and stride must be positive seconds"):
        window_frames(0, 1, 25)


def test_cli_window_options_go_with_window(run_cli, tmp_path: Path) -> None:
    from temporal_shift.checkpoint.format import save_checkpoint
    from temporal_shift.models import build_model

    checkpoint = save_checkpoint(build_model("resnet18", num_classes=2, n_segment=4), tmp_path / "m.pt")
    result = run_cli(["predict", tmp_path / "v.mp4", "--checkpoint", checkpoint, "--plot"])
    assert result.code == 2 and "--plot goes with --window SECONDS" in result.err
    result = run_cli(["predict", tmp_path, tmp_path, "--checkpoint", checkpoint, "--window", 2])
    assert result.code == 2 and "--window takes one video, got 2 inputs" in result.err


def test_cli_window_writes_windows_segments_and_plot(run_cli, tmp_path: Path, make_video) -> None:
    """An untrained model over a 30-frame video at 25 fps: the files, their shapes and the JSON on stdout."""
    import itertools
    import json

    from temporal_shift.checkpoint.format import save_checkpoint
    from temporal_shift.models import build_model

    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=3, n_segment=4)
    extra = {"class_names": ["x", "y", "z"], "config": {"data": {"size": 32, "scale_size": 32}}}
    checkpoint = save_checkpoint(model, tmp_path / "m.pt", extra=extra)
    video = make_video(tmp_path / "long.mp4", 30)
    out = tmp_path / "out"
    args = ["predict", video, "--checkpoint", checkpoint, "--device", "cpu", "--window", 0.32, "--stride", 0.16]
    result = run_cli([*args, "--topk", 2, "--plot", "--out", out, "--json", "--batch-size", 2])
    assert result.code == 0, result.err
    printed = json.loads(result.out)
    assert printed == json.loads((out / "long.timeline.json").read_text())
    assert (printed["fps"], printed["frames"], printed["classes"]) == (25, 30, ["x", "y", "z"])
    windows = printed["windows"]
    starts = [k * 0.16 for k in range(6)] + [22 / 25]  # 8 frames every 4, and the last 8
    assert [w["start"] for w in windows] == pytest.approx(starts)
    assert all(len(w["topk"]) == 2 and w["topk"][0]["score"] >= w["topk"][1]["score"] for w in windows)
    segments = printed["segments"]
    assert segments[0]["start"] == 0 and segments[-1]["end"] == pytest.approx(30 / 25)
    assert all(a["end"] == b["start"] and a["name"] != b["name"] for a, b in itertools.pairwise(segments))
    rows = (out / "long.windows.csv").read_text().splitlines()
    assert rows[0] == "start,end,label_1,name_1,score_1,label_2,name_2,score_2" and len(rows) == 1 + len(windows)
    assert len((out / "long.segments.csv").read_text().splitlines()) == 1 + len(segments)
    assert (out / "long.timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = run_cli([*args[:-4], "--window", 0, "--stride", 0.1])
    assert bad.code == 2 and "window and stride must be positive seconds" in bad.err
