"""Frame extraction: real mp4s written by the tests, a corrupt file, resuming."""

from __future__ import annotations

import pytest

from conftest import frame_ids, index_frames
from temporal_shift.data.decode import count_frame_files, read_frame_folder
from temporal_shift.data.encode import write_video
from temporal_shift.data.extract import (
    DONE_FILE,
    extract_frames,
    extract_video,
    find_videos,
    read_done,
    resized_shape,
)


@pytest.fixture
def videos(tmp_path):
    root = tmp_path / "videos"
    write_video(root / "a" / "one.mp4", index_frames(12, height=48, width=64), fps=25, crf=10)
    write_video(root / "b" / "two.mp4", index_frames(20, height=64, width=48), fps=25, crf=10)
    (root / "b" / "broken.mp4").write_bytes(b"this is not a video at all" * 10)
    (root / "notes.txt").write_text("ignored")
    return root


def test_extracts_resized_frames_skips_finished_and_lists_failures(videos, tmp_path):
    out = tmp_path / "frames"
    result = extract_frames(videos, out, short_side=32, workers=2, progress=False)
    assert (result.extracted, result.skipped, len(result.failed)) == (2, 0, 1)
    assert result.frames == {"a/one": 12, "b/two": 20}
    assert count_frame_files(out / "a" / "one") == 12 and read_done(out / DONE_FILE) == {"a/one": 12, "b/two": 20}
    assert sorted(p.name for p in (out / "a" / "one").iterdir()) == [f"img_{i:05d}.jpg" for i in range(1, 13)]
    clip = read_frame_folder(out / "a" / "one", [0, 5, 11])
    assert clip.shape == (3, 3, 32, 43)  # short side 48 -> 32, 64 -> 43
    assert frame_ids(clip) == [0, 5, 11]
    assert read_frame_folder(out / "b" / "two", [0]).shape == (1, 3, 43, 32)
    ((video, reason),) = result.failed
    assert video.endswith("broken.mp4") and reason
    lines = result.failures_file.read_text().splitlines()
    assert result.failures_file == out / "extract_failures.txt"
    assert len(lines) == 1 and lines[0].startswith(str(videos / "b" / "broken.mp4") + "\t")
    assert "FAILED" in result.summary() and "broken.mp4" in result.summary()
    assert not (out / "b" / "broken").exists()  # a failed video leaves no folder

    # rerun: finished videos are skipped (not rewritten), the broken one is retried
    stamp = (out / "a" / "one" / "img_00001.jpg").stat().st_mtime_ns
    again = extract_frames(videos, out, short_side=32, workers=1, progress=False)
    assert (again.extracted, again.skipped, len(again.failed)) == (0, 2, 1)
    assert again.frames == result.frames
    assert (out / "a" / "one" / "img_00001.jpg").stat().st_mtime_ns == stamp


def test_interrupted_folder_is_redone(videos, tmp_path):
    out = tmp_path / "frames"
    folder = out / "a" / "one"
    folder.mkdir(parents=True)
    for i in range(1, 40):  # stale partial output with more frames than the video
        (folder / f"img_{i:05d}.jpg").write_bytes(b"x")
    result = extract_frames(videos, out, videos=["a/one.mp4"], short_side=None, progress=False)
    assert result.extracted == 1 and count_frame_files(folder) == 12
    assert read_frame_folder(folder, [11]).shape == (1, 3, 48, 64)  # no resize


def test_long_video_is_written_in_chunks(tmp_path):
    write_video(tmp_path / "long.mp4", index_frames(70, height=32, width=32), fps=25, crf=10)
    assert extract_video(tmp_path / "long.mp4", tmp_path / "f", short_side=None) == 70
    assert frame_ids(read_frame_folder(tmp_path / "f", [0, 31, 32, 69])) == [0, 31, 0, 5]  # ids wrap at 32
    assert count_frame_files(tmp_path / "f") == 70


def test_resized_shape():
    assert resized_shape(240, 320, 256) == (256, 341)
    assert resized_shape(320, 240, 256) == (341, 256)
    assert resized_shape(240, 320, None) == (240, 320)


def test_errors(videos, tmp_path):
    with pytest.raises(FileNotFoundError, match="video folder not found"):
        find_videos(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no video files"):
        extract_frames(tmp_path / "empty", tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match="short_side"):
        extract_frames(videos, tmp_path / "out", short_side=0, progress=False)
    with pytest.raises(ValueError, match="quality"):
        extract_frames(videos, tmp_path / "out", quality=0, progress=False)
    with pytest.raises(ValueError, match="workers"):
        extract_frames(videos, tmp_path / "out", workers=0, progress=False)
    with pytest.raises(ValueError, match="not inside"):
        extract_frames(videos, tmp_path / "out", videos=[tmp_path / "elsewhere.mp4"], progress=False)
    with pytest.raises(FileNotFoundError, match="video file not found"):
        extract_video(tmp_path / "missing.mp4", tmp_path / "f")
    with pytest.raises(ValueError, match="cannot decode"):
        extract_video(videos / "b" / "broken.mp4", tmp_path / "f")
    result = extract_frames(videos, tmp_path / "out", videos=["gone.mp4"], progress=False)
    assert result.failed == [(str(videos / "gone.mp4"), "video file not found")]


def test_audio_only_and_frameless_videos_fail(tmp_path):
    import av
    import numpy as np

    audio = tmp_path / "audio_only.mp4"
    with av.open(str(audio), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        for i in range(3):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 8000, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(ValueError, match=r"audio_only.mp4: no video stream"):
        extract_video(audio, tmp_path / "a")
    # a Matroska file cut after its header: a video stream without any frame
    data = write_video(tmp_path / "full.mkv", index_frames(10, height=32, width=32)).read_bytes()
    (tmp_path / "header_only.mkv").write_bytes(data[:600])
    with pytest.raises(ValueError, match=r"header_only.mkv: no decodable frames"):
        extract_video(tmp_path / "header_only.mkv", tmp_path / "h")
    assert not (tmp_path / "h").exists() and not (tmp_path / "a").exists()


def test_two_videos_of_one_stem_are_refused_before_anything_is_written(tmp_path):
    videos = tmp_path / "videos"
    write_video(videos / "clip.mp4", index_frames(4, height=16, width=16))
    write_video(videos / "clip.avi", index_frames(6, height=16, width=16), codec="mpeg4")
    write_video(videos / "other.mp4", index_frames(4, height=16, width=16))
    with pytest.raises(ValueError, match=r"clip.avi and .*clip.mp4 would both go to .*frames/clip.*rename one"):
        extract_frames(videos, tmp_path / "frames", progress=False)
    assert not (tmp_path / "frames").exists()


def test_earlier_versions_in_folder_marker_moves_to_the_record(videos, tmp_path):
    out = tmp_path / "frames"
    extract_frames(videos, out, videos=["a/one.mp4"], short_side=None, progress=False)
    (out / DONE_FILE).unlink()
    (out / "a" / "one" / ".done").write_text("12\n")  # what earlier versions left
    again = extract_frames(videos, out, videos=["a/one.mp4"], short_side=None, progress=False)
    assert (again.extracted, again.skipped) == (0, 1)
    assert read_done(out / DONE_FILE) == {"a/one": 12} and not (out / "a" / "one" / ".done").exists()
