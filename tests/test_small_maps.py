"""SmallMapConv2d/3d: the same layers as nn.Conv2d/3d, computed from the taps that meet a single-position output."""

import copy

import pytest
import torch
from torch import nn

from temporal_shift.apps.bench.overhead import count_flops
from temporal_shift.models.backbones import headless_backbone
from temporal_shift.models.factory import build_model
from temporal_shift.ops.small_maps import SmallMapConv2d, SmallMapConv3d, full_kernels, use_small_map_convs

# (in, out, kernel, stride, padding, groups, bias, input size): every output is 1x1 but the last
CASES = [
    (16, 24, 3, 1, 1, 1, False, 1),  # ResNet layer4 on 32x32 frames: the centre tap only
    (16, 24, 3, 2, 1, 1, True, 2),  # layer4's first conv: a 2x2 map to 1x1, a 2x2 window of taps
    (8, 8, 3, 1, 1, 8, False, 1),  # depthwise (MobileNetV2)
    (6, 10, 7, 2, 3, 1, True, 2),  # a stem on a 2x2 frame: taps 3..4
    (6, 10, 1, 1, 0, 1, True, 1),  # 1x1 kernel: nothing to skip
    (6, 10, (3, 1), 1, (1, 0), 1, False, 1),
]


def _pair(case):
    cin, cout, k, stride, pad, groups, bias, _ = case
    torch.manual_seed(0)
    plain = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, groups=groups, bias=bias).double()
    fast = copy.deepcopy(plain)
    fast.__class__ = SmallMapConv2d
    return plain, fast


def _assert_same_layer(plain: nn.Module, fast: nn.Module, x: torch.Tensor) -> None:
    """Same output and gradients (input, weight, bias) from ``plain`` and ``fast`` on ``x``;
    the taps ``fast`` skips get exactly the zero gradient the padding gave them."""
    outputs, grads = [], []
    for layer in (plain, fast):
        xi = x.clone().requires_grad_()
        y = layer(xi)
        y.backward(torch.linspace(-1, 1, y.numel(), dtype=torch.double).view_as(y))
        outputs.append(y)
        grads.append((xi.grad, layer.weight.grad, None if layer.bias is None else layer.bias.grad))
    assert outputs[1].shape == outputs[0].shape
    torch.testing.assert_close(outputs[1], outputs[0])
    for a, b in zip(grads[1], grads[0], strict=True):
        if a is not None:
            torch.testing.assert_close(a, b)
    assert torch.equal(grads[1][1] == 0, grads[0][1] == 0)


@pytest.mark.parametrize("case", CASES)
def test_same_output_and_gradients_as_conv2d_on_a_one_pixel_output(case):
    plain, fast = _pair(case)
    size = case[-1]
    x = torch.randn(5, case[0], size, size, dtype=torch.double)
    assert fast._window(x) is not None
    _assert_same_layer(plain, fast, x)


def test_larger_maps_take_conv2d_own_path_bit_for_bit():
    plain, fast = _pair((16, 24, 3, 1, 1, 1, True, 4))
    x = torch.randn(2, 16, 4, 4, dtype=torch.double)
    assert fast._window(x) is None
    assert torch.equal(fast(x), plain(x))


def test_the_window_a_stride_two_conv_reads():
    _, fast = _pair((16, 24, 3, 2, 1, 1, True, 2))
    assert fast._window(torch.zeros(1, 16, 2, 2)) == ((1, 2), (1, 2))
    assert fast._window(torch.zeros(1, 16, 1, 1)) == ((1, 1), (1, 1))
    assert fast._window(torch.zeros(1, 16, 3, 3)) is None  # a 2x2 output


def test_off_by_default_a_users_resnet50_holds_plain_convolutions():
    model = build_model("resnet50", num_classes=5, n_segment=2)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(type(m) is nn.Conv2d for m in convs)
    assert not any(isinstance(m, SmallMapConv2d) for m in model.modules())


def test_backbones_use_it_and_keep_torchvision_keys():
    import torchvision

    backbone = use_small_map_convs(headless_backbone("resnet18")[0])
    convs = [m for m in backbone.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(type(m) is SmallMapConv2d for m in convs)
    reference = torchvision.models.resnet18(weights=None)
    reference.fc = nn.Identity()
    assert list(backbone.state_dict()) == list(reference.state_dict())
    backbone.load_state_dict(reference.state_dict())
    x = torch.randn(2, 3, 32, 32)  # layer4 sees 1x1 maps
    torch.testing.assert_close(backbone.eval()(x), reference.eval()(x), rtol=1e-4, atol=1e-5)


def test_use_small_map_convs_leaves_other_layers_alone():
    from torchvision.models.video.resnet import Conv3DSimple

    from temporal_shift.models.zoo.i3d import TimePaddedConv3d

    own_forward = TimePaddedConv3d(4, 4, kernel_size=(3, 1, 1), time_padding=1)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv1d(4, 4, 1), nn.Conv3d(4, 4, 3), Conv3DSimple(4, 4), own_forward
    )
    use_small_map_convs(net)
    fast = [SmallMapConv2d, nn.ReLU, nn.Conv1d, SmallMapConv3d, SmallMapConv3d, TimePaddedConv3d]
    assert [type(m) for m in net] == fast
    with full_kernels(net):  # Conv3DSimple only builds an nn.Conv3d differently: it comes back as one
        assert [type(m) for m in net] == [nn.Conv2d, nn.ReLU, nn.Conv1d, nn.Conv3d, nn.Conv3d, TimePaddedConv3d]
    assert [type(m) for m in net] == fast


