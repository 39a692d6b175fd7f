"""Shift insertion, temporal pooling, non-local blocks and the TSN/TSM recognizer."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from temporal_shift.models import (
    ModelConfig,
    TemporalPool,
    build_model,
    make_non_local,
    make_temporal_shift,
    param_groups,
)
from temporal_shift.models.factory import check_config
from temporal_shift.models.non_local import NonLocalAfter
from temporal_shift.ops.shift import TemporalShift, temporal_shift


def shifts(model: nn.Module) -> list[tuple[str, TemporalShift]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, TemporalShift)]


@pytest.mark.parametrize(
    ("arch", "expected"),
    [
        ("resnet18", 8),
        ("resnet34", 16),
        ("resnet50", 16),
        ("resnext50_32x4d", 16),
        ("wide_resnet50_2", 16),
        ("resnet101", 2 + 2 + 12 + 2),  # blockres: every other block of 3/4/23/3
        ("resnet152", 2 + 4 + 18 + 2),  # blockres: every other block of 3/8/36/3
        ("mobilenet_v2", 10),  # inverted-residual blocks with a skip connection
    ],
)
def test_blockres_insertion_counts(arch, expected):
    model = make_temporal_shift(getattr(torchvision.models, arch)(), 8)
    found = shifts(model)
    assert len(found) == expected
    for name, module in found:
        assert isinstance(module.net, nn.Conv2d), name  # before the first conv of the branch
        assert module.n_segment == 8 and module.fold_div == 8


def test_blockres_wraps_conv1_of_every_resnet_block_and_every_other_for_101():
    r50 = make_temporal_shift(torchvision.models.resnet50(), 8)
    assert {n for n, _ in shifts(r50)} == {
        f"layer{s}.{i}.conv1" for s, blocks in zip(range(1, 5), (3, 4, 6, 3), strict=True) for i in range(blocks)
    }
    r101 = make_temporal_shift(torchvision.models.resnet101(), 8)
    assert "layer3.0.conv1" in dict(shifts(r101)) and "layer3.1.conv1" not in dict(shifts(r101))


@pytest.mark.parametrize(("arch", "blocks"), [("resnet101", (3, 4, 23, 3)), ("resnet152", (3, 8, 36, 3))])
def test_block_place_shifts_every_block_of_deep_resnets(arch, blocks):
    # the reference release: every other block for blockres only, every block for block
    model = make_temporal_shift(getattr(torchvision.models, arch)(), 8, place="block")
    assert {n for n, _ in shifts(model)} == {
        f"layer{s}.{i}" for s, count in zip(range(1, 5), blocks, strict=True) for i in range(count)
    }


def test_mobilenet_shifts_only_blocks_with_skip_connection():
    model = make_temporal_shift(torchvision.models.mobilenet_v2(), 8)
    for block in model.features:
        if isinstance(block, torchvision.models.mobilenetv2.InvertedResidual):
            has_shift = isinstance(block.conv[0][0], TemporalShift)
            assert has_shift == block.use_res_connect


def test_block_place_wraps_whole_blocks():
    model = make_temporal_shift(torchvision.models.resnet18(), 4, place="block", fold_div=4)
    found = shifts(model)
    assert len(found) == 8
    assert all(isinstance(m.net, torchvision.models.resnet.BasicBlock) for _, m in found)
    # in-place shift: the block sees the shifted input, the identity path too
    block = model.layer1[0]
    x = torch.randn(8, 64, 5, 5)
    block.eval()
    assert torch.equal(block(x), block.net(temporal_shift(x, 4, fold_div=4)))


def test_residual_shift_keeps_identity_unshifted():
    model = make_temporal_shift(torchvision.models.resnet18(), 4).eval()
    block = model.layer1[0]
    x = torch.randn(8, 64, 5, 5)
    # with the residual branch zeroed, the block is relu(identity): no shift on it
    nn.init.zeros_(block.bn2.weight)
    nn.init.zeros_(block.bn2.bias)
    assert torch.equal(block(x), torch.relu(x))


def test_temporal_pool_halves_time_after_layer1():
    model = make_temporal_shift(torchvision.models.resnet50(), 8, temporal_pool=True).eval()
    assert isinstance(model.layer2, TemporalPool)
    assert model.layer1[0].conv1.n_segment == 8
    assert all(b.conv1.n_segment == 4 for s in (model.layer3, model.layer4) for b in s)
    assert model.layer2.net[0].conv1.n_segment == 4
    x = torch.randn(2 * 8, 3, 64, 64)
    assert model(x).shape == (2 * 4, 1000)
    # the pool is a max over time with kernel 3, stride 2, padding 1
    pool = TemporalPool(nn.Identity(), 4)
    frames = torch.arange(4.0).view(4, 1, 1, 1)
    assert pool(frames).flatten().tolist() == [1.0, 3.0]


def test_unsupported_backbone_lists_supported():
    with pytest.raises(ValueError, match="unsupported backbone VGG; supported: torchvision ResNet"):
        make_temporal_shift(torchvision.models.vgg11(), 8)
    with pytest.raises(ValueError, match="unknown shift place 'middle'"):
        make_temporal_shift(torchvision.models.resnet18(), 8, place="middle")
    with pytest.raises(ValueError, match="temporal_pool is only supported for ResNet"):
        make_temporal_shift(torchvision.models.mobilenet_v2(), 8, temporal_pool=True)


def test_non_local_positions_and_identity_at_init():
    model = make_non_local(make_temporal_shift(torchvision.models.resnet50(), 4), 4).eval()
    wrapped = {n for n, m in model.named_modules() if isinstance(m, NonLocalAfter)}
    assert wrapped == {"layer2.0", "layer2.2", "layer3.0", "layer3.2", "layer3.4"}
    block = model.layer2[0]
    x = torch.randn(8, 256, 8, 8)
    # zero-initialised output BN: a fresh non-local block adds nothing
    assert torch.allclose(block(x), block.block(x))
    with pytest.raises(ValueError, match="at least 3 blocks in layer2"):
        make_non_local(torchvision.models.resnet18(), 4)
    r34 = torchvision.models.resnet34()
    r34.layer3 = r34.layer3[:4]
    with pytest.raises(ValueError, match="at least 5 blocks in layer3"):
        make_non_local(r34, 4)
    assert not any(isinstance(m, NonLocalAfter) for m in r34.modules())  # nothing half-done


def test_recognizer_averages_per_frame_scores():
    model = build_model("resnet18", num_classes=7, n_segment=4).eval()
    x = torch.randn(3, 4, 3, 64, 64)
    logits = model(x)
    assert logits.shape == (3, 7)
    frame = model.frame_logits(x)
    assert frame.shape == (3, 4, 7)
    assert torch.allclose(logits, frame.mean(1))
    # a TSN model scores each frame alone: permuting frames does not change the output
    tsn = build_model("resnet18", num_classes=7, n_segment=4, shift=False).eval()
    assert torch.allclose(tsn(x), tsn(x[:, [3, 1, 0, 2]]), atol=1e-6)
    assert not torch.allclose(model(x), model(x[:, [3, 1, 0, 2]]), atol=1e-6)


def test_recognizer_with_temporal_pool_and_mobilenet():
    model = build_model("resnet50", num_classes=5, n_segment=8, temporal_pool=True).eval()
    assert model.frame_logits(torch.randn(1, 8, 3, 64, 64)).shape == (1, 4, 5)
    mobile = build_model("mobilenet_v2", num_classes=5, n_segment=4).eval()
    assert mobile(torch.randn(2, 4, 3, 64, 64)).shape == (2, 5)


def test_recognizer_input_errors():
    model = build_model("resnet18", num_classes=5, n_segment=4)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, T=4, C=3, H, W\), got \(2, 8, 3, 32, 32\)"):
        model(torch.randn(2, 8, 3, 32, 32))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, T=4, C=3, H, W\), got \(2, 4, 1, 32, 32\)"):
        model(torch.randn(2, 4, 1, 32, 32))  # a grey clip: RGB models take 3 channels
    with pytest.raises(ValueError, match="got \\(8, 3, 32, 32\\)"):
        model(torch.randn(8, 3, 32, 32))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(arch="vgg16"), "unknown arch 'vgg16' for model family 'tsn'; supported: resnet18"),
        (dict(num_classes=0), "num_classes must be a positive int"),
        (dict(place="x"), "unknown shift place 'x'"),
        (dict(dropout=1.0), "dropout must be in"),
        (dict(temporal_pool=True, n_segment=7), "temporal_pool needs an even n_segment, got 7"),
        (dict(fold_div=1), "fold_div must be an int >= 2"),
    ],
)
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        check_config(ModelConfig(**{"num_classes": 5, **kwargs}))


def test_a_config_only_states_settings_and_its_family_checks_the_arch():
    config = ModelConfig(arch="vgg16", num_classes=5)  # generic checks pass: no family is asked
    with pytest.raises(ValueError, match="unknown arch 'vgg16' for model family 'tsn'"):
        build_model(config.arch, num_classes=5)


def test_build_model_options_are_model_config_fields():
    model = build_model("resnet18", num_classes=3, n_segment=4, mode="causal", dropout=0)
    assert model.config == ModelConfig(arch="resnet18", num_classes=3, n_segment=4, mode="causal", dropout=0.0)
    with pytest.raises(TypeError, match="unknown option 'segments'; model options: arch, num_classes, n_segment"):
        build_model("resnet18", num_classes=3, segments=4)
    with pytest.raises(ValueError, match="shift must be bool, got 'yes'"):
        build_model("resnet18", num_classes=3, shift="yes")
    with pytest.raises(ValueError, match=r"n_segment must be int, got 4.0"):
        ModelConfig(num_classes=3, n_segment=4.0)


def test_config_round_trip_and_unknown_keys():
    config = ModelConfig(arch="resnet18", num_classes=3, n_segment=16, mode="causal")
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown model config keys: segments"):
        ModelConfig.from_dict({"segments": 8})


def test_partial_bn_freezes_all_but_first_bn():
    model = build_model("resnet18", num_classes=5, n_segment=2, partial_bn=True).train()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns[0].training and bns[0].weight.requires_grad
    assert not any(bn.training or bn.weight.requires_grad for bn in bns[1:])
    before = bns[1].running_mean.clone()
    model(torch.randn(1, 2, 3, 32, 32))
    assert torch.equal(bns[1].running_mean, before)
    assert not model.eval().training and not bns[0].training


def test_param_groups_follow_the_reference_recipe():
    model = build_model("resnet18", num_classes=5, n_segment=2)
    groups = {g["name"]: g for g in param_groups(model)}
    assert groups["first_conv_weight"]["params"] == [model.backbone.conv1.weight]
    assert (groups["normal_bias"]["lr_mult"], groups["normal_bias"]["decay_mult"]) == (2, 0)
    assert any(p is model.head.weight for p in groups["normal_weight"]["params"])
    assert groups["bn"]["decay_mult"] == 0
    n_bn = sum(1 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert len(groups["bn"]["params"]) == 2 * n_bn
    all_params = [p for g in groups.values() for p in g["params"]]
    assert len(all_params) == len(list(model.parameters()))
    assert len({id(p) for p in all_params}) == len(all_params)

    finetune = {g["name"]: g for g in param_groups(model, fc_lr5=True)}
    assert finetune["lr5_weight"]["params"] == [model.head.weight]
    assert (finetune["lr10_bias"]["params"], finetune["lr10_bias"]["lr_mult"]) == ([model.head.bias], 10)

    pbn = build_model("resnet18", num_classes=5, n_segment=2, partial_bn=True)
    assert len({g["name"]: g for g in param_groups(pbn)}["bn"]["params"]) == 2
