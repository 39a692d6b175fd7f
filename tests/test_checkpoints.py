"""Our checkpoint format, atomic saving, loading, 2D backbone weights."""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import torchvision

from temporal_shift.checkpoint.format import (
    CheckpointError,
    atomic_save,
    read_checkpoint,
    save_checkpoint,
)
from temporal_shift.checkpoint.loading import load_checkpoint, load_model
from temporal_shift.hub.build import build_model


def test_load_model_rebuilds_with_no_other_arguments(tmp_path):
    model = build_model("resnet18", num_classes=6, n_segment=4, mode="causal", dropout=0.2).eval()
    path = save_checkpoint(model, tmp_path / "run" / "best.pt", extra={"epoch": 3})
    loaded = load_model(path)
    assert loaded.config == model.config
    assert not loaded.training
    x = torch.randn(2, 4, 3, 48, 48)
    assert torch.equal(loaded(x), model(x))
    assert read_checkpoint(path)["epoch"] == 3


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "ckpt.pt"
    atomic_save({"a": torch.ones(2)}, target)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError, match="cannot pickle"):
        atomic_save({"a": torch.zeros(2), "b": Unpicklable()}, target)
    assert torch.equal(torch.load(target)["a"], torch.ones(2))  # old file intact
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_reserved_extra_entry_is_refused(tmp_path):
    model = build_model("resnet18", num_classes=2, n_segment=2)
    with pytest.raises(ValueError, match="'state_dict' would overwrite"):
        save_checkpoint(model, tmp_path / "x.pt", extra={"state_dict": {}})


def test_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"checkpoint not found: .*nope.pt"):
        load_model(tmp_path / "nope.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"garbage.pt: not a checkpoint: a text file") as info:
        load_model(garbage)
    assert "weights_only" not in str(info.value)  # PyTorch's advice to load unsafely is not ours
    with_object = tmp_path / "with_object.pt"
    torch.save({"state_dict": {}, "args": argparse.Namespace(lr=0.1)}, with_object)
    with pytest.raises(
        CheckpointError,
        match=r"with_object.pt: refused: the file would run code "
        r"\(its pickle calls argparse.Namespace\)",
    ) as info:
        load_model(with_object)
    assert "weights_only" not in str(info.value)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match=r"foreign.pt: not a temporal-shift checkpoint"):
        load_model(foreign)