# (in, out, kernel, stride, padding, bias, input (T, H, W), expected window): 3D convolutions
# with a single output position along some axes only
CASES_3D = [
    (8, 12, 3, 1, 1, True, (1, 4, 4), ((1, 1), None, None)),  # C3D conv4 on one frame: a 2D conv
    (8, 12, 3, 1, 1, False, (1, 2, 2), ((1, 1), None, None)),  # C3D conv5
    (8, 12, 3, 1, 1, True, (1, 1, 1), ((1, 1), (1, 1), (1, 1))),  # the centre tap alone
    (8, 12, 3, 2, 1, True, (2, 3, 3), ((1, 2), None, None)),  # a 2-frame window, stride 2
    (8, 12, (3, 1, 1), 1, (1, 0, 0), True, (1, 3, 3), ((1, 1), None, None)),  # I3D's temporal kernel
    (8, 12, 3, 1, 1, True, (3, 1, 1), (None, (1, 1), (1, 1))),  # many frames, one pixel
]


@pytest.mark.parametrize("case", CASES_3D)
def test_3d_same_output_and_gradients_as_conv3d_where_some_axes_have_one_output(case):
    cin, cout, k, stride, pad, bias, size, window = case
    torch.manual_seed(0)
    plain = nn.Conv3d(cin, cout, k, stride=stride, padding=pad, bias=bias).double()
    fast = copy.deepcopy(plain)
    fast.__class__ = SmallMapConv3d
    x = torch.randn(3, cin, *size, dtype=torch.double)
    assert fast._window(x) == window
    _assert_same_layer(plain, fast, x)


def test_a_2d_map_one_pixel_high_crops_only_that_axis():
    plain, fast = _pair((6, 10, 3, 1, 1, 1, True, 1))
    x = torch.randn(2, 6, 1, 5, dtype=torch.double)
    assert fast._window(x) == ((1, 1), None)
    torch.testing.assert_close(fast(x), plain(x))


@pytest.mark.parametrize(("family", "arch"), [("c3d", "c3d"), ("eco_full", "resnet18")])
def test_3d_families_use_it_and_match_the_plain_network_on_small_clips(family, arch):
    model = build_model(arch, family=family, num_classes=5, n_segment=4, small_maps=True).eval()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv3d)]
    assert convs and all(type(m) is SmallMapConv3d for m in convs)
    plain = copy.deepcopy(model)
    for m in plain.modules():
        if type(m) is SmallMapConv3d:
            m.__class__ = nn.Conv3d
    x = torch.randn(2, 4, 3, 32, 32)  # conv4 and conv5 see a single frame
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain(x), rtol=1e-4, atol=1e-5)
    assert list(model.state_dict()) == list(plain.state_dict())


def test_tsm_on_small_frames_matches_the_plain_model_and_traces_for_any_size():
    model = build_model("resnet18", num_classes=5, n_segment=4, shift=True, small_maps=True).eval()
    assert any(type(m) is SmallMapConv2d for m in model.modules())
    plain = copy.deepcopy(model)
    for m in plain.modules():
        if type(m) is SmallMapConv2d:
            m.__class__ = nn.Conv2d
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain(x), rtol=1e-4, atol=1e-5)
        # a graph traced on 32x32 frames must not keep the 1x1 shortcut: at 64x64 layer4 sees 2x2
        traced = torch.jit.trace(model, x)
        big = torch.randn(1, 4, 3, 64, 64)
        torch.testing.assert_close(traced(big), plain(big), rtol=1e-4, atol=1e-5)


def test_flops_count_every_tap_and_full_kernels_restores_the_class():
    model = build_model("resnet18", num_classes=5, n_segment=4, shift=False, small_maps=True).eval()
    x = torch.randn(1, 4, 3, 32, 32)
    with full_kernels(model):
        assert not any(type(m) is SmallMapConv2d for m in model.modules())
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(x)
        conventional = counter.get_total_flops()
    assert any(type(m) is SmallMapConv2d for m in model.modules())
    assert count_flops(model, x) == conventional
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    assert counter.get_total_flops() < conventional  # the shortcut really skips the padded taps
