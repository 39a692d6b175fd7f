"""Frame sources: folders (template, sorted names), videos, cameras; open_source's and
find_sources' decisions and errors; random access equals the sequential frames."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from conftest import frame_ids, index_frames
from temporal_shift.data.decode import CorruptMediaError, read_frame_folder, read_video
from temporal_shift.data.encode import write_frame_folder, write_video
from temporal_shift.data.sources import (
    CameraSource,
    FolderSource,
    VideoSource,
    find_sources,
    open_folder,
    open_source,
    parse_source,
)


def sequential(source) -> tuple[list[float], torch.Tensor]:
    frames = list(source.frames())
    assert [f.index for f in frames] == list(range(len(frames)))
    return [f.time for f in frames], torch.stack([f.image for f in frames])


# --- folders ---------------------------------------------------------------------------


def test_template_folder_reads_what_the_decoder_reads_in_both_ways(tmp_path, make_frames):
    folder = make_frames(tmp_path, "v", 7)
    source = FolderSource(folder, fps=10)
    assert (source.kind, source.label, source.num_frames, source.fps) == ("frames", str(folder), 7, 10.0)
    picked = [6, 0, 3, 3]
    assert torch.equal(source.read(picked), read_frame_folder(folder, picked))
    times, images = sequential(source)
    assert times == pytest.approx([i / 10 for i in range(7)])
    assert frame_ids(images) == list(range(7))
    assert torch.equal(source.read(picked), images[picked])  # random access == sequential


def test_listed_frame_count_is_taken_as_given(tmp_path, make_frames):
    folder = make_frames(tmp_path, "v", 7)
    assert FolderSource(folder, num_frames=4).num_frames == 4
    assert len(list(FolderSource(folder, num_frames=4).frames())) == 4
    with pytest.raises(ValueError, match="not both"):
        FolderSource(folder, files=[folder / "img_00001.jpg"], num_frames=1)


def test_open_folder_prefers_the_template_and_else_sorts_the_jpegs(tmp_path):
    frames = index_frames(5)
    both = write_frame_folder(tmp_path / "both", frames)
    write_frame_folder(both, frames[:2], template="flow_x_{:05d}.jpg")  # sorts before img_*
    templated = open_folder(both)
    assert templated.files is None and templated.num_frames == 5
    assert frame_ids(templated.read(range(5))) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match=r"both: 2 flow images \(flow_x_00001.jpg ...\) among its JPEGs.*--template"):
        open_folder(both, template=None)  # by name, flow images would be read as frames
    write_frame_folder(tmp_path / "mmaction", frames[:2], template="x_{:05d}.jpg")
    write_frame_folder(tmp_path / "mmaction", frames[:3], template="frame_{:04d}.jpg")
    with pytest.raises(ValueError, match=r"mmaction: no img_00001.jpg but 2 flow images \(x_00001.jpg"):
        open_folder(tmp_path / "mmaction")
    assert open_folder(tmp_path / "mmaction", template="frame_{:04d}.jpg").num_frames == 3

    named = tmp_path / "named"
    named.mkdir()
    for i, name in enumerate(["b.JPG", "c.jpeg", "a.jpg"]):  # a: frame 2, b: frame 0, c: frame 1
        write_frame_folder(tmp_path / "tmp", frames[i : i + 1])
        (tmp_path / "tmp" / "img_00001.jpg").rename(named / name)
    (named / "notes.txt").write_text("not a frame")
    source = open_folder(named, fps=5)
    assert [p.name for p in source.files] == ["a.jpg", "b.JPG", "c.jpeg"]
    assert frame_ids(source.read([0, 1, 2])) == [2, 0, 1]
    times, images = sequential(source)
    assert times == pytest.approx([0.0, 0.2, 0.4]) and torch.equal(images, source.read([0, 1, 2]))


def test_folder_errors_name_the_folder_or_file(tmp_path, make_frames):
    with pytest.raises(FileNotFoundError, match=r"nope: frame folder not found"):
        open_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty: no JPEG frames \(\*\.jpg, \*\.jpeg\) in this folder"):
        open_folder(tmp_path / "empty")
    folder = make_frames(tmp_path, "v", 3)
    with pytest.raises(FileNotFoundError, match=r"img_00005.jpg: frame file not found"):
        FolderSource(folder, num_frames=5).read([4])
    write_frame_folder(folder, index_frames(1, height=32), start=2)  # frame 2 of another size
    with pytest.raises(CorruptMediaError, match=r"v: frames have different sizes"):
        open_folder(folder, template=None).read([0, 1])


# --- videos ----------------------------------------------------------------------------


def test_video_random_access_equals_its_sequential_frames(tmp_path):
    path = write_video(tmp_path / "v.mp4", index_frames(80), fps=20, crf=10, gop=12)
    source = VideoSource(path)
    assert (source.kind, source.num_frames, source.fps) == ("video", 80, 20.0)
    times, images = sequential(source)
    assert times == pytest.approx([i / 20 for i in range(80)])
    assert frame_ids(images) == [i % 32 for i in range(80)]  # red = 8 i mod 256
    picked = [75, 2, 40, 2, 79]  # long gaps: read_video seeks to a keyframe
    assert torch.equal(source.read(picked), images[picked])
    assert torch.equal(source.read(picked), read_video(path, picked))


def test_video_source_given_counts_and_rate_are_not_read_from_the_file(tmp_path):
    source = VideoSource(tmp_path / "absent.mp4", fps=12, num_frames=9)
    assert (source.fps, source.num_frames) == (12.0, 9)
    with pytest.raises(FileNotFoundError, match=r"absent.mp4: video file not found"):
        source.read([0])


def test_video_without_decodable_frames_is_an_error(tmp_path, make_video):
    data = make_video(tmp_path / "full.mkv", 10).read_bytes()
    (tmp_path / "header_only.mkv").write_bytes(data[:600])
    with pytest.raises(CorruptMediaError, match=r"header_only.mkv: no decodable frames"):
        _ = VideoSource(tmp_path / "header_only.mkv").num_frames


def test_frames_can_be_read_again_and_close_releases_an_unread_source(tmp_path, make_video):
    path = make_video(tmp_path / "v.mp4", 6)
    with open_source(path) as source:
        first = sequential(source)
    again = sequential(source)
    assert first[0] == again[0] and torch.equal(first[1], again[1])
    partly = open_source(path)
    frames = iter(partly)
    assert next(frames).index == 0
    partly.close()
    assert list(frames) == []  # a closed source's iterators end
    open_source(path).close()  # opened, never read


# --- open_source: the kind of a stream source ------------------------------------------


def test_open_source_decides_the_kind(tmp_path, make_frames, make_video, monkeypatch):
    video = make_video(tmp_path / "clip.mp4", 5)
    folder = make_frames(tmp_path, "frames", 4)
    opened = open_source(video)
    assert isinstance(opened, VideoSource) and opened.fps == 25.0 and opened.num_frames == 5
    opened.close()
    assert open_source(str(video), fps=10).fps == 10.0
    as_folder = open_source(folder)  # the template files, as predict reads a folder
    assert isinstance(as_folder, FolderSource) and as_folder.fps == 25.0 and as_folder.files is None
    assert open_source(folder, template=None, fps=4).files is not None
    assert sequential(open_source(folder, fps=4))[0] == pytest.approx([0.0, 0.25, 0.5, 0.75])
    assert parse_source(3) == 3 and parse_source("3") == 3 and parse_source("a/3") == Path("a/3")
    monkeypatch.chdir(tmp_path)
    os.mkdir("3")
    assert parse_source("3") == Path("3")  # an existing path wins over a camera index


@pytest.mark.parametrize(
    "case, error, message",
    [
        (
            "missing",
            FileNotFoundError,
            r"nope.mp4: source not found \(a video file, a frame folder or a camera index\)",
        ),
        ("image", ValueError, r"img_00001.jpg: a single image is not a stream; give its folder instead"),
        ("empty folder", ValueError, r"empty: no JPEG frames"),
        ("text file", CorruptMediaError, r"notes.mp4: cannot open video"),
        ("camera", (FileNotFoundError, ValueError), r"^camera 7: "),
        ("fps", ValueError, r"fps must be positive, got 0"),
    ],
)
def test_open_source_errors_name_the_source(case, error, message, tmp_path, make_frames):
    folder = make_frames(tmp_path, "frames", 2)
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.mp4").write_text("not a video")
    source, fps = {
        "missing": (tmp_path / "nope.mp4", None),
        "image": (folder / "img_00001.jpg", None),
        "empty folder": (tmp_path / "empty", None),
        "text file": (tmp_path / "notes.mp4", None),
        "camera": (7, None),
        "fps": (folder, 0),
    }[case]
    with pytest.raises(error, match=message):
        open_source(source, fps=fps)


def test_a_camera_has_no_random_access():
    camera = object.__new__(CameraSource)  # no camera here: only the methods that need none
    camera.label = "camera 0"
    assert camera.num_frames is None
    with pytest.raises(ValueError, match="camera 0: a camera has no random access"):
        camera.read([0])


# --- find_sources: what tsm predict is given -------------------------------------------


def test_find_sources_video_folder_or_folder_of_videos(tmp_path, make_frames, make_video):
    video = make_video(tmp_path / "videos" / "b.mp4", 4)
    make_video(tmp_path / "videos" / "a.mkv", 4)
    (tmp_path / "videos" / "readme.txt").write_text("not a video")
    folder = make_frames(tmp_path, "frames", 3)
    [one] = find_sources(video)
    assert isinstance(one, VideoSource) and one.path == video
    [frames] = find_sources(folder)
    assert isinstance(frames, FolderSource) and frames.num_frames == 3 and frames.files is None
    assert [(s.kind, s.path.name) for s in find_sources(tmp_path / "videos")] == [
        ("video", "a.mkv"),
        ("video", "b.mp4"),
    ]


@pytest.mark.parametrize(
    "case, error, message",
    [
        (
            "missing",
            FileNotFoundError,
            r"nope: not found \(expected a video file, a frame folder or a folder of videos\)",
        ),
        ("image", ValueError, r"img_00001.jpg: a single image is not a video; give the frame folder instead"),
        ("mixed", ValueError, r"mixed: holds both JPEG frames and videos"),
        ("empty", ValueError, r"empty: no JPEG frames and no videos \(\.mp4, "),
    ],
)
def test_find_sources_errors(case, error, message, tmp_path, make_frames, make_video):
    folder = make_frames(tmp_path, "mixed", 2)
    make_video(folder / "v.mp4", 4)
    (tmp_path / "empty").mkdir()
    path = {
        "missing": tmp_path / "nope",
        "image": folder / "img_00001.jpg",
        "mixed": folder,
        "empty": tmp_path / "empty",
    }[case]
    with pytest.raises(error, match=message):
        find_sources(path)


# --- the dataset reads through sources ---------------------------------------------------


def test_dataset_entries_are_sources(tmp_path, make_frames, make_video, monkeypatch):
    from temporal_shift.data import sources
    from temporal_shift.data.dataset import VideoDataset
    from temporal_shift.data.lists import write_frame_list, write_video_list
    from temporal_shift.data.sampling import TSNSampler

    make_frames(tmp_path, "f", 12)
    make_video(tmp_path / "v.mp4", 12)
    write_frame_list(tmp_path / "frames.txt", [("f", 10, 0)])  # the list's count, not the folder's 12
    write_video_list(tmp_path / "videos.txt", [("v.mp4", 0)])
    sampler = TSNSampler(n_segment=4, train=False)
    frames = VideoDataset(list_file=tmp_path / "frames.txt", root=tmp_path, sampler=sampler)
    source = frames.frame_source(frames.records[0])
    assert isinstance(source, FolderSource) and source.path == tmp_path / "f" and source.num_frames == 10
    assert torch.equal(frames[0][0], source.read(sampler(10)[0].tolist()))
    counted = []
    monkeypatch.setattr(sources, "video_frame_count", lambda path: counted.append(path) or 12)
    videos = VideoDataset(list_file=tmp_path / "videos.txt", root=tmp_path, sampler=sampler)
    source = videos.frame_source(videos.records[0])
    assert isinstance(source, VideoSource) and source.num_frames == 12
    assert frame_ids(videos[0][0]) == [1, 4, 7, 10] and frame_ids(videos[0][0]) == frame_ids(source.read([1, 4, 7, 10]))
    assert counted == [tmp_path / "v.mp4"]  # the frame count is read once per dataset
