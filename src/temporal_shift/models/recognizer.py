"""The TSN/TSM video classifier: 2D backbone -> dropout -> linear head -> average over time.

Without shift it is TSN, the 2D baseline; with shift it is TSM. `ModelConfig` holds every
setting needed to rebuild a model, and is the single source of truth for T (n_segment).
It is also the one list of model options: `build_model`'s keyword options and the
training config's ``model`` section (`config.ModelSection`) are its fields, so a new
option is a new field here (with its type, default and check) and nothing else.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torchvision import models as tvm

from temporal_shift.checkpoint.format import load_state_strict, read_checkpoint
from temporal_shift.models.flow import cross_modality_weight, set_input_channels, stem_conv_name
from temporal_shift.models.insert import PLACES, make_non_local, make_temporal_shift
from temporal_shift.ops.small_maps import use_small_map_convs
from temporal_shift.ops.shift import MODES, check_shift_args

# The torchvision constructors build_model accepts (no weights are downloaded).
BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "resnet18": tvm.resnet18,
    "resnet34": tvm.resnet34,
    "resnet50": tvm.resnet50,
    "resnet101": tvm.resnet101,
    "resnet152": tvm.resnet152,
    "resnext50_32x4d": tvm.resnext50_32x4d,
    "resnext101_32x8d": tvm.resnext101_32x8d,
    "resnext101_64x4d": tvm.resnext101_64x4d,
    "wide_resnet50_2": tvm.wide_resnet50_2,
    "wide_resnet101_2": tvm.wide_resnet101_2,
    "mobilenet_v2": tvm.mobilenet_v2,
}
MODALITIES = ("rgb", "flow")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything `build_model` needs; saved with every checkpoint.

    The field types are checked on construction (ints are accepted for floats), and the
    training config reads its ``model`` section with them.
    """

    arch: str = "resnet50"  # the 2D backbone / trunk; which ones a family takes: its ``archs``
    num_classes: int = 400
    n_segment: int = 8
    shift: bool = True  # False: TSN, the 2D baseline
    fold_div: int = 8  # 1/fold_div of the channels shifted each way
    place: Literal["blockres", "block"] = "blockres"  # residual branch or in place
    mode: Literal["bidirectional", "causal"] = "bidirectional"  # causal: online, past only
    temporal_pool: bool = False  # max-pool over time before layer2 (T/2 frames after it)
    non_local: bool = False  # the non-local blocks of the published TSM-R50+NL
    dropout: float = 0.5  # before the head
    partial_bn: bool = False  # freeze every BN layer but the first
    # tsn: a 2D network per frame + average consensus (TSM when shift=True); the others are
    # the paper's comparison models (models/zoo): single_frame, late/early/slow_fusion, c3d,
    # i3d, eco_lite, eco_full. Their `family_class(...).archs` lists the archs each takes.
    family: str = "tsn"
    # flow: the two-stream baseline's flow stream (tsn family, TSN or TSM): each segment is a
    # stack of flow_length (L) consecutive flow fields, 2L channels (x1, y1, x2, ...), and the
    # first convolution takes 2L channels (initialised from RGB weights by averaging them)
    modality: Literal["rgb", "flow"] = "rgb"
    flow_length: int = 5  # L, flow fields per segment (flow only; RGB takes one frame per segment)

    def __post_init__(self) -> None:
        _check_field_types(self)
        if not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {self.num_classes!r}")
        check_shift_args(n_segment=self.n_segment, fold_div=self.fold_div, mode=self.mode)
        if self.place not in PLACES:
            raise ValueError(f"unknown shift place {self.place!r}; expected one of {', '.join(PLACES)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.temporal_pool and self.n_segment % 2:
            raise ValueError(f"temporal_pool needs an even n_segment, got {self.n_segment}")
        if self.non_local and self.temporal_pool:
            raise ValueError("non_local and temporal_pool cannot be combined")
        if self.modality not in MODALITIES:
            raise ValueError(f"unknown modality {self.modality!r}; expected one of {', '.join(MODALITIES)}")
        if self.flow_length < 1:
            raise ValueError(f"flow_length must be at least 1, got {self.flow_length}")
        if self.modality == "flow" and self.family != "tsn":
            raise ValueError(f"modality='flow' is for the tsn family (TSN/TSM flow streams), not {self.family!r}")
        if self.modality == "flow" and self.mode != "bidirectional":
            raise ValueError("modality='flow' takes mode='bidirectional': online (causal) models stream RGB frames")
        cls = family_class(self.family)
        if self.arch not in cls.archs:
            raise ValueError(
                f"unknown arch {self.arch!r} for model family {self.family!r}; supported: {', '.join(cls.archs)}"
            )
        if self.family != "tsn":
            for name in ("shift", "temporal_pool", "non_local"):
                if getattr(self, name):
                    raise ValueError(
                        f"{name}=True is for the tsn family (TSN/TSM); model family {self.family!r} "
                        f"has no {name}: set {name} to false"
                    )
            if self.mode != "bidirectional":
                raise ValueError(f"mode={self.mode!r} is for the tsn family (online TSM), not {self.family!r}")
        cls.check_config(self)

    @property
    def input_channels(self) -> int:
        """Channels of one input frame: 3 (RGB) or 2 * flow_length (a flow stack)."""
        return 2 * self.flow_length if self.modality == "flow" else 3

    @property
    def frames_per_segment(self) -> int:
        """Consecutive frames (RGB: 1) or flow fields (flow: L) a sampler takes per segment."""
        return self.flow_length if self.modality == "flow" else 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(unknown)}")
        return cls(**data)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The model options, in order (ModelConfig's own fields, not a subclass's)."""
        return tuple(f.name for f in dataclasses.fields(ModelConfig))


def _check_field_types(config: ModelConfig) -> None:
    """bool, int, float (ints accepted, stored as float) and str fields hold those types;
    Literal fields are checked by name in `ModelConfig.__post_init__`."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        tp, value = hints[f.name], getattr(config, f.name)
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            object.__setattr__(config, f.name, float(value))
        elif tp in (bool, int, float, str) and (
            not isinstance(value, tp) or (tp is not bool and isinstance(value, bool))
        ):
            raise ValueError(f"{f.name} must be {tp.__name__}, got {value!r}")


