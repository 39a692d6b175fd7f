"""Optical flow: extraction (OpenCV TV-L1 / Farneback), the reference layout, flow clips."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

pytest.importorskip("cv2", reason="the 'flow' extra (opencv-contrib-python-headless) is part of the test extra")

from temporal_shift.cli import main
from temporal_shift.data.decode import CorruptMediaError
from temporal_shift.data.encode import write_frame_folder, write_video
from temporal_shift.data.flow import (
    FLOW_DONE_FILE,
    FLOW_MEAN,
    FLOW_STD,
    FlowComputer,
    FlowDataset,
    FlowDependencyError,
    FlowHorizontalFlip,
    dequantize_flow,
    extract_flow,
    flip_flow,
    flow_test_transform,
    flow_train_transform,
    prepare_flow,
    quantize_flow,
    read_flow_folder,
)
from temporal_shift.data.lists import ListFileError, write_frame_list, write_video_list
from temporal_shift.data.sampling import TSNSampler


def _square_frames(n: int, *, size: int = 48, dx: int = 2, dy: int = 1, side: int = 12) -> np.ndarray:
    """uint8 (n, size, size, 3): a textured bright square moving (dx, dy) px per frame."""
    rng = np.random.default_rng(0)
    texture = rng.integers(120, 256, (side, side, 3), dtype=np.uint8)
    frames = np.full((n, size, size, 3), 30, dtype=np.uint8)
    for t in range(n):
        y, x = 10 + t * dy, 10 + t * dx
        frames[t, y : y + side, x : x + side] = texture
    return frames


@pytest.mark.parametrize("method", ["tvl1", "farneback"])
def test_moving_square_flow_has_the_right_sign_and_magnitude(method: str) -> None:
    import cv2

    frames = _square_frames(2, dx=3, dy=-2)
    frames[1] = np.roll(frames[0], (-2, 3), axis=(0, 1))  # exactly 3 right, 2 up
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    flow = FlowComputer(method)(gray[0], gray[1])
    assert flow.shape == (48, 48, 2) and flow.dtype == np.float32
    inside = flow[13:19, 13:19].reshape(-1, 2).mean(axis=0)  # the square's centre in frame 1
    assert inside[0] == pytest.approx(3.0, abs=0.5) and inside[1] == pytest.approx(-2.0, abs=0.5)
    backward = FlowComputer(method)(gray[1], gray[0])[11:17, 16:22].reshape(-1, 2).mean(axis=0)
    assert backward[0] == pytest.approx(-3.0, abs=0.5) and backward[1] == pytest.approx(2.0, abs=0.5)


def test_quantisation_round_trip_within_one_level() -> None:
    bound = 20.0
    flow = np.random.default_rng(1).uniform(-bound, bound, (64, 64, 2)).astype(np.float32)
    values = quantize_flow(flow, bound=bound)
    assert values.dtype == np.uint8
    level = 2 * bound / 255
    assert np.abs(dequantize_flow(values, bound=bound) - flow).max() <= level / 2 + 1e-5
    assert quantize_flow(np.array([-50.0, -20.0, 0.0, 20.0, 50.0]), bound=bound).tolist() == [0, 0, 128, 255, 255]
    assert quantize_flow(np.array([2.0]), bound=2.0).tolist() == [255]
    with pytest.raises(ValueError, match="bound must be positive"):
        quantize_flow(flow, bound=0)


def test_flip_negates_x_and_mirrors_both() -> None:
    clip = torch.randint(0, 256, (6, 2, 8, 10), dtype=torch.uint8)
    flipped = flip_flow(clip)
    assert torch.equal(flipped[:, 0], 255 - clip[:, 0].flip(-1))
    assert torch.equal(flipped[:, 1], clip[:, 1].flip(-1))
    # in pixels: the mirrored field's x is exactly the negation
    x = dequantize_flow(clip[:, 0].flip(-1).numpy())
    assert np.allclose(dequantize_flow(flipped[:, 0].numpy()), -x, atol=1e-5)
    out, label = FlowHorizontalFlip(p=1.0, label_map={3: 4})(clip, 3)
    assert label == 4 and torch.equal(out, flipped)
    # the 10-crop test views: views 5..9 are the mirrors of 0..4, x negated
    views = flow_test_transform(flow_length=3, size=6, scale_size=8, views=10, normalize=False)(
        tv_tensors.Video(torch.randint(0, 256, (6, 2, 8, 8), dtype=torch.uint8))
    )
    assert views.shape == (10, 2, 6, 6, 6)
    assert torch.allclose(views[5:, :, 0::2], 1.0 - views[:5, :, 0::2].flip(-1), atol=1e-6)
    assert torch.allclose(views[5:, :, 1::2], views[:5, :, 1::2].flip(-1))


def _write_flow_folder(
    folder: Path, n: int, *, seed: int = 0, size: int = 16, names: tuple[str, str] = ("flow_x_", "flow_y_")
) -> np.ndarray:
    from temporal_shift.data.flow import write_flow_image

    folder.mkdir(parents=True, exist_ok=True)
    values = np.random.default_rng(seed).integers(0, 256, (n, 2, size, size), dtype=np.uint8)
    values[:, 0] = np.arange(n, dtype=np.uint8)[:, None, None] * 10  # x of field i is 10 i
    values[:, 1] = 200 + np.arange(n, dtype=np.uint8)[:, None, None]
    for i in range(n):
        write_flow_image(folder / f"{names[0]}{i + 1:05d}.jpg", values[i, 0], quality=100)
        write_flow_image(folder / f"{names[1]}{i + 1:05d}.jpg", values[i, 1], quality=100)
    return values


def test_flow_template_reads_mmaction2_x_y_names_from_an_offset_list(tmp_path: Path) -> None:
    """MMAction2's flow frames (x_00001.jpg, y_00001.jpg) through --flow-template, a start offset honoured."""
    from temporal_shift.data.factory import build_dataset
    from temporal_shift.data.flow import flow_templates

    assert flow_templates("x_{:05d}.jpg") == ("x_{:05d}.jpg", "y_{:05d}.jpg")
    assert flow_templates("flow_x_{:05d}.jpg") == ("flow_x_{:05d}.jpg", "flow_y_{:05d}.jpg")
    with pytest.raises(ValueError, match=r"flow template 'img_\{:05d\}.jpg' must name the x files"):
        flow_templates("img_{:05d}.jpg")
    _write_flow_folder(tmp_path / "a", 12, names=("x_", "y_"))
    (tmp_path / "flow.txt").write_text("a 4 6 1\n")  # fields 5..10
    sampler = TSNSampler(n_segment=3, train=False, frames_per_segment=2)
    common = dict(modality="flow", list_file=tmp_path / "flow.txt", root=tmp_path, sampler=sampler, train=False)
    dataset = build_dataset(**common, flow_length=2, size=16, scale_size=16, flow_template="x_{:05d}.jpg")
    dataset.transform = None
    clip, label = dataset[0]
    positions = sampler(6)[0] + 4
    assert label == 1 and clip[:, 0, 0, 0].tolist() == [10 * int(i) for i in positions]
    assert clip[:, 1, 0, 0].tolist() == [200 + int(i) for i in positions]
    with pytest.raises(ListFileError, match=r"flow.txt:1: .*a lists 6 frames from number 5 but only 0"):
        build_dataset(**common, flow_length=2, size=16, scale_size=16)  # flow_x_ files: none


