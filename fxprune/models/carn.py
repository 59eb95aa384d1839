"""CARN: Cascading Residual Network for fast, lightweight super-resolution (Ahn et al., 2018)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .common import check_scale, conv, standard_upsampler


class ResidualUnit(nn.Module):
    """``relu(x + conv2(relu(conv1(x))))``."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = conv(channels, channels)
        self.act = nn.ReLU()
        self.conv2 = conv(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.conv2(self.act(self.conv1(x))))


class Cascade(nn.Module):
    """The cascading pattern used at both levels of CARN.

    With ``x0 = x``, ``cat_0 = x0``: for i in range(n), ``b_i = units[i](x_i)``,
    ``cat_{i+1} = cat([cat_i, b_i])`` ((i + 2)·C channels) and ``x_{i+1} = fuse[i](cat_{i+1})``
    (conv1x1 (i + 2)·C -> C). Returns ``x_n``.
    """

    def __init__(self, make_unit: Callable[[], nn.Module], n: int, channels: int):
        super().__init__()
        self.units = nn.ModuleList(make_unit() for _ in range(n))
        self.fuse = nn.ModuleList(conv((i + 2) * channels, channels, 1) for i in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cat = x
        for unit, fuse in zip(self.units, self.fuse):
            cat = torch.cat([cat, unit(x)], dim=1)
            x = fuse(cat)
        return x


class CARN(nn.Module):
    """CARN super-resolution network (no mean shift).

    ``head`` conv3x3 (3 -> C); ``body`` = a Cascade of ``blocks`` cascading blocks, each of which is
    a Cascade of ``units`` ResidualUnits (1x1 fusion convs at both levels); ``tail`` = standard
    upsampler + conv C -> 3.

    Args:
        scale: upscaling factor, 2, 3 or 4.
        blocks: number of cascading blocks (paper: 3).
        channels: feature width C (paper: 64).
        units: residual units per cascading block (paper: 3).
    """

    def __init__(self, scale: int = 2, blocks: int = 3, channels: int = 32, units: int = 3):
        super().__init__()
        check_scale(scale)
        self.head = conv(3, channels)
        self.body = Cascade(lambda: Cascade(lambda: ResidualUnit(channels), units, channels),
                            blocks, channels)
        self.tail = standard_upsampler(channels, scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.body(self.head(x)))
