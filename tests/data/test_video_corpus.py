"""Every video reader against sequential decoding, on a corpus of hard encodings written here
(`video_corpus`): B-frames in mp4 and AVI (DivX's packed ones too), an edit list, a
timestamp jump, a rotated track, a 1x1 video. Frame ``i`` must be the i-th frame decoding
the file from its start gives, turned upright, for random access (datasets, predict), for
streaming and for extraction, and with either decoder."""

from __future__ import annotations

import gc
import itertools
import os

import numpy as np
import pytest
import torch
from video_corpus import CORPUS, frame_numbers, one_pixel_numbers, sequential_frames, write_corpus_file

from temporal_shift.apps.stream import GapDetector, StreamPredictor
from temporal_shift.data import video_index
from temporal_shift.data.dataset import VideoDataset
from temporal_shift.data.decode import (
    CorruptMediaError,
    open_video,
    read_frame_folder,
    read_video,
    video_frame_count,
)
from temporal_shift.data.decode_torchcodec import torchcodec_decoder
from temporal_shift.data.extract import extract_frames
from temporal_shift.data.factory import build_dataset
from temporal_shift.data.sampling import TSNSampler
from temporal_shift.data.sources import VideoSource
from temporal_shift.engine.predict import read_clip

NAMES = [c.name for c in CORPUS]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    return {c.name: (write_corpus_file(root, c), c) for c in CORPUS}


def numbers(item, frames) -> list[int]:
    return one_pixel_numbers(frames) if item.name == "one_pixel.mp4" else frame_numbers(frames)


def reference(corpus, name):
    path, item = corpus[name]
    problem = item.check(path)
    assert problem is None, f"{name} is not what the corpus says: {problem}"
    expected = sequential_frames(path, upright_turns=item.upright_turns)
    assert numbers(item, expected) == item.shown
    return path, item, torch.from_numpy(expected).permute(0, 3, 1, 2)


