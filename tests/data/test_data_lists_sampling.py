"""List files and frame-index sampling."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from temporal_shift.data.lists import (
    FrameRecord,
    ListFileError,
    VideoRecord,
    read_classes,
    read_list,
    write_classes,
    write_frame_list,
    write_video_list,
)
from temporal_shift.data.sampling import DenseSampler, TSNSampler

# --- lists -------------------------------------------------------------------------


def test_frame_and_video_lists_round_trip(tmp_path):
    frames = write_frame_list(tmp_path / "f.txt", [("a/v 1", 30, 2), ("b", 7, 0)])
    videos = write_video_list(tmp_path / "v.txt", [("x y.mp4", 3), ("z.webm", 1)])
    f = read_list(frames)
    v = read_list(videos)
    assert f == [
        FrameRecord(path="a/v 1", num_frames=30, label=2, source=f"{frames}:1"),
        FrameRecord(path="b", num_frames=7, label=0, source=f"{frames}:2"),
    ]
    assert [(r.path, r.label) for r in v] == [("x y.mp4", 3), ("z.webm", 1)]
    assert all(isinstance(r, VideoRecord) for r in v)
    assert read_list(frames, kind="frames") == f


def test_list_skips_blank_and_comment_lines_and_counts_lines(tmp_path):
    path = tmp_path / "l.txt"
    path.write_text("# header\n\nv1 10 0\n  \nv2 12 1\n")
    records = read_list(path, kind="frames")
    assert [r.source for r in records] == [f"{path}:3", f"{path}:5"]


@pytest.mark.parametrize(
    ("text", "kind", "needle"),
    [
        ("v1 10 0\nv2 ten 1\n", "frames", ":2: malformed frame-list line"),
        ("v1 10 0\nv2 0 1\n", "frames", ":2: 'v2' lists 0 frames"),
        ("v1 10 0\nonlyonefield\n", "auto", ":2: malformed video-list line"),
        ("a.mp4 1\nb.mp4 x\n", "videos", ":2: malformed video-list line"),
        ("a.mp4 -1\n", "videos", ":1: negative label -1"),
    ],
)
def test_malformed_list_lines_name_file_and_line(tmp_path, text, kind, needle):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(ListFileError) as info:
        read_list(path, kind=kind)
    assert str(path) + needle in str(info.value)


def test_label_out_of_range_names_line(tmp_path):
    path = write_frame_list(tmp_path / "l.txt", [("a", 5, 0), ("b", 5, 3)])
    assert len(read_list(path, num_classes=4)) == 2
    with pytest.raises(ListFileError, match=r"l.txt:2: label 3 out of range for 3 classes"):
        read_list(path, num_classes=3)


def test_bad_lines_collected_when_errors_list_given(tmp_path):
    path = tmp_path / "l.txt"
    path.write_text("a 5 0\nb 5\nc 5 9\nd 3 1\n")
    errors: list[ListFileError] = []
    records = read_list(path, kind="frames", num_classes=2, errors=errors)
    assert [r.path for r in records] == ["a", "d"]
    assert [str(e).split(": ")[0] for e in errors] == [f"{path}:2", f"{path}:3"]


def test_missing_and_non_utf8_list_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope.txt: list file not found"):
        read_list(tmp_path / "nope.txt")
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ListFileError, match=r"bin.txt: not a UTF-8 text file"):
        read_list(binary)


def test_class_file_round_trip_and_errors(tmp_path):
    path = write_classes(tmp_path / "c.txt", ["walk", "run", "jump"])
    assert read_classes(path) == ["walk", "run", "jump"]
    dup = tmp_path / "dup.txt"
    dup.write_text("a\nb\na\n")
    with pytest.raises(ListFileError, match=r"dup.txt:3: duplicate class name 'a' \(also line 1\)"):
        read_classes(dup)
    empty = tmp_path / "empty.txt"
    empty.write_text("a\n\nb\n")
    with pytest.raises(ListFileError, match=r"empty.txt:2: empty class name"):
        read_classes(empty)


# --- TSN sampling --------------------------------------------------------------------


def _segments(num_frames: int, t: int) -> list[tuple[int, int]]:
    starts = [(i * num_frames) // t for i in range(t)] + [num_frames]
    return list(itertools.pairwise(starts))


def test_tsn_train_draws_one_random_frame_inside_each_segment():
    sampler = TSNSampler(n_segment=8, train=True)
    rng = np.random.default_rng(0)
    seen = [set() for _ in range(8)]
    for _ in range(300):
        idx = sampler(100, generator=rng)
        assert idx.shape == (1, 8)
        for s, (lo, hi) in enumerate(_segments(100, 8)):
            assert lo <= idx[0, s] < hi
            seen[s].add(int(idx[0, s]))
    # every frame of every segment is reachable
    assert [len(s) for s in seen] == [hi - lo for lo, hi in _segments(100, 8)]


def test_tsn_test_takes_segment_centres_deterministically():
    sampler = TSNSampler(n_segment=4, train=False)
    idx = sampler(40)
    assert idx.tolist() == [[5, 15, 25, 35]]
    assert np.array_equal(idx, sampler(40, generator=np.random.default_rng(1)))


def test_tsn_twice_sample_adds_segment_starts():
    sampler = TSNSampler(n_segment=4, train=False, twice_sample=True)
    assert sampler(40).tolist() == [[5, 15, 25, 35], [0, 10, 20, 30]]
    assert sampler.num_clips == 2
    with pytest.raises(ValueError, match="twice_sample is a test-time option"):
        TSNSampler(n_segment=4, train=True, twice_sample=True)


@pytest.mark.parametrize("train", [True, False])
def test_short_video_rule_repeats_frames_in_order(train):
    sampler = TSNSampler(n_segment=8, train=train)
    idx = sampler(3, generator=np.random.default_rng(0))
    assert idx.tolist() == [[0, 0, 0, 1, 1, 1, 2, 2]]
    assert sampler(1, generator=np.random.default_rng(0)).tolist() == [[0] * 8]
    # exactly T frames: each frame once
    assert sampler(8, generator=np.random.default_rng(0)).tolist() == [list(range(8))]


def test_zero_frames_is_an_error_naming_the_source():
    sampler = TSNSampler(n_segment=8, train=False)
    with pytest.raises(ValueError, match=r"list.txt:4: video has 0 frames"):
        sampler(0, source="list.txt:4")


def test_new_length_gives_consecutive_frames_within_the_video():
    sampler = TSNSampler(n_segment=3, train=True, frames_per_segment=5)
    rng = np.random.default_rng(0)
    for _ in range(100):
        idx = sampler(30, generator=rng).reshape(3, 5)
        assert np.all(np.diff(idx, axis=1) == 1)
        assert idx.max() <= 29
        assert np.all(np.diff(idx[:, 0]) > 0)
    test = TSNSampler(n_segment=2, train=False, frames_per_segment=5)
    # 26 usable positions, centres 6 and 19
    assert test(30).tolist() == [[6, 7, 8, 9, 10, 19, 20, 21, 22, 23]]
    # shorter than frames_per_segment: stacks clamp to the last frame
    assert test(3).tolist() == [[0, 1, 2, 2, 2, 0, 1, 2, 2, 2]]


def test_train_sampling_is_a_function_of_the_generator():
    sampler = TSNSampler(n_segment=8, train=True)
    a = [sampler(200, generator=np.random.default_rng([3, 1, i])) for i in range(10)]
    b = [sampler(200, generator=np.random.default_rng([3, 1, i])) for i in range(10)]
    c = [sampler(200, generator=np.random.default_rng([3, 2, i])) for i in range(10)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))
    with pytest.raises(ValueError, match="needs a numpy Generator"):
        sampler(200)


# --- dense sampling ------------------------------------------------------------------


def test_dense_train_window_has_fixed_stride_and_random_start():
    sampler = DenseSampler(n_segment=8, train=True)
    assert sampler.stride == 8
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(200):
        idx = sampler(300, generator=rng)[0]
        assert np.all(np.diff(idx) == 8)
        assert idx[0] >= 0 and idx[-1] <= 299
        starts.add(int(idx[0]))
    assert len(starts) > 100
    assert max(starts) <= 300 - 57


def test_dense_test_takes_ten_evenly_spaced_windows():
    sampler = DenseSampler(n_segment=8, train=False)
    idx = sampler(300)
    assert idx.shape == (10, 8)
    assert idx[0, 0] == 0 and idx[-1, -1] == 299
    assert np.all(np.diff(idx, axis=1) == 8)
    assert np.all(np.diff(idx[:, 0]) > 0)


def test_dense_short_video_spans_the_whole_video_in_order():
    sampler = DenseSampler(n_segment=8, train=True)
    idx = sampler(20, generator=np.random.default_rng(0))
    assert idx.tolist() == [[0, 2, 5, 8, 10, 13, 16, 19]]
    assert sampler(4, generator=np.random.default_rng(0)).tolist() == [[0, 0, 1, 1, 2, 2, 3, 3]]


def test_mmaction2_offset_lists_are_read_and_multi_label_lists_refused(tmp_path):
    offsets = tmp_path / "offsets.txt"
    offsets.write_text("a 10 30 2\nb/c 0 7 0\n")  # MMAction2's rawframes with_offset: folder offset frames label
    assert read_list(offsets) == [
        FrameRecord(path="a", num_frames=30, label=2, source=f"{offsets}:1", offset=10),
        FrameRecord(path="b/c", num_frames=7, label=0, source=f"{offsets}:2", offset=0),
    ]
    assert read_list(offsets, kind="frames") == read_list(offsets)
    mixed = write_frame_list(tmp_path / "mixed.txt", [("run 2", 30, 1), ("b", 7, 0)])
    assert read_list(mixed)[0] == FrameRecord(path="run 2", num_frames=30, label=1, source=f"{mixed}:1")
    for text, form in (
        ("a 30 1 4 7\n", "<frame folder> <num_frames> <label> \\[<label> ...\\]"),
        ("x.mp4 1 3\n", "<video file> <label> \\[<label> ...\\]"),
    ):
        path = tmp_path / "multi.txt"
        path.write_text(text)
        with pytest.raises(ListFileError, match=rf"multi.txt:1: .* several labels: MMAction2's multi-label .*'{form}'"):
            read_list(path)
