"""Checkpoint layouts -> `VideoRecognizer`: ours, and those of other TSM implementations.

`model_from_data` builds the model a loaded checkpoint dict holds, whatever its layout
(`detect_format`); `loading.load_checkpoint` is the file-level loader built on it, and
`import_checkpoint` (``tsm import``) converts a file into our format.

Ours records its model config. Two public foreign layouts are read, both into our
`VideoRecognizer` (built with `build_model`, loaded strictly with `load_state_strict`):

- the paper's reference release: ``{'epoch', 'arch', 'state_dict', 'best_prec1'}`` (or a
  bare state dict), keys ``[module.]base_model.*`` and ``[module.]new_fc.*``. Its ResNet
  keys are ours after ``base_model.`` -> ``backbone.`` and ``new_fc.`` -> ``head.``; its
  own MobileNetV2 numbers the layers of an inverted residual flat (``conv.{0,1,3,4,6,7}``)
  where torchvision groups them (``conv.0.0``, ``conv.0.1``, ``conv.1.0`` ...).
- MMAction2's TSM (``ResNetTSM`` + ``TSMHead``): ``state_dict`` with ``backbone.*`` and
  ``cls_head.fc_cls.*``, plus an optional ``meta`` entry.

What the keys reveal is inferred (arch and depth, number of classes, shift place,
non-local blocks, temporal pooling); n_segment and fold_div cannot be read from weights
and are arguments.

MMAction2 facts checked against open-mmlab/mmaction2 (``backbones/resnet.py``,
``backbones/resnet_tsm.py``, ``heads/tsm_head.py``):

- every conv+BN pair is an mmcv ``ConvModule``: ``conv1.conv`` / ``conv1.bn`` (stem),
  ``layerX.Y.convK.conv`` / ``layerX.Y.convK.bn``, ``downsample.conv`` /
  ``downsample.bn``; the stride sits on the 3x3 conv (``style='pytorch'``), as in
  torchvision.
- blockres wraps ``blocks[i].conv1.conv`` (key ``conv1.conv.net.weight``), block wraps the
  whole block (``layerX.Y.net.conv1.conv.weight``); ResNets with >= 23 blocks in layer3
  shift every other block in blockres only; temporal pooling wraps layer2 (``layer2.net``).
- its shift is ours: ``fold = C // shift_div`` (default 8), channels ``[0, fold)`` come
  from t+1, ``[fold, 2*fold)`` from t-1, zeros at the clip edges.
- ``TSMHead`` has no parameters besides ``fc_cls``: its own AdaptiveAvgPool2d, dropout,
  ``fc_cls``, then ``AvgConsensus`` (mean of the per-frame scores over T, or T/2 with
  temporal pooling) -- our backbone avgpool + dropout + head + mean. Its test-time
  ``average_clips='prob'`` softmax is applied by the recognizer across clips, after the
  logits compared here.
- its non-local blocks are mmcv ``NonLocal3d`` (other key names, scaled dot product):
  not imported, an error says so.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from torch import Tensor

from temporal_shift.checkpoint.format import (
    CheckpointError,
    check_version,
    is_our_format,
    load_state_strict,
    read_checkpoint,
    save_checkpoint,
)
from temporal_shift.models.backbones import BACKBONES, resnet_arch_of, resnet_layout
from temporal_shift.models.base import ClipClassifier, plain_key
from temporal_shift.models.config import ModelConfig
from temporal_shift.models.factory import build_model, check_config, model_from_config
from temporal_shift.models.tsn import VideoRecognizer

FORMATS = ("temporal-shift", "reference", "mmaction2", "online-demo")

# Reference-release MobileNetV2 inverted residual (flat Sequential) -> torchvision's.
_MOBILENET_EXPAND = {"0": "0.0", "1": "0.1", "3": "1.0", "4": "1.1", "6": "2", "7": "3"}
_MOBILENET_NO_EXPAND = {"0": "0.0", "1": "0.1", "3": "1", "4": "2"}


@dataclasses.dataclass(frozen=True)
class InferredSettings:
    """Model settings read from a foreign state dict's keys."""

    arch: str
    num_classes: int
    shift: bool
    place: str
    non_local: bool
    temporal_pool: bool