def test_flow_dataset_stacks_l_fields_per_segment(tmp_path: Path) -> None:
    _write_flow_folder(tmp_path / "a", 12)
    write_frame_list(tmp_path / "flow.txt", [("a", 12, 1)])
    sampler = TSNSampler(n_segment=3, train=False, frames_per_segment=2)
    raw = FlowDataset(list_file=tmp_path / "flow.txt", root=tmp_path, sampler=sampler)
    clip, label = raw[0]
    assert clip.shape == (6, 2, 16, 16) and clip.dtype == torch.uint8 and label == 1
    positions = sampler(12)[0]
    assert clip[:, 0, 0, 0].tolist() == [10 * int(i) for i in positions]  # x channel in field order
    ds = FlowDataset(
        list_file=tmp_path / "flow.txt",
        root=tmp_path,
        sampler=sampler,
        transform=flow_test_transform(flow_length=2, size=16, scale_size=16),
    )
    clip, _ = ds[0]
    assert clip.shape == (3, 4, 16, 16)  # (T, 2L, H, W): x1, y1, x2, y2
    expected = (10 * positions[1] / 255 - FLOW_MEAN) / FLOW_STD
    assert clip[0, 2, 0, 0].item() == pytest.approx(expected, abs=1e-5)
    assert clip[0, 3, 0, 0].item() == pytest.approx(((200 + positions[1]) / 255 - FLOW_MEAN) / FLOW_STD, abs=1e-5)
    train = FlowDataset(
        list_file=tmp_path / "flow.txt",
        root=tmp_path,
        sampler=TSNSampler(n_segment=3, train=True, frames_per_segment=2),
        transform=flow_train_transform(flow_length=2, size=8, scales=[1.0, 0.75]),
    )
    assert train[0][0].shape == (3, 4, 8, 8)


