"""C3D and I3D-ResNet-50 (models/zoo/c3d.py, i3d.py) and inflating 2D weights (inflate.py).

Published figures pinned here (costs counted on the meta device: shapes only, no arithmetic):

- C3D at 16x112x112 (Tran et al. 2015): 38.5 GMACs, as quoted for C3D ("38.5 GFLOPs",
  multiply-adds) by Tran et al. 2017 ("ConvNet Architecture Search for Spatiotemporal
  Feature Learning"); parameters per layer as in the Keras port of the Caffe Sports-1M
  weights (conv1a 5,248 ... fc6 33,558,528), 79,991,015 in all with the 487-way head.
- I3D-R50 (the non-local paper's, as the TSM paper compares it): the TSM paper's row
  "I3D, 8 frames: 33G, 29.3M". Our network on its published 32-frame input costs 33.1
  GMACs (8 time steps reach res2 after the stem's two temporal strides -- the "8 frames"
  as we read it) and has 29.27M parameters with a 1000-way head, 28,043,472 with 400
  classes (= MMAction2's I3D-R50 parameter count). Fed 8 frames it costs a quarter.
"""

from __future__ import annotations

import re

import pytest
import torch
import torchvision
from torch import nn

from temporal_shift.apps.bench.overhead import count_flops, count_params
from temporal_shift.checkpoint.backbone import inflate_2d_weights
from temporal_shift.checkpoint.format import CheckpointError, save_checkpoint
from temporal_shift.checkpoint.loading import load_model
from temporal_shift.engine.export import export_model, verify_export
from temporal_shift.hub.build import build_model
from temporal_shift.models.factory import FAMILIES
from temporal_shift.models.zoo.c3d import C3D, adaptive_avg_pool
from temporal_shift.models.zoo.i3d import I3D

pytestmark = pytest.mark.usefixtures("one_thread")


# Small inputs keep the tests fast: C3D on 4 frames of 16x16, I3D on 8 frames of 32x32.
SIZES = {"c3d": (4, 16), "i3d": (8, 32)}


def c3d(**options):
    options = {"num_classes": 5, "n_segment": SIZES["c3d"][0], **options}
    return build_model("c3d", family="c3d", **options)


def i3d(**options):
    options = {"num_classes": 5, "n_segment": 8, **options}
    return build_model("resnet50", family="i3d", **options)


def clips(n: int, t: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, t, 3, size, size, generator=torch.Generator().manual_seed(seed))


def on_meta(family: str, arch: str, **options) -> nn.Module:
    with torch.device("meta"):
        return build_model(arch, family=family, **options).eval()


def test_families_are_registered():
    assert FAMILIES["c3d"] is C3D and FAMILIES["i3d"] is I3D
    assert C3D.input_size == 112 and C3D.frames == (16,) and C3D.archs == ("c3d",)
    assert I3D.input_size == 224 and 32 in I3D.frames and 8 in I3D.frames and I3D.archs[0] == "resnet50"


# --- shapes --------------------------------------------------------------------------


def test_c3d_output_shape_on_small_and_odd_inputs():
    model = c3d().eval()
    with torch.no_grad():
        assert model(clips(2, 4, 16)).shape == (2, 5)
        odd = c3d(n_segment=5).eval()
        assert odd(torch.randn(1, 5, 3, 24, 40)).shape == (1, 5)


def test_c3d_published_input_reaches_fc6_as_published():
    """16x112x112 -> pool5 is 512x1x4x4 = fc6's 8192 inputs: the adaptive pool is the identity."""
    model = on_meta("c3d", "c3d", num_classes=487, n_segment=16)
    x = torch.randn(1, 3, 16, 112, 112, device="meta")
    assert tuple(model.features(x).shape) == (1, 512, 1, 4, 4)
    assert model.fc6.in_features == 8192


