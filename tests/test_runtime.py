"""runtime.py: the one device resolver, the single-process Distributed, unwrap, keeping freed
memory on CPU training; which modules the applications import."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from temporal_shift.ops.runtime import Distributed, distributed, resolve_device, unwrap


def test_resolve_device() -> None:
    auto = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device() == resolve_device(None) == resolve_device("auto") == auto
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device 'gpu'; use auto, cpu, cuda or cuda:N"):
        resolve_device("gpu")
    if torch.cuda.is_available():
        assert resolve_device("cuda", local_rank=0) == torch.device("cuda:0")
        assert resolve_device("auto", local_rank=0) == torch.device("cuda:0")
    else:
        with pytest.raises(ValueError, match="device cuda:1 asked for but CUDA is not available; use cpu or auto"):
            resolve_device("cuda:1")


def test_single_process_distributed() -> None:
    with distributed("cpu") as d:
        assert d == Distributed(rank=0, world=1, local_rank=0) and d.main
        assert d.all_sum([1.0, 2.5], torch.device("cpu")) == [1.0, 2.5]
        assert d.any(True, torch.device("cpu")) and not d.any(False, torch.device("cpu"))
        assert d.gather({"a": 1}) == [{"a": 1}]


def test_unwrap_takes_off_wrappers() -> None:
    inner = nn.Linear(2, 2)
    assert unwrap(nn.DataParallel(inner)) is inner
    assert unwrap(inner) is inner


@pytest.mark.parametrize(
    ("module", "not_imported"),
    [
        (
            "temporal_shift.engine.predict",
            "temporal_shift.engine.evaluate",
        ),  # predict's helpers live in loading/runtime
    ],
)
def test_module_does_not_import(module: str, not_imported: str) -> None:
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith('temporal_shift')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert module in out and not [m for m in eval(out) if m.startswith(not_imported)], out


# Five TSM ResNet-18 training steps at 32x32 (as `tsm demo` trains) in a fresh process, with
# or without keep_freed_memory (process-wide and irreversible, hence the subprocess): the
# minor page faults a step after a warm-up step.
_FAULTS_A_STEP = """
import resource, sys, torch
from temporal_shift.models.factory import build_model
from temporal_shift.ops.runtime import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
torch.set_num_threads(1)
torch.manual_seed(0)
model = build_model("resnet18", num_classes=12, n_segment=4, shift=True)
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
clips, labels = torch.randn(16, 4, 3, 32, 32), torch.randint(0, 12, (16,))
def step():
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model(clips), labels).backward()
    opt.step()
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_keep_freed_memory_stops_the_page_faults_of_each_training_step() -> None:
    faults = {
        mode: float(
            subprocess.run(
                [sys.executable, "-c", _FAULTS_A_STEP, mode], capture_output=True, text=True, check=True
            ).stdout.split()[-1]
        )
        for mode in ("default", "keep")
    }
    # measured: 15,000-28,000 faults a step by default (60-110 MB faulted in again), 0-300 kept
    assert faults["default"] > 10 * max(faults["keep"], 100.0), faults


def test_cpu_training_keeps_freed_memory(tmp_path, monkeypatch) -> None:
    """`train` on a CPU asks for it (a process of its own or the job's), and only there."""
    import temporal_shift.engine.train as train_module
    from temporal_shift.apps.experiments.recipe import demo_config
    from temporal_shift.data.synthetic import generate_synthetic

    calls = []
    monkeypatch.setattr(train_module, "keep_freed_memory", lambda: calls.append(1) or True)
    data = tmp_path / "data"
    generate_synthetic(data, num_videos=24, size=32, frames=8, seed=0, workers=1, progress=False)
    config = demo_config(data, tmp_path / "run", epochs=1, workers=0, batch_size=4, device="cpu", progress=False)
    config.run.stop_after_steps = 1
    train_module.train(config)
    assert calls == [1]