def test_missing_or_corrupt_flow_file_is_named(tmp_path: Path) -> None:
    _write_flow_folder(tmp_path / "a", 8)
    write_frame_list(tmp_path / "flow.txt", [("a", 8, 0)])
    sampler = TSNSampler(n_segment=8, train=False)
    (tmp_path / "a" / "flow_y_00003.jpg").unlink()
    ds = FlowDataset(list_file=tmp_path / "flow.txt", root=tmp_path, sampler=sampler)
    with pytest.raises(FileNotFoundError, match=r"flow\.txt:1: .*a/flow_y_00003\.jpg: flow file not found"):
        ds[0]
    (tmp_path / "a" / "flow_y_00003.jpg").write_bytes((tmp_path / "a" / "flow_y_00002.jpg").read_bytes()[:50])
    with pytest.raises(CorruptMediaError, match=r"flow\.txt:1: .*a/flow_y_00003\.jpg: corrupt flow JPEG"):
        ds[0]
    (tmp_path / "a" / "flow_x_00008.jpg").unlink()  # the last listed field: found before any loading
    with pytest.raises(FileNotFoundError, match=r"flow\.txt:1: .*a lists 8 frames but only 7 \('flow_x_"):
        FlowDataset(list_file=tmp_path / "flow.txt", root=tmp_path, sampler=sampler)


def test_extract_flow_from_frames_and_video_in_the_reference_layout(tmp_path: Path) -> None:
    frames = _square_frames(5, dx=2, dy=1)
    write_frame_folder(tmp_path / "frames" / "sq", frames, quality=95)
    write_video(tmp_path / "videos" / "sq.mp4", frames, crf=0)
    n = extract_flow(tmp_path / "frames" / "sq", tmp_path / "out" / "sq", method="farneback", bound=8)
    assert n == 4
    names = sorted(p.name for p in (tmp_path / "out" / "sq").iterdir())  # flow files only
    assert names == [f"flow_{a}_{i:05d}.jpg" for a in "xy" for i in range(1, 5)]
    flow = dequantize_flow(read_flow_folder(tmp_path / "out" / "sq", [0, 3]).numpy(), bound=8)
    centre = flow[:, :, 13:19, 13:19].mean(axis=(2, 3))  # (fields, 2) at the square in frame 1
    assert centre[0, 0] == pytest.approx(2.0, abs=0.6) and centre[0, 1] == pytest.approx(1.0, abs=0.6)
    assert extract_flow(tmp_path / "videos" / "sq.mp4", tmp_path / "out" / "v", method="tvl1", short_side=24) == 4
    assert read_flow_folder(tmp_path / "out" / "v", [0]).shape == (1, 2, 24, 24)


