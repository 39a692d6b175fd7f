"""runtime.py: the one device resolver, the single-process Distributed, unwrap; which
modules the applications import."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from temporal_shift.runtime import Distributed, distributed, resolve_device, unwrap


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


@pytest.mark.parametrize(("module", "not_imported"), [
    ("temporal_shift.predict", "temporal_shift.evaluate"),  # predict's helpers live in loading/runtime
])
def test_module_does_not_import(module: str, not_imported: str) -> None:
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith('temporal_shift')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert module in out and not [m for m in eval(out) if m.startswith(not_imported)], out
