"""VideoDataset: decoding, seeding across workers and epochs, errors and skipping."""

from __future__ import annotations

import logging
import time

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from conftest import frame_ids
from temporal_shift.data.dataset import (
    MissingFilesError,
    SkippedSample,
    VideoDataset,
    collate_skipping,
    find_unusable,
    worker_error,
)
from temporal_shift.data.decode import CorruptMediaError
from temporal_shift.data.lists import ListFileError, write_frame_list, write_video_list
from temporal_shift.data.sampling import TSNSampler
from temporal_shift.data.transforms import test_transform as make_test_transform
from temporal_shift.data.transforms import train_transform


@pytest.fixture
def frames_root(tmp_path, make_frames):
    for i in range(6):
        make_frames(tmp_path, f"v{i}", 24 + i)
    write_frame_list(tmp_path / "list.txt", [(f"v{i}", 24 + i, i % 3) for i in range(6)])
    return tmp_path


def test_frame_dataset_returns_sampled_frames(frames_root):
    ds = VideoDataset(
        list_file=frames_root / "list.txt",
        root=frames_root,
        sampler=TSNSampler(n_segment=4, train=False),
    )
    clip, label = ds[0]
    assert clip.shape == (4, 3, 48, 64) and clip.dtype == torch.uint8 and label == 0
    assert frame_ids(clip) == [3, 9, 15, 21]  # segment centres of 24 frames


def test_video_dataset_matches_frame_dataset(tmp_path, make_frames, make_video):
    make_frames(tmp_path, "f", 40)
    make_video(tmp_path / "v.mp4", 40)
    write_frame_list(tmp_path / "frames.txt", [("f", 40, 1)])
    write_video_list(tmp_path / "videos.txt", [("v.mp4", 1)])
    sampler = TSNSampler(n_segment=8, train=True)
    a = VideoDataset(list_file=tmp_path / "frames.txt", root=tmp_path, sampler=sampler, seed=3)
    b = VideoDataset(list_file=tmp_path / "videos.txt", root=tmp_path, sampler=sampler, seed=3)
    (ca, la), (cb, lb) = a[0], b[0]
    assert la == lb == 1
    assert frame_ids(ca) == frame_ids(cb)
    assert frame_ids(ca) != [2, 7, 12, 17, 22, 27, 32, 37]  # random, not centres (seeded)


def _epoch(ds, *, workers: int, epoch: int):
    ds.set_epoch(epoch)
    loader = DataLoader(ds, batch_size=2, num_workers=workers, shuffle=False)
    clips, labels = zip(*loader, strict=True)
    return torch.cat(clips), torch.cat(labels)


def test_seeded_draws_do_not_depend_on_workers_and_change_per_epoch(frames_root):
    def dataset(seed):
        return VideoDataset(
            list_file=frames_root / "list.txt",
            root=frames_root,
            seed=seed,
            sampler=TSNSampler(n_segment=4, train=True),
            transform=train_transform(size=32, flip_labels={0: 1, 1: 0}),
        )

    ref0 = _epoch(dataset(7), workers=0, epoch=0)
    par0 = _epoch(dataset(7), workers=2, epoch=0)
    assert torch.equal(ref0[0], par0[0]) and torch.equal(ref0[1], par0[1])
    par1 = _epoch(dataset(7), workers=2, epoch=1)
    assert not torch.equal(ref0[0], par1[0])
    again1 = _epoch(dataset(7), workers=0, epoch=1)
    assert torch.equal(par1[0], again1[0])
    other_seed = _epoch(dataset(8), workers=0, epoch=0)
    assert not torch.equal(ref0[0], other_seed[0])


def test_distributed_sampler_shards_cover_the_dataset(frames_root):
    ds = VideoDataset(
        list_file=frames_root / "list.txt",
        root=frames_root,
        sampler=TSNSampler(n_segment=2, train=False),
    )
    labels = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=False)
        labels += [int(y) for _, y in DataLoader(ds, batch_size=1, sampler=sampler)]
    assert sorted(labels) == sorted(ds.labels)


def test_multi_view_and_multi_clip_shapes(frames_root):
    ds = VideoDataset(
        list_file=frames_root / "list.txt",
        root=frames_root,
        sampler=TSNSampler(n_segment=4, train=False, twice_sample=True),
        transform=make_test_transform(size=32, scale_size=40, views=10),
    )
    clip, _ = ds[1]
    assert clip.shape == (20, 4, 3, 32, 32) and clip.dtype == torch.float32
    single = VideoDataset(
        list_file=frames_root / "list.txt",
        root=frames_root,
        sampler=TSNSampler(n_segment=4, train=False),
        transform=make_test_transform(size=32, scale_size=40, views=3),
    )
    assert single[1][0].shape == (3, 4, 3, 40, 40)


