"""Published weights by name: the reference release's checkpoints, their class names, and a
cached, verified download.

A `PublishedWeights` entry describes one checkpoint the paper's reference release
(mit-han-lab/temporal-shift-module) publishes: where to get it, the model it holds (arch,
T, fold_div, shift place, temporal pool, non-local), the dataset and its class names, the
input it expects and the accuracy the release reports, with where each fact was read
(`weights_registry.REGISTRY`). `get_weights("tsm_r50_kinetics400_8f")` looks a name up.

Nothing is downloaded unless a name (or an entry) is asked for. `download_weights(entry)`
puts the file in the torch hub cache (``torch.hub.get_dir()/checkpoints``, i.e.
``$TORCH_HOME/hub/checkpoints``) the way torchvision does:

- with a progress bar (tqdm, on stderr);
- a broken transfer is retried, resuming where it stopped (HTTP ``Range``), then the
  mirrors are tried; a file shorter than the server announced is never kept;
- the file must be a checkpoint of the expected layout (it is imported with the entry's
  settings and checked against them) and, where the entry records one, have its sha256;
- the sha256 of the first verified download is recorded next to it (``FILE.sha256``) and
  every later use checks the cached file against it.

A file obtained by other means can be put in the cache under the entry's file name (it
is verified on first use), or used directly with ``--checkpoint PATH`` / ``tsm import``.

Tests pass their own entries (``file://`` or loopback URLs) and ``cache_dir``; there is
no global state to patch.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import http.client
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from temporal_shift.checkpoint.format import CheckpointError

if TYPE_CHECKING:
    from temporal_shift.models.recognizer import VideoRecognizer

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PROTOCOL_CLIPS = ("single", "twice", "dense")


class DownloadError(OSError):
    """A published checkpoint could not be downloaded; the message says how to get it otherwise."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A dataset whose class names ship with the package (``temporal_shift/hub/classes/``)."""

    name: str
    title: str
    num_classes: int
    class_file: str  # file name in temporal_shift/classes
    order: str  # where the label order comes from


# Label order as the reference release's checkpoints use it; see each `order`.
DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            "kinetics400", "Kinetics-400", 400, "kinetics400.txt",
            "the release's tools/gen_label_kinetics.py numbers classes by their line in "
            "kinetics_label_map.txt, the DeepMind Kinetics-400 label map (alphabetical); names as "
            "in torchvision.models._meta._KINETICS400_CATEGORIES, which is that list",
        ),
        Dataset(
            "something_v1", "Something-Something V1", 174, "something_v1.txt",
            "the release's tools/gen_label_sthv1.py sorts the lines of something-something-v1-labels.csv "
            "(sorted()); names from that file as copied in open-mmlab/mmaction2 tools/data/sthv1/label_map.txt",
        ),
        Dataset(
            "something_v2", "Something-Something V2", 174, "something_v2.txt",
            "the release's tools/gen_label_sthv2.py keeps the index order of something-something-v2-labels.json "
            "(asserting index == position); names from open-mmlab/mmaction2 tools/data/sthv2/label_map.txt",
        ),
        Dataset(
            "jester", "Jester", 27, "jester.txt",
            "the release's online_demo/main.py class list (the online Jester model's output order), which "
            "is sorted(jester-v1-labels.csv) as tools/gen_label_sthv1.py does for jester-v1",
        ),
        Dataset(
            "ucf101", "UCF101", 101, "ucf101.txt",
            "the official ucfTrainTestlist/classInd.txt order (label = index - 1), which the release's "
            "ops/dataset_config.py reads and TSN's list tools (pyActionRecog/benchmark_db.py) use",
        ),
        Dataset(
            "hmdb51", "HMDB51", 51, "hmdb51.txt",
            "TSN's data/hmdb51_splits/class_list.txt (yjxiong/temporal-segment-networks), the order of "
            "the list files the release's data preparation refers to (it reads only the count, 51); note "
            "kick_ball before kick and sword_exercise before sword, unlike `tsm prepare hmdb51` (sorted)",
        ),
    )
}


