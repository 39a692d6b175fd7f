"""Checkpoint files: our format, atomic saving, reading. File I/O only, no model code.

Our format is a dict ``{"format": "temporal-shift", "version": 1, "model_config": {...},
"state_dict": {...}}`` plus optional extra entries (training state, class names). To get a
model back from a file, use `loading.load_checkpoint` (any layout) or `loading.load_model`.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from temporal_shift.models.state import CheckpointError, load_state_strict
from temporal_shift.ops.runtime import unwrap

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CheckpointError",
    "CheckpointNotFoundError",
    "atomic_save",
    "check_version",
    "is_our_format",
    "load_state_strict",
    "read_checkpoint",
    "save_checkpoint",
]

FORMAT_NAME = "temporal-shift"
FORMAT_VERSION = 1


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist."""


def atomic_save(obj: Any, path: str | Path) -> Path:
    """`torch.save` to a temporary file in the same folder, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(model: nn.Module, path: str | Path, *, extra: dict[str, Any] | None = None) -> Path:
    """Save a video model of any family (weights + config; DDP/compile wrappers are taken off)
    and optional ``extra`` entries atomically."""
    model = unwrap(model)
    config = getattr(model, "config", None)
    if not callable(getattr(config, "to_dict", None)):
        raise TypeError(f"expected a video model (one with a config), got {type(model).__name__}")
    payload: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "model_config": config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    for key, value in (extra or {}).items():
        if key in payload:
            raise ValueError(f"extra checkpoint entry {key!r} would overwrite a reserved entry")
        payload[key] = value
    return atomic_save(payload, path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint file onto the CPU; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors of all kinds: not a usable checkpoint
        raise CheckpointError(f"{path}: {_unreadable_reason(path, exc)}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, got {type(data).__name__}")
    return data


# torch.save writes a zip archive (since torch 1.6) or, before, a pickle (protocol 2+).
_ZIP_MAGIC = b"PK\x03\x04"


def _unreadable_reason(path: Path, exc: Exception) -> str:
    """Why ``torch.load(path, weights_only=True)`` failed, in words (not PyTorch's advice
    to retry with ``weights_only=False``, which would run code from the file)."""
    text = str(exc)
    unsupported = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if unsupported:
        return (
            f"cannot read checkpoint safely: it holds a Python object ({unsupported.group(1)}) "
            "besides tensors, numbers, strings and containers, and loading it would run code "
            "from the file; save only the state dict and plain values"
        )
    with path.open("rb") as f:
        head = f.read(512)
    if head.startswith(_ZIP_MAGIC):
        first = text.split(". ")[0].splitlines()[0] if text else ""
        detail = f" ({first[:160]})" if first and "weights_only" not in first.lower() else ""
        return f"cannot read checkpoint: a damaged or truncated PyTorch file, or a zip archive that is not one{detail}"
    if not head.startswith(b"\x80"):  # neither a zip archive nor a pickle
        try:
            head.decode("utf-8")
            kind = "a text file"
        except UnicodeDecodeError:
            kind = f"a file starting with bytes {head[:4].hex(' ')}"
        return f"not a checkpoint: {kind}, not a file saved by torch.save"
    return "cannot read checkpoint: a damaged pickle, or not a file saved by torch.save"


def is_our_format(data: dict[str, Any]) -> bool:
    return data.get("format") == FORMAT_NAME


def check_version(data: dict[str, Any], *, source: str) -> None:
    """``data`` is our format in the version this library reads; errors name ``source``."""
    if not is_our_format(data):
        raise CheckpointError(f"{source}: not a temporal-shift checkpoint (no 'format' entry)")
    if data.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{source}: checkpoint format version {data.get('version')!r}, this library reads version {FORMAT_VERSION}"
        )
