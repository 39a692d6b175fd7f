"""The comparison models as families of ModelConfig: the contract every family keeps
(shapes, checkpoints, ONNX, training steps, one-line errors), and the single-frame model.

The model-specific tests (published FLOPs, inflation, ...) are in test_zoo_*.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from temporal_shift.checkpoint.format import save_checkpoint
from temporal_shift.checkpoint.loading import load_model
from temporal_shift.data.encode import write_frame_folder
from temporal_shift.data.lists import write_frame_list
from temporal_shift.engine.config import load_config
from temporal_shift.engine.export import export_model, verify_export
from temporal_shift.engine.train import train
from temporal_shift.models.config import ModelConfig
from temporal_shift.models.factory import FAMILIES, build_model, check_config, model_from_config
from temporal_shift.models.optim_groups import param_groups

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 32  # small frames: the contract, not the published cost, is under test here

# The 3D families' ONNX export (dynamo) and C3D's training steps take 10-30 s each: slow
# (test_zoo_3d.py / test_zoo_2d.py cover their own parts in the default suite).
HEAVY = {"c3d", "i3d", "eco_lite", "eco_full"}


def _families(heavy: set[str]) -> list:
    return [pytest.param(f, marks=pytest.mark.slow) if f in heavy else f for f in FAMILIES]


def _tiny(family: str, **options) -> torch.nn.Module:
    cls = FAMILIES[family]
    torch.manual_seed(0)
    return build_model(cls.archs[0], num_classes=3, family=family, n_segment=min(cls.frames), **options)


def _clips(model: torch.nn.Module, batch: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, model.config.n_segment, 3, SIZE, SIZE, generator=g)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_declares_what_it_takes(family: str) -> None:
    cls = FAMILIES[family]
    assert cls.archs and all(isinstance(a, str) for a in cls.archs)
    assert isinstance(cls.input_size, int) and cls.input_size > 0
    assert cls.frames and all(isinstance(t, int) and t > 0 for t in cls.frames)
    for t in cls.frames:  # every published T builds
        ModelConfig(arch=cls.archs[0], family=family, shift=family == "tsn", n_segment=t, num_classes=5)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_shapes_and_wrong_input(family: str) -> None:
    model = _tiny(family).eval()
    with torch.no_grad():
        assert model(_clips(model)).shape == (2, 3)
    wrong = torch.randn(2, model.config.n_segment + 1, 3, SIZE, SIZE)
    with pytest.raises(ValueError, match=rf"T={model.config.n_segment}"):
        model(wrong)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_checkpoint_round_trip(family: str, tmp_path: Path) -> None:
    model = _tiny(family).eval()
    path = save_checkpoint(model, tmp_path / "m.pt")
    loaded = load_model(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    clips = _clips(model)
    with torch.no_grad():
        torch.testing.assert_close(loaded(clips), model(clips), rtol=0, atol=0)


@pytest.mark.parametrize("family", _families(HEAVY))
def test_onnx_export_matches_pytorch(family: str, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    model = _tiny(family)
    out = export_model(model, tmp_path / "m.onnx", format="onnx", size=SIZE)
    assert verify_export(model, out, format="onnx", size=SIZE).max_rel < 1e-4


@pytest.mark.parametrize("family", _families({"c3d"}))
def test_a_few_training_steps_lower_the_loss(family: str) -> None:
    model = _tiny(family, dropout=0.0).train()
    g = torch.Generator().manual_seed(1)
    labels = torch.tensor([0, 1, 2, 0])
    # every frame of a clip carries its class (a colour offset), so any frame choice can learn it
    clips = torch.randn(4, model.config.n_segment, 3, SIZE, SIZE, generator=g) * 0.5
    clips[torch.arange(4), :, labels] += 1.5
    groups = param_groups(model)  # every parameter has a rule in the reference recipe's groups
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in model.parameters() if p.requires_grad)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(6):
        loss = torch.nn.functional.cross_entropy(model(clips), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "tsn"])
def test_comparison_families_refuse_tsn_options(family: str) -> None:
    arch = FAMILIES[family].archs[0]
    for option in ("shift", "temporal_pool", "non_local"):
        with pytest.raises(ValueError, match=rf"{option}=True is for the tsn family.*set {option} to false"):
            check_config(
                ModelConfig(
                    arch=arch, family=family, n_segment=max(FAMILIES[family].frames), **{"shift": False, option: True}
                )
            )
    with pytest.raises(ValueError, match=rf"unknown arch 'vgg16' for model family '{family}'"):
        check_config(ModelConfig(arch="vgg16", family=family, shift=False))


def test_unknown_family_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown model family 'x3d'; supported: tsn, single_frame, "):
        check_config(ModelConfig(family="x3d"))


def test_build_model_defaults_shift_off_for_comparison_families() -> None:
    model = build_model("resnet18", num_classes=4, family="single_frame", n_segment=4)
    assert model.config.shift is False
    with pytest.raises(ValueError, match="shift=True is for the tsn family"):
        build_model("resnet18", num_classes=4, family="single_frame", shift=True)


def test_checkpoints_without_family_load_as_tsn(tmp_path: Path) -> None:
    """Checkpoints written before model families existed have no 'family' key."""
    model = build_model("resnet18", num_classes=3, n_segment=2).eval()
    path = save_checkpoint(model, tmp_path / "old.pt")
    data = torch.load(path, weights_only=False)
    del data["model_config"]["family"]
    torch.save(data, path)
    assert load_model(path).config.family == "tsn"


# --- single frame ----------------------------------------------------------------------


def test_single_frame_uses_the_centre_frame_in_eval() -> None:
    model = _tiny("single_frame")
    model = build_model("resnet18", num_classes=3, family="single_frame", n_segment=5).eval()
    clips = torch.randn(2, 5, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = model.head(model.backbone(clips[:, 2]))
        torch.testing.assert_close(model(clips), expected)
        other = clips.clone()
        other[:, [0, 1, 3, 4]] = 0  # frames it does not look at change nothing
        torch.testing.assert_close(model(other), expected)


def test_single_frame_samples_one_frame_per_clip_in_training() -> None:
    model = build_model("resnet18", num_classes=3, family="single_frame", n_segment=6)
    clips = torch.arange(6.0).view(1, 6, 1, 1, 1).expand(64, 6, 3, 2, 2)
    torch.manual_seed(0)
    picked = model.train().pick_frames(clips)[:, 0, 0, 0]
    assert picked.shape == (64,)
    assert set(picked.tolist()) == set(range(6))  # every frame is seen over a batch of 64
    assert torch.equal(model.eval().pick_frames(clips)[:, 0, 0, 0], torch.full((64,), 3.0))


def test_single_frame_costs_one_frame() -> None:
    from temporal_shift.apps.bench.overhead import count_flops

    tsn = build_model("resnet18", num_classes=3, shift=False, n_segment=8).eval()
    single = build_model("resnet18", num_classes=3, family="single_frame", n_segment=8).eval()
    clips = torch.randn(1, 8, 3, SIZE, SIZE)
    assert count_flops(single, clips) * 8 == pytest.approx(count_flops(tsn, clips), rel=1e-3)


# --- through tsm train / tsm test --------------------------------------------------------


@pytest.fixture(scope="module")
def colour_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two classes told apart by colour in every frame: 12 train, 4 val clips of 6 frames."""
    root = tmp_path_factory.mktemp("colour")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(16):
        label = i % 2
        clip = rng.integers(0, 120, size=(6, 32, 32, 3)).astype(np.uint8)
        clip[..., 0 if label == 0 else 2] += 120
        write_frame_folder(root / f"v{i:03d}", clip, quality=90)
        rows.append((f"v{i:03d}", 6, label))
    write_frame_list(root / "train.txt", rows[:12])
    write_frame_list(root / "val.txt", rows[12:])
    return root


