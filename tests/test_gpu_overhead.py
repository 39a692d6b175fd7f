"""benchmarks/gpu_overhead.sh: one command for every GPU figure; needs nothing but torch + torchvision.

A bare GPU machine has torch and torchvision and nothing pip-installable, so the bench path
must not import the package's other dependencies: the tests run it in a venv that holds
only torch, torchvision and their requirements, with the package from src/ (PYTHONPATH).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import torch

from conftest import benchmark_script

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_overhead.sh"
# torch, torchvision and what they need (their requirements), and setuptools, which every
# pip-made Python 3.11 environment has and inductor's CPU code generation imports
# (torch.utils.cpp_extension); nothing else of the test venv.
BARE = (
    "torch",
    "torchgen",
    "functorch",
    "triton",
    "nvidia",
    "cuda",
    "filelock",
    "fsspec",
    "jinja2",
    "markupsafe",
    "networkx",
    "sympy",
    "mpmath",
    "isympy.py",
    "typing_extensions.py",
    "numpy",
    "numpy.libs",
    "torchvision",
    "torchvision.libs",
    "PIL",
    "pillow.libs",
    "setuptools",
    "_distutils_hack",
    "distutils-precedence.pth",
    "pkg_resources",
)


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding only torch, torchvision and their requirements (linked from this one)."""
    root = tmp_path_factory.mktemp("bare") / "venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(root)
    site = Path(torch.__file__).resolve().parents[1]
    bare_site = root / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    for name in BARE:
        if (site / name).exists():
            (bare_site / name).symlink_to(site / name)
    return root / "bin" / "python"


def _env(python: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHON"] = str(python)
    return env


def test_the_bare_venv_lacks_the_other_dependencies(bare_python: Path) -> None:
    for module in ("matplotlib", "tensorboard", "yaml", "av", "tqdm", "onnx", "temporal_shift"):
        done = subprocess.run(
            [str(bare_python), "-c", f"import {module}"], env=_env(bare_python), capture_output=True, text=True
        )
        assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr, module


def test_bench_path_needs_only_torch_and_torchvision(bare_python: Path) -> None:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import torch; torch.set_num_threads(1)\n"
        "import temporal_shift.apps.bench.overhead, temporal_shift.apps.bench.train, temporal_shift.engine.compiled\n"
        "r = temporal_shift.apps.bench.overhead.benchmark_overhead("
        "arch='resnet18', n_segment=2, size=32, repeats=1, warmup=0, device='cpu')\n"
        "print(r.table())\n"
    )
    done = subprocess.run(
        [str(bare_python), "-c", code, str(ROOT / "src")],
        env=_env(bare_python),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "TSM/TSN latency ratio" in done.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_without_cuda_it_fails_clearly(bare_python: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", str(SCRIPT), "--out", str(tmp_path / "out")],
        env=_env(bare_python),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert "gpu_overhead: error: no CUDA device" in done.stderr and "--smoke" in done.stderr
    assert not (tmp_path / "out").exists()


def test_unknown_row_is_an_error(bare_python: Path) -> None:
    done = subprocess.run(
        ["bash", str(SCRIPT), "--smoke", "--rows", "infer-b1,infer-b2"],
        env=_env(bare_python),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "unknown rows ['infer-b2']" in done.stderr


@pytest.mark.slow
def test_smoke_run_prints_every_row(bare_python: Path, tmp_path: Path) -> None:
    """All eight rows end to end on the CPU at toy sizes (two compilations: minutes with a cold cache)."""
    out = tmp_path / "out"
    done = subprocess.run(
        ["bash", str(SCRIPT), "--smoke", "--out", str(out)],
        env=_env(bare_python),
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = (out / "table.md").read_text()
    for where in (
        "training step, bf16 autocast, batch 32, eager",
        "training step, bf16 autocast, batch 32, torch.compile",
        "inference fp32, batch 16",
        "inference fp32, batch 1, eager",
        "MobileNetV2 inference fp32, batch 1",
        "compile reduce-overhead (CUDA graphs)",
        "training step, bf16 autocast, batch 32, eager: peak memory",
        "shift host time per call",
        "shift, in-place pair vs one out-of-place launch",
    ):
        assert where in table and where in done.stdout
    assert "failed" not in table
    assert sorted(p.name for p in out.glob("*.json")) == sorted(
        f"{r}.json"
        for r in (
            "train-eager",
            "train-compile",
            "infer-b16",
            "infer-b1",
            "mbv2-b1",
            "infer-b1-graph",
            "shift-host",
            "shift-sizes",
        )
    )
    assert "clips/s" in table and " ms " in table


def test_kernel_check_compares_devices_bit_for_bit() -> None:
    """The script's pre-timing check, run CPU against CPU here (on a GPU it checks Triton)."""
    assert benchmark_script("gpu_overhead").check_shift_kernels("cpu") == 96


PAPER_TABLES = ROOT / "benchmarks" / "gpu_paper_tables.sh"


def test_paper_tables_path_needs_only_torch_and_torchvision(bare_python: Path) -> None:
    """benchmarks/gpu_paper_tables.sh measures with `bench.compare` and `bench.proportions` on a bare GPU machine."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import torch; torch.set_num_threads(1)\n"
        "import temporal_shift.apps.bench.compare\n"
        "from temporal_shift.apps.bench.proportions import shift_latency\n"
        "r = shift_latency(arch='resnet18', size=32, n_segment=2, repeats=1, warmup=0, device='cpu')\n"
        "print(sorted(r['per_proportion']))\n"
    )
    done = subprocess.run(
        [str(bare_python), "-c", code, str(ROOT / "src")],
        env=_env(bare_python),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "'1/4'" in done.stdout and "'1 (all)'" in done.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_paper_tables_without_cuda_fail_clearly(bare_python: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", str(PAPER_TABLES), "--out", str(tmp_path / "out")],
        env=_env(bare_python),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and "no CUDA device" in done.stderr and "--smoke" in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_paper_tables_smoke_run_in_a_bare_venv_then_replot(bare_python: Path, tmp_path: Path) -> None:
    """Both tables end to end on the CPU at toy sizes without matplotlib; the PNGs drawn afterwards."""
    out = tmp_path / "out"
    done = subprocess.run(
        ["bash", str(PAPER_TABLES), "--smoke", "--out", str(out)],
        env=_env(bare_python),
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    tables = (out / "tables.md").read_text()
    assert "x TSM" in tables and "| 1/4 |" in tables and "+12.4% (naive full shift)" in tables
    assert "--replot" in done.stdout and not (out / "compare.png").exists()
    env = {**os.environ, "PYTHON": sys.executable}
    again = subprocess.run(["bash", str(PAPER_TABLES), "--replot", str(out)], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (out / "compare.png").stat().st_size > 0 and (out / "shift-latency.png").stat().st_size > 0
