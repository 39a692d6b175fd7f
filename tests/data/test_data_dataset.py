"""VideoDataset: decoding, seeding across workers and epochs, errors and skipping."""

from __future__ import annotations

import logging

import pytest
import torch
from conftest import frame_ids
from torch.utils.data import DataLoader, DistributedSampler

from temporal_shift.data.dataset import SkippedSample, VideoDataset, collate_skipping
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
        list_file=frames_root / "list.txt", root=frames_root,
        sampler=TSNSampler(num_segments=4, train=False),
    )
    clip, label = ds[0]
    assert clip.shape == (4, 3, 48, 64) and clip.dtype == torch.uint8 and label == 0
    assert frame_ids(clip) == [3, 9, 15, 21]  # segment centres of 24 frames


def test_video_dataset_matches_frame_dataset(tmp_path, make_frames, make_video):
    make_frames(tmp_path, "f", 40)
    make_video(tmp_path / "v.mp4", 40)
    write_frame_list(tmp_path / "frames.txt", [("f", 40, 1)])
    write_video_list(tmp_path / "videos.txt", [("v.mp4", 1)])
    sampler = TSNSampler(num_segments=8, train=True)
    a = VideoDataset(list_file=tmp_path / "frames.txt", root=tmp_path, sampler=sampler, seed=3)
    b = VideoDataset(list_file=tmp_path / "videos.txt", root=tmp_path, sampler=sampler, seed=3)
    (ca, la), (cb, lb) = a[0], b[0]
    assert la == lb == 1
    assert frame_ids(ca) == frame_ids(cb)
    assert frame_ids(ca) != [2, 7, 12, 17, 22, 27, 32, 37]  # random, not centres (seeded)


def _epoch(ds, *, workers: int, epoch: int):
    ds.set_epoch(epoch)
    loader = DataLoader(ds, batch_size=2, num_workers=workers, shuffle=False)
    clips, labels = zip(*loader)
    return torch.cat(clips), torch.cat(labels)


def test_seeded_draws_do_not_depend_on_workers_and_change_per_epoch(frames_root):
    def dataset(seed):
        return VideoDataset(
            list_file=frames_root / "list.txt", root=frames_root, seed=seed,
            sampler=TSNSampler(num_segments=4, train=True),
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
        list_file=frames_root / "list.txt", root=frames_root,
        sampler=TSNSampler(num_segments=2, train=False),
    )
    labels = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=False)
        labels += [int(y) for _, y in DataLoader(ds, batch_size=1, sampler=sampler)]
    assert sorted(labels) == sorted(ds.labels)


def test_multi_view_and_multi_clip_shapes(frames_root):
    ds = VideoDataset(
        list_file=frames_root / "list.txt", root=frames_root,
        sampler=TSNSampler(num_segments=4, train=False, twice_sample=True),
        transform=make_test_transform(size=32, scale_size=40, views=10),
    )
    clip, _ = ds[1]
    assert clip.shape == (20, 4, 3, 32, 32) and clip.dtype == torch.float32
    single = VideoDataset(
        list_file=frames_root / "list.txt", root=frames_root,
        sampler=TSNSampler(num_segments=4, train=False),
        transform=make_test_transform(size=32, scale_size=40, views=3),
    )
    assert single[1][0].shape == (3, 4, 3, 40, 40)


# --- bad input -----------------------------------------------------------------------


def _single(tmp_path, line: str, kind="auto", **kw):
    path = tmp_path / "one.txt"
    path.write_text("# header\n" + line + "\n")
    return VideoDataset(
        list_file=path, root=tmp_path, kind=kind,
        sampler=TSNSampler(num_segments=4, train=False), **kw,
    )


def test_missing_folder_names_list_line(tmp_path):
    ds = _single(tmp_path, "nofolder 10 0")
    with pytest.raises(FileNotFoundError, match=r"one.txt:2: frame folder .*nofolder not found"):
        ds[0]


def test_fewer_frames_on_disk_than_listed(tmp_path, make_frames):
    make_frames(tmp_path, "v", 6)
    ds = _single(tmp_path, "v 9 0")
    with pytest.raises(ListFileError, match=r"one.txt:2: .*v lists 9 frames but only 6 .* on disk"):
        ds[0]


def test_corrupt_jpeg_names_list_line_and_file(tmp_path, make_frames):
    folder = make_frames(tmp_path, "v", 8)
    (folder / "img_00002.jpg").write_bytes(b"not a jpeg at all")
    ds = _single(tmp_path, "v 8 0")  # centres of 8 frames in 4 segments: 1,3,5,7
    with pytest.raises(CorruptMediaError, match=r"one.txt:2: .*img_00002.jpg: corrupt JPEG"):
        ds[0]


def test_missing_and_corrupt_video_name_list_line(tmp_path):
    ds = _single(tmp_path, "gone.mp4 0")
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
            list_file=tmp_path / "list.txt", root=tmp_path, kind="frames", num_classes=2,
            sampler=TSNSampler(num_segments=4, train=False), on_error="skip",
        )
        assert len(ds.skipped_lines) == 2 and len(ds) == 4
        items = [ds[i] for i in range(len(ds))]
    assert isinstance(items[1], SkippedSample) and "list.txt:2" in items[1].reason
    assert isinstance(items[2], SkippedSample) and "list.txt:3" in items[2].reason
    logged = caplog.text
    for line in (":2:", ":3:", ":4:", ":5:"):
        assert "list.txt" + line in logged
    batch = collate_skipping(items)
    assert batch.labels.tolist() == [0, 1]  # the two good samples, nothing substituted
    assert batch.clips.shape[0] == 2 and len(batch.skipped) == 2
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate_skipping)
    batches = list(loader)
    assert sum(len(b.skipped) for b in batches) == 2
    assert sum(len(b.labels) for b in batches) == 2
    empty = collate_skipping(items[1:3])
    assert empty.clips.numel() == 0 and empty.labels.numel() == 0


def test_on_error_value_is_checked(tmp_path):
    with pytest.raises(ValueError, match="on_error must be"):
        _single(tmp_path, "v 8 0", on_error="ignore")
