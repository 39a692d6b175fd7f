"""Importers for the reference release's and MMAction2's checkpoints.

Checkpoints are built from the reference release's published key layouts
(``release_layouts``, from ``shared/formats``) with random weights, and every
import is compared with an independent float64 forward pass (``reference_forward``)
that reads the raw state dict by key.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from conftest import random_state
from reference_forward import mobilenet_v2_forward, resnet_forward
from temporal_shift.checkpoint.format import CheckpointError, save_checkpoint
from temporal_shift.checkpoint.importers import (
    detect_format,
    import_checkpoint,
    import_mmaction2_checkpoint,
    import_reference_checkpoint,
)
from temporal_shift.checkpoint.loading import load_checkpoint, load_model
from temporal_shift.cli import main
from temporal_shift.models import build_model

T = 8
SIZE = 64


def release_checkpoint(state: dict[str, torch.Tensor], arch: str, *, module: bool = True) -> dict:
    if module:
        state = {f"module.{k}": v for k, v in state.items()}
    return {"epoch": 25, "arch": arch, "state_dict": state, "best_prec1": 47.3}


def clips(batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, T, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def assert_close(ours: torch.Tensor, ref: torch.Tensor) -> None:
    ref = ref.to(ours.dtype)
    assert ours.shape == ref.shape
    error = ((ours - ref).abs().max() / ref.abs().max()).item()
    assert error < 1e-5, f"relative error {error:.2e}"


def our_logits(model, x):
    with torch.no_grad():
        return model(x)


# --- reference release -------------------------------------------------------------

CASES = [
    # layout name, release arch entry, expected arch/place/non_local
    ("resnet50_blockres", "resnet50", "resnet50", "blockres", False),
    ("resnet50_block", "resnet50", "resnet50", "block", False),
    ("resnet50_blockres_nl", "resnet50", "resnet50", "blockres", True),
    ("resnet101_blockres", "resnet101", "resnet101", "blockres", False),
]


@pytest.mark.parametrize("name, saved_arch, arch, place, non_local", CASES)
def test_reference_resnet_matches_independent_forward(
    tmp_path, release_layouts, name, saved_arch, arch, place, non_local
):
    state = random_state(release_layouts[name])
    path = tmp_path / f"TSM_{name}.pth.tar"
    torch.save(release_checkpoint(state, saved_arch), path)
    model = load_checkpoint(path, n_segment=T).model
    c = model.config
    assert (c.arch, c.place, c.non_local, c.shift, c.num_classes, c.n_segment, c.fold_div) == (
        arch,
        place,
        non_local,
        True,
        10,
        T,
        8,
    )
    x = clips()
    assert_close(our_logits(model, x), resnet_forward(state, x, n_segment=T))


def block_layout(blockres: dict[str, list[int]]) -> dict[str, list[int]]:
    """A reference-release ``block`` layout from its ``blockres`` one.

    The release's ``place='block'`` wraps every block of every stage in a shift
    (``layerX.Y.net.*``) whatever the depth; only ``blockres`` skips every other block of
    ResNet-101/152 (``make_temporal_shift`` in its ``ops/temporal_shift.py``).
    """
    plain = {k.replace(".conv1.net.", ".conv1."): v for k, v in blockres.items()}
    return {re.sub(r"^(base_model\.layer\d\.\d+)\.", r"\1.net.", k): v for k, v in plain.items()}


def test_block_layout_derivation_matches_the_published_resnet50_block(release_layouts):
    assert block_layout(release_layouts["resnet50_blockres"]) == release_layouts["resnet50_block"]


def test_reference_resnet101_block_shifts_every_block(tmp_path, release_layouts):
    shapes = block_layout(release_layouts["resnet101_blockres"])
    # every one of the 3+4+23+3 blocks is wrapped, not every other one
    wrapped = {m.group(1) for k in shapes if (m := re.match(r"^base_model\.(layer\d\.\d+)\.net\.", k))}
    assert len(wrapped) == 33 and "layer3.1" in wrapped
    state = random_state(shapes, seed=11)
    path = tmp_path / "TSM_resnet101_block.pth.tar"
    torch.save(release_checkpoint(state, "resnet101"), path)
    model = load_checkpoint(path, n_segment=T).model
    c = model.config
    assert (c.arch, c.place, c.shift, c.num_classes, c.n_segment) == ("resnet101", "block", True, 10, T)
    x = clips(batch=1)
    assert_close(our_logits(model, x), resnet_forward(state, x, n_segment=T))


def test_reference_mobilenet_v2_matches_independent_forward(tmp_path, release_layouts):
    state = random_state(release_layouts["mobilenetv2"])
    path = tmp_path / "mobilenetv2.pth"
    torch.save(release_checkpoint(state, "mobilenetv2"), path)
    model = load_checkpoint(path, n_segment=T).model
    assert (model.config.arch, model.config.place, model.config.shift) == ("mobilenet_v2", "blockres", True)
    x = clips()
    assert_close(our_logits(model, x), mobilenet_v2_forward(state, x, n_segment=T))


def test_reference_without_module_prefix_and_bare_state_dict(release_layouts):
    state = random_state(release_layouts["resnet50_blockres"], seed=3)
    x = clips(batch=1)
    expected = resnet_forward(state, x, n_segment=T)
    for data in (release_checkpoint(state, "resnet50", module=False), dict(state)):
        assert detect_format(data) == "reference"
        assert_close(our_logits(import_reference_checkpoint(data, n_segment=T), x), expected)


def test_reference_temporal_pool_and_tsn(release_layouts):
    base = random_state(release_layouts["resnet50_blockres"], seed=4)
    x = clips(batch=1)

    pooled = {re.sub(r"^base_model\.layer2\.", "base_model.layer2.net.", k): v for k, v in base.items()}
    model = import_reference_checkpoint(release_checkpoint(pooled, "resnet50"), n_segment=T)
    assert model.config.temporal_pool
    assert_close(our_logits(model, x), resnet_forward(pooled, x, n_segment=T))

    tsn = {k.replace(".net.", "."): v for k, v in base.items()}
    model = import_reference_checkpoint(release_checkpoint(tsn, "resnet50"), n_segment=T)
    assert not model.config.shift
    assert_close(our_logits(model, x), resnet_forward(tsn, x, n_segment=T))


def test_reference_fold_div_is_an_argument(release_layouts):
    state = random_state(release_layouts["resnet50_blockres"], seed=5)
    x = clips(batch=1)
    model = import_reference_checkpoint(release_checkpoint(state, "resnet50"), n_segment=T, fold_div=4)
    assert model.config.fold_div == 4
    assert_close(our_logits(model, x), resnet_forward(state, x, n_segment=T, fold_div=4))


def flow_layout(rgb: dict[str, list[int]], *, flow_length: int = 5) -> dict[str, list[int]]:
    """The release's flow model of an RGB layout: ``TSN._construct_flow_model`` (its ``ops/models.py``)
    replaces the first convolution by one of ``2 * new_length`` input channels (x and y of each
    flow field), same name, no bias; every other key is the RGB model's. Its Kinetics flow model
    (``TSM_kinetics_Flow_resnet50_shift8_blockres_avg_segment8_e50.pth``) has new_length 5."""
    shapes = dict(rgb)
    shapes["base_model.conv1.weight"] = [64, 2 * flow_length, 7, 7]
    return shapes


def test_reference_flow_model_imports_into_the_flow_stream(tmp_path, release_layouts):
    """The published Kinetics flow model's layout (a 10-channel conv1) becomes our flow stream
    (modality flow, L=5) and matches the independent forward on (N, T, 10, H, W) flow stacks."""
    shapes = flow_layout(release_layouts["resnet50_blockres"])
    state = random_state(shapes, seed=12)
    path = tmp_path / "TSM_kinetics_Flow_resnet50_shift8_blockres_avg_segment8_e50.pth"
    torch.save(release_checkpoint(state, "resnet50"), path)
    model = load_checkpoint(path, n_segment=T).model
    c = model.config
    assert (c.arch, c.shift, c.place, c.modality, c.flow_length, c.input_channels) == (
        "resnet50",
        True,
        "blockres",
        "flow",
        5,
        10,
    )
    x = torch.randn(2, T, 10, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    assert_close(our_logits(model, x), resnet_forward(state, x, n_segment=T))
    out = tmp_path / "flow.pt"
    assert "optical flow (L=5)" in import_checkpoint(path, out, n_segment=T).summary()
    assert load_checkpoint(out).model.config.modality == "flow"
    # a first convolution that is neither RGB nor x/y flow pairs is refused, naming it
    odd = dict(state, **{"base_model.conv1.weight": torch.zeros(64, 7, 7, 7)})
    with pytest.raises(CheckpointError, match=r"conv1.weight\) takes 7 channels: neither RGB \(3\) nor"):
        import_reference_checkpoint(release_checkpoint(odd, "resnet50"), n_segment=T)


# --- MMAction2 -----------------------------------------------------------------------


def to_mmaction2(release: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a reference-release ResNet layout into MMAction2's ResNetTSM/TSMHead names."""
    out = {}
    for key, value in release.items():
        key = key.replace("base_model.", "backbone.").replace("new_fc.", "cls_head.fc_cls.")
        key = re.sub(r"\.conv(\d)\.net\.", r".conv\1.conv.net.", key)
        key = re.sub(r"\.conv(\d)\.weight$", r".conv\1.conv.weight", key)
        key = re.sub(r"\.bn(\d)\.", r".conv\1.bn.", key)
        key = key.replace("downsample.0.", "downsample.conv.").replace("downsample.1.", "downsample.bn.")
        key = key.replace("backbone.conv1.weight", "backbone.conv1.conv.weight")
        key = key.replace("backbone.bn1.", "backbone.conv1.bn.")
        out[key] = value
    return out


