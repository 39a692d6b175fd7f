"""The dataset factory: samplers, transforms and datasets by modality (RGB, flow), and its errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import frame_ids
from temporal_shift.data.dataset import VideoDataset
from temporal_shift.data.factory import build_dataset, build_sampler, build_transform
from temporal_shift.data.flow import FLOW_MEAN, FLOW_STD, FlowDataset, flow_train_transform, write_flow_image
from temporal_shift.data.lists import write_frame_list
from temporal_shift.data.sampling import DenseSampler, TSNSampler
from temporal_shift.data.transforms import IMAGENET_MEAN, IMAGENET_STD, train_transform


@pytest.fixture
def rgb_root(tmp_path, make_frames) -> Path:
    make_frames(tmp_path, "v", 20, height=40, width=48)
    write_frame_list(tmp_path / "list.txt", [("v", 20, 1)])
    return tmp_path


@pytest.fixture
def flow_root(tmp_path) -> Path:
    folder = tmp_path / "v"
    folder.mkdir()
    for i in range(12):  # field i: x = 10 i, y = 200 + i everywhere
        write_flow_image(folder / f"flow_x_{i + 1:05d}.jpg", np.full((20, 24), 10 * i, np.uint8), quality=100)
        write_flow_image(folder / f"flow_y_{i + 1:05d}.jpg", np.full((20, 24), 200 + i, np.uint8), quality=100)
    write_frame_list(tmp_path / "flow.txt", [("v", 12, 0)])
    return tmp_path


def test_samplers_by_kind():
    tsn = build_sampler(sampling="tsn", n_segment=4, train=False)
    assert isinstance(tsn, TSNSampler) and tsn(10).tolist() == [[1, 3, 6, 8]]
    twice = build_sampler(sampling="tsn", n_segment=4, train=False, twice_sample=True)
    assert twice(10).tolist() == [[1, 3, 6, 8], [0, 2, 5, 7]]
    dense = build_sampler(sampling="dense", n_segment=4, train=False, dense_window=8, num_clips=3, frames_per_segment=2)
    assert isinstance(dense, DenseSampler) and dense.frames_per_segment == 2 and dense(10).shape == (3, 8)
    trained = build_sampler(sampling="dense", n_segment=4, train=True, dense_window=8)
    assert trained.num_clips == 1 and trained(40, generator=np.random.default_rng(0)).shape == (1, 4)
    with pytest.raises(ValueError, match="sampling must be 'tsn' or 'dense', got 'sparse'"):
        build_sampler(sampling="sparse", n_segment=4, train=True)
    with pytest.raises(ValueError, match="twice_sample goes with TSN sampling"):
        build_sampler(sampling="dense", n_segment=4, train=False, twice_sample=True)


def test_rgb_training_dataset_is_the_hand_built_one(rgb_root):
    sampler = build_sampler(sampling="tsn", n_segment=4, train=True)
    ds = build_dataset(
        modality="rgb",
        list_file=rgb_root / "list.txt",
        root=rgb_root,
        sampler=sampler,
        train=True,
        size=32,
        scales=(1.0, 0.875),
        flip=False,
        seed=5,
    )
    assert type(ds) is VideoDataset
    by_hand = VideoDataset(
        list_file=rgb_root / "list.txt",
        root=rgb_root,
        sampler=sampler,
        seed=5,
        transform=train_transform(size=32, scales=(1.0, 0.875), flip=False),
    )
    (clip, label), (expected, _) = ds[0], by_hand[0]
    assert clip.shape == (4, 3, 32, 32) and label == 1
    torch.testing.assert_close(clip, expected, rtol=0, atol=0)


def test_rgb_test_dataset_views_and_normalisation(rgb_root):
    sampler = build_sampler(sampling="tsn", n_segment=4, train=False)
    common = {
        "modality": "rgb",
        "list_file": rgb_root / "list.txt",
        "root": rgb_root,
        "sampler": sampler,
        "train": False,
        "size": 32,
        "scale_size": 40,
    }
    assert build_dataset(views=10, **common)[0][0].shape == (10, 4, 3, 32, 32)
    raw = build_dataset(normalize=False, **common)[0][0]
    assert raw.dtype == torch.float32 and float(raw.min()) >= 0.0 and float(raw.max()) <= 1.0
    assert frame_ids((raw * 255).round().to(torch.uint8)) == [2, 7, 12, 17]  # segment centres of 20
    normalized = build_dataset(**common)[0][0]
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    torch.testing.assert_close(normalized, (raw - mean) / std)


def test_flow_datasets_stack_flow_length_fields(flow_root):
    sampler = build_sampler(sampling="tsn", n_segment=3, train=False, frames_per_segment=2)
    ds = build_dataset(
        modality="flow",
        list_file=flow_root / "flow.txt",
        root=flow_root,
        sampler=sampler,
        train=False,
        size=16,
        scale_size=20,
        flow_length=2,
    )
    assert type(ds) is FlowDataset
    clip, label = ds[0]
    assert clip.shape == (3, 4, 16, 16) and label == 0  # (T, 2L, H, W): x1, y1, x2, y2
    first = int(sampler(12)[0][0])
    assert clip[0, 0, 8, 8].item() == pytest.approx((10 * first / 255 - FLOW_MEAN) / FLOW_STD, abs=1e-5)
    assert clip[0, 3, 8, 8].item() == pytest.approx(((200 + first + 1) / 255 - FLOW_MEAN) / FLOW_STD, abs=1e-5)
    train_sampler = build_sampler(sampling="tsn", n_segment=3, train=True, frames_per_segment=2)
    train = build_dataset(
        modality="flow",
        list_file=flow_root / "flow.txt",
        root=flow_root,
        sampler=train_sampler,
        train=True,
        size=12,
        scales=(1.0,),
        flow_length=2,
        seed=1,
    )
    by_hand = FlowDataset(
        list_file=flow_root / "flow.txt",
        root=flow_root,
        sampler=train_sampler,
        seed=1,
        transform=flow_train_transform(flow_length=2, size=12, scales=(1.0,)),
    )
    torch.testing.assert_close(train[0][0], by_hand[0][0], rtol=0, atol=0)
    assert build_transform(modality="flow", train=False, size=16, views=10, flow_length=2)(
        torch.zeros(6, 2, 20, 24, dtype=torch.uint8)
    ).shape == (10, 3, 4, 16, 16)


@pytest.mark.parametrize(
    "case, message",
    [
        (
            "template",
            (
                r"flow\.txt: a flow list \(tsm prepare flow\) names flow_x_/flow_y_ folders, so a frame "
                r"template and kind 'videos' do not apply to modality 'flow'"
            ),
        ),
        ("videos", r"flow\.txt: a flow list .* do not apply to modality 'flow'"),
        (
            "frames_per_segment",
            (
                r"flow\.txt: a flow clip takes flow_length=5 fields per segment but the sampler takes 1; "
                r"build the sampler with frames_per_segment=5"
            ),
        ),
        ("modality", r"modality must be 'rgb' or 'flow', got 'depth'"),
    ],
)
def test_factory_errors_name_the_list_and_the_fix(case, message, flow_root):
    sampler = build_sampler(
        sampling="tsn", n_segment=3, train=False, frames_per_segment=1 if case == "frames_per_segment" else 5
    )
    options = {
        "template": {"template": "frame_{:04d}.jpg"},
        "videos": {"kind": "videos"},
        "frames_per_segment": {},
        "modality": {"modality": "depth"},
    }[case]
    kwargs = {
        "modality": "flow",
        "list_file": flow_root / "flow.txt",
        "root": flow_root,
        "sampler": sampler,
        "train": False,
        "flow_length": 5,
    }
    with pytest.raises(ValueError, match=message):
        build_dataset(**{**kwargs, **options})