def class_names(dataset: str) -> list[str]:
    """The class names of a dataset in `DATASETS`, in the reference checkpoints' label order."""
    if dataset not in DATASETS:
        raise ValueError(f"no class names for dataset {dataset!r}; known: {', '.join(DATASETS)}")
    info = DATASETS[dataset]
    text = resources.files("temporal_shift.hub").joinpath("classes", info.class_file).read_text(encoding="utf-8")
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(names) != info.num_classes:  # a broken installation, not a user error
        raise RuntimeError(f"temporal_shift/hub/classes/{info.class_file}: {len(names)} names, expected {info.num_classes}")
    return names


@dataclasses.dataclass(frozen=True)
class Accuracy:
    """A top-1 accuracy the release reports, with the test protocol it was measured under
    (in our `evaluate.EvalProtocol` terms: clips, crops, crop size, short side)."""

    top1: float
    protocol: str  # the release's words, e.g. "8 frames x 10 clips, 3 full-resolution crops"
    clips: str = "single"
    crops: int = 1
    size: int = 224
    scale_size: int = 256

    def eval_protocol(self) -> Any:
        """This protocol as an `evaluate.EvalProtocol` (for `evaluate` / ``tsm test``)."""
        from temporal_shift.engine.evaluate import EvalProtocol

        return EvalProtocol(clips=self.clips, crops=self.crops, size=self.size, scale_size=self.scale_size)


@dataclasses.dataclass(frozen=True)
class PublishedWeights:
    """One published checkpoint: where it is, the model it holds, what it was measured at.

    ``sources`` maps each fact (``"url"``, ``"arch"``, ``"n_segment"``, ``"accuracy"``, ...)
    to where it was read. ``sha256`` is None where the publisher records no checksum.
    ``gmacs`` is measured here (`bench.count_flops` / 2, one clip at ``input_size``).
    """

    name: str
    url: str
    arch: str
    n_segment: int
    dataset: str
    accuracies: tuple[Accuracy, ...]
    gmacs: float
    sources: tuple[tuple[str, str], ...]
    mirrors: tuple[str, ...] = ()
    shift: bool = True
    fold_div: int = 8
    place: str = "blockres"
    temporal_pool: bool = False
    non_local: bool = False
    mode: str = "bidirectional"
    layout: str = "reference"  # importers.FORMATS: the file's key layout
    sampling: str = "uniform"  # training frames: "uniform" (TSN segments) or "dense" (I3D-style)
    trained_n_segment: int | None = None  # when the release trained it with another T
    input_size: int = 224
    scale_size: int = 256
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    sha256: str | None = None
    note: str = ""

    def __str__(self) -> str:
        return self.name

    @property
    def file_name(self) -> str:
        """The cached file's name: the last part of the URL's path."""
        return Path(urllib.parse.urlparse(self.url).path).name

    @property
    def num_classes(self) -> int:
        return DATASETS[self.dataset].num_classes

    @property
    def top1(self) -> float | None:
        """The first reported accuracy (the release's headline protocol), if any."""
        return self.accuracies[0].top1 if self.accuracies else None

    @property
    def urls(self) -> tuple[str, ...]:
        return (self.url, *self.mirrors)

    def class_names(self) -> list[str]:
        return class_names(self.dataset)

    def source(self, fact: str) -> str:
        return dict(self.sources).get(fact, "")

    def model_options(self) -> dict[str, Any]:
        """`build_model` keyword arguments of the model this file holds."""
        return dict(
            arch=self.arch, num_classes=self.num_classes, n_segment=self.n_segment, shift=self.shift,
            fold_div=self.fold_div, place=self.place, temporal_pool=self.temporal_pool,
            non_local=self.non_local, mode=self.mode,
        )


# --- the registry -------------------------------------------------------------------