def test_tsm_train_and_tsm_test_take_a_comparison_family(tmp_path: Path, colour_data: Path, run_cli) -> None:
    import yaml

    config_path = tmp_path / "single.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "model": {"arch": "resnet18", "family": "single_frame", "shift": False, "n_segment": 4, "dropout": 0.0},
                "data": {
                    "root": str(colour_data),
                    "train_list": "train.txt",
                    "val_list": "val.txt",
                    "num_classes": 2,
                    "size": 32,
                    "scale_size": 32,
                    "flip": False,
                    "batch_size": 4,
                    "workers": 0,
                },
                "optim": {"optimizer": "adamw", "lr": 1e-3, "lr_batch": None, "schedule": "cosine", "epochs": 3},
                "run": {"out_dir": str(tmp_path / "run"), "seed": 0, "progress": False},
            }
        )
    )
    result = train(load_config(config_path))
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    best = tmp_path / "run" / "best.pt"
    assert load_model(best).config.family == "single_frame"
    r = run_cli(
        [
            "test",
            "--checkpoint",
            best,
            "--data",
            colour_data,
            "--list",
            "val.txt",
            "--workers",
            0,
            "--no-progress",
            "--out",
            tmp_path / "test",
        ]
    )
    assert r.code == 0, r.err
    assert "top1" in r.out.lower() or "top-1" in r.out.lower()


def test_yaml_comparison_family_with_shift_is_a_one_line_error(tmp_path: Path, run_cli) -> None:
    import yaml

    config_path = tmp_path / "bad.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "model": {"arch": "resnet18", "family": "single_frame"},
                "data": {"root": "r", "train_list": "t.txt", "val_list": "v.txt", "num_classes": 2},
                "run": {"out_dir": str(tmp_path / "o")},
            }
        )
    )
    r = run_cli(["train", "--config", config_path])
    assert r.code != 0
    assert len(r.err.strip().splitlines()) == 1
    assert "shift=True is for the tsn family" in r.err and "bad.yaml" in r.err


def test_model_from_config_builds_every_family() -> None:
    for family, cls in FAMILIES.items():
        config = ModelConfig(
            arch=cls.archs[0], family=family, shift=family == "tsn", n_segment=min(cls.frames), num_classes=2
        )
        assert isinstance(model_from_config(config), cls)
