"""`ModelConfig`: every setting needed to rebuild a model, saved with every checkpoint.

It is the single source of truth for T (``n_segment``) and the one list of model options:
`build_model`'s keyword options and the training config's ``model`` section are its
fields, so a new option is a new field here (with its type, default and check) and
nothing else. The checks here are the generic ones; what a model family accepts (its
archs, T, shift options) is checked by the family (`ClipClassifier.check_config`).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal

from temporal_shift.ops.shift import check_shift_args

MODALITIES = ("rgb", "flow")
PLACES = ("blockres", "block")


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
    # i3d, eco_lite, eco_full. `factory.FAMILIES[family].archs` lists the archs each takes.
    family: str = "tsn"
    # flow: the two-stream baseline's flow stream (tsn family, TSN or TSM): each segment is a
    # stack of flow_length (L) consecutive flow fields, 2L channels (x1, y1, x2, ...), and the
    # first convolution takes 2L channels (initialised from RGB weights by averaging them)
    modality: Literal["rgb", "flow"] = "rgb"
    flow_length: int = 5  # L, flow fields per segment (flow only; RGB takes one frame per segment)
    # convolutions that compute only the kernel taps that meet the input where a feature map
    # is a single position (ResNet-18's 1x1 layer4 maps at 32x32 frames): the same layers and
    # results, much cheaper backward passes on tiny frames; off for ordinary frame sizes
    small_maps: bool = False

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
        if self.modality == "flow" and self.mode != "bidirectional":
            raise ValueError("modality='flow' takes mode='bidirectional': online (causal) models stream RGB frames")

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
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
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


def model_name(config: ModelConfig) -> str:
    """What the config builds, for messages: TSM, TSN, or the comparison family's name."""
    if config.family == "tsn":
        return "TSM" if config.shift else "TSN"
    return config.family