@pytest.mark.parametrize("shape", [(2, 3, 1, 4, 4), (2, 3, 2, 7, 7), (1, 2, 3, 5, 9), (1, 1, 1, 1, 1), (1, 2, 4, 2, 3)])
def test_c3d_exportable_pool_equals_adaptive_avg_pool(shape):
    x = torch.randn(shape)
    expected = torch.nn.functional.adaptive_avg_pool3d(x, (1, 4, 4))
    torch.testing.assert_close(adaptive_avg_pool(x, (1, 4, 4)), expected)


@pytest.mark.parametrize("t", [8, 16])
def test_i3d_output_shape(t):
    model = i3d(n_segment=t).eval()
    with torch.no_grad():
        assert model(clips(2, t, 32)).shape == (2, 5)


def test_i3d_layout_is_the_non_local_papers():
    model = i3d(n_segment=32)
    b = model.backbone
    assert b.conv1.kernel_size == (5, 7, 7) and b.conv1.stride == (2, 2, 2)
    inflated = [[block.conv1.kernel_size[0] for block in layer] for layer in (b.layer1, b.layer2, b.layer3, b.layer4)]
    assert inflated == [[3, 3, 3], [3, 1, 3, 1], [3, 1, 3, 1, 3, 1], [1, 3, 1]]
    assert all(block.conv2.kernel_size == (1, 3, 3) for layer in (b.layer1, b.layer4) for block in layer)
    x = torch.randn(1, 3, 32, 224, 224, device="meta")
    meta = on_meta("i3d", "resnet50", num_classes=400, n_segment=32)
    mb = meta.backbone
    stem = mb.maxpool(mb.conv1(x))
    assert stem.shape[2] == 8  # 8 time steps reach res2
    assert meta.pool2(mb.layer1(stem)).shape[2] == 4


# --- published costs ----------------------------------------------------------------------


def test_c3d_params_and_flops_match_the_published_network():
    model = on_meta("c3d", "c3d", num_classes=487, n_segment=16)
    # The Keras port of the Caffe Sports-1M weights, layer by layer.
    per_layer = {name: count_params(m) for name, m in model.features.named_children() if count_params(m)}
    assert per_layer == {
        "conv1a": 5_248,
        "conv2a": 221_312,
        "conv3a": 884_992,
        "conv3b": 1_769_728,
        "conv4a": 3_539_456,
        "conv4b": 7_078_400,
        "conv5a": 7_078_400,
        "conv5b": 7_078_400,
    }
    assert count_params(model.fc6) == 33_558_528 and count_params(model.fc7) == 16_781_312
    assert count_params(model) == 79_991_015
    gmacs = count_flops(model, torch.randn(1, 16, 3, 112, 112, device="meta")) / 2e9
    assert gmacs == pytest.approx(38.5, rel=0.05)  # 38.55


def test_i3d_params_and_flops_match_the_tsm_papers_row():
    kinetics = on_meta("i3d", "resnet50", num_classes=400, n_segment=32)
    assert count_params(kinetics) == 28_043_472  # MMAction2's I3D-R50
    imagenet_head = on_meta("i3d", "resnet50", num_classes=1000, n_segment=32)
    assert count_params(imagenet_head) / 1e6 == pytest.approx(29.3, rel=0.05)  # 29.27M
    gmacs = count_flops(kinetics, torch.randn(1, 32, 3, 224, 224, device="meta")) / 2e9
    assert gmacs == pytest.approx(33.0, rel=0.05)  # 33.13
    eight = on_meta("i3d", "resnet50", num_classes=400, n_segment=8)
    gmacs8 = count_flops(eight, torch.randn(1, 8, 3, 224, 224, device="meta")) / 2e9
    assert gmacs8 == pytest.approx(gmacs / 4, rel=0.01)  # 8.28: res3..res5 see one time step


# --- training ------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["c3d", "i3d"])
def test_a_few_training_steps_lower_the_loss(family):
    torch.manual_seed(0)
    model = (c3d if family == "c3d" else i3d)(num_classes=3, dropout=0.0).train()
    x, y = clips(6, *SIZES[family], seed=1), torch.tensor([0, 1, 2, 0, 1, 2])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    losses = []
    for _ in range(4):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # C3D (no BN, ln 3 at the start) learns slowly on 16x16 frames; I3D much faster.
    assert losses[-1] < losses[0] - 0.02, losses


