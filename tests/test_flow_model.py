"""The flow stream (2L-channel first conv, cross-modality init) and two-stream testing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn
from torchvision import models as tvm

from temporal_shift.checkpoint.format import save_checkpoint
from temporal_shift.checkpoint.loading import load_checkpoint
from temporal_shift.cli import main
from temporal_shift.data.encode import write_frame_folder
from temporal_shift.data.lists import write_frame_list
from temporal_shift.engine.config import load_config
from temporal_shift.engine.evaluate import EvalProtocol, Member, evaluate
from temporal_shift.engine.train import train
from temporal_shift.hub.build import build_model
from temporal_shift.models import ModelConfig
from temporal_shift.models.factory import check_config


def test_cross_modality_init_keeps_the_mean_response(tmp_path: Path) -> None:
    rgb = tvm.resnet18(weights=None)
    torch.save(rgb.state_dict(), tmp_path / "r18.pt")
    model = build_model(
        "resnet18", num_classes=3, n_segment=2, modality="flow", flow_length=5, backbone_weights=tmp_path / "r18.pt"
    )
    stem = model.backbone.conv1
    assert stem.weight.shape == (64, 10, 7, 7)
    expected = rgb.conv1.weight.mean(dim=1, keepdim=True).expand(-1, 10, -1, -1)
    torch.testing.assert_close(stem.weight, expected)
    # one image in every channel: the flow stem's response per input channel is the RGB one's
    image = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        flow_response = stem(image.expand(-1, 10, -1, -1)) / 10
        rgb_response = rgb.conv1(image.expand(-1, 3, -1, -1)) / 3
    torch.testing.assert_close(flow_response, rgb_response, rtol=1e-4, atol=1e-5)
    # the rest of the backbone is the RGB network's
    torch.testing.assert_close(model.backbone.layer4[1].conv2.weight, rgb.layer4[1].conv2.weight)


@pytest.mark.parametrize(("arch", "shift"), [("resnet18", False), ("resnet18", True), ("mobilenet_v2", True)])
def test_flow_stream_takes_2l_channels(arch: str, shift: bool) -> None:
    model = build_model(arch, num_classes=4, n_segment=4, shift=shift, modality="flow", flow_length=3).eval()
    assert model.config.input_channels == 6 and model.config.frames_per_segment == 3
    with torch.no_grad():
        assert model(torch.randn(2, 4, 6, 32, 32)).shape == (2, 4)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, T=4, C=6, H, W\) \(a stack of 3 flow"):
        model(torch.randn(2, 4, 3, 32, 32))
    first = next(m for m in model.backbone.modules() if isinstance(m, nn.Conv2d))
    assert first.in_channels == 6


def test_flow_model_config_checks() -> None:
    with pytest.raises(ValueError, match="unknown modality 'depth'"):
        ModelConfig(modality="depth")
    with pytest.raises(ValueError, match="flow_length must be at least 1, got 0"):
        ModelConfig(modality="flow", flow_length=0)
    with pytest.raises(ValueError, match="modality='flow' is for the tsn family"):
        check_config(ModelConfig(family="single_frame", shift=False, arch="resnet18", modality="flow"))
    with pytest.raises(ValueError, match="modality='flow' takes mode='bidirectional'"):
        ModelConfig(modality="flow", mode="causal")
    assert ModelConfig().input_channels == 3 and ModelConfig(modality="flow").input_channels == 10


def test_partial_bn_freezes_all_but_the_first_bn_of_the_flow_stream() -> None:
    model = build_model("resnet18", num_classes=2, n_segment=2, modality="flow", partial_bn=True).train()
    bns = [m for m in model.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns[0].training and bns[0].weight.requires_grad
    assert not any(bn.training or bn.weight.requires_grad for bn in bns[1:])


# --- two-stream, end to end ---------------------------------------------------------------


def _moving_clips(root: Path, *, per_class: int, frames: int = 8, size: int = 32) -> None:
    """Class 0: a textured square moving right; class 1: the same moving left. The frames'
    appearance is the same for both; the flow tells them apart."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(2 * per_class):
        label = i % 2
        texture = rng.integers(100, 256, (10, 10, 3), dtype=np.uint8)
        clip = np.full((frames, size, size, 3), 20, dtype=np.uint8)
        for t in range(frames):
            x = 3 + 2 * t if label == 0 else size - 13 - 2 * t
            clip[t, 11:21, x : x + 10] = texture
        write_frame_folder(root / f"v{i:02d}", clip, quality=95)
        rows.append((f"v{i:02d}", frames, label))
    write_frame_list(root / "train.txt", rows[: 3 * len(rows) // 4])
    write_frame_list(root / "val.txt", rows[3 * len(rows) // 4 :])
    (root / "classes.txt").write_text("right\nleft\n")


def _run_config(tmp_path: Path, root: Path, name: str, *, modality: str, train_list: str, val_list: str) -> Path:
    data = {
        "model": {
            "arch": "resnet18",
            "n_segment": 2,
            "shift": False,
            "dropout": 0.0,
            "modality": modality,
            "flow_length": 2,
        },
        "data": {
            "root": str(root),
            "train_list": train_list,
            "val_list": val_list,
            "num_classes": 2,
            "classes": "classes.txt",
            "size": 32,
            "scale_size": 32,
            "scales": [1.0],
            "flip": True,
            "batch_size": 4,
            "workers": 0,
        },
        "optim": {
            "optimizer": "adamw",
            "lr": 0.002,
            "lr_batch": None,
            "schedule": "cosine",
            "epochs": 1,
            "weight_decay": 0.0,
        },
        "run": {"out_dir": str(tmp_path / name), "seed": 0, "progress": False},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("setting", [{"template": "frame_{:04d}.jpg"}, {"kind": "videos"}])
def test_flow_training_refuses_rgb_list_settings_in_config_terms(tmp_path: Path, setting: dict) -> None:
    path = _run_config(
        tmp_path, tmp_path, "flow", modality="flow", train_list="train_flow.txt", val_list="val_flow.txt"
    )
    data = yaml.safe_load(path.read_text())
    data["data"].update(setting)
    path.write_text(yaml.safe_dump(data))
    (tmp_path / "classes.txt").write_text("right\nleft\n")  # checked before the data
    with pytest.raises(
        ValueError,
        match=r"^model.modality is flow: data.train_list/val_list are flow lists of tsm "
        r"prepare flow .* so data.template and data.kind: videos do not apply",
    ):
        train(load_config(path))


@pytest.fixture(scope="module")
def two_stream(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("cv2")
    from temporal_shift.data.flow import prepare_flow

    tmp = tmp_path_factory.mktemp("two_stream")
    root = tmp / "data"
    _moving_clips(root, per_class=4)
    for split in ("train", "val"):
        prepare_flow(root / f"{split}.txt", root=root, out_root=root, method="farneback", workers=1, progress=False)
    flow = train(
        load_config(
            _run_config(tmp, root, "flow", modality="flow", train_list="train_flow.txt", val_list="val_flow.txt")
        )
    )
    rgb = train(load_config(_run_config(tmp, root, "rgb", modality="rgb", train_list="train.txt", val_list="val.txt")))
    return {"root": root, "flow": flow.last_checkpoint, "rgb": rgb.last_checkpoint, "tmp": tmp}


def test_flow_stream_trains_and_two_stream_test_fuses_members(two_stream: dict[str, Path]) -> None:
    root = two_stream["root"]
    flow = load_checkpoint(two_stream["flow"])
    assert flow.config.modality == "flow" and flow.config.input_channels == 4
    with pytest.raises(ValueError, match=r"flow\.pt|last\.pt is a flow model: give the flow list"):
        evaluate([two_stream["flow"]], list_file="val.txt", root=root, workers=0, progress=False)
    protocol = EvalProtocol(clips="twice", crops=1)
    only_flow = evaluate(
        [two_stream["flow"]],
        list_file="val.txt",
        root=root,
        flow_list="val_flow.txt",
        protocol=protocol,
        workers=0,
        progress=False,
    )
    only_rgb = evaluate(
        [two_stream["rgb"]], list_file="val.txt", root=root, protocol=protocol, workers=0, progress=False
    )
    both = evaluate(
        [Member(two_stream["rgb"], weight=1.0), Member(two_stream["flow"], weight=1.5)],
        list_file="val.txt",
        root=root,
        flow_list="val_flow.txt",
        protocol=protocol,
        workers=0,
        progress=False,
    )
    assert both.num_videos == 2 and [m["modality"] for m in both.members] == ["rgb", "flow"]
    np.testing.assert_allclose(both.scores, 0.4 * only_rgb.scores + 0.6 * only_flow.scores, rtol=1e-6)
    assert "flow L=2" in both.summary()


def test_flow_list_must_pair_with_the_videos(two_stream: dict[str, Path]) -> None:
    root = two_stream["root"]
    lines = (root / "val_flow.txt").read_text().splitlines()
    (root / "short_flow.txt").write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(ValueError, match=r"val\.txt:1: v06 has no entry in .*short_flow\.txt"):
        evaluate(
            [two_stream["rgb"], two_stream["flow"]],
            list_file="val.txt",
            root=root,
            flow_list="short_flow.txt",
            workers=0,
            progress=False,
        )
    skipped = evaluate(
        [two_stream["rgb"], two_stream["flow"]],
        list_file="val.txt",
        root=root,
        flow_list="short_flow.txt",
        workers=0,
        progress=False,
        on_error="skip",
    )
    assert skipped.num_videos == 1 and "v06 has no entry" in skipped.skipped[0]
    (root / "bad_flow.txt").write_text(lines[0].rsplit(" ", 1)[0] + " 1\n" + "\n".join(lines[1:]) + "\n")
    with pytest.raises(ValueError, match=r"bad_flow\.txt:1: label 1 but .*val\.txt:1 labels v06 0"):
        evaluate(
            [two_stream["rgb"], two_stream["flow"]],
            list_file="val.txt",
            root=root,
            flow_list="bad_flow.txt",
            workers=0,
            progress=False,
        )


def test_tsm_test_cli_two_stream(two_stream: dict[str, Path], capsys) -> None:
    root, out = two_stream["root"], two_stream["tmp"] / "results"
    code = main(
        [
            "test",
            "--checkpoint",
            str(two_stream["rgb"]),
            "--checkpoint",
            str(two_stream["flow"]),
            "--ensemble-weights",
            "1",
            "1.5",
            "--data",
            str(root),
            "--list",
            "val.txt",
            "--flow-list",
            "val_flow.txt",
            "--crops",
            "10",
            "--workers",
            "0",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "flow L=2, weight 0.6" in text and "10 crops" in text and "top-1" in text
    assert (out / "metrics.json").is_file()
    assert (
        main(
            [
                "test",
                "--checkpoint",
                str(two_stream["flow"]),
                "--data",
                str(root),
                "--list",
                "val.txt",
                "--workers",
                "0",
                "--no-progress",
            ]
        )
        == 2
    )
    assert "is a flow model: give the flow list" in capsys.readouterr().err


def test_flow_model_checkpoint_and_export_input(tmp_path: Path) -> None:
    from temporal_shift.engine.export import example_input

    model = build_model("resnet18", num_classes=3, n_segment=2, modality="flow", flow_length=2).eval()
    assert example_input(model, size=32).shape == (2, 2, 4, 32, 32)
    save_checkpoint(model, tmp_path / "flow.pt")
    loaded = load_checkpoint(tmp_path / "flow.pt")
    assert (loaded.config.modality, loaded.config.flow_length) == ("flow", 2)
    torch.testing.assert_close(loaded.model.backbone.conv1.weight, model.backbone.conv1.weight)


@pytest.mark.slow
def test_flow_model_exports_to_onnx(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from temporal_shift.engine.export import export_model, verify_export

    model = build_model("resnet18", num_classes=3, n_segment=2, modality="flow", flow_length=2, shift=True).eval()
    path = export_model(model, tmp_path / "flow.onnx", format="onnx", size=32)
    assert verify_export(model, path, format="onnx", size=32).max_rel < 1e-4


def test_flow_presets_read_flow_lists() -> None:
    configs = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*_flow*.yaml"))
    names = {p.name for p in configs}
    for wanted in (
        "synthetic_tsn_r18_flow.yaml",
        "synthetic_tsm_r18_flow.yaml",
        "tsn_r50_ucf101_flow.yaml",
        "tsm_r50_ucf101_flow.yaml",
        "tsn_r50_hmdb51_flow.yaml",
        "tsm_r50_hmdb51_flow.yaml",
        "tsn_r50_somethingv2_flow_8f.yaml",
        "tsm_r50_somethingv2_flow_8f.yaml",
    ):
        assert wanted in names
    for path in configs:
        config = load_config(path)
        assert config.model.modality == "flow" and config.model.family == "tsn", path.name
        assert config.data.train_list.endswith("_flow.txt") and config.data.val_list.endswith("_flow.txt"), path.name
        assert config.model.shift == path.name.startswith(("tsm", "synthetic_tsm")), path.name
