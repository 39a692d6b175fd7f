"""Karpathy et al. (2014)'s fusion models on a shared 2D ResNet trunk.

"Large-scale Video Classification with Convolutional Neural Networks" (CVPR 2014)
fuses time into an AlexNet-like 2D network in three ways; the TSM paper lists them
among the 2D baselines it improves on. Here the trunk is a torchvision ResNet
(``arch``: resnet18, resnet34 or resnet50), so each fusion is restated for a ResNet:

- **late fusion** (`LateFusion`, family ``late_fusion``): Karpathy runs two single-frame
  towers (shared weights) on frames 15 apart and merges them only at the first fully
  connected layer. Here the trunk runs on each of the T input frames alone (frames folded
  into the batch, like TSN); the T pooled feature vectors are concatenated, in time order,
  into the one fully connected layer a ResNet has: ``head = Linear(T * D, K)``. So the
  classifier sees which frame came first, which TSN's average does not. Published T: 2
  (frames far apart: the data pipeline's segment sampling spreads the T frames over the
  video); it takes any T >= 2.
- **early fusion** (`EarlyFusion`, ``early_fusion``): Karpathy extends the first
  convolution's filters over T = 10 contiguous frames (11x11x3x10). Here the ResNet's
  first convolution is a Conv3d with temporal kernel T (7x7 spatially, stride 2, no
  temporal padding), i.e. a 2D convolution over the 3T stacked channels; one time
  position comes out and the rest of the trunk is the 2D ResNet. Published T: 10; it
  takes any T >= 2.
- **slow fusion** (`SlowFusion`, ``slow_fusion``): Karpathy's first convolution spans 4
  frames with temporal stride 2 on a 10-frame clip (4 responses in time), and the second
  and third convolutions span 2 positions with stride 2, so the third layer sees all 10
  frames. Here the ResNet's first convolution is a Conv3d with temporal kernel 4 and
  stride 2 (10 frames -> 4 positions), and the spatially strided convolutions of layer2
  and layer3 (the 3x3 convolution of the first block, in torchvision's placement, and its
  1x1 shortcut) span 2 positions with temporal stride 2 (4 -> 2 -> 1). After layer3 one
  position sees all 10 frames; layer4 is 2D. It takes exactly T = 10: the three temporal
  levels are fixed, any other T would drop frames or leave the top short of the clip.

Each is a plain torchvision ResNet whose time-spanning convolutions are
`TimeFoldedConv3d`: a Conv3d that takes and returns frames folded into the batch, so the
torchvision module tree, its forward and its state-dict keys stay as they are. A 2D
ImageNet state dict fills the trunk (``build_model(..., backbone_weights=PATH)``): the
time-spanning kernels get the 2D kernel repeated over time and divided by the temporal
extent, so a clip of identical frames gives the 2D network's features.

Costs at 224x224, 400 classes (`apps.bench.overhead.count_flops` / 2, pinned in tests/test_zoo_2d.py),
against ResNet-18's 1.81 GMACs per frame: late fusion 2f 3.63 GMACs, 11.6M parameters;
early fusion 10f 2.88 GMACs, 11.5M; slow fusion 10f 5.57 GMACs, 11.8M (ResNet-50 trunk:
9.85 GMACs, 25.7M). Karpathy's networks were AlexNet-sized on 170x170 crops; no figure of
theirs applies to a ResNet trunk, so these are ours, not published ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from torch import Tensor, nn
from torchvision import models as tvm

from temporal_shift.models.backbones import headless_backbone
from temporal_shift.models.base import ClipClassifier
from temporal_shift.models.config import ModelConfig
from temporal_shift.models.state import CheckpointError

TRUNKS: tuple[str, ...] = ("resnet18", "resnet34", "resnet50")


class TimeFoldedConv3d(nn.Conv3d):
    """A Conv3d on frames folded into the batch: (N * t_in, C, H, W) -> (N * t_out, C', H', W').

    ``t_in`` is the number of time positions per clip it receives (fixed by the model's T).
    Being an ``nn.Conv3d`` it keeps a plain ``weight`` key and the conv rules of
    `param_groups`.
    """

    def __init__(self, *args, t_in: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.t_in = t_in
        if isinstance(self.padding, str):
            raise ValueError(f"TimeFoldedConv3d takes numeric padding, not padding={self.padding!r}")
        kt, st, pt = self.kernel_size[0], self.stride[0], self.padding[0]
        self.t_out = (t_in + 2 * pt - kt) // st + 1
        if self.t_out < 1 or (t_in + 2 * pt - kt) % st:
            raise ValueError(f"a temporal kernel of {kt} with stride {st} does not tile {t_in} time positions")

    def forward(self, x: Tensor) -> Tensor:
        c, h, w = x.shape[1:]
        clips = x.reshape(-1, self.t_in, c, h, w).transpose(1, 2)  # (N, C, t, H, W)
        out = super().forward(clips).transpose(1, 2)  # (N, t', C', H', W')
        return out.flatten(0, 1)


def _time_conv(conv: nn.Conv2d, *, kt: int, st: int, t_in: int) -> TimeFoldedConv3d:
    """``conv`` (a fresh, unused Conv2d) made to span ``kt`` time positions with temporal stride ``st``."""
    return TimeFoldedConv3d(
        conv.in_channels,
        conv.out_channels,
        kernel_size=(kt, *conv.kernel_size),
        stride=(st, *conv.stride),
        padding=(0, *conv.padding),
        bias=conv.bias is not None,
        t_in=t_in,
    )


def _strided_block_convs(block: nn.Module) -> tuple[str, str]:
    """Names of the spatially strided conv of a torchvision ResNet block and of its shortcut conv."""
    return ("conv2" if isinstance(block, tvm.resnet.Bottleneck) else "conv1"), "downsample.0"


def _check_frames(config: ModelConfig, *, minimum: int) -> None:
    if config.n_segment < minimum:
        raise ValueError(
            f"n_segment={config.n_segment}: model family {config.family!r} fuses frames and needs "
            f"n_segment >= {minimum} (one frame: family single_frame)"
        )


class _FusionModel(ClipClassifier):
    """A ResNet trunk (``self.backbone``, classifier removed), dropout and ``self.head``."""

    archs: ClassVar[tuple[str, ...]] = TRUNKS
    backbone: tvm.ResNet  # one of TRUNKS (torchvision ships no type information: Any to mypy)

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.backbone, self.feature_dim = headless_backbone(config.arch)

    def load_backbone_state(self, state: Mapping[str, Tensor], *, source: str) -> None:
        """Fill the trunk from a torchvision 2D state dict of ``config.arch`` (its ``fc.*`` dropped),
        time-spanning kernels inflated (repeated over time, divided by the extent)."""
        load_2d_state(self.backbone, state, source=source, arch=self.config.arch)


class LateFusion(_FusionModel):
    """(N, T, 3, H, W) -> (N, K): the trunk per frame, the T feature vectors concatenated into the head."""

    frames: ClassVar[tuple[int, ...]] = (2,)

    @classmethod
    def check_config(cls, config: ModelConfig) -> None:
        """Any T >= 2 (published: 2 frames far apart)."""
        super().check_config(config)
        _check_frames(config, minimum=2)

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.set_head(config.n_segment * self.feature_dim)

    def forward(self, x: Tensor) -> Tensor:
        features = self.backbone(self.checked(x).flatten(0, 1))  # (N * T, D), time fastest
        return self.head(self.dropout(features.reshape(-1, self.config.n_segment * self.feature_dim)))


class EarlyFusion(_FusionModel):
    """(N, T, 3, H, W) -> (N, K): the first convolution spans all T frames, the rest is the 2D trunk."""

    frames: ClassVar[tuple[int, ...]] = (10,)

    @classmethod
    def check_config(cls, config: ModelConfig) -> None:
        """Any T >= 2 (published: 10 contiguous frames)."""
        super().check_config(config)
        _check_frames(config, minimum=2)

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        t = config.n_segment
        self.backbone.conv1 = _time_conv(self.backbone.conv1, kt=t, st=1, t_in=t)
        self.set_head(self.feature_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dropout(self.backbone(self.checked(x).flatten(0, 1))))


class SlowFusion(_FusionModel):
    """(N, 10, 3, H, W) -> (N, K): temporal extent 4 (stride 2) at conv1, then 2 (stride 2)
    at the strided convolutions of layer2 and layer3; one position covers all 10 frames."""

    frames: ClassVar[tuple[int, ...]] = (10,)
    # (module path, temporal kernel, temporal stride) of the time-spanning convolutions
    LEVELS: ClassVar[tuple[tuple[str, int, int], ...]] = (("conv1", 4, 2), ("layer2.0", 2, 2), ("layer3.0", 2, 2))

    @classmethod
    def check_config(cls, config: ModelConfig) -> None:
        """Exactly T = 10: conv1 (4 frames, stride 2) -> 4 positions, layer2 -> 2, layer3 -> 1."""
        super().check_config(config)
        if config.n_segment != 10:
            raise ValueError(
                f"n_segment={config.n_segment}: slow_fusion takes n_segment=10 (a 4-frame conv1 with "
                "temporal stride 2, then two 2-position stride-2 stages, cover exactly 10 frames)"
            )

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        t = config.n_segment
        backbone = self.backbone
        for path, kt, st in self.LEVELS:
            if path == "conv1":
                backbone.conv1 = _time_conv(backbone.conv1, kt=kt, st=st, t_in=t)
                t = backbone.conv1.t_out
                continue
            block = backbone.get_submodule(path)
            conv_name, shortcut_name = _strided_block_convs(block)
            conv = _time_conv(getattr(block, conv_name), kt=kt, st=st, t_in=t)
            setattr(block, conv_name, conv)
            block.downsample[0] = _time_conv(block.get_submodule(shortcut_name), kt=kt, st=st, t_in=t)
            t = conv.t_out
        if t != 1:  # guarded by check_config; a changed LEVELS table must still end on one position
            raise AssertionError(f"slow fusion ends with {t} time positions, expected 1")
        self.set_head(self.feature_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dropout(self.backbone(self.checked(x).flatten(0, 1))))


# --- 2D (ImageNet) weights into a trunk -------------------------------------------------


def load_2d_state(
    module: nn.Module,
    state: Mapping[str, Tensor],
    *,
    source: str,
    arch: str,
    ignore: tuple[str, ...] = ("fc.",),
) -> None:
    """Load torchvision 2D weights into ``module`` (a trunk with torchvision's key names).

    Keys starting with ``ignore`` are dropped. 4-D kernels for 5-D (time-spanning)
    weights are repeated over time and divided by the temporal extent. Every other key
    must match in name and shape: a missing, unknown or misshapen one is one error naming
    ``source`` and the expected ``arch``.
    """
    own = module.state_dict()
    state = {k: v for k, v in state.items() if not k.startswith(ignore)}
    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    mapped: dict[str, Tensor] = {}
    misshapen = []
    for key in sorted(set(own) & set(state)):
        value, target = state[key], own[key]
        if value.dim() == 4 and target.dim() == 5:
            kt = target.shape[2]
            value = value.unsqueeze(2).repeat(1, 1, kt, 1, 1) / kt
        if value.shape != target.shape:
            misshapen.append(f"{key} {tuple(state[key].shape)}")
        mapped[key] = value.to(target.dtype)
    if missing or unexpected or misshapen:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen)):
            if keys:
                more = f" ... ({len(keys)})" if len(keys) > 4 else ""
                parts.append(f"{label} keys: " + ", ".join(keys[:4]) + more)
        raise CheckpointError(
            f"{source}: not a torchvision {arch} state dict (the model's 2D trunk is {arch}); " + "; ".join(parts)
        )
    module.load_state_dict(mapped)
