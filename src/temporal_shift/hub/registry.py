"""The registry of published checkpoints: the paper's reference release
(github.com/mit-han-lab/temporal-shift-module), as data. The entries' logic lives in `published`,
lookup by name in `weights`.

Where each fact was read (``sources`` of every entry uses these short names):

- README: the release's README.md (read at commit 0185b90f), section "Pretrained Models":
  the Kinetics-400 "Dense Sample" and "Uniform Sampling" tables, the
  Something-Something-V1 and -V2 tables (model, n-frame, accuracy, checkpoint URL on
  file.lzhu.me), and the "Testing" section (the test_models.py flags behind each
  accuracy: --test_crops, --dense_sample, --full_res, --twice_sample).
- MIRROR: the same tables in an earlier README revision, and pretrained/download.sh
  (commit 83c77b72), give the files under https://hanlab.mit.edu/projects/tsm/models/.
- FILENAME: the release names files
  ``TSM_<dataset>_RGB_<arch>[_shift8_blockres]_avg_segment<T>_e<epochs>[_dense][_nl].pth``
  from its training flags (main.py/opts.py: --shift_div=8, --shift_place=blockres,
  --consensus_type=avg, --num_segments T); no "shift" in the name means TSN (no shift).
- TEST: ops/models.py and test_models.py: scale_size = input_size * 256 // 224 (256 for
  224 input), ImageNet mean/std normalisation; --full_res crops at scale_size (256).
- ONLINE: online_demo/main.py: the URL, MobileNetV2(n_class=27), the 27 Jester classes,
  GroupScale(256) + GroupCenterCrop(224) + ImageNet normalisation; online_demo/README.md.
- KEYS: what our importer reads from the keys (arch, classes, shift place, non-local,
  temporal pool; tests/fixtures/reference_release and `importers`); T and fold_div are not in the
  keys and come from the file name.

The release publishes no checksums: ``sha256`` is None throughout, and `weights` records
the checksum of the first verified download next to the cached file. GMACs per clip are
measured here with `apps.bench.overhead.count_flops` (one clip, 224x224, FLOPs/2). The Kinetics optical
flow model is left out: it takes stacked flow fields (10 channels per segment), not RGB.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from temporal_shift.hub.published import DATASETS, Accuracy, PublishedWeights
from temporal_shift.models.config import ModelConfig

_FILE = "https://file.lzhu.me/projects/tsm/models/"
_HANLAB = "https://hanlab.mit.edu/projects/tsm/models/"

README = "README.md (commit 0185b90f), Pretrained Models"
MIRROR = "earlier README.md revision and pretrained/download.sh (commit 83c77b72): hanlab.mit.edu/projects/tsm/models"
FILENAME = "file name flags (main.py/opts.py naming: shift8 = --shift_div=8, blockres, segment<T>)"
TEST = "ops/models.py + test_models.py: 224 crop of a 256 short side, ImageNet mean/std"
KEYS = "the checkpoint's keys, as our importer reads them (tests/fixtures/reference_release/keys.json)"
ONLINE = "online_demo/main.py (MobileNetV2(n_class=27), URL, 27 Jester classes, 256 -> 224, ImageNet mean/std)"


class _Protocol(TypedDict):
    """An `Accuracy`'s test protocol (its fields but top1), at the default 224 crop of a 256 side."""

    protocol: str
    clips: Literal["single", "twice", "dense"]
    crops: int


class _FullResProtocol(_Protocol):
    """A protocol whose crops are taken at another size (full resolution: the short side)."""

    size: int
    scale_size: int


# Test protocols the release reports (Testing section and table headers).
_DENSE_10x3 = _FullResProtocol(
    protocol="10 dense clips x 3 full-resolution crops (256)", clips="dense", crops=3, size=256, scale_size=256
)
_UNIFORM_1 = _Protocol(protocol="1 clip, centre crop", clips="single", crops=1)
_UNIFORM_10 = _Protocol(protocol="1 clip, 10 crops", clips="single", crops=10)
_STH_1 = _Protocol(protocol="1 clip, centre crop (efficient setting)", clips="single", crops=1)
_STH_2x3 = _FullResProtocol(
    protocol="2 clips, 3 full-resolution crops (accurate setting)", clips="twice", crops=3, size=256, scale_size=256
)


