"""Frame-index sampling: which frames of a video make a clip.

Samplers return 0-based frame indices of shape ``(num_clips, n_segment * frames_per_segment)``:
for each clip, ``n_segment`` positions in time order, each expanded to ``frames_per_segment``
consecutive frames (position p gives p, p+1, ..., p+frames_per_segment-1).

Rule for short videos (documented, deterministic, also in training): when a video has
fewer usable positions ``L = num_frames - frames_per_segment + 1`` than ``n_segment``, the
positions are ``floor(i * L / n_segment)`` for i = 0..T-1, i.e. frames repeat in time
order (nearest-neighbour stretching). When ``num_frames < frames_per_segment`` the stacked frames
are clamped to the last frame. A video with zero frames is an error.

Randomness comes only from the ``numpy.random.Generator`` passed in, so a dataset that
derives it from (seed, epoch, index) is reproducible with any number of workers.
"""

from __future__ import annotations

import numpy as np


def _check(num_frames: int, source: str) -> None:
    if num_frames < 1:
        where = f"{source}: " if source else ""
        raise ValueError(f"{where}video has {num_frames} frames; cannot sample a clip from it")


def _expand(positions: np.ndarray, *, frames_per_segment: int, num_frames: int) -> np.ndarray:
    """(clips, T) positions -> (clips, T * frames_per_segment) indices, clamped to the video."""
    offsets = np.arange(frames_per_segment, dtype=np.int64)
    indices = positions[..., None].astype(np.int64) + offsets
    return np.minimum(indices, num_frames - 1).reshape(positions.shape[0], -1)


def _stretch(length: int, n_segment: int) -> np.ndarray:
    return (np.arange(n_segment, dtype=np.int64) * length) // n_segment


class TSNSampler:
    """TSN sparse sampling: split the video into ``n_segment`` equal segments.

    Training (``train=True``) takes a uniformly random frame in each segment; testing
    takes each segment's centre, and with ``twice_sample`` also each segment's start
    (a second clip). Segment i covers positions [floor(i*L/T), floor((i+1)*L/T)).
    """

    def __init__(self, *, n_segment: int, train: bool, frames_per_segment: int = 1, twice_sample: bool = False) -> None:
        if n_segment < 1 or frames_per_segment < 1:
            raise ValueError(f"n_segment and frames_per_segment must be >= 1, got {n_segment}, {frames_per_segment}")
        if twice_sample and train:
            raise ValueError("twice_sample is a test-time option; use it with train=False")
        self.n_segment = n_segment
        self.frames_per_segment = frames_per_segment
        self.train = train
        self.twice_sample = twice_sample

    @property
    def num_clips(self) -> int:
        return 2 if self.twice_sample else 1

    @property
    def clip_length(self) -> int:
        return self.n_segment * self.frames_per_segment

    def __call__(
        self, num_frames: int, *, generator: np.random.Generator | None = None, source: str = ""
    ) -> np.ndarray:
        _check(num_frames, source)
        t = self.n_segment
        length = max(num_frames - self.frames_per_segment + 1, 1)
        if length < t:
            positions = np.tile(_stretch(length, t), (self.num_clips, 1))
        elif self.train:
            if generator is None:
                raise ValueError("training sampling needs a numpy Generator")
            starts = _stretch(length, t)
            ends = np.append(starts[1:], length)
            positions = (starts + np.floor(generator.random(t) * (ends - starts)).astype(np.int64))[None]
        else:
            tick = length / t
            centres = np.floor(tick * (np.arange(t) + 0.5)).astype(np.int64)
            rows = [centres]
            if self.twice_sample:
                rows.append(np.floor(tick * np.arange(t)).astype(np.int64))
            positions = np.stack(rows)
        return _expand(positions, frames_per_segment=self.frames_per_segment, num_frames=num_frames)

    def __repr__(self) -> str:
        return (
            f"TSNSampler(n_segment={self.n_segment}, train={self.train}, "
            f"frames_per_segment={self.frames_per_segment}, twice_sample={self.twice_sample})"
        )


class DenseSampler:
    """Dense (I3D-style) sampling: ``n_segment`` frames at a fixed stride in a window.

    The stride is ``window // n_segment``; training picks a uniformly random window
    start, testing ``num_clips`` evenly spaced windows (the first at frame 0, the last
    ending at the last frame). Videos shorter than the window use the short-video rule
    over the whole video, so frames stay in time order.
    """

    def __init__(
        self,
        *,
        n_segment: int,
        train: bool,
        window: int = 64,
        num_clips: int = 10,
        frames_per_segment: int = 1,
    ) -> None:
        if n_segment < 1 or frames_per_segment < 1 or num_clips < 1:
            raise ValueError("n_segment, frames_per_segment and num_clips must be >= 1")
        if window < n_segment:
            raise ValueError(f"window ({window}) must be at least n_segment ({n_segment})")
        self.n_segment = n_segment
        self.train = train
        self.window = window
        self.stride = window // n_segment
        self.frames_per_segment = frames_per_segment
        self._test_clips = num_clips

    @property
    def num_clips(self) -> int:
        return 1 if self.train else self._test_clips

    @property
    def clip_length(self) -> int:
        return self.n_segment * self.frames_per_segment

    def __call__(
        self, num_frames: int, *, generator: np.random.Generator | None = None, source: str = ""
    ) -> np.ndarray:
        _check(num_frames, source)
        t = self.n_segment
        length = max(num_frames - self.frames_per_segment + 1, 1)
        span = (t - 1) * self.stride + 1  # positions touched by one window
        if length < span:
            rel = _stretch(length, t) if length < t else (np.arange(t) * (length - 1)) // max(t - 1, 1)
            positions = np.tile(rel, (self.num_clips, 1))
        else:
            rel = np.arange(t, dtype=np.int64) * self.stride
            last_start = length - span
            if self.train:
                if generator is None:
                    raise ValueError("training sampling needs a numpy Generator")
                starts = np.array([int(generator.integers(0, last_start + 1))])
            else:
                starts = np.linspace(0, last_start, num=self.num_clips).round().astype(np.int64)
            positions = starts[:, None] + rel
        return _expand(positions, frames_per_segment=self.frames_per_segment, num_frames=num_frames)

    def __repr__(self) -> str:
        return (
            f"DenseSampler(n_segment={self.n_segment}, train={self.train}, "
            f"window={self.window}, num_clips={self._test_clips}, frames_per_segment={self.frames_per_segment})"
        )


Sampler = TSNSampler | DenseSampler