def registry() -> dict[str, PublishedWeights]:
    """The built-in registry: name -> entry (a new dict each call)."""
    from temporal_shift.hub.registry import REGISTRY

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
        rows.append((
            w.name, DATASETS[w.dataset].title, str(w.n_segment), f"{w.gmacs:.1f}",
            f"{acc.top1:.1f}" if acc else "-", acc.protocol if acc else "not published",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {2, 3, 4}
    lines = []
    for row in rows:
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


# --- the cache and the download -------------------------------------------------------


def default_cache_dir() -> Path:
    """``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME/hub/checkpoints``), as torchvision uses."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_path(weights: str | PublishedWeights, *, cache_dir: str | Path | None = None,
                registry: Mapping[str, PublishedWeights] | None = None) -> Path:
    """Where the entry's file is (or will be) cached."""
    entry = get_weights(weights, registry=registry)
    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / entry.file_name


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    """The verified file of a published checkpoint, downloaded into the cache if absent.

    A cached file is checked against the sha256 recorded at its first use; a file without
    a record (a first download, or one put there by hand) is checked for its layout and
    the entry's checksum, then recorded. Errors name the file or URL and what to do.
    """
    entry = get_weights(weights, registry=registry)
    path = cached_path(entry, cache_dir=cache_dir)
    record = path.with_name(path.name + ".sha256")
    if path.is_file():
        if record.is_file():
            recorded = record.read_text(encoding="utf-8").strip()
            actual = sha256_file(path)
            if actual != recorded:
                raise CheckpointError(
                    f"{path}: cached file changed since it was first verified (sha256 {actual}, recorded "
                    f"{recorded}); delete it and run `tsm weights get {entry.name}` to download it again"
                )
            return path
        _verify(entry, path, source=str(path))
        record.write_text(sha256_file(path) + "\n", encoding="utf-8")
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    url = _download(entry, part, progress=progress, retries=retries, timeout=timeout, backoff=backoff)
    try:
        _verify(entry, part, source=url)
    except (CheckpointError, ValueError):
        part.unlink(missing_ok=True)
        raise
    os.replace(part, path)
    record.write_text(sha256_file(path) + "\n", encoding="utf-8")
    return path


def _verify(entry: PublishedWeights, path: Path, *, source: str) -> None:
    """``path`` has the entry's checksum (if recorded) and holds the model it describes."""
    from temporal_shift.checkpoint.format import read_checkpoint
    from temporal_shift.checkpoint.importers import detect_format

    if entry.sha256 is not None:
        actual = sha256_file(path)
        if actual != entry.sha256.lower():
            raise CheckpointError(
                f"{source}: sha256 {actual} does not match the published {entry.sha256} of {entry.name}"
            )
    try:
        data = read_checkpoint(path)
    except CheckpointError as exc:
        raise CheckpointError(f"{source}: {str(exc).removeprefix(f'{path}: ')}") from exc
    kind = detect_format(data, source=source)
    if kind != entry.layout:
        raise CheckpointError(f"{source}: a {kind} checkpoint, but {entry.name} is published as {entry.layout}")
    model = _import(entry, data, source=source)
    check_model(entry, model, source=source)


def _import(entry: PublishedWeights, data: dict[str, Any], *, source: str,
            n_segment: int | None = None) -> VideoRecognizer:
    from temporal_shift.checkpoint.importers import model_from_data

    model, _ = model_from_data(
        data, source=source, n_segment=entry.n_segment if n_segment is None else n_segment,
        fold_div=entry.fold_div,
    )
    return model


def check_model(entry: PublishedWeights, model: VideoRecognizer, *, source: str) -> None:
    """The imported model is the one the entry describes (arch, classes, shift settings)."""
    config = model.config
    expected = entry.model_options()
    expected.pop("n_segment")  # T is not in the weights
    for name, value in expected.items():
        if name == "place" and not entry.shift:
            continue
        if getattr(config, name) != value:
            raise CheckpointError(
                f"{source}: holds a model with {name}={getattr(config, name)!r}, but {entry.name} "
                f"is published with {name}={value!r}"
            )


def _download(entry: PublishedWeights, part: Path, *, progress: bool, retries: int, timeout: float,
              backoff: float) -> str:
    """Fetch the entry into ``part`` (resuming a partial file), trying each URL with retries."""
    failures: list[str] = []
    for url in entry.urls:
        for attempt in range(retries + 1):
            try:
                _transfer(url, part, desc=entry.file_name, progress=progress, timeout=timeout)
                return url
            except urllib.error.HTTPError as exc:
                failures.append(f"{url}: HTTP {exc.code} {exc.reason}")
                if exc.code == 416:  # a stale partial file the server cannot resume
                    part.unlink(missing_ok=True)
                elif exc.code < 500 and exc.code != 429:
                    break  # not found, forbidden...: retrying will not help
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                failures.append(f"{url}: {_reason(exc)}")
            if attempt < retries:
                time.sleep(backoff * 2**attempt)
    part.unlink(missing_ok=True)
    last = failures[-1] if failures else "no URL"
    raise DownloadError(
        f"cannot download {entry.name} from {entry.url} ({last}; {len(failures)} attempts); get the file by "
        f"other means and pass it with --checkpoint PATH --segments {entry.n_segment}, convert it with "
        f"`tsm import PATH --out FILE --segments {entry.n_segment}`, or put it at {part.with_suffix('')}"
    )


class _Truncated(OSError):
    pass


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return str(exc.reason)
    if isinstance(exc, http.client.IncompleteRead):
        return f"connection closed after {len(exc.partial)} more bytes, {exc.expected} missing"
    return str(exc) or type(exc).__name__


def _transfer(url: str, part: Path, *, desc: str, progress: bool, timeout: float) -> None:
    """One request: append to ``part`` from its current size (HTTP Range) or start over."""
    from tqdm import tqdm

    offset = part.stat().st_size if part.is_file() else 0
    scheme = urllib.parse.urlparse(url).scheme
    headers = {"User-Agent": "temporal-shift (python urllib)"}
    if offset and scheme in ("http", "https"):
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        status = response.getcode()
        if offset and status != 206:
            offset = 0  # the server sends the whole file: start over
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None and length.isdigit() else None
        with open(part, "ab" if offset else "wb") as f, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
            disable=not progress, file=sys.stderr, leave=True,
        ) as bar:
            while True:
                chunk = response.read(1 << 20)
                if not chunk:
                    break
                f.write(chunk)
                bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size != total:
        raise _Truncated(f"transfer stopped at {size} of {total} bytes")


# --- loading ------------------------------------------------------------------------


def build_published(
    weights: str | PublishedWeights,
    *,
    arch: str,
    num_classes: int,
    backbone_weights: Any = None,
    options: Mapping[str, Any],
) -> VideoRecognizer:
    """`build_model(arch, num_classes=..., weights=NAME, **options)`: the model of the
    published weights, loaded with them (train mode, as `build_model` returns models).

    ``arch``, ``num_classes`` and the shift settings given must be the entry's (an error
    names the first that is not); ``n_segment`` may differ (the weights do not depend on
    T) and the other options (dropout, partial_bn, ...) are free."""
    from temporal_shift.checkpoint.format import load_state_strict
    from temporal_shift.checkpoint.loading import load_checkpoint
    from temporal_shift.models.recognizer import build_model

    entry = get_weights(weights)
    if backbone_weights is not None:
        raise ValueError("build_model: backbone_weights and weights exclude each other")
    expected = entry.model_options()
    given = dict(options, arch=arch, num_classes=num_classes)
    for name in ("arch", "num_classes", "shift", "fold_div", "place", "temporal_pool", "non_local", "mode"):
        if name == "place" and not entry.shift:
            continue
        if name in given and given[name] != expected[name]:
            raise ValueError(
                f"build_model: {name}={given[name]!r}, but {entry.name} holds a model with "
                f"{name}={expected[name]!r}"
            )
    model = build_model(**{**expected, **given})
    state = load_checkpoint(entry).model.state_dict()
    load_state_strict(model, state, source=entry.name)
    return model


def resolve_weights(source: str | Path | PublishedWeights) -> str | Path | PublishedWeights:
    """``source`` for `loading.load_model`: an existing file stays a path; otherwise a
    string that is a published name becomes its entry (the only place a bare string
    turns into a download, and only because a name was given)."""
    if isinstance(source, PublishedWeights) or isinstance(source, Path):
        return source
    if Path(source).exists():
        return Path(source)
    table = registry()
    if source in table:
        return table[source]
    return Path(source)
