"""The repository stands alone: a clone with nothing beside it passes its tests.

Nothing under ``src/`` or ``tests/`` may read a path outside the repository (a user's
clone has no ``../shared``): the facts the tests need (e.g. the reference release's
checkpoint key layouts) are fixtures inside ``tests/fixtures``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# a path that climbs out of the repository from a file in src/ or tests/
OUTSIDE = re.compile(r"parents\[[2-9]\]|\.\./shared|/shared/formats|/work/")


def _repo_files() -> list[str]:
    """The repository's files as a clone would have them (tracked and new, not ignored)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: nothing to clone")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (REPO / name).is_file()]


def test_no_source_or_test_file_reads_outside_the_repository() -> None:
    offenders = []
    for folder in ("src", "tests"):
        for path in sorted((REPO / folder).rglob("*.py")):
            if path == Path(__file__).resolve():
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if OUTSIDE.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "reads outside the repository:\n" + "\n".join(offenders)


def test_a_clone_alone_in_a_folder_passes_the_importer_tests(tmp_path: Path) -> None:
    clone = tmp_path / "alone" / "temporal-shift"  # nothing beside it: no ../shared
    for name in _repo_files():
        target = clone / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    env = dict(os.environ, PYTHONPATH=str(clone / "src"), PYTHONDONTWRITEBYTECODE="1")
    where = subprocess.run(
        [sys.executable, "-c", "import temporal_shift; print(temporal_shift.__file__)"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(clone), f"imported {where}, not the clone's package"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_importers.py",
            "tests/test_online.py",
            "-k",
            "reference or release or import or online_demo",
        ],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert " passed" in run.stdout and "error" not in run.stdout.splitlines()[-1]