@pytest.mark.parametrize("name, place", [("resnet50_blockres", "blockres"), ("resnet50_block", "block")])
def test_mmaction2_matches_independent_forward(tmp_path, release_layouts, name, place):
    state = to_mmaction2(random_state(release_layouts[name], seed=6))
    assert "backbone.conv1.conv.weight" in state
    if place == "blockres":
        assert "backbone.layer1.0.conv1.conv.net.weight" in state and "backbone.layer1.0.conv1.bn.weight" in state
        assert "backbone.layer1.0.downsample.conv.weight" in state
    else:
        assert "backbone.layer1.0.net.conv1.conv.weight" in state
    path = tmp_path / "tsm_mm.pth"
    torch.save({"meta": {"epoch": 50}, "state_dict": state}, path)
    model = load_checkpoint(path, n_segment=T).model
    assert (model.config.arch, model.config.place, model.config.num_classes) == ("resnet50", place, 10)
    x = clips(batch=1)
    assert_close(our_logits(model, x), resnet_forward(state, x, n_segment=T, layout="mmaction2"))


def test_mmaction2_resnet18_basic_blocks(tmp_path):
    # a layout the release file does not list: build it from our own resnet18's keys
    ours = build_model("resnet18", num_classes=7, n_segment=T).state_dict()
    release = {k.replace("backbone.", "base_model.").replace("head.", "new_fc."): v for k, v in ours.items()}
    state = to_mmaction2(random_state({k: list(v.shape) for k, v in release.items()}, seed=7))
    model = import_mmaction2_checkpoint({"state_dict": state}, n_segment=T)
    assert (model.config.arch, model.config.num_classes) == ("resnet18", 7)
    x = clips(batch=1)
    assert_close(our_logits(model, x), resnet_forward(state, x, n_segment=T, layout="mmaction2"))


