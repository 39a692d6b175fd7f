"""The before/after benchmarks of the shift's cost: another commit's package beside this one.

`benchmarks/revision.py` loads the package at a git revision under its own name (and op
namespace) so that ``benchmarks/shift_host_time.py --against REV`` and
``benchmarks/shift_variants.py --against REV`` time both in one process, interleaved;
`benchmarks/training_memory.py` counts the bytes each model keeps for the backward pass.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=300, check=False)


def _need_git_checkout() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: no other revision to load")


def test_host_time_against_a_revision_times_both_interleaved() -> None:
    _need_git_checkout()
    done = _run(str(BENCHMARKS / "shift_host_time.py"), "--repeats", "2", "--calls", "2", "--against", "HEAD")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "before: HEAD" in lines[0]
    assert re.search(r"after\s+IQR\s+before\s+IQR\s+after/before", lines[1]), lines[1]
    rows = {line[:42].strip(): re.findall(r"-?\d+\.\d+", line[42:]) for line in lines[2:]}
    for name in ("raw op", "temporal_shift()", "train shift", "wrapper", "wrapper train"):
        assert len(rows[name]) == 3 * 3, rows[name]  # after, before, after/before: median (q1 - q3)
    assert len(rows["train shift / slice copies x2 (<= 1)"]) == 2 * 3  # derived: no ratio column


def test_a_revision_loads_under_its_own_package_and_op_names(tmp_path: Path) -> None:
    _need_git_checkout()
    code = (
        "import sys, torch\n"
        f"sys.path.insert(0, {str(BENCHMARKS)!r})\n"
        "from pathlib import Path\n"
        "from revision import import_revision\n"
        "from temporal_shift.ops import shift as current\n"
        f"before = import_revision('HEAD', 'ops.shift', into=Path({str(tmp_path)!r}))\n"
        "package = before.__name__.split('.')[0]\n"
        "assert package.startswith('temporal_shift_') and before.__file__.startswith(sys.argv[1]), before.__file__\n"
        "x = torch.randn(8, 16, 2, 2)\n"
        "assert torch.equal(before.temporal_shift(x, 4), current.temporal_shift(x, 4))\n"
        "assert torch.equal(getattr(torch.ops, package).shift(x, 4, 2, 1, -1), current.temporal_shift(x, 4))\n"
        "copies = [m for m in sys.modules if m.startswith(package)]\n"
        "files = [getattr(sys.modules[m], '__file__', None) for m in copies]\n"
        "assert all(f is None or f.startswith(sys.argv[1]) for f in files), files\n"
        "print(package)\n"
    )
    done = _run("-c", code, str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / done.stdout.strip() / "ops" / "shift.py").is_file()


def test_an_unknown_revision_is_a_one_line_error(tmp_path: Path) -> None:
    _need_git_checkout()
    done = _run(str(BENCHMARKS / "shift_host_time.py"), "--repeats", "1", "--calls", "1", "--against", "no-such-rev")
    assert done.returncode != 0
    assert done.stderr.strip().startswith("git rev-parse --verify no-such-rev^{commit}:"), done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_training_memory_counts_tsm_as_tsn() -> None:
    done = _run(
        str(BENCHMARKS / "training_memory.py"),
        *("--arch", "resnet18", "--arch", "mobilenet_v2", "--segments", "2", "--size", "32", "--batch-size", "1"),
        *("--threads", "1"),
    )
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[2:]]
    assert [row[:2] for row in rows] == [
        ["resnet18", "contiguous"],
        ["resnet18", "channels_last"],
        ["mobilenet_v2", "contiguous"],
        ["mobilenet_v2", "channels_last"],
    ]
    assert all(row[4] == "1.0000" and float(row[2]) > 0 for row in rows), rows
