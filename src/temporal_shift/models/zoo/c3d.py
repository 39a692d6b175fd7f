"""C3D (Tran et al., "Learning Spatiotemporal Features with 3D Convolutional Networks", ICCV 2015).

The original network, layer for layer (the paper's Fig. 3 and its Caffe release): eight
3x3x3 convolutions (stride 1, padding 1) with ReLU, five max pools, two 4096-wide fully
connected layers with ReLU and dropout, then the classifier (``head``)::

    conv1a 64   pool1 1x2x2
    conv2a 128  pool2 2x2x2
    conv3a 256  conv3b 256  pool3 2x2x2
    conv4a 512  conv4b 512  pool4 2x2x2
    conv5a 512  conv5b 512  pool5 2x2x2
    fc6 4096 -> fc7 4096 -> head (num_classes)

On its published input, 16 frames of 112x112, pool5 leaves 512 x 1 x 4 x 4 = 8192
features for fc6. The pools round up (``ceil_mode``, as Caffe's pooling does), which is
what turns conv5b's 7x7 into pool5's 4x4. Other sizes: an adaptive average pool to
(1, 4, 4) sits before fc6, so any T and any H, W >= 16 give fc6 its 8192 inputs; on the
published 16x112x112 it is the identity and the network is exactly the paper's.

Choices, documented:

- BatchNorm: none, as in the original (it predates BN). Training from scratch is slower
  for it; the paper's recipe (SGD, lr 0.003, batch 30, dropout 0.5) is the one to follow.
  ``partial_bn`` is rejected (there is no BN layer to freeze).
- Dropout: the original has 0.5 after fc6 and after fc7; both use ``config.dropout``
  (default 0.5), the one before the head being the contract's.
- Cost at 16x112x112 (pinned in tests/test_zoo_3d.py): 38.55 GMACs, the figure quoted
  for C3D as "38.5 GFLOPs" (multiply-adds) in Tran et al. 2017, "ConvNet Architecture
  Search for Spatiotemporal Feature Learning"; 79.99M parameters with the Sports-1M head
  (487 classes), each layer's count equal to the Keras port of the Caffe Sports-1M
  weights (conv1a 5,248 ... conv5b 7,078,400, fc6 33,558,528); 78.41M with UCF101's 101.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import ClassVar

import torch
from torch import Tensor, nn

from temporal_shift.models.base import ClipClassifier
from temporal_shift.models.config import ModelConfig

# (name, in channels, out channels) of the eight convolutions; a pool follows the last of each stage.
_STAGES: tuple[tuple[tuple[str, int, int], ...], ...] = (
    (("conv1a", 3, 64),),
    (("conv2a", 64, 128),),
    (("conv3a", 128, 256), ("conv3b", 256, 256)),
    (("conv4a", 256, 512), ("conv4b", 512, 512)),
    (("conv5a", 512, 512), ("conv5b", 512, 512)),
)
FC_WIDTH = 4096
POOL5_SIZE = (1, 4, 4)  # pool5's output on 16x112x112, what fc6 was built for
MIN_SIZE = 16  # H and W: five poolings halve them (rounding up) down to at least 1


class C3D(ClipClassifier):
    """(N, T, 3, H, W) clips -> (N, K) logits; published on T=16, 112x112."""

    archs: ClassVar[tuple[str, ...]] = ("c3d",)
    input_size: ClassVar[int] = 112
    frames: ClassVar[tuple[int, ...]] = (16,)

    @classmethod
    def check_config(cls, config: ModelConfig) -> None:
        """Any T >= 1 (the pools round up); no partial BN (C3D has no BatchNorm)."""
        super().check_config(config)
        if config.partial_bn:
            raise ValueError("partial_bn: C3D has no BatchNorm layers to freeze; set partial_bn to false")

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        layers: dict[str, nn.Module] = {}
        for index, stage in enumerate(_STAGES, start=1):
            for name, cin, cout in stage:
                layers[name] = nn.Conv3d(cin, cout, kernel_size=3, padding=1)
                layers[f"relu{name[4:]}"] = nn.ReLU(inplace=True)
            kernel = (1, 2, 2) if index == 1 else (2, 2, 2)  # pool1 keeps time (the paper's choice)
            layers[f"pool{index}"] = nn.MaxPool3d(kernel, stride=kernel, ceil_mode=True)
        self.features = nn.Sequential(OrderedDict(layers))
        flat = 512 * POOL5_SIZE[0] * POOL5_SIZE[1] * POOL5_SIZE[2]
        self.fc6 = nn.Linear(flat, FC_WIDTH)
        self.fc7 = nn.Linear(FC_WIDTH, FC_WIDTH)
        self.relu = nn.ReLU(inplace=True)
        self.set_head(FC_WIDTH)
        for module in self.modules():  # He init (fan in): no BN rescales this ReLU stack
            if isinstance(module, (nn.Conv3d, nn.Linear)) and module is not self.head:
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                assert module.bias is not None  # every one is built with a bias
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.checked(x).transpose(1, 2)  # (N, 3, T, H, W)
        x = adaptive_avg_pool(self.features(x), POOL5_SIZE).flatten(1)
        x = self.dropout(self.relu(self.fc6(x)))
        x = self.dropout(self.relu(self.fc7(x)))
        return self.head(x)

    def check_input(self, x: Tensor) -> None:
        super().check_input(x)
        if min(x.shape[-2:]) < MIN_SIZE:
            raise ValueError(
                f"C3D needs frames of at least {MIN_SIZE}x{MIN_SIZE} (published: 112x112), got {tuple(x.shape)}"
            )


def adaptive_avg_pool(x: Tensor, size: tuple[int, int, int]) -> Tensor:
    """`F.adaptive_avg_pool3d` (same bins) written with slices and means, which ONNX
    exports (its exporter has no adaptive 3D pool); the identity when ``x`` already has
    ``size``. Shapes are static at export, so the bins are Python numbers."""
    if tuple(x.shape[2:]) == size:
        return x
    for dim, out in zip((2, 3, 4), size, strict=True):
        length = x.shape[dim]
        bins = [
            x.narrow(dim, i * length // out, -(-(i + 1) * length // out) - i * length // out).mean(dim, keepdim=True)
            for i in range(out)
        ]
        x = torch.cat(bins, dim=dim)
    return x
