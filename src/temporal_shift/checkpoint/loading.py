"""Loading a checkpoint file as a ready model: `load_checkpoint(path) -> LoadedCheckpoint`.

The one loader every command uses (``tsm test``, ``predict``, ``stream``, ``export``,
``online convert``, ``train --finetune-from``). It reads any supported layout (ours, the
reference release's, MMAction2's, the online demo's: `importers`) and returns the model
in eval mode with what the file says about it: its format, class names and the input
size it was trained with.

`format` reads and writes files (no model code), `importers` maps each layout's keys onto
a model, and this module puts the two together.

Published weights: `load_checkpoint` also takes a published-weights entry
(`temporal_shift.hub.weights.PublishedWeights`, anything with the `Published` interface):
its file is fetched if absent and loaded with the entry's T, fold_div, class names and
input size. A plain path never downloads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from temporal_shift.checkpoint.format import CheckpointError, is_our_format, read_checkpoint
from temporal_shift.checkpoint.importers import model_from_data
from temporal_shift.data.lists import read_classes
from temporal_shift.models.base import ClipClassifier
from temporal_shift.models.config import ModelConfig
from temporal_shift.models.online import OnlineRecognizer


@runtime_checkable
class Published(Protocol):
    """What `load_checkpoint` needs of published weights (`hub.weights.PublishedWeights`)."""

    # read-only attributes, which a frozen dataclass's fields are
    @property
    def name(self) -> str: ...
    @property
    def n_segment(self) -> int: ...
    @property
    def fold_div(self) -> int: ...
    @property
    def input_size(self) -> int: ...
    @property
    def scale_size(self) -> int: ...

    def fetch(self, *, cache_dir: str | Path | None = None, progress: bool = True) -> Path:
        """The local file (downloaded into the cache if absent, verified)."""
        ...

    def check_model(self, model: ClipClassifier, *, source: str) -> None:
        """Raise CheckpointError unless ``model`` is the model the entry describes."""
        ...

    def class_names(self) -> list[str]: ...


# Input size of checkpoints that do not record theirs: a 224 crop of a 256 short side.
DEFAULT_SIZE = 224
DEFAULT_SCALE_SIZE = 256


@dataclasses.dataclass
class LoadedCheckpoint:
    """A model ready for inference, with what its file says about it.

    ``train_config`` is the training run's config (``config.TrainConfig.to_dict()``) for
    checkpoints written by `train.train`, else {}; the input size and normalisation come
    from its ``data`` section, else from ``published`` (the registry entry of published
    weights), else ImageNet's 224/256 with normalisation.
    """

    path: Path
    model: ClipClassifier  # in eval mode; any model family
    format: str  # one of importers.FORMATS
    class_names: list[str] | None
    train_config: dict[str, Any]
    published: Published | None = None

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @property
    def num_classes(self) -> int:
        return self.model.config.num_classes

    @property
    def n_segment(self) -> int:
        return self.model.config.n_segment

    @property
    def data_config(self) -> dict[str, Any]:
        """The training run's ``data`` section, or {}."""
        data = self.train_config.get("data")
        return dict(data) if isinstance(data, dict) else {}

    @property
    def input_size(self) -> int:
        """The crop side it was trained with (``data.size``), else 224."""
        if self.published is not None:
            return self.published.input_size
        return self.data_config.get("size") or DEFAULT_SIZE

    @property
    def scale_size(self) -> int:
        """The short side its validation clips were resized to (``data.scale_size``), else 256."""
        if self.published is not None:
            return self.published.scale_size
        return self.data_config.get("scale_size") or DEFAULT_SCALE_SIZE

    @property
    def normalize(self) -> bool:
        """Whether it was trained on ImageNet-normalised input (``data.normalize``), else True."""
        return bool(self.data_config.get("normalize", True))