class _RunsCode:
    """A pickle payload that runs a shell command when loaded without weights_only."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_a_pickle_that_would_run_code_is_refused_as_such(tmp_path, zipped):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "x": _RunsCode(marker)}, path, _use_new_zipfile_serialization=zipped)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert message.startswith(f"{path}: refused: the file would run code (its pickle calls posix.system)")
    assert "damaged" not in message and "weights_only" not in message and "\n" not in message
    assert not marker.exists()


def test_the_code_refusal_does_not_depend_on_torchs_wording(tmp_path, monkeypatch):
    """Each torch version words its refusal its own way (2.14: 'unsupported GLOBAL posix.system
    whose module posix is blocked'); the file's own pickle says what it would call."""
    path = tmp_path / "evil.pt"
    torch.save({"x": _RunsCode(tmp_path / "ran")}, path)

    def refuse(*args, **kwargs):
        raise pickle.UnpicklingError("Weights only load failed. A future wording of torch's refusal.")

    monkeypatch.setattr(torch, "load", refuse)
    with pytest.raises(CheckpointError, match=r"refused: the file would run code \(its pickle calls posix.system\)"):
        read_checkpoint(path)
    # a damaged file that names only what weights_only allows is still called damaged
    plain = tmp_path / "plain.pt"
    atomic_save({"a": torch.ones(2)}, plain)
    with pytest.raises(CheckpointError, match="damaged or truncated PyTorch file"):
        read_checkpoint(plain)


def _deflated(src: Path, dst: Path) -> Path:
    """``src`` (a torch.save archive) with its tensor records deflate-compressed."""
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w") as b:
        for info in a.infolist():
            b.writestr(
                info.filename,
                a.read(info.filename),
                compress_type=zipfile.ZIP_DEFLATED if "/data/" in info.filename else zipfile.ZIP_STORED,
            )
    return dst


def test_a_compressed_checkpoint_is_refused_before_it_inflates(tmp_path, monkeypatch):
    """A small file whose records declare far more than it holds (here 64 MiB of zeros in
    65 KB; 1 GiB in 1 MB works the same) is refused from its zip directory: torch.load,
    which would inflate it, is never called."""
    big = tmp_path / "big.pt"
    torch.save({"w": torch.zeros(16 << 20)}, big)
    bomb = _deflated(big, tmp_path / "bomb.pt")
    big.unlink()
    assert bomb.stat().st_size < 200_000

    def inflate(*args, **kwargs):
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", inflate)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(bomb)
    message = str(info.value)
    assert message.startswith(f"{bomb}: refused: its records would inflate to ")
    assert f"bytes from a file of {bomb.stat().st_size} bytes" in message
    assert "'big/data/0', declares 67108864 bytes" in message and "nothing was inflated" in message
    monkeypatch.undo()
    # a file as torch.save writes it passes, unless it is over the caller's bound
    small = tmp_path / "small.pt"
    torch.save({"w": torch.ones(1000)}, small)
    assert read_checkpoint(small)["w"].shape == (1000,)
    with pytest.raises(CheckpointError, match="more than the 1000 bytes allowed"):
        read_checkpoint(small, max_bytes=1000)


def test_a_zip_without_torch_saves_layout_is_refused(tmp_path):
    odd = tmp_path / "odd.pt"
    with zipfile.ZipFile(odd, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        z.writestr("elsewhere/data/0", b"")
    with pytest.raises(
        CheckpointError,
        match=r"odd\.pt: not a checkpoint: a zip archive without torch\.save's layout "
        r"\(a record 'elsewhere/data/0' outside its folder\)",
    ):
        read_checkpoint(odd)
    notes = tmp_path / "notes.pt"
    with zipfile.ZipFile(notes, "w") as z:
        z.writestr("notes/readme.txt", "hello")
    with pytest.raises(CheckpointError, match=r"no notes/data.pkl record"):
        read_checkpoint(notes)
    cut = tmp_path / "cut.pt"
    torch.save({"w": torch.ones(1000)}, cut)
    cut.write_bytes(cut.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=r"cut.pt: cannot read checkpoint: a damaged or truncated PyTorch file"):
        read_checkpoint(cut)


def test_state_dict_mismatch_lists_missing_and_unexpected_keys(tmp_path):
    model = build_model("resnet18", num_classes=4, n_segment=2)
    path = save_checkpoint(model, tmp_path / "m.pt")
    data = torch.load(path)
    data["state_dict"]["backbone.extra.weight"] = torch.zeros(1)
    del data["state_dict"]["head.bias"]
    data["state_dict"]["head.weight"] = torch.zeros(3, 512)
    torch.save(data, path)
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    message = str(info.value)
    assert "m.pt" in message and "missing keys: head.bias" in message
    assert "unexpected keys: backbone.extra.weight" in message
    assert "wrong shape keys: head.weight (3, 512) vs (4, 512)" in message


def test_bad_model_config_is_reported(tmp_path):
    path = save_checkpoint(build_model("resnet18", num_classes=4, n_segment=2), tmp_path / "m.pt")
    data = torch.load(path)
    data["model_config"]["arch"] = "alexnet"
    torch.save(data, path)
    with pytest.raises(CheckpointError, match=r"m.pt: bad model_config: unknown arch 'alexnet'"):
        load_model(path)


@pytest.mark.parametrize(
    ("arch", "kwargs"),
    [("resnet50", dict(non_local=True)), ("resnet50", dict(place="block", temporal_pool=True)), ("mobilenet_v2", {})],
)
def test_2d_backbone_weights_load_into_shifted_model(tmp_path, arch, kwargs):
    plain = getattr(torchvision.models, arch)()
    torch.save(plain.state_dict(), tmp_path / "imagenet.pt")
    model = build_model(arch, num_classes=3, n_segment=4, backbone_weights=tmp_path / "imagenet.pt", **kwargs)
    own = model.backbone.state_dict()
    plain_state = plain.state_dict()
    for key, value in own.items():
        if ".nl." in key:
            continue
        assert torch.equal(value, plain_state[key.replace(".net.", ".").replace(".block.", ".")]), key


def test_2d_backbone_weights_of_another_arch_are_refused(tmp_path):
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pt")
    with pytest.raises(CheckpointError, match=r"r18.pt: state dict does not fit the model; missing keys"):
        build_model("resnet50", num_classes=3, n_segment=4, backbone_weights=tmp_path / "r18.pt")


def test_checkpoints_module_is_file_io_only():
    # the file format imports no model code: only the strict state-dict loader (models.state)
    code = (
        "import sys, temporal_shift.checkpoint.format; "
        "print(sorted(m for m in sys.modules if m.startswith('temporal_shift')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    modules = eval(out)
    assert "temporal_shift.checkpoint.format" in modules
    allowed = {"temporal_shift.models", "temporal_shift.models.state"}  # the package's __init__ is lazy
    assert not [
        m
        for m in modules
        if m.startswith(
            ("temporal_shift.models", "temporal_shift.checkpoint.importers", "temporal_shift.checkpoint.loading")
        )
        and m not in allowed
    ], modules


def test_load_checkpoint_reports_format_names_and_input_size(tmp_path):
    model = build_model("resnet18", num_classes=3, n_segment=4).eval()
    names = ["a", "b", "c"]
    path = save_checkpoint(
        model,
        tmp_path / "m.pt",
        extra={"class_names": names, "config": {"data": {"size": 112, "scale_size": 128, "normalize": False}}},
    )
    loaded = load_checkpoint(path)
    assert (loaded.format, loaded.class_names, loaded.n_segment, loaded.num_classes) == ("temporal-shift", names, 4, 3)
    assert (loaded.input_size, loaded.scale_size, loaded.normalize) == (112, 128, False)
    assert loaded.config == model.config and not loaded.model.training
    x = torch.randn(1, 4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))
    # the same model under default_n_segment: ours keep their T, so it is ignored
    assert load_checkpoint(path, default_n_segment=8).n_segment == 4
    bare = load_checkpoint(save_checkpoint(model, tmp_path / "bare.pt"))
    assert (bare.class_names, bare.input_size, bare.scale_size, bare.normalize) == (None, 224, 256, True)
    # a foreign layout (the reference release's keys) needs T: n_segment or default_n_segment
    release = {
        "state_dict": {
            k.replace("backbone.", "base_model.").replace("head.", "new_fc."): v for k, v in model.state_dict().items()
        }
    }
    torch.save(release, tmp_path / "release.pth")
    with pytest.raises(ValueError, match=r"release.pth: a reference checkpoint does not record the number of frames"):
        load_checkpoint(tmp_path / "release.pth")
    foreign = load_checkpoint(tmp_path / "release.pth", default_n_segment=4)
    assert (foreign.format, foreign.class_names, foreign.n_segment) == ("reference", None, 4)
    with torch.no_grad():
        assert torch.equal(foreign.model(x), model(x))
    with pytest.raises(CheckpointError, match=r"release.pth: not a temporal-shift checkpoint"):
        load_model(tmp_path / "release.pth")
    torch.save({**torch.load(path), "class_names": ["a", "b"]}, tmp_path / "two.pt")
    with pytest.raises(CheckpointError, match=r"two.pt: 2 class names for a model with 3 classes"):
        load_checkpoint(tmp_path / "two.pt")
