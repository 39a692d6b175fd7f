"""Training-run configuration: typed dataclasses, loaded from YAML plus ``key.sub=value`` overrides.

A config file has four sections::

    model: {arch, n_segment, shift, fold_div, place, ...}     ModelConfig's fields (num_classes: data's)
    data:  {root, train_list, val_list, num_classes, ...}      (root, lists, num_classes required)
    optim: {lr, lr_batch, momentum, weight_decay, schedule, ...}
    run:   {out_dir, seed, device, amp, ...}                   (out_dir required)

Every value is checked against the field's type; an unknown key, a wrong type or a
missing required field is a ``ConfigError`` (a ValueError) naming the key and the file.
``data.train_list``/``data.val_list`` (and the optional class-name file ``data.classes``)
may be relative to ``data.root``.

The learning rate follows the paper's linear scaling rule: ``optim.lr`` is the rate for
``optim.lr_batch`` clips per step (64 by default), and the rate used is
``lr * total_batch / lr_batch`` with ``total_batch = data.batch_size * world_size``.
Set ``lr_batch: null`` to use ``lr`` as given.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from temporal_shift.data.flow.layout import FLOW_X_TEMPLATE
from temporal_shift.data.lists import DEFAULT_TEMPLATE
from temporal_shift.models.config import ModelConfig
from temporal_shift.models.factory import check_config

REQUIRED: Any = dataclasses.MISSING
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class ConfigError(ValueError):
    """A config file or override that does not fit the schema; the message names it."""


@dataclasses.dataclass(frozen=True)
class ModelSection(ModelConfig):
    """The network: `ModelConfig`'s fields, read with its types and defaults (its
    ``num_classes`` is ``data.num_classes``, not a key of this section), plus how the
    trainer initialises and wraps the model."""

    backbone_weights: str | None = None  # torchvision 2D state dict (e.g. ImageNet), or null
    sync_bn: bool = False  # SyncBatchNorm under DDP


@dataclasses.dataclass
class DataSection:
    root: str = REQUIRED
    train_list: str = REQUIRED
    val_list: str = REQUIRED
    num_classes: int = REQUIRED
    classes: str | None = None  # class-name file (one per line), relative to root; saved in checkpoints
    kind: Literal["auto", "frames", "videos"] = "auto"
    template: str = DEFAULT_TEMPLATE
    flow_template: str = FLOW_X_TEMPLATE  # flow models: x files (y: the x turned y), e.g. x_{:05d}.jpg
    decoder: Literal["pyav", "torchcodec"] = "pyav"  # of video lists; torchcodec is an optional extra
    size: int = 224  # training crop and validation centre crop
    scale_size: int = 256  # validation: short side resized to this, then centre crop
    scales: list[float] = dataclasses.field(default_factory=lambda: [1.0, 0.875, 0.75, 0.66])
    flip: bool = True  # horizontal flip in training (off for direction-sensitive classes)
    normalize: bool = True
    batch_size: int = 8  # clips per process and step
    workers: int = 4
    sampling: Literal["tsn", "dense"] = "tsn"
    dense_window: int = 64
    on_error: Literal["raise", "skip"] = "raise"


@dataclasses.dataclass
class OptimSection:
    # sgd: the paper's recipe. adamw: trains small models from scratch in fewer steps
    # (betas (momentum, 0.999), decoupled weight decay; nesterov is SGD-only).
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.01
    lr_batch: int | None = 64  # lr is for this many clips per step; null: no scaling
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    schedule: Literal["step", "cosine"] = "step"
    lr_steps: list[int] = dataclasses.field(default_factory=lambda: [20, 40])
    lr_gamma: float = 0.1
    warmup_epochs: float = 0.0
    clip_grad: float | None = 20.0  # max total gradient norm, null to disable
    epochs: int = 50
    fc_lr5: bool = False  # fine-tuning: 5x/10x lr for the new head


@dataclasses.dataclass
class RunSection:
    out_dir: str = REQUIRED
    seed: int = 0
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    amp: bool = False  # bf16 autocast on CPU, fp16 + grad scaler on CUDA
    eval_every: int = 1
    progress: bool = True
    stop_after_steps: int | None = None  # stop (resumably) after this many steps in total


@dataclasses.dataclass
class TrainConfig:
    model: ModelSection
    data: DataSection
    optim: OptimSection
    run: RunSection

    def to_dict(self) -> dict[str, Any]:
        """The sections as a nested dict, as in the YAML file (``model`` without num_classes)."""
        data = dataclasses.asdict(self)
        del data["model"]["num_classes"]
        return data

    def model_config(self) -> ModelConfig:
        """The model to build (saved in checkpoints): the model section without the trainer's keys."""
        return ModelConfig(**{name: getattr(self.model, name) for name in ModelConfig.field_names()})

    def train_list_path(self) -> Path:
        return Path(self.data.root) / self.data.train_list

    def val_list_path(self) -> Path:
        return Path(self.data.root) / self.data.val_list

    def classes_path(self) -> Path | None:
        return None if self.data.classes is None else Path(self.data.root) / self.data.classes


