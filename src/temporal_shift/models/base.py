"""`ClipClassifier`: what every model family is and shares.

A family is a class built from a `ModelConfig`: clips (N, T, C, H, W) in, logits (N, K) out,
the classifier in ``head``; so training, testing, checkpoints, export and benchmarks take
them all. The base class holds what the families share (T, the input check, dropout and
head, partial BatchNorm in training mode) and declares the interface callers rely on:

- class attributes: ``archs`` (the arch names it builds), ``input_size`` (its published
  crop), ``frames`` (its published T values), ``supports_shift`` (the shift options
  ``shift``, ``mode``, ``temporal_pool``, ``non_local``), ``modalities``;
- ``check_config(config)``: the family's own checks of a config (the generic ones are
  `ModelConfig`'s); subclasses extend it;
- ``load_backbone_state(state, source=...)``: fill the network from 2D (ImageNet) weights
  given as a torchvision state dict (families without such a mapping refuse it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor, nn

from temporal_shift.models.config import ModelConfig


class ClipClassifier(nn.Module):
    """Base of every model family: (N, T, C, H, W) clips -> (N, num_classes) logits."""

    archs: ClassVar[tuple[str, ...]] = ()
    input_size: ClassVar[int] = 224  # the published crop
    frames: ClassVar[tuple[int, ...]] = (8,)  # the published T values
    supports_shift: ClassVar[bool] = False
    modalities: ClassVar[tuple[str, ...]] = ("rgb",)

    config: ModelConfig
    head: nn.Linear
    backbone: nn.Module  # the 2D network, where a family has one

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        type(self).check_config(config)
        self.config = config
        self.dropout = nn.Dropout(config.dropout)

    @classmethod
    def check_config(cls, config: ModelConfig) -> None:
        """Raise ValueError if this family cannot build ``config`` (its arch, options, T)."""
        family = config.family
        if config.arch not in cls.archs:
            raise ValueError(
                f"unknown arch {config.arch!r} for model family {family!r}; supported: {', '.join(cls.archs)}"
            )
        if not cls.supports_shift:
            for name in ("shift", "temporal_pool", "non_local"):
                if getattr(config, name):
                    raise ValueError(
                        f"{name}=True is for the tsn family (TSN/TSM); model family {family!r} "
                        f"has no {name}: set {name} to false"
                    )
            if config.mode != "bidirectional":
                raise ValueError(f"mode={config.mode!r} is for the tsn family (online TSM), not {family!r}")
        if config.modality not in cls.modalities:
            raise ValueError(
                f"modality={config.modality!r} is for the tsn family (TSN/TSM flow streams), not {family!r}"
            )

    @property
    def n_segment(self) -> int:
        return self.config.n_segment

    def set_head(self, in_features: int) -> None:
        """The classifier on ``in_features``; with partial BN, freeze the BN layers but the first
        (call it last in ``__init__``: the BN layers must exist)."""
        self.head = new_head(in_features, self.config.num_classes)
        if self.config.partial_bn:
            freeze_partial_bn(self.partial_bn_root())

    def partial_bn_root(self) -> nn.Module:
        """The module whose BN layers partial BN freezes (all but its first)."""
        return self.backbone

    def check_input(self, x: Tensor) -> None:
        """Raise ValueError unless ``x`` is a (N, T, C, H, W) batch of this model's clips."""
        c, t = self.config.input_channels, self.config.n_segment
        if x.dim() != 5 or x.shape[1] != t or x.shape[2] != c:
            flow = self.config.modality == "flow"
            raise ValueError(
                f"expected input of shape (N, T={t}, C={c}, H, W)"
                + (f" (a stack of {self.config.flow_length} flow fields per frame)" if flow else "")
                + f", got {tuple(x.shape)}"
            )

    def checked(self, x: Tensor) -> Tensor:
        """``x`` after `check_input` (skipped while tracing, where shapes are symbolic)."""
        if not torch.jit.is_tracing():
            self.check_input(x)
        return x

    def train(self, mode: bool = True) -> ClipClassifier:
        """Like `nn.Module.train`; with partial BN, every BN layer but the first stays in eval."""
        super().train(mode)
        if mode and self.config.partial_bn:
            partial_bn_eval(self.partial_bn_root())
        return self

    def load_backbone_state(self, state: Mapping[str, Tensor], *, source: str) -> None:
        """Fill the network from a torchvision 2D state dict (e.g. ImageNet weights)."""
        raise ValueError(f"{source}: model family {self.config.family!r} takes no 2D backbone weights")


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


def plain_key(key: str) -> str:
    """A backbone key without the wrapper levels we insert (``net``: shift, temporal pool;
    ``block``: non-local), i.e. torchvision's name for the same tensor."""
    return ".".join(part for part in key.split(".") if part not in ("net", "block"))
