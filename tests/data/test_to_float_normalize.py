"""ToFloatNormalize: the fused uint8 -> normalised float step of the clip transforms."""

from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from temporal_shift.data.transforms import IMAGENET_MEAN, IMAGENET_STD, ToFloatNormalize


def test_matches_torchvision_two_step_and_keeps_the_type():
    video = tv_tensors.Video(torch.randint(0, 256, (4, 3, 20, 24), dtype=torch.uint8))
    reference = v2.Compose(
        [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))]
    )
    out, label = ToFloatNormalize()(video, 7)
    assert isinstance(out, tv_tensors.Video) and out.dtype == torch.float32 and label == 7
    torch.testing.assert_close(out, reference(video), rtol=0, atol=1e-5)
    plain = ToFloatNormalize(normalize=False)(video)
    torch.testing.assert_close(plain, v2.ToDtype(torch.float32, scale=True)(video), rtol=0, atol=0)


def test_float_input_is_not_modified_in_place():
    x = torch.rand(2, 3, 5, 5)
    before = x.clone()
    out = ToFloatNormalize()(x)
    assert torch.equal(x, before) and not torch.equal(out, x)
    torch.testing.assert_close(out, v2.Normalize(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))(x))


def test_bad_std():
    with pytest.raises(ValueError, match="std must be positive"):
        ToFloatNormalize(std=(0.2, 0.0, 0.2))