@dataclasses.dataclass(frozen=True)
class ImportedCheckpoint:
    """What `import_checkpoint` wrote: the new file, the source format, the model config."""

    out: Path
    source_format: str
    config: dict[str, Any]

    def summary(self) -> str:
        c = self.config
        shift = f"TSM ({c['place']}, 1/{c['fold_div']})" if c["shift"] else "TSN (no shift)"
        extras = "".join(f", {name}" for name in ("non_local", "temporal_pool") if c.get(name))
        return (
            f"{self.source_format} -> {self.out}: {c['arch']} {shift}, "
            f"{c['num_classes']} classes, n_segment={c['n_segment']}{extras}"
        )


# --- public API --------------------------------------------------------------------


def detect_format(data: dict[str, Any], *, source: str = "checkpoint") -> str:
    """Name the layout of a loaded checkpoint: "temporal-shift", "reference" or "mmaction2"."""
    if not isinstance(data, dict):
        raise CheckpointError(f"{source}: expected a dict checkpoint, got {type(data).__name__}")
    if is_our_format(data):
        return "temporal-shift"
    state = _strip_module(_state_dict(data, source))
    if any(k.startswith("base_model.") for k in state):
        return "reference"
    if any(k.startswith("cls_head.") for k in state) or "backbone.conv1.conv.weight" in state:
        return "mmaction2"
    if "classifier.weight" in state and any(k.startswith("features.") for k in state):
        return "online-demo"
    hint = ""
    if "backbone.conv1.weight" in state and "head.weight" in state:
        hint = " (looks like a bare temporal-shift state dict: save it with save_checkpoint)"
    shown = ", ".join(sorted(state)[:4]) or "none"
    raise CheckpointError(
        f"{source}: unknown checkpoint layout{hint}; expected temporal-shift, reference "
        f"release (base_model.*) or MMAction2 (backbone.*, cls_head.*) keys, got {shown}"
    )


def import_checkpoint(
    path: str | Path,
    out: str | Path,
    *,
    n_segment: int | None = None,
    fold_div: int | None = None,
) -> ImportedCheckpoint:
    """Convert a checkpoint of any supported layout into our format at ``out`` (for the CLI)."""
    data, source = _load(path)
    model, kind = model_from_data(data, source=source, n_segment=n_segment, fold_div=fold_div)
    written = save_checkpoint(model, out, extra={"imported_from": {"format": kind, "file": source}})
    return ImportedCheckpoint(out=written, source_format=kind, config=model.config.to_dict())


def model_from_data(
    data: dict[str, Any], *, source: str, n_segment: int | None = None, fold_div: int | None = None
) -> tuple[ClipClassifier, str]:
    """The model (eval mode) a loaded checkpoint dict of any supported layout holds, and
    the layout's name; ``source`` names it in errors.

    Ours is rebuilt from its saved config (``n_segment``/``fold_div``, if given, must
    agree with it); the other layouts need ``n_segment``, and ``fold_div`` defaults to 8.
    """
    kind = detect_format(data, source=source)
    if kind == "temporal-shift":
        model = _model_from_ours(data, source=source)
        for name, value in (("n_segment", n_segment), ("fold_div", fold_div)):
            saved = getattr(model.config, name)
            if value is not None and value != saved:
                raise CheckpointError(
                    f"{source}: {name}={value} was given but the checkpoint was saved with "
                    f"{name}={saved}; omit it or rebuild the model"
                )
        return model.eval(), kind
    if n_segment is None:
        raise ValueError(f"{source}: a {kind} checkpoint does not record the number of frames; pass n_segment (e.g. 8)")
    if kind == "online-demo":
        model = import_online_demo_checkpoint(
            data, n_segment=n_segment, fold_div=8 if fold_div is None else fold_div, source=source
        )
        return model, kind
    importer = import_reference_checkpoint if kind == "reference" else import_mmaction2_checkpoint
    model = importer(data, n_segment=n_segment, fold_div=8 if fold_div is None else fold_div, source=source)
    return model, kind


def _model_from_ours(data: dict[str, Any], *, source: str) -> ClipClassifier:
    """Rebuild the model of a dict in our format (saved config + strict weights)."""
    check_version(data, source=source)
    try:
        config = check_config(ModelConfig.from_dict(dict(data["model_config"])))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: bad model_config: {exc}") from exc
    model = model_from_config(config)
    load_state_strict(model, data["state_dict"], source=source)
    return model