# --- bad input -----------------------------------------------------------------------


def _single(tmp_path, line: str, kind="auto", **kw):
    path = tmp_path / "one.txt"
    path.write_text("# header\n" + line + "\n")
    return VideoDataset(
        list_file=path,
        root=tmp_path,
        kind=kind,
        sampler=TSNSampler(n_segment=4, train=False),
        **kw,
    )


def test_missing_folder_names_list_line(tmp_path):
    # found when the dataset is built, not when a batch first touches it
    with pytest.raises(
        MissingFilesError, match=r"one.txt: 1 of 1 entries .*one.txt:2: frame folder .*nofolder not found"
    ):
        _single(tmp_path, "nofolder 10 0")
    ds = _single(tmp_path, "nofolder 10 0", check_files=False)  # and if it goes missing later
    with pytest.raises(FileNotFoundError, match=r"one.txt:2: frame folder .*nofolder not found"):
        ds[0]


def test_fewer_frames_on_disk_than_listed(tmp_path, make_frames):
    make_frames(tmp_path, "v", 6)
    with pytest.raises(ListFileError, match=r"one.txt:2: .*v lists 9 frames but only 6 .* on disk"):
        _single(tmp_path, "v 9 0")
    ds = _single(tmp_path, "v 9 0", check_files=False)
    with pytest.raises(ListFileError, match=r"one.txt:2: .*v lists 9 frames but only 6 .* on disk"):
        ds[0]


def test_every_entry_is_checked_up_front_count_and_first_entries_reported(tmp_path, make_frames, caplog):
    make_frames(tmp_path, "good", 8)
    make_frames(tmp_path, "short", 5)
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "dir.mp4").mkdir()
    lines = ["good 8 0", "short 8 1", "gone 8 0", "good 8 1", "gone2 4 0", "sub/gone3 4 1"]
    (tmp_path / "frames.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "videos.txt").write_text("empty.mp4 0\ndir.mp4 1\nnope.mp4 0\n")
    sampler = TSNSampler(n_segment=4, train=False)
    with pytest.raises(MissingFilesError) as info:
        VideoDataset(list_file=tmp_path / "frames.txt", root=tmp_path, sampler=sampler)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path / 'frames.txt'}: 4 of 6 entries cannot be used: ")
    shown = [f"frames.txt:{n}:" for n in (2, 3, 5)]
    assert all(s in message for s in shown) and "frames.txt:6:" not in message and "(1 more)" in message
    assert "lists 8 frames but only 5" in message and "on_error: skip" in message
    with pytest.raises(
        MissingFilesError, match=r"3 of 3 entries .*empty.mp4 is empty; .*dir.mp4 is not a file; .*nope.mp4 not found"
    ):
        VideoDataset(list_file=tmp_path / "videos.txt", root=tmp_path, sampler=sampler)

    with caplog.at_level(logging.WARNING, logger="temporal_shift.data"):
        ds = VideoDataset(list_file=tmp_path / "frames.txt", root=tmp_path, sampler=sampler, on_error="skip")
    assert [r.source.split(":")[-1] for r in ds.records] == ["1", "4"]
    assert len(ds.skipped_lines) == 4 and "frames.txt:6: frame folder" in ds.skipped_lines[-1]
    assert len(caplog.records) == 1 and "4 of 6 entries" in caplog.records[0].getMessage()


def test_up_front_check_is_stat_only_and_fast_on_a_long_list(tmp_path):
    # 20,000 entries over 200 folders (the entries repeat them): stat calls only, no
    # listing or decoding of good entries
    for i in range(200):
        folder = tmp_path / f"v{i:03d}"
        folder.mkdir()
        (folder / "img_00030.jpg").write_bytes(b"")  # frames are not read: only the last must exist
    lines = [f"v{i % 200:03d} 30 {i % 5}" for i in range(20_000)] + ["v000 31 0"]
    (tmp_path / "long.txt").write_text("\n".join(lines) + "\n")
    from temporal_shift.data.lists import read_list

    records = read_list(tmp_path / "long.txt")
    start = time.perf_counter()
    problems = find_unusable(records, root=tmp_path)
    seconds = time.perf_counter() - start
    assert [i for i, _ in problems] == [20_000] and "long.txt:20001: " in problems[0][1]
    assert seconds < 2.0, f"{seconds:.2f} s for 20,001 entries"


