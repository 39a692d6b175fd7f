"""`engine.split_form`: the exported form of a residual-shift ResNet computes the model's
function, applies only where it can, and its graph's shifts copy only the channels they move."""

from __future__ import annotations

from unittest import mock

import onnx
import pytest
import torch

from conftest import calibrated_model
from temporal_shift.engine import split_form as split_form_module
from temporal_shift.engine.export import export_model, verify_export
from temporal_shift.engine.split_form import SplitShiftResNet, shift_moved, shift_one_clip, split_form
from temporal_shift.models import build_model
from temporal_shift.ops.shift import OFFSETS, temporal_shift

T = 4
SIZE = 32


@pytest.mark.parametrize(("mode", "folds"), [("bidirectional", 2), ("causal", 1)])
def test_shift_moved_is_the_shift_of_the_moved_channels(mode, folds):
    fold = 3
    x = torch.randn(2 * T, 2 * fold, 5, 4)  # two clips; the shift with fold_div 2 moves `folds` folds
    expected = temporal_shift(x, T, fold_div=2, mode=mode)[:, : folds * fold]
    assert torch.equal(shift_moved(x[:, : folds * fold], T, fold, *OFFSETS[mode]), expected)


@pytest.mark.parametrize(("mode", "folds"), [("bidirectional", 2), ("causal", 1)])
def test_shift_one_clip_is_the_shift_of_the_moved_channels_of_one_clip(mode, folds):
    fold = 3
    x = torch.randn(T, 2 * fold, 5, 4)  # one clip: its frames are the batch axis
    expected = temporal_shift(x, T, fold_div=2, mode=mode)[:, : folds * fold]
    assert torch.equal(shift_one_clip(x[:, : folds * fold], fold, *OFFSETS[mode]), expected)


def _random_statistics(model: torch.nn.Module) -> torch.nn.Module:
    """Batch norms with statistics and affine parameters far from the identity (a trained
    model's), so that a wrongly folded one shows."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            assert module.running_mean is not None and module.running_var is not None
            module.running_mean.normal_(0, 0.2, generator=generator)
            module.running_var.uniform_(0.3, 2.0, generator=generator)
            module.weight.data.uniform_(0.3, 1.5, generator=generator)
            module.bias.data.normal_(0, 0.2, generator=generator)
    return model.eval()


@pytest.mark.parametrize(
    ("arch", "options"),
    [
        ("resnet18", {}),
        ("resnet50", {}),
        ("resnet50", {"mode": "causal"}),
        ("resnet50", {"fold_div": 4}),
        ("resnext50_32x4d", {}),
        pytest.param("resnet101", {}, marks=pytest.mark.slow),  # shifts in every other block
    ],
)
def test_the_split_form_computes_the_model(arch, options):
    model = _random_statistics(build_model(arch, num_classes=6, n_segment=T, shift=True, **options))
    split = split_form(model)
    assert isinstance(split, SplitShiftResNet)
    clips = torch.randn(3, T, 3, SIZE, SIZE)
    with torch.no_grad():
        expected, got = model(clips), split(clips)
    assert got.shape == expected.shape == (3, 6)
    assert (got - expected).abs().max() <= 1e-5 * expected.abs().max()


@pytest.mark.parametrize("mode", ["bidirectional", "causal"])
def test_the_one_clip_shift_is_taken_for_one_static_clip_only_and_computes_the_model(mode):
    model = _random_statistics(build_model("resnet18", num_classes=6, n_segment=T, shift=True, mode=mode))
    split = split_form(model, one_clip_shift=True)
    assert isinstance(split, SplitShiftResNet)
    for clips, one_clip_calls in ((1, 8), (3, 0)):  # ResNet-18's 8 shifts; more clips: the (N, T, C, H*W) view
        x = torch.randn(clips, T, 3, SIZE, SIZE)
        with (
            mock.patch.object(split_form_module, "shift_one_clip", wraps=shift_one_clip) as one_clip,
            mock.patch.object(split_form_module, "shift_moved", wraps=shift_moved) as view,
            torch.no_grad(),
        ):
            expected, got = model(x), split(x)
        assert (one_clip.call_count, view.call_count) == (one_clip_calls, 8 - one_clip_calls)
        assert (got - expected).abs().max() <= 1e-5 * expected.abs().max()


@pytest.mark.parametrize(
    ("arch", "options"),
    [
        ("resnet50", {"shift": False}),  # TSN: nothing to split
        ("resnet50", {"place": "block"}),  # in-place shifts move the block's whole input
        ("resnet50", {"temporal_pool": True}),
        ("resnet50", {"non_local": True}),
        ("resnet18", {"small_maps": True}),
        ("resnet18", {"fold_div": 2}),  # every channel moves: no rest to split off
        ("mobilenet_v2", {}),
    ],
)
def test_models_it_does_not_apply_to_export_as_they_are(arch, options):
    options = {"shift": True, **options}
    model = build_model(arch, num_classes=6, n_segment=T, **options).eval()
    assert split_form(model) is None


@pytest.mark.parametrize(("where", "channels"), [("layer2.1.bn1", 128), ("bn1", 64)], ids=["block", "stem"])
def test_a_batch_norm_without_running_statistics_makes_the_model_export_as_it_is(where, channels):
    model = build_model("resnet18", num_classes=6, n_segment=T, shift=True).eval()
    parent, _, name = where.rpartition(".")
    setattr(model.backbone.get_submodule(parent), name, torch.nn.BatchNorm2d(channels, track_running_stats=False))
    assert split_form(model) is None  # nothing to fold: no AssertionError at export


def test_a_model_of_another_family_exports_as_it_is():
    late_fusion = build_model("resnet18", num_classes=6, n_segment=T, family="late_fusion").eval()
    assert split_form(late_fusion) is None


def _concat_channels(path) -> list[int]:
    """The channels (dim 2 of the (N, T, C, H*W) view) of every Concat output of an ONNX graph."""
    graph = onnx.shape_inference.infer_shapes(onnx.load(str(path))).graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in graph.value_info}
    return [shapes[n.output[0]][2] for n in graph.node if n.op_type == "Concat" and len(shapes[n.output[0]]) == 4]


def test_the_onnx_graph_shifts_only_the_moved_channels(tmp_path):
    model = calibrated_model("resnet50", num_classes=5, n_segment=T, size=SIZE, calibration_seed=1)
    path = export_model(model, tmp_path / "tsm.onnx", format="onnx", size=SIZE)
    moved = [2 * (c // 8) for c in [64, 256, 256] + [256, 512, 512, 512] + [512] + [1024] * 5 + [1024, 2048, 2048]]
    assert _concat_channels(path) == moved  # before: each block's whole input (64, 256, ... 2048)
    parity = verify_export(model, path, format="onnx", size=SIZE)
    assert parity.max_rel < 1e-4
