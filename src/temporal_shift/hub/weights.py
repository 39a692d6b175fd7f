"""Published weights by name: the registry, the table of `tsm weights list`, downloads by name.

`get_weights("tsm_r50_kinetics400_8f")` looks a name up in the built-in registry
(`registry.REGISTRY`, the reference release's checkpoints) and returns its
`PublishedWeights` entry, which every command's checkpoint argument and `load_checkpoint`
take. Nothing is downloaded unless a name (or an entry) is asked for: `download_weights`
fetches an entry's file into the torch hub cache and verifies it (`download`); a file
obtained by other means can be put in the cache under the entry's file name (it is
verified on first use), or used directly with ``--checkpoint PATH`` / ``tsm import``.

Tests pass their own entries (``file://`` or loopback URLs) and ``cache_dir``; there is
no global state to patch.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path

from temporal_shift.hub.download import DownloadError, default_cache_dir, sha256_file
from temporal_shift.hub.published import (
    DATASETS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    WEIGHT_OPTIONS,
    Accuracy,
    Dataset,
    PublishedWeights,
    class_names,
)
from temporal_shift.hub.registry import REGISTRY

__all__ = [
    "DATASETS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "WEIGHT_OPTIONS",
    "Accuracy",
    "Dataset",
    "DownloadError",
    "PublishedWeights",
    "cached_path",
    "class_names",
    "default_cache_dir",
    "download_weights",
    "get_weights",
    "registry",
    "sha256_file",
    "weights_table",
]


def registry() -> dict[str, PublishedWeights]:
    """The built-in registry: name -> entry (a new dict each call)."""
    return {w.name: w for w in REGISTRY}


def get_weights(
    name: str | PublishedWeights, *, registry: Mapping[str, PublishedWeights] | None = None
) -> PublishedWeights:
    """The entry called ``name`` (an entry is returned as is); unknown names are an error
    listing the closest known ones."""
    if isinstance(name, PublishedWeights):
        return name
    table = _registry_or_default(registry)
    if name in table:
        return table[name]
    close = difflib.get_close_matches(name, list(table), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown published weights {name!r}{hint} (`tsm weights list` shows them all)")


def _registry_or_default(table: Mapping[str, PublishedWeights] | None) -> Mapping[str, PublishedWeights]:
    return registry() if table is None else table


def weights_table(entries: Sequence[PublishedWeights] | None = None) -> str:
    """`tsm weights list`: name, dataset, frames, GMACs/clip and the published top-1."""
    entries = list(registry().values()) if entries is None else list(entries)
    rows = [("name", "dataset", "frames", "GMACs", "top-1 %", "measured with")]
    for w in entries:
        acc = w.accuracies[0] if w.accuracies else None
        rows.append(
            (
                w.name,
                DATASETS[w.dataset].title,
                str(w.n_segment),
                f"{w.gmacs:.1f}",
                f"{acc.top1:.1f}" if acc else "-",
                acc.protocol if acc else "not published",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {2, 3, 4}
    lines = []
    for row in rows:
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


# --- the cache and the download -------------------------------------------------------


def cached_path(
    weights: str | PublishedWeights,
    *,
    cache_dir: str | Path | None = None,
    registry: Mapping[str, PublishedWeights] | None = None,
) -> Path:
    """Where the entry's file is (or will be) cached."""
    return get_weights(weights, registry=registry).cached_path(cache_dir=cache_dir)


def download_weights(
    weights: str | PublishedWeights,
    *,
    cache_dir: str | Path | None = None,
    registry: Mapping[str, PublishedWeights] | None = None,
    progress: bool = True,
    retries: int = 3,
    timeout: float = 30.0,
    backoff: float = 1.0,
) -> Path:
    """The verified file of a published checkpoint, downloaded into the cache if absent
    (`PublishedWeights.fetch`). Errors name the file or URL and what to do."""
    entry = get_weights(weights, registry=registry)
    return entry.fetch(cache_dir=cache_dir, progress=progress, retries=retries, timeout=timeout, backoff=backoff)
