"""ESPCN: Efficient Sub-Pixel Convolutional Network for super-resolution (Shi et al., 2016)."""
from __future__ import annotations

import torch
from torch import nn

from .common import conv


class ESPCN(nn.Module):
    """ESPCN: ``conv1`` 5x5 (3 -> C) + tanh, ``conv2`` 3x3 (C -> C/2) + tanh, ``conv3`` 3x3
    (C/2 -> 3·s²), PixelShuffle(s).

    Args:
        scale: upscaling factor s (any integer >= 1).
        channels: width C of the first layer (paper: 64; the second layer has C // 2).
    """

    def __init__(self, scale: int = 3, channels: int = 32):
        super().__init__()
        if scale < 1:
            raise ValueError(f"unsupported scale {scale!r}")
        self.conv1 = conv(3, channels, 5)
        self.conv2 = conv(channels, channels // 2)
        self.conv3 = conv(channels // 2, 3 * scale * scale)
        self.act = nn.Tanh()
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        return self.shuffle(self.conv3(x))