def _kinetics(file: str, *, table: str) -> tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]]:
    return (
        _FILE + file,
        (_HANLAB + file,),
        (
            ("url", f"{README}, Kinetics-400 {table} table"),
            ("mirrors", MIRROR),
            ("accuracy", f"{README}, Kinetics-400 {table} table; protocol from the Testing section"),
            ("arch, n_segment, fold_div, place", FILENAME),
            ("dataset, classes", "Kinetics-400 table heading; 400 classes (tools/gen_label_kinetics.py)"),
            ("input size, normalisation", TEST),
            ("non_local, temporal_pool", KEYS),
        ),
    )


def _something(file: str, *, version: str) -> tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]]:
    return (
        _FILE + file,
        (_HANLAB + file,),
        (
            ("url", f"{README}, Something-Something-{version} table"),
            ("mirrors", MIRROR),
            ("accuracy", f"{README}, Something-Something-{version} table (efficient / accurate setting)"),
            ("arch, n_segment, fold_div, place", FILENAME),
            ("dataset, classes", f"Something-Something-{version} table; 174 classes"),
            ("input size, normalisation", TEST),
            ("non_local, temporal_pool", KEYS),
        ),
    )


_MODEL_FIELDS = frozenset(ModelConfig.field_names())


def _entry(name: str, file_info: tuple, *, dataset: str, **fields) -> PublishedWeights:
    """An entry; the keyword arguments that are model settings (arch, n_segment, shift, ...)
    make its `ModelConfig`, with the dataset's number of classes."""
    url, mirrors, sources = file_info
    model = ModelConfig(
        num_classes=DATASETS[dataset].num_classes, **{k: v for k, v in fields.items() if k in _MODEL_FIELDS}
    )
    rest = {k: v for k, v in fields.items() if k not in _MODEL_FIELDS}
    return PublishedWeights(name=name, url=url, mirrors=mirrors, sources=sources, model=model, dataset=dataset, **rest)


