"""The `tsm` command's common behaviour (error handling shared by all sub-commands)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_reader_going_away_is_a_quiet_sigpipe_exit(tmp_path: Path) -> None:
    # like `tsm ... | head -1`: the read end of stdout closes before the command prints
    proc = subprocess.Popen(
        [sys.executable, "-m", "temporal_shift.cli", "synth", "--out", str(tmp_path / "s"), "--num-videos", "24",
         "--size", "16", "--frames", "2", "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err
    assert (tmp_path / "s" / "classes.txt").is_file()  # the work itself was done
