"""Non-local blocks (embedded Gaussian, Wang et al. 2018) as used by the published TSM-R50+NL.

Module and parameter names follow the reference release (``g.0``, ``theta``, ``phi.0``,
``W.0``, ``W.1``) so its checkpoints map one to one.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class NonLocalBlock3D(nn.Module):
    """Embedded-Gaussian non-local block on (N, C, T, H, W), spatially sub-sampled keys."""

    def __init__(self, in_channels: int, *, inter_channels: int | None = None) -> None:
        super().__init__()
        inter = inter_channels or max(in_channels // 2, 1)
        self.inter_channels = inter
        self.g = nn.Sequential(nn.Conv3d(in_channels, inter, 1), nn.MaxPool3d(kernel_size=(1, 2, 2)))
        self.theta = nn.Conv3d(in_channels, inter, 1)
        self.phi = nn.Sequential(nn.Conv3d(in_channels, inter, 1), nn.MaxPool3d(kernel_size=(1, 2, 2)))
        out_bn = nn.BatchNorm3d(in_channels)
        self.W = nn.Sequential(nn.Conv3d(inter, in_channels, 1), out_bn)
        # Zero-initialised output BN: a new block starts as the identity.
        nn.init.zeros_(out_bn.weight)
        nn.init.zeros_(out_bn.bias)

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        g_x = self.g(x).reshape(n, self.inter_channels, -1).transpose(1, 2)
        theta_x = self.theta(x).reshape(n, self.inter_channels, -1).transpose(1, 2)
        phi_x = self.phi(x).reshape(n, self.inter_channels, -1)
        attention = torch.softmax(theta_x @ phi_x, dim=-1)
        y = (attention @ g_x).transpose(1, 2).reshape((n, self.inter_channels, *tuple(x.shape[2:])))
        return self.W(y) + x


class NonLocalAfter(nn.Module):
    """Run a 2D block on (N*T, C, H, W), then a non-local block over the clip's T frames.

    Named ``block`` and ``nl`` like the reference release's wrapper.
    """

    def __init__(self, block: nn.Module, channels: int, n_segment: int) -> None:
        super().__init__()
        self.block = block
        self.nl = NonLocalBlock3D(channels)
        self.n_segment = n_segment

    def forward(self, x: Tensor) -> Tensor:
        x = self.block(x)
        shape = x.shape
        clip = x.view((-1, self.n_segment, *tuple(shape[1:]))).transpose(1, 2)
        return self.nl(clip).transpose(1, 2).reshape(shape)
