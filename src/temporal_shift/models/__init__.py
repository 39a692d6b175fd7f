"""Video models: the TSN/TSM recognizer on torchvision backbones and the paper's comparison
models, each a `ClipClassifier` built from a `ModelConfig`.

- `config`: `ModelConfig`; `base`: `ClipClassifier`, heads, partial BN; `backbones`: the 2D
  backbones table and `make_temporal_shift`; `insert`: where shifts go in each network;
- `tsn`: `VideoRecognizer` (TSN/TSM); `zoo/`: the comparison families; `factory`:
  `FAMILIES`, `build_model`, `model_from_config`;
- `online`: the streaming step of a causal TSM; `non_local`, `flow_stem`, `optim_groups` (`param_groups`);
  `state`: loading state dicts strictly.

Models take state dicts and never read files (`temporal_shift.checkpoint` does). The names
below load on first use, so importing one module of the package (e.g. `state`) does not
build the zoo.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "BACKBONES": "temporal_shift.models.backbones",
    "make_non_local": "temporal_shift.models.backbones",
    "make_temporal_shift": "temporal_shift.models.backbones",
    "ClipClassifier": "temporal_shift.models.base",
    "ModelConfig": "temporal_shift.models.config",
    "FAMILIES": "temporal_shift.models.factory",
    "build_model": "temporal_shift.models.factory",
    "model_from_config": "temporal_shift.models.factory",
    "TemporalPool": "temporal_shift.models.insert",
    "param_groups": "temporal_shift.models.optim_groups",
    "VideoRecognizer": "temporal_shift.models.tsn",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from temporal_shift.models.backbones import BACKBONES as BACKBONES
    from temporal_shift.models.backbones import make_non_local as make_non_local
    from temporal_shift.models.backbones import make_temporal_shift as make_temporal_shift
    from temporal_shift.models.base import ClipClassifier as ClipClassifier
    from temporal_shift.models.config import ModelConfig as ModelConfig
    from temporal_shift.models.factory import FAMILIES as FAMILIES
    from temporal_shift.models.factory import build_model as build_model
    from temporal_shift.models.factory import model_from_config as model_from_config
    from temporal_shift.models.insert import TemporalPool as TemporalPool
    from temporal_shift.models.optim_groups import param_groups as param_groups
    from temporal_shift.models.tsn import VideoRecognizer as VideoRecognizer
