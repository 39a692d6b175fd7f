"""Checkpoint files: our format, atomic saving, reading. File I/O only, no model code.

Our format is a dict ``{"format": "temporal-shift", "version": 1, "model_config": {...},
"state_dict": {...}}`` plus optional extra entries (training state, class names). To get a
model back from a file, use `loading.load_checkpoint` (any layout) or `loading.load_model`.
"""

from __future__ import annotations

import _compat_pickle
import io
import os
import pickletools
import tempfile
import zipfile
from pathlib import Path
from typing import IO, Any

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
    config_to_dict = getattr(getattr(model, "config", None), "to_dict", None)
    if not callable(config_to_dict):
        raise TypeError(f"expected a video model (one with a config), got {type(model).__name__}")
    payload: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "model_config": config_to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    for key, value in (extra or {}).items():
        if key in payload:
            raise ValueError(f"extra checkpoint entry {key!r} would overwrite a reserved entry")
        payload[key] = value
    return atomic_save(payload, path)


def read_checkpoint(path: str | Path, *, max_bytes: int | None = None) -> dict[str, Any]:
    """Load a checkpoint file onto the CPU; errors name the file.

    What a file can make this do is bounded before PyTorch reads it: a torch.save archive
    must have the layout torch.save writes, and its records may declare no more bytes than
    the file holds (nor than ``max_bytes``, when given): a small file whose compressed
    records would inflate to gigabytes is refused before anything is inflated. The file is
    read with ``weights_only=True``: a pickle that names anything but tensors, numbers,
    strings and containers (which loading would call: code from the file) is refused, and
    the error says so, whatever PyTorch's wording.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"checkpoint not found: {path}")
    _check_archive(path, max_bytes=max_bytes)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors of all kinds: not a usable checkpoint
        raise CheckpointError(f"{path}: {_unreadable_reason(path, exc)}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, got {type(data).__name__}")
    return data


# torch.save writes a zip archive (since torch 1.6) or, before, a pickle (protocol 2+).
_ZIP_MAGIC = b"PK\x03\x04"
# what the records of an archive may declare beyond the file's own size (torch.save stores them
# uncompressed; a little room for archives re-packed with compression of small records)
_INFLATE_SLACK = 1 << 20
_DAMAGED = "cannot read checkpoint: a damaged or truncated PyTorch file, or a zip archive that is not one"


def _check_archive(path: Path, *, max_bytes: int | None) -> None:
    """A zip file's records, as its central directory declares them, before PyTorch inflates
    any: one top folder holding ``data.pkl``, and at most the file's size in all (see
    `read_checkpoint`). Files that are not zip archives are left to `torch.load`."""
    with path.open("rb") as f:
        if f.read(4) != _ZIP_MAGIC:
            return
    holds = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            records = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise CheckpointError(f"{path}: {_DAMAGED} ({str(exc)[:160]})") from None
    names = [r.filename for r in records]
    top = names[0].split("/", 1)[0] if names else ""
    if not top or any(not n.startswith(top + "/") for n in names) or f"{top}/data.pkl" not in names:
        outside = next((n for n in names if not n.startswith(top + "/")), None) if top else None
        detail = f"a record {outside!r} outside its folder" if outside else f"no {top or 'archive'}/data.pkl record"
        raise CheckpointError(f"{path}: not a checkpoint: a zip archive without torch.save's layout ({detail})")
    declared = sum(r.file_size for r in records)
    limit = holds + _INFLATE_SLACK if max_bytes is None else min(max_bytes, holds + _INFLATE_SLACK)
    if declared > limit:
        biggest = max(records, key=lambda r: r.file_size)
        why = (
            f"more than the {max_bytes} bytes allowed"
            if max_bytes is not None and declared > max_bytes
            else f"from a file of {holds} bytes"
        )
        raise CheckpointError(
            f"{path}: refused: its records would inflate to {declared} bytes {why} (the largest, "
            f"{biggest.filename!r}, declares {biggest.file_size} bytes in {biggest.compress_size}); torch.save "
            "stores records uncompressed, so this is not a file it wrote; nothing was inflated"
        )


def _pickle_globals(path: Path) -> list[str]:
    """The globals (``module.name``) the checkpoint's pickle names, read with `pickletools`:
    nothing is imported or called. [] when the pickle cannot be read that far."""
    try:
        with path.open("rb") as f:
            zipped = f.read(4) == _ZIP_MAGIC
        if zipped:
            with zipfile.ZipFile(path) as archive:
                name = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
                streams: list[IO[bytes]] = [io.BytesIO(archive.read(name))]
        else:  # the legacy format: magic number, protocol, system info, then the object, as pickles
            legacy = path.open("rb")
            streams = [legacy] * 4
    except (OSError, StopIteration, zipfile.BadZipFile, ValueError):
        return []
    names: list[str] = []
    try:
        for stream in streams:
            names.extend(_globals_in(stream))
    except Exception:  # a damaged pickle: report what was read before the damage
        pass
    finally:
        for stream in streams:
            stream.close()
    return list(dict.fromkeys(names))


_STRINGS = frozenset(
    {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}
)


def _globals_in(stream) -> list[str]:
    """The globals one pickle names: GLOBAL/INST arguments, and the two strings before each
    STACK_GLOBAL (pushed or fetched from the memo)."""
    names: list[str] = []
    pushed: list[Any] = []
    memo: dict[Any, Any] = {}
    for opcode, arg, _ in pickletools.genops(stream):
        op = opcode.name
        if op in ("GLOBAL", "INST"):
            module, _, name = str(arg).partition(" ")
            names.append(_python3_name(module, name))
        elif op in _STRINGS:
            pushed.append(arg)
        elif op in ("BINGET", "LONG_BINGET", "GET"):
            pushed.append(memo.get(arg))
        elif op == "MEMOIZE":
            memo[len(memo)] = pushed[-1] if pushed else None
        elif op in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[arg] = pushed[-1] if pushed else None
        elif op == "STACK_GLOBAL":
            pair = pushed[-2:] if len(pushed) >= 2 else [None, None]
            names.append(_python3_name(str(pair[0]), str(pair[1])))
        elif op == "STOP":
            break
        else:
            pushed.append(None)
    return names


def _python3_name(module: str, name: str) -> str:
    """``module.name`` as Python 3 unpickles it (protocol-2 pickles say ``__builtin__.set``)."""
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    return f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}"


def _code_globals(path: Path) -> list[str]:
    """The globals of the checkpoint's pickle that ``weights_only`` loading does not allow:
    what loading it fully would import and call."""
    names = _pickle_globals(path)
    allowed: set[str] = set()
    try:  # PyTorch's own list (private, but present in every version this library supports)
        from torch import _weights_only_unpickler as unpickler

        allowed.update(unpickler._get_allowed_globals())
        allowed.update(getattr(unpickler, "_get_user_allowed_globals", dict)())
    except Exception:  # without it, torch's own names pass
        pass
    return [n for n in names if n not in allowed and not (not allowed and n.startswith("torch."))]


def _unreadable_reason(path: Path, exc: Exception) -> str:
    """Why ``torch.load(path, weights_only=True)`` failed, in words (not PyTorch's advice
    to retry with ``weights_only=False``, which would run code from the file)."""
    text = str(exc)
    code = _code_globals(path)
    if code:
        shown = ", ".join(code[:3]) + (f" and {len(code) - 3} more" if len(code) > 3 else "")
        return (
            f"refused: the file would run code (its pickle calls {shown}); a checkpoint holds tensors, "
            "numbers, strings and containers: save only the state dict and plain values"
        )
    with path.open("rb") as f:
        head = f.read(512)
    if head.startswith(_ZIP_MAGIC):
        first = text.split(". ")[0].splitlines()[0] if text else ""
        detail = f" ({first[:160]})" if first and "weights_only" not in first.lower() else ""
        return f"{_DAMAGED}{detail}"
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
