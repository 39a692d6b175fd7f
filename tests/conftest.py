"""Fixtures and helpers shared by the test files.

Fixtures: ``one_thread`` (torch on one thread for a module), ``run_cli`` (run ``tsm ...``
in-process and capture its output), ``release_layouts`` (the reference release's key
layouts, ``fixtures/reference_release/keys.json``), ``make_frames`` / ``make_video`` (small clips whose
frames encode their own index).

Plain helpers, imported with ``from conftest import ...`` (this directory is on the
path): ``index_frames`` / ``frame_ids``, ``random_state`` (weights for a key layout),
``calibrated_model`` (a small recognizer whose BN statistics come from real activations).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch

from temporal_shift.data.encode import write_frame_folder, write_video
from temporal_shift.models import build_model

# the reference release's state-dict keys and shapes per model (facts of a public file format)
RELEASE_KEYS_FILE = Path(__file__).resolve().parent / "fixtures" / "reference_release" / "keys.json"


# --- torch and the CLI -----------------------------------------------------------------


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` need CUDA: skipped (with the reason) on a machine without it."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (marker gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """torch on one thread for a module's tests (``pytestmark = pytest.mark.usefixtures("one_thread")``).

    Tiny models and frames gain nothing from threads, and one thread does not suffer
    from a machine shared with other work.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class CliRun(NamedTuple):
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture) -> Callable[[list[Any]], CliRun]:
    """``run_cli(["test", "--checkpoint", path, ...])``: run ``tsm`` in-process -> (code, stdout, stderr)."""
    from temporal_shift.cli import main

    def run(argv: list[Any]) -> CliRun:
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return CliRun(code, out, err)

    return run


# --- reference-release checkpoints -------------------------------------------------------


@pytest.fixture(scope="session")
def release_layouts() -> dict[str, dict[str, list[int]]]:
    """Model name -> {state-dict key: shape} of the reference release (``fixtures/reference_release``)."""
    if not RELEASE_KEYS_FILE.is_file():
        pytest.fail(f"reference key layouts not found at {RELEASE_KEYS_FILE}")
    return json.loads(RELEASE_KEYS_FILE.read_text())


def random_state(shapes: dict[str, list[int]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random but well-conditioned weights for a key -> shape layout."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(100)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        elif key.endswith("running_mean"):
            state[key] = torch.randn(shape, generator=g) * 0.1
        elif len(shape) == 1 and key.endswith("weight"):  # BN scale
            state[key] = torch.rand(shape, generator=g) * 0.5 + 0.5
        elif len(shape) == 1:  # biases
            state[key] = torch.randn(shape, generator=g) * 0.1
        else:
            fan_in = max(1, int(torch.tensor(shape[1:]).prod()))
            state[key] = torch.randn(shape, generator=g) * (1.0 / fan_in) ** 0.5
    return state


# --- models ------------------------------------------------------------------------------


def calibrated_model(
    arch: str,
    *,
    num_classes: int,
    n_segment: int,
    size: int,
    seed: int = 0,
    calibration_seed: int,
    head_std: float = 0.1,
    **options: Any,
) -> torch.nn.Module:
    """``build_model(arch, ...)`` in eval mode, head ~ N(0, head_std), BN statistics of one
    random batch (2 clips of ``size`` x ``size``), so no layer saturates and every frame's
    logits depend on its input."""
    torch.manual_seed(seed)
    model = build_model(arch, num_classes=num_classes, n_segment=n_segment, **options).eval()
    torch.nn.init.normal_(model.head.weight, 0, head_std)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 1.0
    model.train()
    with torch.no_grad():
        model(torch.randn(2, n_segment, 3, size, size, generator=torch.Generator().manual_seed(calibration_seed)))
    return model.eval()


# --- clips whose frames encode their index -------------------------------------------------


def index_frames(num_frames: int, *, height: int = 48, width: int = 64) -> np.ndarray:
    """Frames whose red level is 8 * index (recoverable after JPEG/H.264) and with a
    bright bar in the left half, to detect horizontal flips."""
    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    frames[..., 0] = (np.arange(num_frames) * 8 % 256)[:, None, None]
    frames[:, :, : width // 4, 1] = 255
    return frames


def frame_ids(clip) -> list[int]:
    """Recover frame indices from a uint8 (T, 3, H, W) clip of index_frames."""
    red = clip[:, 0].float().mean(dim=(1, 2))
    return [round(v / 8) for v in red.tolist()]


@pytest.fixture
def make_frames() -> Callable[..., Path]:
    """``make_frames(root, name, num_frames)``: a JPEG frame folder of ``index_frames``."""

    def make(root: Path, name: str, num_frames: int, **kw) -> Path:
        return write_frame_folder(root / name, index_frames(num_frames, **kw), quality=95)

    return make


@pytest.fixture
def make_video() -> Callable[..., Path]:
    """``make_video(path, num_frames)``: an H.264 video of ``index_frames``."""

    def make(path: Path, num_frames: int, **kw) -> Path:
        return write_video(path, index_frames(num_frames, **kw), fps=25, crf=10, gop=12)

    return make


def benchmark_script(name: str) -> Any:
    """The module of ``benchmarks/<name>.py``, loaded from its file (benchmarks/ is not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