def import_reference_checkpoint(
    path_or_dict: str | Path | dict[str, Any],
    *,
    n_segment: int,
    fold_div: int = 8,
    mode: str = "bidirectional",
    arch: str | None = None,
    temporal_pool: bool | None = None,
    source: str | None = None,
) -> VideoRecognizer:
    """Import a checkpoint of the paper's reference release (TSM or TSN, ResNet or MobileNetV2).

    ``arch`` and ``temporal_pool``, if given, are checked against what the keys reveal
    (as is the checkpoint's own ``arch`` entry). Returns the model in eval mode.
    """
    data, source = _load(path_or_dict, source)
    state = _strip_module(_state_dict(data, source))
    backbone = {k[len("base_model.") :]: v for k, v in state.items() if k.startswith("base_model.")}
    if not backbone:
        raise CheckpointError(f"{source}: not a reference-release checkpoint (no base_model.* keys)")
    head = {k[len("new_fc.") :]: v for k, v in state.items() if k.startswith("new_fc.")}
    others = sorted(k for k in state if not k.startswith(("base_model.", "new_fc.")))
    if not head:
        # dropout=0 in the release: the backbone's own last layer is the new classifier.
        for last in ("fc.", "classifier."):
            head = {k[len(last) :]: v for k, v in backbone.items() if k.startswith(last)}
            if head:
                backbone = {k: v for k, v in backbone.items() if not k.startswith(last)}
                break
    if any(k.startswith("features.") for k in backbone):
        settings = _infer_mobilenet(backbone, head, source)
        ours = {f"backbone.{k}": v for k, v in _reference_mobilenet_state(backbone).items()}
    else:
        settings = infer_resnet(backbone, head, source)
        ours = {f"backbone.{k}": v for k, v in backbone.items()}
    ours.update({f"head.{k}": v for k, v in head.items()})
    ours.update({k: state[k] for k in others})  # reported as unexpected by the strict load
    saved_arch = data.get("arch") if "state_dict" in data else None
    _cross_check(settings, source=source, saved_arch=saved_arch, arch=arch, temporal_pool=temporal_pool)
    return _build_and_load(settings, ours, n_segment=n_segment, fold_div=fold_div, mode=mode, source=source)


def import_mmaction2_checkpoint(
    path_or_dict: str | Path | dict[str, Any],
    *,
    n_segment: int,
    fold_div: int = 8,
    mode: str = "bidirectional",
    arch: str | None = None,
    temporal_pool: bool | None = None,
    source: str | None = None,
) -> VideoRecognizer:
    """Import an MMAction2 TSM/TSN checkpoint (``ResNetTSM`` backbone, ``TSMHead``/``TSNHead``).

    ``arch`` and ``temporal_pool``, if given, are checked against what the keys reveal.
    Returns the model in eval mode.
    """
    data, source = _load(path_or_dict, source)
    state = _strip_module(_state_dict(data, source))
    if any(".non_local_block." in k for k in state):
        raise CheckpointError(
            f"{source}: MMAction2 non-local blocks (mmcv NonLocal3d) are not supported; "
            "only ResNetTSM without non_local can be imported"
        )
    backbone = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    head = {k[len("cls_head.fc_cls.") :]: v for k, v in state.items() if k.startswith("cls_head.fc_cls.")}
    if not backbone or "conv1.conv.weight" not in backbone:
        raise CheckpointError(
            f"{source}: not an MMAction2 ResNet TSM/TSN checkpoint (no backbone.conv1.conv.weight; "
            "only ResNetTSM backbones are supported)"
        )
    others = sorted(k for k in state if not k.startswith(("backbone.", "cls_head.fc_cls.")))
    tv = {_mmaction_resnet_key(k): v for k, v in backbone.items()}
    settings = infer_resnet(tv, head, source)
    ours = {f"backbone.{k}": v for k, v in tv.items()}
    ours.update({f"head.{k}": v for k, v in head.items()})
    ours.update({k: state[k] for k in others})
    _cross_check(settings, source=source, saved_arch=None, arch=arch, temporal_pool=temporal_pool)
    return _build_and_load(settings, ours, n_segment=n_segment, fold_div=fold_div, mode=mode, source=source)


