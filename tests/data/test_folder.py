"""`tsm prepare folder`: your own class folders -> classes.txt, train.txt, val.txt."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from temporal_shift.data.encode import write_frame_folder
from temporal_shift.data.folder import prepare_folder
from temporal_shift.data.lists import read_classes, read_list


def touch(path: Path, data: bytes = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def tree(root: Path, counts: dict[str, int], *, ext: str = ".mp4") -> Path:
    for name, n in counts.items():
        for k in range(n):
            touch(root / name / f"{name}_{k:02d}{ext}")
    return root


def test_class_folders_become_a_stratified_split(tmp_path: Path) -> None:
    root = tree(tmp_path / "videos", {"wave": 10, "clap": 5, "Jump": 4})
    frames = np.zeros((3, 16, 16, 3), np.uint8)
    write_frame_folder(root / "clap" / "nested" / "clip_frames", frames)  # a frame folder, one level down
    touch(root / "wave" / ".DS_Store")
    touch(root / ".hidden_class" / "x.mp4")
    touch(root / "wave" / "notes.txt")
    touch(root / "README.md")
    out = tmp_path / "lists"
    result = prepare_folder(root, out_dir=out, val_fraction=0.25, seed=3)

    assert result.classes == read_classes(out / "classes.txt") == ["Jump", "clap", "wave"]  # sorted
    train, val = read_list(out / "train.txt"), read_list(out / "val.txt")
    assert result.counts == {"train": [3, 4, 7], "val": [1, 2, 3]}  # round(n / 4), at least one each
    assert sorted(r.path for r in train + val) == sorted(
        [f"Jump/Jump_{k:02d}.mp4" for k in range(4)]
        + [f"clap/clap_{k:02d}.mp4" for k in range(5)]
        + ["clap/nested/clip_frames"]
        + [f"wave/wave_{k:02d}.mp4" for k in range(10)]
    )
    assert not {r.path for r in train} & {r.path for r in val}
    frame_line = next(r for r in train + val if r.path.endswith("clip_frames"))
    assert (frame_line.num_frames, frame_line.label) == (3, 1)
    assert all(r.label == result.classes.index(r.path.split("/")[0]) for r in train + val)
    # what was skipped is counted and listed, never dropped silently
    assert result.skipped_counts() == {"hidden": 2, "not videos": 1, "files outside a class folder": 1}
    assert "skipped: 1 files outside a class folder, 2 hidden, 1 not videos" in result.summary()
    assert (out / "skipped.txt").read_text().splitlines()[0] == ".hidden_class\thidden"
    record = json.loads((out / "dataset.json").read_text())
    assert record["root"] == str(root) and record["classes"] == result.classes and record["split"] == "stratified"
    # the same settings give the same lists; another seed another split
    again = prepare_folder(root, out_dir=tmp_path / "again", val_fraction=0.25, seed=3)
    assert again.val_list.read_text() == result.val_list.read_text()
    other = prepare_folder(root, out_dir=tmp_path / "other", val_fraction=0.25, seed=4)
    assert other.val_list.read_text() != result.val_list.read_text()


def test_an_existing_split_is_kept(tmp_path: Path) -> None:
    root = tmp_path / "videos"
    tree(root / "train", {"a": 3, "b": 2})
    tree(root / "val", {"a": 1})
    result = prepare_folder(root, out_dir=tmp_path / "out")
    assert result.split == "given" and result.classes == ["a", "b"]
    assert [r.path for r in read_list(result.val_list)] == ["val/a/a_00.mp4"]
    assert result.counts == {"train": [3, 2], "val": [1, 0]}
    assert "classes without val videos: b" in result.summary()
    tree(root / "val", {"c": 1})
    with pytest.raises(ValueError, match=r"val/c: class 'c' has no training videos"):
        prepare_folder(root, out_dir=tmp_path / "out")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda r: tree(r, {"a": 3, "b": 1}), r"videos/b: class 'b' has 1 video; a train/val split needs at least 2"),
        (lambda r: (tree(r, {"a": 3}), touch(r / "b" / "x.txt")), r"videos/b: no videos .* in class 'b' \(1 other"),
        (lambda r: tree(r / "train", {"a": 3}), r"videos/train is there but .*videos/val is not"),
        (lambda r: touch(r / "x.txt"), r"videos: no class folders"),
    ],
)
def test_user_errors_are_one_line_naming_the_folder(tmp_path: Path, make, message: str) -> None:
    root = tmp_path / "videos"
    root.mkdir()
    make(root)
    with pytest.raises(ValueError, match=message) as info:
        prepare_folder(root, out_dir=tmp_path / "out")
    assert "\n" not in str(info.value)


def test_frames_named_otherwise_and_bad_settings(tmp_path: Path) -> None:
    root = tree(tmp_path / "videos", {"a": 2})
    touch(root / "b" / "clip" / "frame0001.jpg", b"\xff\xd8")
    touch(root / "b" / "other.mp4")
    with pytest.raises(ValueError, match=r"b/clip: JPEG frames not named like img_00001.jpg"):
        prepare_folder(root, out_dir=tmp_path / "out")
    with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 1\), got 1.0"):
        prepare_folder(root, out_dir=tmp_path / "out", val_fraction=1.0)
    with pytest.raises(FileNotFoundError, match=r"missing: folder not found"):
        prepare_folder(tmp_path / "missing", out_dir=tmp_path / "out")


def test_extract_writes_frame_folders_and_lists_them(tmp_path: Path, make_video, make_frames) -> None:
    root = tmp_path / "videos"
    make_video(root / "a" / "one.mp4", 6)
    make_video(root / "a" / "two.mp4", 5)
    make_frames(root / "b", "f1", 4)
    make_frames(root / "b", "f2", 3)
    out = tmp_path / "out"
    result = prepare_folder(root, out_dir=out, extract=True, short_side=None, workers=1, progress=False)
    assert result.root == out and result.extracted == 2
    lines = {r.path: r for r in read_list(result.train_list) + read_list(result.val_list)}
    assert {lines["frames/a/one"].num_frames, lines["frames/a/two"].num_frames} == {6, 5}
    assert lines["../videos/b/f1"].num_frames == 4  # frame folders already there: named from out
    assert (out / "frames" / "a" / "one" / "img_00006.jpg").is_file()
    again = prepare_folder(root, out_dir=out, extract=True, short_side=None, workers=1, progress=False)
    assert again.extracted == 0  # finished folders are kept
    touch(root / "a" / "broken.mp4", b"not a video")
    with pytest.raises(ValueError, match=r"broken.mp4: cannot extract frames .* listed in .*extract_failures.txt"):
        prepare_folder(root, out_dir=out, extract=True, workers=1, progress=False)


def test_cli_prepare_folder(tmp_path: Path, run_cli) -> None:
    root = tree(tmp_path / "videos", {"a": 4, "b": 4})
    touch(root / "a" / ".hidden.mp4")
    result = run_cli(["prepare", "folder", root, "--out", tmp_path / "out", "--val-fraction", "0.5"])
    assert result.code == 0, result.err
    assert "2 classes, 4 train / 4 val videos (stratified split)" in result.out
    assert "skipped: 1 hidden" in result.out
    bad = run_cli(["prepare", "folder", tmp_path / "nowhere", "--out", tmp_path / "out"])
    assert bad.code == 2 and bad.err.startswith("tsm prepare: error: ") and "nowhere: folder not found" in bad.err