def test_corrupt_jpeg_names_list_line_and_file(tmp_path, make_frames):
    folder = make_frames(tmp_path, "v", 8)
    (folder / "img_00002.jpg").write_bytes(b"not a jpeg at all")
    ds = _single(tmp_path, "v 8 0")  # centres of 8 frames in 4 segments: 1,3,5,7
    with pytest.raises(CorruptMediaError, match=r"one.txt:2: .*img_00002.jpg: corrupt JPEG"):
        ds[0]


def test_missing_and_corrupt_video_name_list_line(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"one.txt:2: video .*gone.mp4 not found"):
        _single(tmp_path, "gone.mp4 0")
    ds = _single(tmp_path, "gone.mp4 0", check_files=False)
    with pytest.raises(FileNotFoundError, match=r"one.txt:2: video .*gone.mp4 not found"):
        ds[0]
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 500)
    ds = _single(tmp_path, "bad.mp4 0")
    with pytest.raises(CorruptMediaError, match=r"one.txt:2: .*bad.mp4: cannot open video"):
        ds[0]


def test_label_out_of_range_and_malformed_line_fail_at_construction(tmp_path):
    with pytest.raises(ListFileError, match=r"one.txt:2: label 5 out of range for 5 classes"):
        _single(tmp_path, "v 8 5", num_classes=5)
    with pytest.raises(ListFileError, match=r"one.txt:2: malformed frame-list line"):
        _single(tmp_path, "v eight 1", kind="frames")


def test_skip_mode_logs_and_counts_without_substitution(tmp_path, make_frames, caplog):
    make_frames(tmp_path, "good", 8)
    folder = make_frames(tmp_path, "corrupt", 8)
    for jpg in folder.iterdir():
        jpg.write_bytes(b"xx")
    (tmp_path / "list.txt").write_text("good 8 0\nmissing 8 1\ncorrupt 8 1\nbroken line\ngood 8 9\ngood 8 1\n")
    with caplog.at_level(logging.WARNING, logger="temporal_shift.data"):
        ds = VideoDataset(
            list_file=tmp_path / "list.txt",
            root=tmp_path,
            kind="frames",
            num_classes=2,
            sampler=TSNSampler(n_segment=4, train=False),
            on_error="skip",
        )
        # bad lines (4, 5) and the missing folder (2) are left out at construction
        assert len(ds.skipped_lines) == 3 and len(ds) == 3
        items = [ds[i] for i in range(len(ds))]
    assert isinstance(items[1], SkippedSample) and "list.txt:3" in items[1].reason
    logged = caplog.text
    for line in (":2:", ":3:", ":4:", ":5:"):
        assert "list.txt" + line in logged
    batch = collate_skipping(items)
    assert batch.labels.tolist() == [0, 1]  # the two good samples, nothing substituted
    assert batch.clips.shape[0] == 2 and len(batch.skipped) == 1
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate_skipping)
    batches = list(loader)
    assert sum(len(b.skipped) for b in batches) == 1
    assert sum(len(b.labels) for b in batches) == 2
    empty = collate_skipping(items[1:2])
    assert empty.clips.numel() == 0 and empty.labels.numel() == 0


def test_on_error_value_is_checked(tmp_path):
    with pytest.raises(ValueError, match="on_error must be"):
        _single(tmp_path, "v 8 0", on_error="ignore")


def test_a_worker_error_is_recovered_with_its_own_message(tmp_path, make_frames):
    folder = make_frames(tmp_path, "v", 8)
    (folder / "img_00002.jpg").write_bytes(b"not a jpeg at all")
    ds = _single(tmp_path, "v 8 0")
    with pytest.raises(CorruptMediaError) as direct:
        ds[0]
    with pytest.raises(CorruptMediaError) as wrapped:
        next(iter(DataLoader(ds, batch_size=1, num_workers=1)))
    assert str(wrapped.value).startswith("Caught CorruptMediaError in DataLoader worker process 0")
    original = worker_error(wrapped.value)
    assert type(original) is CorruptMediaError and str(original) == str(direct.value)
    assert str(original).startswith(f"{tmp_path / 'one.txt'}:2: ") and "img_00002.jpg: corrupt JPEG" in str(original)
    assert worker_error(ValueError("an error of the main process")) is None
