"""Training: config validation, a short CPU run that learns, exact resume, torchrun DDP."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from temporal_shift.checkpoint.format import read_checkpoint
from temporal_shift.checkpoint.loading import load_model
from temporal_shift.data.encode import write_frame_folder
from temporal_shift.data.lists import write_frame_list
from temporal_shift.engine.config import ConfigError, load_config
from temporal_shift.engine.train import train

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


# --- config -------------------------------------------------------------------------


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_presets_parse(path: Path) -> None:
    config = load_config(path)
    assert config.model_config().num_classes == config.data.num_classes


def test_preset_set_is_complete() -> None:
    names = {p.name for p in CONFIGS}
    for wanted in (
        "synthetic_tsm_r18.yaml",
        "synthetic_tsn_r18.yaml",
        "tsm_r50_kinetics400_8f.yaml",
        "tsm_r50_somethingv2_8f.yaml",
        "tsm_mobilenetv2_jester_8f.yaml",
    ):
        assert wanted in names


def _write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


BASE = {
    "model": {"arch": "resnet18", "n_segment": 4},
    "data": {"root": "r", "train_list": "t.txt", "val_list": "v.txt", "num_classes": 2},
    "run": {"out_dir": "o"},
}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lrr=0.1", "unknown key optim.lrr"),
        ("optim.lr=fast", "optim.lr must be float"),
        ("data.batch_size=2.5", "data.batch_size must be int"),
        ("model.shift=maybe", "model.shift must be bool"),
        ("optim.schedule=linear", "optim.schedule must be 'step' or 'cosine'"),
        ("model.arch=resnet9", "unknown arch 'resnet9'"),
        ("nosuch.key=1", "unknown section 'nosuch'"),
        ("optim.lr", "expected section.key=value"),
        ("optim.optimizer=adam", "optim.optimizer must be 'sgd' or 'adamw'"),
        ("data.decoder=ffmpeg", "data.decoder must be 'pyav' or 'torchcodec'"),
    ],
)
def test_config_errors_name_key_and_file(tmp_path: Path, override: str, message: str) -> None:
    path = _write_yaml(tmp_path / "c.yaml", BASE)
    with pytest.raises(ConfigError) as info:
        load_config(path, [override])
    assert message in str(info.value)
    if "override" not in str(info.value):
        assert str(path) in str(info.value)


# A non-default value for every model option: the config's model section must take each
# ModelConfig field (and only those, with data.num_classes as the number of classes).
NON_DEFAULT_MODEL = {
    "arch": "resnet34",
    "n_segment": 6,
    "shift": False,
    "fold_div": 4,
    "place": "block",
    "mode": "causal",
    "temporal_pool": True,
    "non_local": False,
    "dropout": 0.25,
    "partial_bn": True,
    "modality": "flow",
    "flow_length": 3,
    "small_maps": True,
}


def test_model_section_is_model_config(tmp_path: Path) -> None:
    from temporal_shift.models import ModelConfig, build_model

    options = [name for name in ModelConfig.field_names() if name not in ("num_classes", "family")]
    assert sorted(options) == sorted(NON_DEFAULT_MODEL)  # a new model option needs a value here
    data = {k: dict(v) for k, v in BASE.items()}
    # causal models stream RGB frames: the flow stream (tests/test_flow_model.py) is bidirectional
    data["model"] = dict(NON_DEFAULT_MODEL, non_local=True, temporal_pool=False, dropout=0, modality="rgb")
    config = load_config(_write_yaml(tmp_path / "full.yaml", data))
    expected = ModelConfig(num_classes=2, **data["model"])
    assert config.model_config() == expected and isinstance(config.model_config().dropout, float)
    assert build_model(num_classes=2, **data["model"]).config == expected
    assert "num_classes" not in config.to_dict()["model"]
    _write_yaml(tmp_path / "c.yaml", BASE)
    for name, value in NON_DEFAULT_MODEL.items():
        override = f"model.{name}={str(value).lower() if isinstance(value, bool) else value}"
        assert getattr(load_config(tmp_path / "c.yaml", [override]).model_config(), name) == value, name
    # family: the comparison models take no shift (tests/test_zoo.py checks each family)
    family = load_config(tmp_path / "c.yaml", ["model.family=single_frame", "model.shift=false"]).model_config()
    assert family.family == "single_frame"
    with pytest.raises(ConfigError, match=r"model.num_classes is not a key: the number of classes is data.num_classes"):
        load_config(tmp_path / "c.yaml", ["model.num_classes=3"])
    with pytest.raises(ConfigError, match=r"c\.yaml .*: model.place must be 'blockres' or 'block', got 'middle'"):
        load_config(tmp_path / "c.yaml", ["model.place=middle"])
    with pytest.raises(ConfigError, match=r"c\.yaml .*: model: temporal_pool needs an even n_segment, got 5"):
        load_config(tmp_path / "c.yaml", ["model.n_segment=5", "model.temporal_pool=true"])


def test_config_missing_required_and_overrides(tmp_path: Path) -> None:
    data = {k: dict(v) for k, v in BASE.items()}
    del data["data"]["num_classes"]
    path = _write_yaml(tmp_path / "c.yaml", data)
    with pytest.raises(ValueError, match=r"c\.yaml: missing required key data\.num_classes"):
        load_config(path)
    config = load_config(path, ["data.num_classes=5", "optim.lr_steps=[3, 6]", "optim.clip_grad=null"])
    assert config.data.num_classes == 5 and config.optim.lr_steps == [3, 6] and config.optim.clip_grad is None
    with pytest.raises(FileNotFoundError, match=r"nope.yaml"):
        load_config(tmp_path / "nope.yaml")


# --- tiny dataset ---------------------------------------------------------------------


def _colour_clips(root: Path, *, per_class: int, frames: int = 6, size: int = 32, seed: int = 0) -> None:
    """Two classes a single frame tells apart (reddish vs bluish noise), as JPEG folders."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(2 * per_class):
        label = i % 2
        clip = rng.integers(0, 120, size=(frames, size, size, 3)).astype(np.uint8)
        clip[..., 0 if label == 0 else 2] += 120
        write_frame_folder(root / f"v{i:03d}", clip, quality=90)
        rows.append((f"v{i:03d}", frames, label))
    write_frame_list(root / "train.txt", rows[: 3 * len(rows) // 4])
    write_frame_list(root / "val.txt", rows[3 * len(rows) // 4 :])


@pytest.fixture(scope="module")
def colour_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("colour")
    _colour_clips(root, per_class=8)  # 12 train, 4 val clips
    return root


def _config_file(tmp_path: Path, data_root: Path, **sections: dict) -> Path:
    data = {
        "model": {"arch": "resnet18", "n_segment": 4, "dropout": 0.3},
        "data": {
            "root": str(data_root),
            "train_list": "train.txt",
            "val_list": "val.txt",
            "num_classes": 2,
            "size": 32,
            "scale_size": 32,
            "scales": [1.0, 0.875],
            "flip": True,
            "batch_size": 4,
            "workers": 0,
        },
        "optim": {"lr": 0.02, "lr_batch": None, "schedule": "cosine", "warmup_epochs": 1, "epochs": 3},
        "run": {"out_dir": str(tmp_path / "run"), "seed": 1, "progress": False},
    }
    for name, values in sections.items():
        data[name].update(values)
    return _write_yaml(tmp_path / "config.yaml", data)


# --- training -------------------------------------------------------------------------


def test_short_cpu_run_learns_and_writes_outputs(tmp_path: Path, colour_data: Path) -> None:
    config = load_config(_config_file(tmp_path, colour_data, optim={"epochs": 4}))
    result = train(config)
    h = result.history
    assert len(h) == 4 and not result.interrupted
    assert h[-1]["train_loss"] < h[0]["train_loss"]
    assert result.best_top1 > 50.0  # chance is 50% on 2 classes
    out = Path(config.run.out_dir)
    for name in ("config.yaml", "last.pt", "best.pt", "log.csv"):
        assert (out / name).is_file(), name
    assert list((out / "tb").glob("events.out.tfevents.*"))
    assert load_config(out / "config.yaml") == config
    assert len((out / "log.csv").read_text().splitlines()) == 5
    model = load_model(out / "best.pt")
    assert model.config.n_segment == 4 and model.config.num_classes == 2


def test_resume_mid_epoch_matches_uninterrupted_run(tmp_path: Path, colour_data: Path) -> None:
    # 12 clips, batch 4: 3 steps per epoch; stop after step 4 (inside epoch 2), then resume.
    sections = {"optim": {"epochs": 2, "lr": 0.05}, "data": {"workers": 1}}
    (tmp_path / "a").mkdir()
    full = load_config(_config_file(tmp_path / "a", colour_data, **sections))
    done = train(full)
    (tmp_path / "b").mkdir()
    parted = load_config(_config_file(tmp_path / "b", colour_data, **sections), ["run.stop_after_steps=4"])
    first = train(parted)
    assert first.interrupted and first.global_step == 4 and first.epochs_completed == 1
    state = read_checkpoint(first.last_checkpoint)["train_state"]
    assert (state["epoch"], state["step_in_epoch"]) == (1, 1)
    resumed = train(load_config(tmp_path / "b" / "config.yaml", ["run.stop_after_steps=null"]), resume=True)
    assert not resumed.interrupted and resumed.global_step == 6
    a = read_checkpoint(done.last_checkpoint)["state_dict"]
    b = read_checkpoint(resumed.last_checkpoint)["state_dict"]
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-6, msg=key)
    for ra, rb in zip(done.history, resumed.history, strict=True):
        for key in ("train_loss", "train_top1", "val_loss", "val_top1", "lr"):
            assert ra[key] == pytest.approx(rb[key], rel=1e-5), key


def test_adamw_option_is_used_saved_and_checked_on_resume(tmp_path: Path, colour_data: Path) -> None:
    path = _config_file(tmp_path, colour_data, optim={"optimizer": "adamw", "lr": 1e-3, "epochs": 2})
    with pytest.raises(ConfigError, match=r"optim.nesterov is for optim.optimizer=sgd only"):
        load_config(path, ["optim.nesterov=true"])
    first = train(load_config(path, ["run.stop_after_steps=2"]))
    assert first.interrupted
    state = read_checkpoint(first.last_checkpoint)["train_state"]["optimizer"]["state"]
    assert state and all("exp_avg_sq" in s for s in state.values())  # Adam moments, not SGD momentum
    with pytest.raises(ValueError, match=r"optim.optimizer was 'adamw' in that run and is 'sgd' now"):
        train(load_config(path, ["optim.optimizer=sgd"]), resume=True)
    resumed = train(load_config(path), resume=True)
    assert not resumed.interrupted and resumed.global_step == 6


def test_resume_and_finetune_errors(tmp_path: Path, colour_data: Path) -> None:
    config = load_config(_config_file(tmp_path, colour_data))
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(config, resume=True)
    with pytest.raises(FileNotFoundError, match=r"missing.pt"):
        train(config, finetune_from=tmp_path / "missing.pt")
    bad = load_config(_config_file(tmp_path, colour_data), ["data.train_list=absent.txt"])
    with pytest.raises(FileNotFoundError, match=r"absent.txt"):
        train(bad)
    big = load_config(_config_file(tmp_path, colour_data), ["data.batch_size=64"])
    with pytest.raises(ValueError, match="fewer than one batch"):
        train(big)


def test_finetune_replaces_head_for_new_class_count(tmp_path: Path, colour_data: Path) -> None:
    from temporal_shift.checkpoint.format import save_checkpoint
    from temporal_shift.models.factory import build_model

    source = build_model("resnet18", num_classes=7, n_segment=4, dropout=0.3)
    ckpt = save_checkpoint(source, tmp_path / "src.pt")
    config = load_config(
        _config_file(tmp_path, colour_data),
        ["optim.epochs=1", "optim.warmup_epochs=0", "optim.fc_lr5=true", "optim.lr=1e-9", "run.amp=true"],
    )  # bf16 autocast on CPU
    result = train(config, finetune_from=ckpt)
    tuned = read_checkpoint(result.last_checkpoint)["state_dict"]
    key = "backbone.layer4.1.conv2.weight"
    torch.testing.assert_close(tuned[key], source.state_dict()[key], rtol=0, atol=1e-5)
    assert tuned["head.weight"].shape == (2, 512)


def test_class_names_are_saved_in_checkpoints(tmp_path: Path, colour_data: Path) -> None:
    (colour_data / "colour_classes.txt").write_text("reddish\nbluish\n")
    config = load_config(
        _config_file(
            tmp_path, colour_data, optim={"epochs": 1, "warmup_epochs": 0}, data={"classes": "colour_classes.txt"}
        )
    )  # relative to data.root
    result = train(config)
    assert read_checkpoint(result.last_checkpoint)["class_names"] == ["reddish", "bluish"]
    assert read_checkpoint(tmp_path / "run" / "best.pt")["class_names"] == ["reddish", "bluish"]
    (colour_data / "three.txt").write_text("a\nb\nc\n")
    with pytest.raises(ValueError, match=r"three\.txt: 3 class names but data\.num_classes is 2"):
        train(load_config(_config_file(tmp_path, colour_data), ["data.classes=three.txt"]))


@pytest.mark.slow  # 13-40 s on 2 shared cores
def test_torchrun_gloo_two_processes(tmp_path: Path, colour_data: Path) -> None:
    """2-process DDP on CPU: runs, all-reduces metrics, only rank 0 writes, uses the
    single-process learning rate for the same total batch and starts like it."""
    cfg = _config_file(
        tmp_path,
        colour_data,
        optim={"epochs": 2, "lr_batch": 8, "lr": 0.02},
        data={"batch_size": 2},
        model={"dropout": 0.0},
    )
    script = tmp_path / "run.py"
    script.write_text(
        "import sys, torch\n"
        "from temporal_shift.engine.config import load_config\n"
        "from temporal_shift.engine.train import train\n"
        "r = train(load_config(sys.argv[1], sys.argv[2:]))\n"
        "print('RESULT', r.global_step, r.epochs_completed, flush=True)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(script),
            str(cfg),
            f"run.out_dir={tmp_path / 'ddp'}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("RESULT 6 2") == 2  # 12 clips / (2 x 2) = 3 steps per epoch
    ddp = read_checkpoint(tmp_path / "ddp" / "last.pt")["train_state"]
    assert ddp["world_size"] == 2 and len(ddp["rank_states"]) == 2
    assert [row["train_clips"] for row in ddp["history"]] == [12, 12]  # summed over both processes
    assert ddp["history"][-1]["train_loss"] < ddp["history"][0]["train_loss"]
    single = train(load_config(cfg, ["data.batch_size=4", f"run.out_dir={tmp_path / 'single'}"]))
    for a, b in zip(ddp["history"], single.history, strict=True):
        assert a["lr"] == pytest.approx(b["lr"])  # linear scaling: same total batch -> same lr
    # same clips per step; only BN statistics (per process, half the batch) differ
    assert ddp["history"][0]["train_loss"] == pytest.approx(single.history[0]["train_loss"], abs=0.1)


# --- CLI --------------------------------------------------------------------------------


def test_cli_train_errors_are_one_line(tmp_path: Path, colour_data: Path, capsys: pytest.CaptureFixture) -> None:
    from temporal_shift.cli import main

    cfg = _config_file(tmp_path, colour_data)
    assert main(["train", "--config", str(cfg), "optim.momentun=0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tsm train: error: ") and "optim.momentun" in err and str(cfg) in err
    assert len(err.splitlines()) == 1
    assert main(["train", "--config", str(cfg), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_sigterm_saves_resumable_checkpoint(tmp_path: Path, colour_data: Path) -> None:
    import signal

    cfg = _config_file(tmp_path, colour_data, optim={"epochs": 40})
    proc = subprocess.Popen(
        [sys.executable, "-m", "temporal_shift.cli", "train", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.stderr is not None
    for line in proc.stderr:  # handlers are installed once the first epoch ran
        if line.startswith("epoch 1/40"):
            break
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "stopped (SIGTERM)" in err and "resumable checkpoint" in err
    state = read_checkpoint(tmp_path / "run" / "last.pt")["train_state"]
    assert 3 <= state["global_step"] < 40 * 3 and state["epoch"] < 40
    resumed = train(
        load_config(
            tmp_path / "run" / "config.yaml",
            ["optim.epochs=40", "run.stop_after_steps=" + str(state["global_step"] + 1)],
        ),
        resume=True,
    )
    assert resumed.global_step == state["global_step"] + 1