def family_class(family: str) -> type[nn.Module]:
    """The class that builds model family ``family`` (`temporal_shift.models.zoo.FAMILIES`)."""
    from temporal_shift.models.zoo import FAMILIES  # the zoo's modules import this one

    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; supported: {', '.join(FAMILIES)}")
    return FAMILIES[family]


def model_name(config: ModelConfig) -> str:
    """What the config builds, for messages: TSM, TSN, or the comparison family's name."""
    if config.family == "tsn":
        return "TSM" if config.shift else "TSN"
    return config.family


def model_from_config(config: ModelConfig) -> nn.Module:
    """A fresh model of any family: `VideoRecognizer` (tsn) or one of the comparison models,
    its plain convolutions fast on single-position outputs (`small_maps.use_small_map_convs`)."""
    return use_small_map_convs(family_class(config.family)(config))


class VideoRecognizer(nn.Module):
    """(N, T, C, H, W) clips -> (N, num_classes) logits, averaging per-frame scores.

    The ``tsn`` model family: TSN without shift, TSM with it.
    """

    archs: tuple[str, ...] = tuple(BACKBONES)
    input_size: int = 224  # the published crop
    frames: tuple[int, ...] = (8, 16)  # the published T values

    @staticmethod
    def check_config(config: ModelConfig) -> None:
        """Nothing beyond `ModelConfig`'s own checks: any T, any backbone of `BACKBONES`."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        backbone, feature_dim = headless_backbone(config.arch)
        if config.modality == "flow":
            set_input_channels(backbone, config.input_channels)
        if config.shift:
            make_temporal_shift(
                backbone,
                config.n_segment,
                fold_div=config.fold_div,
                place=config.place,
                mode=config.mode,
                temporal_pool=config.temporal_pool,
            )
        if config.non_local:
            make_non_local(backbone, config.n_segment)
        self.backbone = backbone
        self.dropout = nn.Dropout(config.dropout)
        self.head = new_head(feature_dim, config.num_classes)
        if config.partial_bn:
            freeze_partial_bn(self.backbone)

    @property
    def n_segment(self) -> int:
        return self.config.n_segment

    def frame_logits(self, x: Tensor) -> Tensor:
        """Per-frame logits (N, T', K) before the consensus; T' = T/2 with temporal_pool."""
        if not torch.jit.is_tracing():
            self._check_input(x)
        n = x.shape[0]
        features = self.backbone(x.flatten(0, 1))
        return self.head(self.dropout(features)).view(n, -1, self.config.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.frame_logits(x).mean(dim=1)

    def _check_input(self, x: Tensor) -> None:
        c = self.config.input_channels
        if x.dim() != 5 or x.shape[1] != self.config.n_segment or x.shape[2] != c:
            raise ValueError(
                f"expected input of shape (N, T={self.config.n_segment}, C={c}, H, W)"
                + (f" (a stack of {self.config.flow_length} flow fields per frame)" if self.config.modality == "flow"
                   else "") + f", got {tuple(x.shape)}"
            )

    def train(self, mode: bool = True) -> "VideoRecognizer":
        """Like `nn.Module.train`; with partial BN, every BN layer but the first stays in eval."""
        super().train(mode)
        if mode and self.config.partial_bn:
            partial_bn_eval(self.backbone)
        return self


def headless_backbone(arch: str) -> tuple[nn.Module, int]:
    """A fresh torchvision 2D backbone of `BACKBONES` without its classifier, and its feature size.
    Its convolutions are `SmallMapConv2d`: the same layers, fast on the 1x1 maps of small frames."""
    backbone = use_small_map_convs(BACKBONES[arch](weights=None))
    if isinstance(backbone, tvm.ResNet):
        feature_dim = backbone.fc.in_features
        backbone.fc = nn.Identity()
    else:
        feature_dim = backbone.classifier[-1].in_features
        backbone.classifier = nn.Identity()
    return backbone, feature_dim


def new_head(in_features: int, num_classes: int) -> nn.Linear:
    """The classifier as the reference release initialises it: N(0, 0.001) weights, zero bias."""
    head = nn.Linear(in_features, num_classes)
    nn.init.normal_(head.weight, 0.0, 0.001)
    nn.init.zeros_(head.bias)
    return head


def freeze_partial_bn(module: nn.Module) -> None:
    """Partial BN: every BN layer but the first gets no gradients (it is never updated)."""
    for bn in _batch_norms(module)[1:]:
        bn.requires_grad_(False)


def partial_bn_eval(module: nn.Module) -> None:
    """Partial BN in training mode: every BN layer but the first keeps its running statistics."""
    for bn in _batch_norms(module)[1:]:
        bn.eval()


def _batch_norms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def build_model(
    arch: str = "resnet50",
    *,
    num_classes: int,
    backbone_weights: str | Path | None = None,
    weights: Any = None,
    **options: Any,
) -> nn.Module:
    """Build a TSM (``shift=True``) or TSN (``shift=False``) video classifier, or with
    ``family=`` one of the comparison models (`temporal_shift.models.zoo`).

    ``options`` are the other fields of `ModelConfig` (``n_segment``, ``shift``,
    ``fold_div``, ``place``, ``mode``, ``family``, ...), with its defaults, except that
    ``shift`` defaults to False for the families that have none; an unknown name is a
    TypeError listing the known ones. ``backbone_weights`` is an optional file holding a
    torchvision state dict of the 2D backbone (e.g. ImageNet weights saved beforehand);
    its classifier is dropped. Families built on other networks map it their own way
    (I3D inflates it over time). ``weights`` names published weights (or is a
    `weights.PublishedWeights` entry): the model is built with their settings and loaded
    with them (`weights.build_published`; the arguments given must agree with them).
    """
    if weights is not None:
        from temporal_shift.hub.weights import build_published

        return build_published(weights, arch=arch, num_classes=num_classes,
                               backbone_weights=backbone_weights, options=options)
    known = ModelConfig.field_names()
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(
            f"build_model: unknown option {unknown[0]!r}; model options: {', '.join(known)}, backbone_weights"
        )
    if options.get("family", "tsn") != "tsn":
        options.setdefault("shift", False)
    model = model_from_config(ModelConfig(arch=arch, num_classes=num_classes, **options))
    if backbone_weights is not None:
        load_backbone_weights(model, backbone_weights)
    return model


def load_backbone_weights(model: nn.Module, path: str | Path) -> None:
    """Load a torchvision 2D state dict (e.g. ImageNet weights) into the video model's backbone.

    Keys are mapped onto the wrapped modules (``layer1.0.conv1.weight`` ->
    ``layer1.0.conv1.net.weight``); the 2D classifier (``fc.*``, ``classifier.*``) is
    dropped and added non-local blocks keep their initialisation. A flow model's first
    convolution takes the RGB kernel averaged over its 3 input channels (cross-modality
    initialisation, `models.flow`). Any other key that does not fit is an error listing it.
    """
    if not isinstance(model, VideoRecognizer):  # a comparison model maps 2D weights its own way
        loader = getattr(model, "load_backbone_weights", None)
        if loader is None:
            raise ValueError(f"{path}: model family {model.config.family!r} takes no 2D backbone weights")
        loader(path)
        return
    state = read_checkpoint(path)
    state = state.get("state_dict", state)
    own = model.backbone.state_dict()
    # Wrappers insert a ``net`` (shift, temporal pool) or ``block`` (non-local) level;
    # torchvision's ResNet and MobileNetV2 have no modules of those names themselves.
    own_by_plain = {_plain_key(key): key for key in own}
    mapped = {key: value for key, value in own.items() if ".nl." in key}
    for key, value in state.items():
        if not key.startswith(("fc.", "classifier.")):
            mapped[own_by_plain.get(key, key)] = value
    stem = stem_conv_name(model.backbone) + ".weight"
    if model.config.modality == "flow" and stem in mapped and mapped[stem].shape[1:2] == (3,):
        mapped[stem] = cross_modality_weight(mapped[stem], model.config.input_channels)
    load_state_strict(model.backbone, mapped, source=str(path))


def _plain_key(key: str) -> str:
    return ".".join(part for part in key.split(".") if part not in ("net", "block"))


def param_groups(model: nn.Module, *, fc_lr5: bool = False) -> list[dict[str, Any]]:
    """Parameter groups of the reference recipe, each with ``lr_mult`` and ``decay_mult``.

    - first conv weight (1x lr, decay), other conv/linear weights (1x, decay);
    - biases: 2x lr, no weight decay;
    - BN parameters: no decay (with partial BN only the first BN is trained);
    - ``fc_lr5`` (fine-tuning): the new head gets 5x lr for its weight, 10x for its bias.
    The optimiser's lr and weight decay are multiplied by these factors.
    """
    groups: dict[str, list[nn.Parameter]] = {
        "first_conv_weight": [],
        "first_conv_bias": [],
        "normal_weight": [],
        "normal_bias": [],
        "bn": [],
        "lr5_weight": [],
        "lr10_bias": [],
    }
    mults = {
        "first_conv_weight": (1, 1),
        "first_conv_bias": (2, 0),
        "normal_weight": (1, 1),
        "normal_bias": (2, 0),
        "bn": (1, 0),
        "lr5_weight": (5, 1),
        "lr10_bias": (10, 0),
    }
    first_conv_seen = False
    bn_seen = 0
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            prefix = "normal" if first_conv_seen else "first_conv"
            first_conv_seen = True
            groups[f"{prefix}_weight"].append(module.weight)
            if module.bias is not None:
                groups[f"{prefix}_bias"].append(module.bias)
        elif isinstance(module, nn.Linear):
            head = fc_lr5 and module is model.head
            groups["lr5_weight" if head else "normal_weight"].append(module.weight)
            if module.bias is not None:
                groups["lr10_bias" if head else "normal_bias"].append(module.bias)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            bn_seen += 1
            if not model.config.partial_bn or bn_seen == 1:
                groups["bn"].extend(p for p in module.parameters(recurse=False))
        elif list(module.parameters(recurse=False)):
            raise ValueError(f"param_groups: no rule for parameters of {type(module).__name__}")
    return [
        {"name": name, "params": params, "lr_mult": mults[name][0], "decay_mult": mults[name][1]}
        for name, params in groups.items()
        if params
    ]