REGISTRY: tuple[PublishedWeights, ...] = (
    # Kinetics-400, uniform (TSN) sampling: the checkpoints the release tests and fine-tunes from.
    _entry(
        "tsm_r50_kinetics400_8f",
        _kinetics("TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment8_e50.pth", table="Uniform Sampling"),
        arch="resnet50",
        n_segment=8,
        dataset="kinetics400",
        gmacs=32.7,
        accuracies=(Accuracy(71.2, **_UNIFORM_1), Accuracy(72.8, **_UNIFORM_10)),
    ),
    _entry(
        "tsm_r50_kinetics400_16f",
        _kinetics("TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment16_e50.pth", table="Uniform Sampling"),
        arch="resnet50",
        n_segment=16,
        dataset="kinetics400",
        gmacs=65.4,
        accuracies=(Accuracy(72.6, **_UNIFORM_1), Accuracy(73.7, **_UNIFORM_10)),
    ),
    _entry(
        "tsn_r50_kinetics400_8f",
        _kinetics("TSM_kinetics_RGB_resnet50_avg_segment5_e50.pth", table="Uniform Sampling and Dense Sample"),
        arch="resnet50",
        n_segment=8,
        trained_n_segment=5,
        shift=False,
        dataset="kinetics400",
        gmacs=32.7,
        accuracies=(Accuracy(68.8, **_UNIFORM_1), Accuracy(69.9, **_UNIFORM_10), Accuracy(70.6, **_DENSE_10x3)),
        note="the 2D baseline (no shift); trained with 5 segments (file name), tested with 8 "
        "(--test_segments=8 in the Testing section): a TSN takes any T",
    ),
    # Kinetics-400, dense (I3D-style) sampling, tested under the non-local protocol.
    _entry(
        "tsm_r50_kinetics400_8f_dense",
        _kinetics("TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment8_e100_dense.pth", table="Dense Sample"),
        arch="resnet50",
        n_segment=8,
        sampling="dense",
        dataset="kinetics400",
        gmacs=32.7,
        accuracies=(Accuracy(74.1, **_DENSE_10x3),),
    ),
    _entry(
        "tsm_r50_kinetics400_8f_nl",
        _kinetics("TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment8_e100_dense_nl.pth", table="Dense Sample"),
        arch="resnet50",
        n_segment=8,
        non_local=True,
        sampling="dense",
        dataset="kinetics400",
        gmacs=61.1,
        accuracies=(Accuracy(75.6, **_DENSE_10x3),),
    ),
    _entry(
        "tsm_mobilenetv2_kinetics400_8f",
        _kinetics("TSM_kinetics_RGB_mobilenetv2_shift8_blockres_avg_segment8_e100_dense.pth", table="Dense Sample"),
        arch="mobilenet_v2",
        n_segment=8,
        sampling="dense",
        dataset="kinetics400",
        gmacs=2.4,
        accuracies=(Accuracy(69.5, **_DENSE_10x3),),
    ),
    # Something-Something V1.
    _entry(
        "tsm_r50_somethingv1_8f",
        _something("TSM_something_RGB_resnet50_shift8_blockres_avg_segment8_e45.pth", version="V1"),
        arch="resnet50",
        n_segment=8,
        dataset="something_v1",
        gmacs=32.7,
        accuracies=(Accuracy(45.6, **_STH_1), Accuracy(47.2, **_STH_2x3)),
    ),
    _entry(
        "tsm_r50_somethingv1_16f",
        _something("TSM_something_RGB_resnet50_shift8_blockres_avg_segment16_e45.pth", version="V1"),
        arch="resnet50",
        n_segment=16,
        dataset="something_v1",
        gmacs=65.4,
        accuracies=(Accuracy(47.2, **_STH_1), Accuracy(48.4, **_STH_2x3)),
    ),
    _entry(
        "tsm_r101_somethingv1_8f",
        _something("TSM_something_RGB_resnet101_shift8_blockres_avg_segment8_e45.pth", version="V1"),
        arch="resnet101",
        n_segment=8,
        dataset="something_v1",
        gmacs=62.4,
        accuracies=(Accuracy(46.9, **_STH_1), Accuracy(48.7, **_STH_2x3)),
    ),
    # Something-Something V2 (accurate setting only).
    _entry(
        "tsm_r50_somethingv2_8f",
        _something("TSM_somethingv2_RGB_resnet50_shift8_blockres_avg_segment8_e45.pth", version="V2"),
        arch="resnet50",
        n_segment=8,
        dataset="something_v2",
        gmacs=32.7,
        accuracies=(Accuracy(61.2, **_STH_2x3),),
    ),
    _entry(
        "tsm_r50_somethingv2_16f",
        _something("TSM_somethingv2_RGB_resnet50_shift8_blockres_avg_segment16_e45.pth", version="V2"),
        arch="resnet50",
        n_segment=16,
        dataset="something_v2",
        gmacs=65.4,
        accuracies=(Accuracy(63.1, **_STH_2x3),),
    ),
    _entry(
        "tsm_r101_somethingv2_8f",
        _something("TSM_somethingv2_RGB_resnet101_shift8_blockres_avg_segment8_e45.pth", version="V2"),
        arch="resnet101",
        n_segment=8,
        dataset="something_v2",
        gmacs=62.4,
        accuracies=(Accuracy(63.3, **_STH_2x3),),
    ),
    # The online (causal) hand-gesture model of the live demo.
    _entry(
        "online_tsm_mobilenetv2_jester",
        (
            _HANLAB + "mobilenetv2_jester_online.pth.tar",
            (),
            (
                ("url, arch, classes, input size, normalisation", ONLINE),
                ("mode", "online_demo/README.md: online TSM (shift from the past only), MobileNetV2, Jester"),
                (
                    "fold_div, place",
                    "online_demo/mobilenet_v2_tsm.py: 1/8 of the channels, in the residual "
                    "branch of the blocks with a skip connection (buffer shapes in online_demo/main.py)",
                ),
                ("n_segment", "not published: the streaming step does not depend on T; 8 builds the offline twin"),
            ),
        ),
        arch="mobilenet_v2",
        n_segment=8,
        mode="causal",
        layout="online-demo",
        dataset="jester",
        gmacs=2.4,
        accuracies=(),
        note="for `tsm stream` (frame by frame); no accuracy is published",
    ),
)