def load_checkpoint(
    path: str | Path | Published,
    *,
    n_segment: int | None = None,
    fold_div: int | None = None,
    default_n_segment: int | None = None,
    map_location: str | torch.device = "cpu",
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> LoadedCheckpoint:
    """Load a checkpoint of any supported layout, in eval mode on ``map_location``.

    Ours record T (n_segment) and fold_div: ``n_segment``/``fold_div``, if given, must
    agree with them. The other layouts do not: they are built with ``n_segment`` (else
    ``default_n_segment``; one of them is needed) and ``fold_div`` (default 8). Errors
    name the file.

    A published-weights entry (`Published`) is fetched into ``cache_dir`` (default: the torch hub
    cache) if absent, with a progress bar unless ``progress=False``, and built with the
    entry's T (``n_segment`` may ask for another T: the weights do not depend on it) and
    fold_div (``fold_div``, if given, must agree); it carries the dataset's class names.
    """
    if isinstance(path, Published):
        return _load_published(
            path,
            n_segment=n_segment,
            fold_div=fold_div,
            map_location=map_location,
            cache_dir=cache_dir,
            progress=progress,
        )
    path = Path(path)
    data = read_checkpoint(path)
    if n_segment is None and not is_our_format(data):
        n_segment = default_n_segment
    return _loaded(data, path, n_segment=n_segment, fold_div=fold_div, map_location=map_location)


def load_model(path: str | Path | Published, *, map_location: str | torch.device = "cpu") -> ClipClassifier:
    """Rebuild the model saved at ``path`` in our format (`format.save_checkpoint`,
    ``tsm train``) with its weights, in eval mode; other layouts: `load_checkpoint`.
    Published weights are loaded as `load_checkpoint` does."""
    if isinstance(path, Published):
        return load_checkpoint(path, map_location=map_location).model
    path = Path(path)
    data = read_checkpoint(path)
    if not is_our_format(data):
        raise CheckpointError(f"{path}: not a temporal-shift checkpoint (no 'format' entry)")
    return _loaded(data, path, n_segment=None, fold_div=None, map_location=map_location).model


def load_online(
    path: str | Path | Published, *, n_segment: int | None = None, fold_div: int | None = None
) -> OnlineRecognizer:
    """The streaming model of a causal checkpoint (ours, the reference release's, its online demo's)."""
    try:
        return OnlineRecognizer(load_checkpoint(path, n_segment=n_segment, fold_div=fold_div).model)
    except ValueError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise ValueError(f"{path}: {exc}") from exc


def _loaded(
    data: dict[str, Any],
    path: Path,
    *,
    n_segment: int | None,
    fold_div: int | None,
    map_location: str | torch.device,
) -> LoadedCheckpoint:
    model, kind = model_from_data(data, source=str(path), n_segment=n_segment, fold_div=fold_div)
    model = model.to(map_location).eval()
    if kind != "temporal-shift":
        return LoadedCheckpoint(path, model, kind, None, {})
    names = data.get("class_names")
    if names is not None:
        if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise CheckpointError(f"{path}: class_names entry is not a list of strings")
        if len(names) != model.config.num_classes:
            raise CheckpointError(
                f"{path}: {len(names)} class names for a model with {model.config.num_classes} classes"
            )
    config = data.get("config") or data.get("train_state", {}).get("config") or {}
    return LoadedCheckpoint(path, model, kind, names, dict(config) if isinstance(config, dict) else {})


def _load_published(
    entry: Published,
    *,
    n_segment: int | None,
    fold_div: int | None,
    map_location: str | torch.device,
    cache_dir: str | Path | None,
    progress: bool,
) -> LoadedCheckpoint:
    if fold_div is not None and fold_div != entry.fold_div:
        raise ValueError(
            f"{entry.name}: fold_div={fold_div} was given but the weights were trained with "
            f"fold_div={entry.fold_div}; omit it"
        )
    path = entry.fetch(cache_dir=cache_dir, progress=progress)
    data = read_checkpoint(path)
    model, kind = model_from_data(
        data, source=str(path), n_segment=n_segment or entry.n_segment, fold_div=entry.fold_div
    )
    entry.check_model(model, source=str(path))
    model = model.to(map_location).eval()
    return LoadedCheckpoint(path, model, kind, entry.class_names(), {}, published=entry)


def resolve_class_names(checkpoints: Sequence[LoadedCheckpoint], classes: str | Path | None = None) -> list[str]:
    """Class names from ``classes`` (a file), else the checkpoints', else "0", "1", ...

    A class file must have one name per class; checkpoints that carry different names
    are an error naming both."""
    num_classes = checkpoints[0].num_classes
    if classes is not None:
        names = read_classes(classes)
        if len(names) != num_classes:
            raise ValueError(
                f"{classes}: {len(names)} class names, but {checkpoints[0].path} has {num_classes} classes"
            )
        return names
    named = [(c.path, c.class_names) for c in checkpoints if c.class_names is not None]
    for other_path, other_names in named[1:]:
        if other_names != named[0][1]:
            raise ValueError(
                f"{named[0][0]} and {other_path} carry different class names; "
                "pass the right ones with --classes / classes="
            )
    return list(named[0][1]) if named else [str(i) for i in range(num_classes)]