_SECTIONS: dict[str, type] = {"model": ModelSection, "data": DataSection, "optim": OptimSection, "run": RunSection}


# --- type checking -------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any) -> Any:
    """``value`` as type ``tp`` (ints are accepted for floats); raises TypeError."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value in typing.get_args(tp) and isinstance(value, str):
            return value
        raise TypeError
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg)
            except TypeError:
                pass
        raise TypeError
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise TypeError
        (item,) = typing.get_args(tp)
        return [_coerce(v, item) for v in value]
    if tp is type(None):
        if value is None:
            return None
        raise TypeError
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise TypeError
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):  # YAML 1.1 reads 1e-4 as a string
            return float(value)
        raise TypeError
    if tp is str:
        if isinstance(value, str):
            return value
        raise TypeError
    raise TypeError


def _build_section(
    cls: type, values: dict[str, Any], *, section: str, source: str, given: dict[str, Any] | None = None
) -> Any:
    """The section ``cls`` from the file's ``values``; ``given`` are fields set from
    elsewhere (not keys of the section)."""
    given = given or {}
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in given}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown key {section}.{unknown[0]} (known {section} keys: {', '.join(fields)})")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key = f"{section}.{name}"
        if name not in values:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{source}: missing required key {key}")
            continue
        try:
            kwargs[name] = _coerce(values[name], hints[name])
        except TypeError:
            raise ConfigError(f"{source}: {key} must be {_type_name(hints[name])}, got {values[name]!r}") from None
    try:
        return cls(**kwargs, **given)
    except ValueError as exc:  # the section's own checks (ModelConfig's)
        raise ConfigError(f"{source}: {section}: {exc}") from None


def _check_values(config: TrainConfig, source: str) -> None:
    """Range checks that types cannot express (the model section checks itself: ModelConfig)."""
    positive = {
        "data.num_classes": config.data.num_classes,
        "data.size": config.data.size,
        "data.scale_size": config.data.scale_size,
        "data.batch_size": config.data.batch_size,
        "data.dense_window": config.data.dense_window,
        "optim.epochs": config.optim.epochs,
        "run.eval_every": config.run.eval_every,
    }
    if config.optim.lr_batch is not None:
        positive["optim.lr_batch"] = config.optim.lr_batch
    if config.run.stop_after_steps is not None:
        positive["run.stop_after_steps"] = config.run.stop_after_steps
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"{source}: {key} must be at least 1, got {value}")
    checks = [
        ("data.workers", config.data.workers >= 0, "must be >= 0"),
        ("optim.lr", config.optim.lr > 0, "must be > 0"),
        ("optim.momentum", 0 <= config.optim.momentum < 1, "must be in [0, 1)"),
        (
            "optim.nesterov",
            not (config.optim.nesterov and config.optim.optimizer == "adamw"),
            "is for optim.optimizer=sgd only",
        ),
        ("optim.weight_decay", config.optim.weight_decay >= 0, "must be >= 0"),
        ("optim.warmup_epochs", 0 <= config.optim.warmup_epochs < config.optim.epochs, "must be in [0, epochs)"),
        ("optim.clip_grad", config.optim.clip_grad is None or config.optim.clip_grad > 0, "must be > 0 or null"),
        ("optim.lr_steps", list(config.optim.lr_steps) == sorted(config.optim.lr_steps), "must be increasing"),
        ("data.scales", bool(config.data.scales) and all(0 < s <= 1 for s in config.data.scales), "must be in (0, 1]"),
        (
            "run.device",
            config.run.device in ("auto", "cpu", "cuda") or config.run.device.startswith("cuda:"),
            "must be auto, cpu, cuda or cuda:N",
        ),
    ]
    for key, ok, what in checks:
        if not ok:
            raise ConfigError(f"{source}: {key} {what}, got {_get(config, key)!r}")


def _get(config: TrainConfig, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


# --- public API ----------------------------------------------------------------------


def config_from_dict(data: Any, *, source: str = "config") -> TrainConfig:
    """Validate a nested dict (as read from YAML) into a `TrainConfig`."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: expected a mapping with sections {', '.join(_SECTIONS)}, got {type(data).__name__}"
        )
    unknown = sorted(set(data) - set(_SECTIONS))
    if unknown:
        raise ConfigError(f"{source}: unknown section {unknown[0]!r} (known: {', '.join(_SECTIONS)})")
    values: dict[str, dict[str, Any]] = {}
    for name in _SECTIONS:
        values[name] = data.get(name) or {}
        if not isinstance(values[name], dict):
            raise ConfigError(f"{source}: section {name} must be a mapping, got {values[name]!r}")
    # The model is built last: its num_classes is data.num_classes, once that is checked.
    sections = {
        name: _build_section(cls, values[name], section=name, source=source)
        for name, cls in _SECTIONS.items()
        if name != "model"
    }
    num_classes = sections["data"].num_classes
    if num_classes < 1:
        raise ConfigError(f"{source}: data.num_classes must be at least 1, got {num_classes}")
    if "num_classes" in values["model"]:
        raise ConfigError(f"{source}: model.num_classes is not a key: the number of classes is data.num_classes")
    sections["model"] = _build_section(
        ModelSection,
        values["model"],
        section="model",
        source=source,
        given={"num_classes": num_classes},
    )
    config = TrainConfig(**sections)
    try:  # what the model family accepts (its archs, T, options)
        check_config(config.model_config())
    except ValueError as exc:
        raise ConfigError(f"{source}: model: {exc}") from None
    _check_values(config, source)
    return config


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optim.lr=0.02"`` -> (["optim", "lr"], 0.02); the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    parts = key.strip().split(".")
    if not sep or len(parts) != 2 or not all(parts):
        raise ConfigError(f"override {text!r}: expected section.key=value, e.g. optim.lr=0.02")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc.__class__.__name__})") from None
    return parts, value


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read a YAML config file, apply ``section.key=value`` overrides and validate."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.MarkedYAMLError as exc:  # syntax errors carry the place: say line and column
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = exc.problem or exc.context or type(exc).__name__
        started = exc.context_mark
        if exc.problem and exc.context and started and started.line != getattr(mark, "line", None):
            problem += f" ({exc.context} started at line {started.line + 1}, column {started.column + 1})"
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{path}: not valid YAML: {first}") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with sections {', '.join(_SECTIONS)}")
    source = str(path)
    if overrides:
        data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
        for text in overrides:
            (section, key), value = parse_override(text)
            if section not in _SECTIONS:
                raise ConfigError(f"override {text!r}: unknown section {section!r} (known: {', '.join(_SECTIONS)})")
            current = data.get(section)
            if not isinstance(current, dict):
                current = {}
                data[section] = current
            current[key] = value
        source = f"{path} (with overrides {' '.join(overrides)})"
    return config_from_dict(data, source=source)


def save_config(config: TrainConfig, path: str | Path) -> Path:
    """Write the resolved config as YAML (loadable with `load_config`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    return path