def import_online_demo_checkpoint(
    path_or_dict: str | Path | dict[str, Any],
    *,
    n_segment: int,
    fold_div: int = 8,
    source: str | None = None,
) -> VideoRecognizer:
    """Import the reference release's online-demo MobileNetV2 (causal TSM, e.g. 27 Jester classes).

    Its state dict has bare ``features.N.conv.{0,1,3,4,6,7}.*`` and ``classifier.*`` keys:
    the shift lives in the forward of the inverted residuals with a skip connection and
    leaves no key, so those blocks (ours shift the same ones) get our ``net`` level here.
    The result is a causal offline model (``mode="causal"``) with ``n_segment`` frames.
    """
    data, source = _load(path_or_dict, source)
    state = _strip_module(_state_dict(data, source))
    backbone = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    head = {k[len("classifier.") :]: v for k, v in state.items() if k.startswith("classifier.")}
    plain = _reference_mobilenet_state(backbone)
    settings = dataclasses.replace(_infer_mobilenet(backbone, head, source), shift=True, place="blockres")
    model = _build(settings, n_segment=n_segment, fold_div=fold_div, mode="causal", source=source)
    wanted = model.state_dict()
    ours: dict[str, Tensor] = {}
    for key in wanted:
        if key.startswith("backbone."):
            name = key[len("backbone.") :].replace(".net.", ".")
            if name in plain:
                ours[key] = plain.pop(name)
        elif key.startswith("head.") and key[len("head.") :] in head:
            ours[key] = head[key[len("head.") :]]
    ours.update({f"backbone.{k}": v for k, v in plain.items()})  # left over: unexpected
    load_state_strict(model, ours, source=source)
    return model.eval()


# --- reading -----------------------------------------------------------------------


def _load(path_or_dict: str | Path | dict[str, Any], source: str | None = None) -> tuple[dict[str, Any], str]:
    if isinstance(path_or_dict, dict):
        return path_or_dict, source or "checkpoint dict"
    path = Path(path_or_dict)
    return read_checkpoint(path), source or str(path)


def _state_dict(data: dict[str, Any], source: str) -> dict[str, Tensor]:
    """The ``state_dict`` entry, or ``data`` itself when it is a bare state dict."""
    state = data.get("state_dict", data)
    if not isinstance(state, dict):
        raise CheckpointError(f"{source}: 'state_dict' is a {type(state).__name__}, not a dict")
    bad = sorted(str(k) for k, v in state.items() if not isinstance(v, Tensor))
    if bad:
        raise CheckpointError(
            f"{source}: not a state dict of tensors ({', '.join(bad[:4])} "
            f"{'is' if len(bad) == 1 else 'are'} not tensors)"
        )
    return state


def _strip_module(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Drop the DataParallel/DDP ``module.`` prefix if every key has it."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module.") :]: v for k, v in state.items()}
    return state


# --- key mapping -------------------------------------------------------------------


def _reference_mobilenet_state(backbone: dict[str, Tensor]) -> dict[str, Tensor]:
    """Release MobileNetV2 keys ``features.N[.net].conv.I.rest`` -> torchvision's numbering.

    Blocks with an expansion layer (``conv.6`` present) map 0,1,3,4,6,7 to
    0.0, 0.1, 1.0, 1.1, 2, 3; the expand_ratio=1 block maps 0,1,3,4 to 0.0, 0.1, 1, 2.
    ``features.0.*`` and ``features.18.*`` are already torchvision's.
    """
    pattern = re.compile(r"^(features\.\d+\.(?:net\.)?conv)\.(\d+)\.(.*)$")
    expanding = {m.group(1) for k in backbone if (m := pattern.match(k)) and m.group(2) == "6"}
    mapped = {}
    for key, value in backbone.items():
        m = pattern.match(key)
        if m:
            table = _MOBILENET_EXPAND if m.group(1) in expanding else _MOBILENET_NO_EXPAND
            # An index outside the table is kept as is; the strict load reports it.
            key = f"{m.group(1)}.{table.get(m.group(2), m.group(2))}.{m.group(3)}"
        mapped[key] = value
    return mapped


def _mmaction_resnet_key(key: str) -> str:
    """MMAction2 ResNet (ConvModule) key -> torchvision ResNet key (wrappers kept)."""
    key = re.sub(r"(^|\.)conv(\d)\.bn\.", r"\1bn\2.", key)
    key = re.sub(r"(^|\.)conv(\d)\.conv\.", r"\1conv\2.", key)
    key = key.replace("downsample.conv.", "downsample.0.").replace("downsample.bn.", "downsample.1.")
    return key


# --- inferring settings ------------------------------------------------------------


