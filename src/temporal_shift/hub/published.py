"""A published checkpoint, described: `PublishedWeights` and the datasets of their class names.

A `PublishedWeights` entry describes one checkpoint the paper's reference release
(mit-han-lab/temporal-shift-module) publishes: where to get it, the model it holds (a
`ModelConfig`), the dataset and its class names, the input it expects and the accuracy the
release reports, with where each fact was read (`registry.REGISTRY` holds them all).
`PublishedWeights.fetch` downloads and verifies its file (`download`): it must be a
checkpoint of the expected layout, holding the model the entry describes.
"""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from temporal_shift.checkpoint.format import CheckpointError, read_checkpoint
from temporal_shift.checkpoint.importers import detect_format, model_from_data
from temporal_shift.hub.download import default_cache_dir, fetch_file, safe_file_name, sha256_file
from temporal_shift.models.base import ClipClassifier
from temporal_shift.models.config import ModelConfig

# the model settings that published weights fix (the others, e.g. dropout, are free)
WEIGHT_OPTIONS = (
    "arch",
    "num_classes",
    "n_segment",
    "shift",
    "fold_div",
    "place",
    "temporal_pool",
    "non_local",
    "mode",
)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PROTOCOL_CLIPS = ("single", "twice", "dense")


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
            "kinetics400",
            "Kinetics-400",
            400,
            "kinetics400.txt",
            "the release's tools/gen_label_kinetics.py numbers classes by their line in "
            "kinetics_label_map.txt, the DeepMind Kinetics-400 label map (alphabetical); names as "
            "in torchvision.models._meta._KINETICS400_CATEGORIES, which is that list",
        ),
        Dataset(
            "something_v1",
            "Something-Something V1",
            174,
            "something_v1.txt",
            "the release's tools/gen_label_sthv1.py sorts the lines of something-something-v1-labels.csv "
            "(sorted()); names from that file as copied in open-mmlab/mmaction2 tools/data/sthv1/label_map.txt",
        ),
        Dataset(
            "something_v2",
            "Something-Something V2",
            174,
            "something_v2.txt",
            "the release's tools/gen_label_sthv2.py keeps the index order of something-something-v2-labels.json "
            "(asserting index == position); names from open-mmlab/mmaction2 tools/data/sthv2/label_map.txt",
        ),
        Dataset(
            "jester",
            "Jester",
            27,
            "jester.txt",
            "the release's online_demo/main.py class list (the online Jester model's output order), which "
            "is sorted(jester-v1-labels.csv) as tools/gen_label_sthv1.py does for jester-v1",
        ),
        Dataset(
            "ucf101",
            "UCF101",
            101,
            "ucf101.txt",
            "the official ucfTrainTestlist/classInd.txt order (label = index - 1), which the release's "
            "ops/dataset_config.py reads and TSN's list tools (pyActionRecog/benchmark_db.py) use",
        ),
        Dataset(
            "hmdb51",
            "HMDB51",
            51,
            "hmdb51.txt",
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
    text = (resources.files("temporal_shift.hub") / "classes" / info.class_file).read_text(encoding="utf-8")
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(names) != info.num_classes:  # a broken installation, not a user error
        raise RuntimeError(
            f"temporal_shift/hub/classes/{info.class_file}: {len(names)} names, expected {info.num_classes}"
        )
    return names


@dataclasses.dataclass(frozen=True)
class Accuracy:
    """A top-1 accuracy the release reports, with the test protocol it was measured under
    (in the terms of `engine.evaluate.EvalProtocol`, which `EvalProtocol.of(accuracy)` builds:
    clips, crops, crop size, short side)."""

    top1: float
    protocol: str  # the release's words, e.g. "8 frames x 10 clips, 3 full-resolution crops"
    clips: Literal["single", "twice", "dense"] = "single"  # engine.evaluate's ClipProtocol
    crops: int = 1
    size: int = 224
    scale_size: int = 256


@dataclasses.dataclass(frozen=True)
class PublishedWeights:
    """One published checkpoint: where it is, the model it holds, what it was measured at.

    ``model`` is the model the file holds (its T is the one the release tests with; the
    weights do not depend on T). ``sources`` maps each fact (``"url"``, ``"arch"``,
    ``"n_segment"``, ``"accuracy"``, ...) to where it was read. ``sha256`` is None where the
    publisher records no checksum. ``gmacs`` is measured here (FLOPs / 2 of one clip at
    ``input_size``, `apps.bench.overhead.count_flops`).
    """

    name: str
    url: str
    model: ModelConfig
    dataset: str
    accuracies: tuple[Accuracy, ...]
    gmacs: float
    sources: tuple[tuple[str, str], ...]
    mirrors: tuple[str, ...] = ()
    layout: str = "reference"  # importers.FORMATS: the file's key layout
    sampling: str = "uniform"  # training frames: "uniform" (TSN segments) or "dense" (I3D-style)
    trained_n_segment: int | None = None  # when the release trained it with another T
    input_size: int = 224
    scale_size: int = 256
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    sha256: str | None = None
    note: str = ""
    max_file_bytes: int | None = None  # the most bytes the file may have (default: from the model, `max_bytes`)

    def __str__(self) -> str:
        return self.name

    @property
    def file_name(self) -> str:
        """The cached file's name: the last part of the URL's path, made safe for the cache
        (`download.safe_file_name`; the entry's name + ``.pth`` when the URL names no file)."""
        return safe_file_name(self.url, fallback=f"{self.name}.pth")

    @property
    def max_bytes(self) -> int:
        """The most bytes the file may have (a download past it is stopped): ``max_file_bytes``
        when set, else three times the weights and buffers of the model it holds (the weights,
        the optimizer state the release saves beside them, and room) plus 16 MiB."""
        if self.max_file_bytes is not None:
            return self.max_file_bytes
        import torch

        from temporal_shift.models.factory import build_model

        with torch.device("meta"):  # shapes only: no memory, no initialisation
            model = build_model(**self.model_options())
        tensors = [*model.parameters(), *model.buffers()]
        return 3 * sum(t.numel() * t.element_size() for t in tensors) + (16 << 20)

    @property
    def arch(self) -> str:
        return self.model.arch

    @property
    def n_segment(self) -> int:
        return self.model.n_segment

    @property
    def fold_div(self) -> int:
        return self.model.fold_div

    @property
    def shift(self) -> bool:
        return self.model.shift

    @property
    def mode(self) -> str:
        return self.model.mode

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

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
        """The settings of the model this file holds that its weights fix (every `build_model`
        option but the free ones: dropout, partial BN, ...), as keyword arguments."""
        return {name: getattr(self.model, name) for name in WEIGHT_OPTIONS}

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain data, the model's settings inline (``tsm weights list --json``)."""
        data = dataclasses.asdict(self)
        data.pop("model")
        return dict(data, **self.model_options(), file_name=self.file_name, sources=dict(self.sources))

    def cached_path(self, *, cache_dir: str | Path | None = None) -> Path:
        """Where the file is (or will be) cached."""
        return Path(cache_dir if cache_dir is not None else default_cache_dir()) / self.file_name

    def fetch(
        self,
        *,
        cache_dir: str | Path | None = None,
        progress: bool = True,
        retries: int = 3,
        timeout: float = 30.0,
        backoff: float = 1.0,
    ) -> Path:
        """The verified local file, downloaded into the cache if absent (`download.fetch_file`)."""
        t = self.n_segment
        return fetch_file(
            self.cached_path(cache_dir=cache_dir),
            urls=self.urls,
            verify=self.verify_file,
            name=self.name,
            otherwise=f"get the file by other means and pass it with --checkpoint PATH --segments {t}, convert it "
            f"with `tsm import PATH --out FILE --segments {t}`",
            progress=progress,
            retries=retries,
            timeout=timeout,
            backoff=backoff,
            max_bytes=self.max_bytes,
        )

    def verify_file(self, path: Path, source: str) -> None:
        """``path`` has the entry's checksum (if recorded) and holds the model it describes."""
        if self.sha256 is not None:
            actual = sha256_file(path)
            if actual != self.sha256.lower():
                raise CheckpointError(
                    f"{source}: sha256 {actual} does not match the published {self.sha256} of {self.name}"
                )
        try:
            data = read_checkpoint(path, max_bytes=self.max_bytes)
        except CheckpointError as exc:
            raise CheckpointError(f"{source}: {str(exc).removeprefix(f'{path}: ')}") from exc
        kind = detect_format(data, source=source)
        if kind != self.layout:
            raise CheckpointError(f"{source}: a {kind} checkpoint, but {self.name} is published as {self.layout}")
        model, _ = model_from_data(data, source=source, n_segment=self.n_segment, fold_div=self.fold_div)
        self.check_model(model, source=source)

    def check_model(self, model: ClipClassifier, *, source: str) -> None:
        """The imported model is the one the entry describes (arch, classes, shift settings)."""
        config = model.config
        for name, value in self.model_options().items():
            if name == "n_segment" or (name == "place" and not self.shift):
                continue  # T is not in the weights; a TSN has no shift place
            if getattr(config, name) != value:
                raise CheckpointError(
                    f"{source}: holds a model with {name}={getattr(config, name)!r}, but {self.name} "
                    f"is published with {name}={value!r}"
                )
