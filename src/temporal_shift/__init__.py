"""temporal-shift: the Temporal Shift Module (TSM, ICCV 2019) for video action recognition.

The public API, importable from the package (``from temporal_shift import build_model``):

- the op: `temporal_shift`, `TemporalShift`;
- models: `build_model`, `ModelConfig`, `VideoRecognizer`, `make_temporal_shift`,
  `make_non_local`, `param_groups`, `BACKBONES`;
- checkpoints: `save_checkpoint`, `load_checkpoint` (any supported layout) ->
  `LoadedCheckpoint`, `load_model` (ours), `import_checkpoint`, `CheckpointError`;
- published weights: `get_weights` (a name -> `PublishedWeights`, which `load_checkpoint`
  and every command's checkpoint argument take), `download_weights`, `class_names`;
- online: `OnlineRecognizer`, `OnlineStream`, `load_online`;
- data: `VideoDataset`, `TSNSampler`, `DenseSampler`, `train_transform`, `test_transform`,
  `read_list`, `generate_synthetic`;
- evaluation and prediction: `EvalProtocol`, `Member`, `Predictor`, `pipeline` (a video
  classifier in one call: paths or frame arrays -> ``[{"label", "score"}]``);
- export: `export_model`, `verify_export`, `export_online`;
- speed: `compile_for_inference` (one graph, CUDA graphs on CUDA), `benchmark_overhead`
  (TSN vs TSM inference), `benchmark_training` (TSN vs TSM training steps);
- training: `TrainConfig`, `load_config`;
- the modules `evaluate`, `predict` and `train`, whose main functions have their names
  (``temporal_shift.engine.evaluate.evaluate(...)``): exporting the functions here would hide
  the modules of the same name.

Names are loaded on first use (PEP 562 module ``__getattr__``): importing the package,
or starting the ``tsm`` command, does not import torch, torchvision or PyAV.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module defining it
_EXPORTS: dict[str, str] = {
    "temporal_shift": "temporal_shift.ops.shift",
    "TemporalShift": "temporal_shift.ops.shift",
    "build_model": "temporal_shift.hub.build",
    "ModelConfig": "temporal_shift.models.config",
    "VideoRecognizer": "temporal_shift.models.tsn",
    "param_groups": "temporal_shift.models.optim_groups",
    "BACKBONES": "temporal_shift.models.backbones",
    "make_temporal_shift": "temporal_shift.models.backbones",
    "make_non_local": "temporal_shift.models.backbones",
    "save_checkpoint": "temporal_shift.checkpoint.format",
    "CheckpointError": "temporal_shift.checkpoint.format",
    "load_checkpoint": "temporal_shift.checkpoint.loading",
    "LoadedCheckpoint": "temporal_shift.checkpoint.loading",
    "load_model": "temporal_shift.hub.build",
    "import_checkpoint": "temporal_shift.checkpoint.importers",
    "get_weights": "temporal_shift.hub.weights",
    "download_weights": "temporal_shift.hub.weights",
    "class_names": "temporal_shift.hub.published",
    "PublishedWeights": "temporal_shift.hub.published",
    "OnlineRecognizer": "temporal_shift.models.online",
    "OnlineStream": "temporal_shift.models.online",
    "load_online": "temporal_shift.checkpoint.loading",
    "VideoDataset": "temporal_shift.data.dataset",
    "TSNSampler": "temporal_shift.data.sampling",
    "DenseSampler": "temporal_shift.data.sampling",
    "train_transform": "temporal_shift.data.transforms",
    "test_transform": "temporal_shift.data.transforms",
    "read_list": "temporal_shift.data.lists",
    "generate_synthetic": "temporal_shift.data.synthetic",
    "EvalProtocol": "temporal_shift.engine.evaluate",
    "Member": "temporal_shift.engine.evaluate",
    "Predictor": "temporal_shift.engine.predict",
    "pipeline": "temporal_shift.engine.pipeline",
    "export_model": "temporal_shift.engine.export",
    "verify_export": "temporal_shift.engine.export",
    "export_online": "temporal_shift.engine.export",
    "compile_for_inference": "temporal_shift.engine.compiled",
    "benchmark_overhead": "temporal_shift.apps.bench.overhead",
    "benchmark_training": "temporal_shift.apps.bench.train",
    "TrainConfig": "temporal_shift.engine.config",
    "load_config": "temporal_shift.engine.config",
}
# submodules exported as modules: their main function has the module's name
_SUBMODULES: dict[str, str] = {
    "evaluate": "temporal_shift.engine.evaluate",
    "predict": "temporal_shift.engine.predict",
    "train": "temporal_shift.engine.train",
}

__all__ = sorted([*_EXPORTS, *_SUBMODULES])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(_SUBMODULES[name])
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from temporal_shift.apps.bench.overhead import benchmark_overhead as benchmark_overhead
    from temporal_shift.apps.bench.train import benchmark_training as benchmark_training
    from temporal_shift.checkpoint.format import CheckpointError as CheckpointError
    from temporal_shift.checkpoint.format import save_checkpoint as save_checkpoint
    from temporal_shift.checkpoint.importers import import_checkpoint as import_checkpoint
    from temporal_shift.checkpoint.loading import LoadedCheckpoint as LoadedCheckpoint
    from temporal_shift.checkpoint.loading import load_checkpoint as load_checkpoint
    from temporal_shift.checkpoint.loading import load_online as load_online
    from temporal_shift.data.dataset import VideoDataset as VideoDataset
    from temporal_shift.data.lists import read_list as read_list
    from temporal_shift.data.sampling import DenseSampler as DenseSampler
    from temporal_shift.data.sampling import TSNSampler as TSNSampler
    from temporal_shift.data.synthetic import generate_synthetic as generate_synthetic
    from temporal_shift.data.transforms import test_transform as test_transform
    from temporal_shift.data.transforms import train_transform as train_transform
    from temporal_shift.engine import evaluate as evaluate
    from temporal_shift.engine import predict as predict
    from temporal_shift.engine import train as train
    from temporal_shift.engine.compiled import compile_for_inference as compile_for_inference
    from temporal_shift.engine.config import TrainConfig as TrainConfig
    from temporal_shift.engine.config import load_config as load_config
    from temporal_shift.engine.evaluate import EvalProtocol as EvalProtocol
    from temporal_shift.engine.evaluate import Member as Member
    from temporal_shift.engine.export import export_model as export_model
    from temporal_shift.engine.export import export_online as export_online
    from temporal_shift.engine.export import verify_export as verify_export
    from temporal_shift.engine.pipeline import pipeline as pipeline
    from temporal_shift.engine.predict import Predictor as Predictor
    from temporal_shift.hub.build import build_model as build_model
    from temporal_shift.hub.build import load_model as load_model
    from temporal_shift.hub.published import PublishedWeights as PublishedWeights
    from temporal_shift.hub.published import class_names as class_names
    from temporal_shift.hub.weights import download_weights as download_weights
    from temporal_shift.hub.weights import get_weights as get_weights
    from temporal_shift.models.backbones import BACKBONES as BACKBONES
    from temporal_shift.models.backbones import make_non_local as make_non_local
    from temporal_shift.models.backbones import make_temporal_shift as make_temporal_shift
    from temporal_shift.models.config import ModelConfig as ModelConfig
    from temporal_shift.models.online import OnlineRecognizer as OnlineRecognizer
    from temporal_shift.models.online import OnlineStream as OnlineStream
    from temporal_shift.models.optim_groups import param_groups as param_groups
    from temporal_shift.models.tsn import VideoRecognizer as VideoRecognizer
    from temporal_shift.ops.shift import TemporalShift as TemporalShift
    from temporal_shift.ops.shift import temporal_shift as temporal_shift
