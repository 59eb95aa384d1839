"""SRResNet: the generator of SRGAN trained with a pixel loss (Ledig et al., 2017)."""
from __future__ import annotations

import torch
from torch import nn

from .common import check_scale, conv, standard_upsampler


class ResidualBlock(nn.Module):
    """``x + bn2(conv2(prelu(bn1(conv1(x)))))``; PReLU has a single shared slope."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = conv(channels, channels)
        self.bn1 = nn.BatchNorm2d(channels)
        self.act = nn.PReLU()
        self.conv2 = conv(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bn2(self.conv2(self.act(self.bn1(self.conv1(x)))))


class SRResNet(nn.Module):
    """SRResNet super-resolution network.

    ``head`` = conv9x9 (3 -> C) + PReLU; ``body`` = ``blocks`` ResidualBlocks, then conv3x3 +
    BatchNorm2d, added to the head output; ``tail`` = log2(scale) stages of conv(C -> 4C) +
    PixelShuffle(2) + PReLU, then conv9x9 (C -> 3). All PReLUs have one shared slope (nn.PReLU()).

    Args:
        scale: upscaling factor, 2, 4 or 8.
        blocks: number of residual blocks (paper: 16).
        channels: feature width C (paper: 64).
    """

    def __init__(self, scale: int = 4, blocks: int = 4, channels: int = 32):
        super().__init__()
        check_scale(scale, (2, 4, 8))
        self.head = nn.Sequential(conv(3, channels, 9), nn.PReLU())
        self.body = nn.Sequential(*[ResidualBlock(channels) for _ in range(blocks)],
                                  conv(channels, channels), nn.BatchNorm2d(channels))
        self.tail = standard_upsampler(channels, scale, act=nn.PReLU, final_kernel=9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(x)
        return self.tail(self.body(x) + x)
