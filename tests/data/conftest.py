"""Helpers for the data tests: small clips whose frames encode their own index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from temporal_shift.data.encode import write_frame_folder, write_video


def index_frames(num_frames: int, *, height: int = 48, width: int = 64) -> np.ndarray:
    """Frames whose red level is 8 * index (recoverable after JPEG/H.264) and with a
    bright bar in the left half, to detect horizontal flips."""
    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    frames[..., 0] = (np.arange(num_frames) * 8 % 256)[:, None, None]
    frames[:, :, : width // 4, 1] = 255
    return frames


def frame_ids(clip) -> list[int]:
    """Recover frame indices from a uint8 (T, 3, H, W) clip of index_frames."""
    red = clip[:, 0].float().mean(dim=(1, 2))
    return [int(round(v / 8)) for v in red.tolist()]


@pytest.fixture
def make_frames():
    def make(root: Path, name: str, num_frames: int, **kw) -> Path:
        return write_frame_folder(root / name, index_frames(num_frames, **kw), quality=95)

    return make


@pytest.fixture
def make_video():
    def make(path: Path, num_frames: int, **kw) -> Path:
        return write_video(path, index_frames(num_frames, **kw), fps=25, crf=10, gop=12)

    return make