def test_i3d_partial_bn_keeps_all_but_the_first_bn_frozen():
    model = i3d(partial_bn=True).train()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm3d)]
    assert bns[0].training and bns[0].weight.requires_grad
    assert not any(bn.training or bn.weight.requires_grad for bn in bns[1:])


# --- checkpoints and export ----------------------------------------------------------------


@pytest.mark.parametrize("family", ["c3d", "i3d"])
def test_save_load_round_trip(tmp_path, family):
    model = (c3d if family == "c3d" else i3d)().eval()
    path = save_checkpoint(model, tmp_path / f"{family}.pt")
    loaded = load_model(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    x = clips(1, *SIZES[family])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


@pytest.mark.slow  # ~20-30 s each (the dynamo export; C3D writes a 310 MB file)
@pytest.mark.parametrize("family", ["c3d", "i3d"])
def test_onnx_export_matches_pytorch(tmp_path, family):
    size = SIZES[family][1]
    model = (c3d if family == "c3d" else i3d)().eval()
    out = export_model(model, tmp_path / f"{family}.onnx", size=size)
    assert verify_export(model, out, format="onnx", size=size).max_rel < 1e-4


# --- inflation ---------------------------------------------------------------------------


def _calibrated_resnet(arch: str = "resnet50", num_classes: int = 1000, seed: int = 0) -> torchvision.models.ResNet:
    """A torchvision ResNet with BN statistics and affine parameters away from 1/0 and a
    head large enough that its logits depend on the input."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = getattr(torchvision.models, arch)(num_classes=num_classes)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1, generator=g)
            m.running_var.uniform_(0.5, 1.5, generator=g)
            m.weight.data.uniform_(0.5, 1.0, generator=g)
            m.bias.data.normal_(0, 0.1, generator=g)
    nn.init.normal_(net.fc.weight, 0, 0.1, generator=g)
    return net.eval()


def _still_clip(t: int, size: int = 48, seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    frame = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))
    return frame, frame[:, None].expand(2, t, 3, size, size).contiguous()


def _assert_same_logits(a: torch.Tensor, b: torch.Tensor) -> None:
    assert b.abs().max() > 1.0  # the logits carry signal
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_inflated_from_a_torchvision_state_dict_sees_a_still_clip_as_the_2d_network(tmp_path):
    net = _calibrated_resnet()
    path = tmp_path / "resnet50_imagenet.pth"
    torch.save(net.state_dict(), path)
    model = i3d(num_classes=1000).eval()
    inflate_2d_weights(model, path, head=True)
    assert model.backbone.conv1.weight.shape == (64, 3, 5, 7, 7)
    torch.testing.assert_close(model.backbone.conv1.weight.sum(2), net.conv1.weight)
    frame, clip = _still_clip(8)
    with torch.no_grad():
        _assert_same_logits(model(clip), net(frame))


def test_inflated_from_our_tsn_checkpoint_matches_tsn_on_a_still_clip(tmp_path):
    net = _calibrated_resnet(num_classes=7)
    tsn = build_model("resnet50", num_classes=7, n_segment=4, shift=False).eval()
    tsn.backbone.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith("fc.")})
    tsn.head.load_state_dict(net.fc.state_dict())
    path = save_checkpoint(tsn, tmp_path / "tsn.pt")
    model = i3d(num_classes=7, n_segment=16).eval()
    inflate_2d_weights(model, path, head=True)
    _frame, clip = _still_clip(16)
    with torch.no_grad():
        _assert_same_logits(model(clip), tsn(_still_clip(4)[1]))


def test_inflated_from_a_tsm_a_reference_release_and_a_single_frame_checkpoint(tmp_path):
    """A TSM's wrapped keys (conv1.net.*), the release's (module.base_model.*) and the
    single-frame baseline's all inflate."""
    net = _calibrated_resnet(num_classes=7)
    tsm = build_model("resnet50", num_classes=7, n_segment=8, shift=True, temporal_pool=True).eval()
    own = {".".join(p for p in k.split(".") if p != "net"): k for k in tsm.backbone.state_dict()}
    tsm.backbone.load_state_dict({own[k]: v for k, v in net.state_dict().items() if not k.startswith("fc.")})
    tsm.head.load_state_dict(net.fc.state_dict())
    ours = save_checkpoint(tsm, tmp_path / "tsm.pt")
    release = tmp_path / "TSM_something_RGB_resnet50_shift8_blockres_avg_segment8_e45.pth"
    state = {f"module.base_model.{k}": v for k, v in tsm.backbone.state_dict().items()}
    state.update({f"module.new_fc.{k}": v for k, v in tsm.head.state_dict().items()})
    torch.save({"epoch": 45, "arch": "resnet50", "state_dict": state, "best_prec1": 0.0}, release)
    single = build_model("resnet50", family="single_frame", num_classes=7, n_segment=8)
    single.load_state_dict({k.replace(".net.", "."): v for k, v in tsm.state_dict().items()})
    single_path = save_checkpoint(single, tmp_path / "single.pt")
    frame, clip = _still_clip(8)
    expected = net(frame)
    for path in (ours, release, single_path):
        model = i3d(num_classes=7).eval()
        inflate_2d_weights(model, path, head=True)
        with torch.no_grad():
            _assert_same_logits(model(clip), expected)


def test_build_model_backbone_weights_inflates(tmp_path):
    net = _calibrated_resnet()
    path = tmp_path / "r50.pth"
    torch.save(net.state_dict(), path)
    model = build_model("resnet50", family="i3d", num_classes=5, n_segment=8, backbone_weights=path)
    torch.testing.assert_close(model.backbone.layer1[0].conv1.weight.sum(2), net.layer1[0].conv1.weight)
    torch.testing.assert_close(model.backbone.layer1[1].conv2.weight[:, :, 0], net.layer1[1].conv2.weight)


def test_wrong_arch_is_a_one_line_error_naming_file_and_arch(tmp_path):
    r18 = tmp_path / "tsn_r18.pt"
    save_checkpoint(build_model("resnet18", num_classes=3, n_segment=2, shift=False), r18)
    tv18 = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), tv18)
    for path in (r18, tv18):
        with pytest.raises(CheckpointError) as err:
            inflate_2d_weights(i3d(), path)
        message = str(err.value)
        assert "\n" not in message and str(path) in message and "resnet18" in message and "resnet50" in message