def test_prepare_flow_is_resumable_and_lists_failures(tmp_path: Path, capsys) -> None:
    root = tmp_path / "data"
    for i in range(3):
        write_frame_folder(root / f"v{i}", _square_frames(4 + i))
    write_frame_folder(root / "one", _square_frames(1))
    write_frame_list(root / "val.txt", [("v0", 4, 0), ("one", 1, 1), ("v1", 5, 1), ("v2", 6, 2)])
    result = prepare_flow(root / "val.txt", root=root, out_root=root, method="farneback", workers=2, progress=False)
    assert (result.extraction.extracted, result.extraction.skipped) == (3, 0)
    assert [v for v, _ in result.extraction.failed] == [str(root / "one")]
    assert "one frame only" in (root / "flow_failures.txt").read_text()
    assert result.list_file == root / "val_flow.txt"
    assert result.list_file.read_text().splitlines() == ["v0 3 0", "v1 4 1", "v2 5 2"]
    assert (root / "v1" / "img_00001.jpg").is_file()  # flow sits next to the frames
    stamp = (root / "v0" / "flow_x_00001.jpg").stat().st_mtime_ns
    done = (root / FLOW_DONE_FILE).read_text().splitlines()
    assert sorted(done) == ["v0\t3", "v1\t4", "v2\t5"]
    kept = [line for line in done if not line.startswith("v2")]  # v2 interrupted: redone
    (root / FLOW_DONE_FILE).write_text("".join(f"{line}\n" for line in kept))
    os.utime(root / "v1" / "flow_x_00001.jpg", ns=(1, 1))
    again = prepare_flow(root / "val.txt", root=root, out_root=root, method="farneback", workers=1, progress=False)
    assert (again.extraction.extracted, again.extraction.skipped) == (1, 2)
    assert (root / "v0" / "flow_x_00001.jpg").stat().st_mtime_ns == stamp
    assert (root / "v1" / "flow_x_00001.jpg").stat().st_mtime_ns == 1  # skipped: not rewritten
    assert again.list_file.read_text() == result.list_file.read_text()
    # the CLI: exit status 1 with failures, summary printed
    assert (
        main(
            [
                "prepare",
                "flow",
                "--list",
                "val.txt",
                "--root",
                str(root),
                "--out",
                str(tmp_path / "f"),
                "--method",
                "farneback",
                "--workers",
                "1",
            ]
        )
        == 1
    )
    out = capsys.readouterr().out
    assert "extracted 3, skipped (already done) 0, failed 1" in out and "val_flow.txt (3 videos)" in out
    assert (tmp_path / "f" / "v2" / "flow_y_00005.jpg").is_file()


def test_prepare_flow_reads_video_lists(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_video(root / "cls" / "a.mp4", _square_frames(4))
    write_video_list(root / "list.txt", [("cls/a.mp4", 2)])
    result = prepare_flow(
        root / "list.txt", root=root, out_root=tmp_path / "flow", method="farneback", workers=1, progress=False
    )
    assert result.list_file.read_text() == "cls/a 3 2\n"


def test_missing_opencv_is_a_one_line_error_naming_the_extra(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 now raises ImportError
    with pytest.raises(FlowDependencyError, match=r"temporal-shift\[flow\]"):
        FlowComputer("farneback")
    write_frame_list(tmp_path / "l.txt", [("a", 2, 0)])
    assert main(["prepare", "flow", "--list", "l.txt", "--root", str(tmp_path), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tsm prepare: error: optical flow needs OpenCV") and "[flow]" in err
    assert len(err.splitlines()) == 1