def _num_classes(head: dict[str, Tensor], source: str) -> int:
    weight = head.get("weight")
    if weight is None or weight.dim() != 2:
        raise CheckpointError(f"{source}: no 2-D classifier weight (new_fc.weight / cls_head.fc_cls.weight)")
    return int(weight.shape[0])


def infer_resnet(backbone: dict[str, Tensor], head: dict[str, Tensor], source: str) -> InferredSettings:
    """Settings of a ResNet state dict in torchvision naming (with ``net``/``block``/``nl`` levels)."""
    plain = {plain_key(key): value for key, value in backbone.items() if ".nl." not in f".{key}"}
    arch = resnet_arch_of(plain)
    if arch is None:
        counts, bottleneck, conv2 = resnet_layout(plain)
        kind = "bottleneck" if bottleneck else "basic"
        raise CheckpointError(
            f"{source}: unsupported ResNet layout (blocks per layer {counts}, {kind} blocks, "
            f"layer1.0.conv2 {conv2 if conv2 is not None else 'missing'}); "
            f"supported: {', '.join(a for a in BACKBONES if a != 'mobilenet_v2')}"
        )
    keys = list(backbone)
    blockres = any(re.search(r"\.conv1\.net\.weight$", k) for k in keys)
    block = any(re.match(r"^layer\d\.(?:net\.)?\d+\.(?:block\.)?net\.", k) for k in keys)
    if blockres and block:
        raise CheckpointError(f"{source}: both residual (conv1.net) and in-place (block net) shifts found")
    return InferredSettings(
        arch=arch,
        num_classes=_num_classes(head, source),
        shift=blockres or block,
        place="block" if block else "blockres",
        non_local=any(".nl." in f".{k}" for k in keys),
        temporal_pool=any(k.startswith("layer2.net.") for k in keys),
    )


def _infer_mobilenet(backbone: dict[str, Tensor], head: dict[str, Tensor], source: str) -> InferredSettings:
    """Settings of a reference-release MobileNetV2 state dict."""
    keys = list(backbone)
    blockres = any(re.match(r"^features\.\d+\.conv\.0\.net\.", k) for k in keys)
    block = any(re.match(r"^features\.\d+\.net\.", k) for k in keys)
    return InferredSettings(
        arch="mobilenet_v2",
        num_classes=_num_classes(head, source),
        shift=blockres or block,
        place="block" if block else "blockres",
        non_local=False,
        temporal_pool=False,
    )


def _norm_arch(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


def _cross_check(
    settings: InferredSettings,
    *,
    source: str,
    saved_arch: Any,
    arch: str | None,
    temporal_pool: bool | None,
) -> None:
    if isinstance(saved_arch, str) and _norm_arch(saved_arch) != _norm_arch(settings.arch):
        raise CheckpointError(
            f"{source}: the checkpoint's arch entry says {saved_arch!r} but its keys are those of {settings.arch}"
        )
    if arch is not None and _norm_arch(arch) != _norm_arch(settings.arch):
        raise CheckpointError(f"{source}: arch={arch!r} was given but the keys are those of {settings.arch}")
    if temporal_pool is not None and temporal_pool != settings.temporal_pool:
        found = "wraps" if settings.temporal_pool else "does not wrap"
        raise CheckpointError(
            f"{source}: temporal_pool={temporal_pool} was given but the checkpoint {found} "
            "layer2 in a temporal pool (layer2.net.*)"
        )


def _build_and_load(
    settings: InferredSettings,
    state: dict[str, Tensor],
    *,
    n_segment: int,
    fold_div: int,
    mode: str,
    source: str,
) -> VideoRecognizer:
    model = _build(settings, n_segment=n_segment, fold_div=fold_div, mode=mode, source=source)
    load_state_strict(model, state, source=source)
    return model.eval()


def _build(settings: InferredSettings, *, n_segment: int, fold_div: int, mode: str, source: str) -> VideoRecognizer:
    """The model ``settings`` describe, with fresh weights."""
    try:
        model = build_model(
            settings.arch,
            num_classes=settings.num_classes,
            n_segment=n_segment,
            shift=settings.shift,
            fold_div=fold_div,
            place=settings.place,
            mode=mode,
            temporal_pool=settings.temporal_pool,
            non_local=settings.non_local,
        )
    except ValueError as exc:
        raise ValueError(f"{source}: cannot build the model it holds: {exc}") from exc
    assert isinstance(model, VideoRecognizer)  # build_model's default family, tsn
    return model