def test_a_3d_checkpoint_is_not_2d_weights(tmp_path):
    path = save_checkpoint(i3d(num_classes=2), tmp_path / "i3d.pt")
    with pytest.raises(CheckpointError, match=re.escape(str(path)) + ".*i3d checkpoint, not 2D weights"):
        inflate_2d_weights(i3d(), path)


def test_c3d_takes_no_backbone_weights(tmp_path):
    path = tmp_path / "r50.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(ValueError, match="c3d"):
        build_model("c3d", family="c3d", num_classes=3, n_segment=16, backbone_weights=path)


# --- bad options --------------------------------------------------------------------------


def test_i3d_rejects_a_t_it_cannot_take():
    with pytest.raises(ValueError, match=r"n_segment=12: I3D takes a multiple of 8"):
        i3d(n_segment=12)


@pytest.mark.parametrize(
    "build,match",
    [
        (lambda: c3d(partial_bn=True), "partial_bn: C3D has no BatchNorm"),
        (lambda: build_model("resnet18", family="i3d", num_classes=3, n_segment=8), "resnet18"),
        (lambda: build_model("resnet50", family="c3d", num_classes=3, n_segment=16), "c3d"),
        (lambda: i3d(shift=True), "shift"),
    ],
)
def test_bad_options_are_one_line_errors(build, match):
    with pytest.raises(ValueError, match=match) as err:
        build()
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("family", ["c3d", "i3d"])
def test_wrong_input_shape_names_the_expected_one(family):
    model = (c3d if family == "c3d" else i3d)()
    t, size = SIZES[family]
    with pytest.raises(ValueError, match=rf"T={t}, C=3, H, W"):
        model(torch.randn(1, t + 1, 3, size, size))
