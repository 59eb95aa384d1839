"""RCAN: Residual Channel Attention Networks for image super-resolution (Zhang et al., 2018)."""
from __future__ import annotations

import torch
from torch import nn

from .common import ChannelAttention, check_scale, conv, standard_upsampler


class RCAB(nn.Module):
    """Residual channel attention block: ``x + attention(conv2(relu(conv1(x))))``."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        self.conv1 = conv(channels, channels)
        self.act = nn.ReLU()
        self.conv2 = conv(channels, channels)
        self.attention = ChannelAttention(channels, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attention(self.conv2(self.act(self.conv1(x))))


class ResidualGroup(nn.Module):
    """``blocks`` RCABs followed by a conv3x3, with a group skip ``x + body(x)``."""

    def __init__(self, channels: int, blocks: int, reduction: int):
        super().__init__()
        self.body = nn.Sequential(*[RCAB(channels, reduction) for _ in range(blocks)],
                                  conv(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class RCAN(nn.Module):
    """RCAN super-resolution network (no mean shift).

    ``head`` conv3x3 (3 -> C); ``body`` = ``groups`` ResidualGroups then a conv3x3, with a global
    skip; ``tail`` = standard upsampler + conv C -> 3.

    Args:
        scale: upscaling factor, 2, 3 or 4.
        groups: number of residual groups (paper: 10).
        blocks: RCABs per group (paper: 20).
        channels: feature width C (paper: 64).
        reduction: channel-attention reduction ratio (paper: 16).
    """

    def __init__(self, scale: int = 2, groups: int = 2, blocks: int = 2, channels: int = 32,
                 reduction: int = 8):
        super().__init__()
        check_scale(scale)
        self.head = conv(3, channels)
        self.body = nn.Sequential(*[ResidualGroup(channels, blocks, reduction) for _ in range(groups)],
                                  conv(channels, channels))
        self.tail = standard_upsampler(channels, scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(x)
        res = self.body(x) + x
        return self.tail(res)