@pytest.mark.parametrize("name", NAMES)
def test_read_video_gives_the_frames_of_sequential_decoding(corpus, name):
    path, _, expected = reference(corpus, name)
    n = len(expected)
    video_index.clear_cache()
    assert video_frame_count(path) == n
    tsn = TSNSampler(n_segment=8, train=False)(n)[0].tolist()
    rng = np.random.default_rng(0)
    cases = [list(range(n)), list(range(n))[::-1], tsn, rng.integers(0, n, 12).tolist(), [n - 1, 0, n // 2, n - 1]]
    for threshold in (32, 0):  # 0: a seek to every keyframe ahead
        for indices in cases:
            got = read_video(path, indices, seek_threshold=threshold)
            assert torch.equal(got, expected[indices]), (name, threshold, indices)
    video_index.clear_cache()  # a first read (that indexes the file) gives them too
    assert torch.equal(read_video(path, tsn), expected[tsn])
    with pytest.raises(CorruptMediaError, match=rf"{name}: could not decode frame {n} .*has {n} frames"):
        read_video(path, [0, n])


@pytest.mark.parametrize("name", NAMES)
def test_streamed_frames_are_sequential_decoding_in_presentation_time(corpus, name):
    path, _item, expected = reference(corpus, name)
    with VideoSource.open(path) as source:
        frames = list(source.frames())
        fps = source.fps
    assert torch.equal(torch.stack([f.image for f in frames]), expected)
    times = [f.time for f in frames]
    assert times[0] == 0 and all(b > a for a, b in itertools.pairwise(times)), times
    gaps = GapDetector(fps=fps)
    found = [i for i, f in enumerate(frames) if gaps.check(f.time)]
    assert found == ([20] if name == "vfr_jump.mp4" else []), (name, times)  # one real drop, no false ones


def test_extraction_gives_the_frames_of_sequential_decoding(corpus, tmp_path):
    root = next(iter(corpus.values()))[0].parent
    result = extract_frames(root, tmp_path / "frames", short_side=None, workers=1, progress=False)
    assert result.failed == [] and result.extracted == len(CORPUS)
    for name, (path, item) in corpus.items():
        folder = tmp_path / "frames" / path.stem
        expected = sequential_frames(path, upright_turns=item.upright_turns)
        assert result.frames[path.stem] == len(expected), name
        frames = read_frame_folder(folder, range(len(expected)))
        assert frames.shape[2:] == expected.shape[1:3], name  # upright
        assert numbers(item, frames) == item.shown, name


def _skip_without_torchcodec(path) -> None:
    """Skip where TorchCodec is not installed or finds no FFmpeg libraries; CI (.ci/run installs
    them and sets TSM_REQUIRE_TORCHCODEC=1) fails instead, so the second decoder is always tested there."""
    try:
        torchcodec_decoder(path)
    except CorruptMediaError:
        raise
    except ValueError as exc:
        if os.environ.get("TSM_REQUIRE_TORCHCODEC") == "1":
            pytest.fail(f"TSM_REQUIRE_TORCHCODEC=1 but TorchCodec cannot run here: {exc}")
        pytest.skip(str(exc))


@pytest.mark.parametrize("name", NAMES)
def test_torchcodec_gives_the_same_frames_or_refuses(corpus, name):
    path, _, expected = reference(corpus, name)
    _skip_without_torchcodec(path)
    indices = [*range(len(expected)), len(expected) - 1, 0]
    if video_index.video_index(path, open_video=open_video).method == "decoding":
        with pytest.raises(ValueError, match=rf"{name}: TorchCodec cannot read this file frame-exactly.*decoder pyav"):
            read_video(path, indices, decoder="torchcodec")
        return
    assert torch.equal(read_video(path, indices, decoder="torchcodec"), expected[indices])


class CountingStream:
    """A stand-in model step for `StreamPredictor`: constant scores, counts its resets."""

    def __init__(self) -> None:
        self.resets = 0

    def update(self, frame: torch.Tensor) -> torch.Tensor:
        return torch.zeros(2)

    def reset(self) -> None:
        self.resets += 1


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("every", [1, 2])
def test_tsm_stream_resets_at_the_start_and_at_real_drops_only(corpus, name, every):
    path, _, expected = reference(corpus, name)
    with VideoSource.open(path) as source:
        predictor = StreamPredictor(CountingStream(), classes=["a", "b"], size=8, short_side=8, every=every)
        records = list(predictor.run(source.frames(), fps=source.fps))
    assert len(records) == len(range(0, len(expected), every))
    drops = {"vfr_jump.mp4": 1}.get(name, 0)  # its 1 s hole; B-frames and offsets are no gaps
    assert predictor.summary.resets == {"start": 1, "gap": drops, "request": 0}, name


def test_a_1x1_video_trains_tests_and_predicts(corpus, tmp_path):
    """A video smaller than the crop is upscaled like any other (MultiScaleCrop drew 0-pixel crops)."""
    path, _, _ = reference(corpus, "one_pixel.mp4")
    listed = tmp_path / "list.txt"
    listed.write_text(f"{path} 0\n")
    for train in (True, False):
        dataset = build_dataset(
            modality="rgb",
            list_file=listed,
            root="/",
            sampler=TSNSampler(n_segment=4, train=train),
            train=train,
            size=16,
            scale_size=18,
        )
        clip, label = dataset[0]
        assert clip.shape == (4, 3, 16, 16) and label == 0 and torch.isfinite(clip).all()
    assert read_clip(path, "video", n_segment=4).shape == (4, 3, 1, 1)


@pytest.mark.parametrize("decoder", ["pyav", "torchcodec"])
def test_datasets_read_videos_with_the_chosen_decoder(corpus, tmp_path, decoder):
    """data.decoder reaches the reads of a video list (TorchCodec: where it is installed and loads)."""
    path, _, expected = reference(corpus, "vfr_jump.mp4")
    if decoder == "torchcodec":
        _skip_without_torchcodec(path)
    listed = tmp_path / "list.txt"
    listed.write_text(f"{path} 1\n")
    sampler = TSNSampler(n_segment=8, train=False)
    dataset = VideoDataset(list_file=listed, root="/", sampler=sampler, decoder=decoder)
    clip, label = dataset[0]
    assert torch.equal(clip, expected[sampler(len(expected))[0]]) and label == 1
    with pytest.raises(ValueError, match="decoder must be one of pyav, torchcodec, got 'ffmpeg'"):
        VideoDataset(list_file=listed, root="/", sampler=sampler, decoder="ffmpeg")  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "frames"), [("mpeg4_bframes.avi", 40), ("rotated.mp4", 30)])
def test_reading_a_video_leaves_no_frames_to_the_garbage_collector(corpus, name, frames):
    """Decoded frames in reference cycles were freed by whichever process collected them: in a
    forked DataLoader worker, freeing a threaded decoder's buffers deadlocked (after reading a
    video's frames in the main process, e.g. tsm bench data's AVI copies). A rotated video's
    display matrix is read without the cycle ``frame.side_data`` makes."""
    path, _, _ = reference(corpus, name)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        with VideoSource.open(path) as source:
            assert len(list(source.frames())) == frames
        read_video(path, [3, frames - 1])
        gc.collect()
        cycles = [type(o).__name__ for o in gc.garbage if type(o).__module__.startswith("av.")]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert cycles == []