# --- round trip and CLI --------------------------------------------------------------


def test_import_to_our_format_round_trip_and_cli(tmp_path, release_layouts, capsys):
    state = random_state(release_layouts["resnet50_blockres"], seed=8)
    src = tmp_path / "release.pth.tar"
    torch.save(release_checkpoint(state, "resnet50"), src)
    imported = import_checkpoint(src, tmp_path / "ours.pt", n_segment=T)
    assert imported.source_format == "reference" and "resnet50" in imported.summary()
    x = clips(batch=1)
    expected = resnet_forward(state, x, n_segment=T)
    assert_close(our_logits(load_model(imported.out), x), expected)
    # ours loads without n_segment; a disagreeing n_segment is refused
    assert load_checkpoint(imported.out).config.n_segment == T
    with pytest.raises(CheckpointError, match="n_segment=4 was given but the checkpoint was saved with n_segment=8"):
        load_checkpoint(imported.out, n_segment=4)

    out = tmp_path / "cli.pt"
    assert main(["import", str(src), "--out", str(out), "--segments", str(T)]) == 0
    assert "reference" in capsys.readouterr().out
    assert_close(our_logits(load_model(out), x), expected)
    assert main(["import", str(src), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pass n_segment" in err[0] and str(src) in err[0]


# --- errors ----------------------------------------------------------------------------


def test_missing_and_unexpected_keys_are_listed(release_layouts):
    state = random_state(release_layouts["resnet50_blockres"], seed=9)
    broken = dict(state)
    del broken["base_model.layer1.0.bn2.running_var"]
    broken["base_model.extra.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointError) as info:
        import_reference_checkpoint(release_checkpoint(broken, "resnet50"), n_segment=T)
    message = str(info.value)
    assert "missing keys: backbone.layer1.0.bn2.running_var" in message
    assert "unexpected keys: backbone.extra.weight" in message

    misshapen = dict(state)
    misshapen["base_model.layer1.0.bn2.weight"] = torch.ones(3)
    with pytest.raises(CheckpointError, match=r"wrong shape keys: backbone.layer1.0.bn2.weight \(3,\) vs \(64,\)"):
        import_reference_checkpoint(release_checkpoint(misshapen, "resnet50"), n_segment=T)


def test_inconsistent_or_unknown_checkpoints(tmp_path, release_layouts):
    state = random_state(release_layouts["resnet50_blockres"], seed=10)
    with pytest.raises(CheckpointError, match="arch entry says 'resnet101' but its keys are those of resnet50"):
        import_reference_checkpoint(release_checkpoint(state, "resnet101"), n_segment=T)
    with pytest.raises(CheckpointError, match="arch='resnet18' was given"):
        import_reference_checkpoint(release_checkpoint(state, "resnet50"), n_segment=T, arch="resnet18")
    truncated = {k: v for k, v in state.items() if not k.startswith("base_model.layer4.2.")}
    with pytest.raises(CheckpointError, match=r"unsupported ResNet layout \(blocks per layer \[3, 4, 6, 2\]"):
        import_reference_checkpoint(release_checkpoint(truncated, "resnet50"), n_segment=T)
    with pytest.raises(CheckpointError, match=r"unknown checkpoint layout.*got a.weight"):
        detect_format({"state_dict": {"a.weight": torch.zeros(1)}}, source="x.pth")
    with pytest.raises(CheckpointError, match=r"'step' is not tensors|step is not tensors"):
        detect_format({"state_dict": {"step": 3}}, source="x.pth")
    with pytest.raises(ValueError, match="pass n_segment"):
        load_checkpoint(_save(tmp_path / "r.pth", release_checkpoint(state, "resnet50")))
    with pytest.raises(FileNotFoundError, match=r"checkpoint not found: .*nope.pth"):
        load_checkpoint(tmp_path / "nope.pth", n_segment=T)
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"garbage.pth: not a checkpoint"):
        load_checkpoint(tmp_path / "garbage.pth", n_segment=T)

    mm = to_mmaction2(state)
    mm["backbone.layer2.0.non_local_block.g.conv.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"non-local blocks .* are not supported"):
        import_mmaction2_checkpoint({"state_dict": mm}, n_segment=T)


def _save(path: Path, data: dict) -> Path:
    torch.save(data, path)
    return path


def test_our_own_checkpoint_is_detected(tmp_path):
    model = build_model("resnet18", num_classes=3, n_segment=4)
    path = save_checkpoint(model, tmp_path / "m.pt")
    assert detect_format(torch.load(path, weights_only=True)) == "temporal-shift"
    loaded = load_checkpoint(path).model
    x = torch.randn(1, 4, 3, 32, 32)
    assert torch.equal(our_logits(loaded, x), our_logits(model.eval(), x))
