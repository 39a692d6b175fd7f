"""Another commit's package in this process, next to the working tree's, for before/after timings.

Timing two commits in two processes compares two machine states; interleaved in one
process, both see the same load. `import_revision` extracts ``src/temporal_shift`` at a git
revision of this repository into a folder, renames the package to
``temporal_shift_<commit>`` and its registered op namespace likewise (``temporal_shift::``
is taken by the working tree's package), and imports one of its modules.
"""

from __future__ import annotations

import importlib
import io
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
# "temporal_shift" followed by "." or ":" is the package or the op namespace; the function
# temporal_shift() and names that merely contain it are left alone
_PACKAGE = re.compile(r"\btemporal_shift(?=[.:])")


def import_revision(revision: str, module: str, *, into: Path) -> ModuleType:
    """``temporal_shift.<module>`` as it is at ``revision``, imported as ``temporal_shift_<commit>.<module>``."""
    commit = _git("rev-parse", "--verify", f"{revision}^{{commit}}").decode().strip()
    name = f"temporal_shift_{commit[:10]}"
    root = into / name
    if not root.exists():
        archive = _git("archive", "--format=tar", commit, "src/temporal_shift")
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            for member in tar.getmembers():
                if not member.isfile():
                    continue
                path = root / Path(member.name).relative_to("src/temporal_shift")
                path.parent.mkdir(parents=True, exist_ok=True)
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                if path.suffix == ".py":
                    data = _PACKAGE.sub(name, data.decode()).encode()
                path.write_bytes(data)
    if str(into) not in sys.path:
        sys.path.insert(0, str(into))
    return importlib.import_module(f"{name}.{module}")


def _git(*args: str) -> bytes:
    done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"git {' '.join(args)}: {done.stderr.decode().strip()}")
    return done.stdout
