"""EDSR: Enhanced Deep Residual Networks for single-image super-resolution (Lim et al., 2017)."""
from __future__ import annotations

import torch
from torch import nn

from .common import check_scale, conv, light_upsampler, standard_upsampler


class ResBlock(nn.Module):
    """EDSR residual block without batch norm: ``x + res_scale * conv2(relu(conv1(x)))``."""

    def __init__(self, channels: int, res_scale: float = 1.0):
        super().__init__()
        self.conv1 = conv(channels, channels)
        self.act = nn.ReLU()
        self.conv2 = conv(channels, channels)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.conv2(self.act(self.conv1(x)))


class EDSR(nn.Module):
    """EDSR super-resolution network (no mean shift).

    ``head`` conv3x3 (3 -> C); ``body`` = ``blocks`` ResBlocks followed by a conv3x3 (C -> C), with
    a global skip ``body(x) + x``; ``tail`` is the upsampler.

    Args:
        scale: upscaling factor, 2, 3 or 4.
        blocks: number of residual blocks (EDSR-baseline 16, EDSR 32).
        channels: feature width C (EDSR-baseline 64, EDSR 256).
        res_scale: residual scaling inside every block (EDSR uses 0.1).
        upsampler: ``"standard"`` (sub-pixel stages at width C, then conv C -> 3) or ``"light"``
            (ASSL's single conv C -> 3·s² + PixelShuffle).
    """

    def __init__(self, scale: int = 2, blocks: int = 4, channels: int = 32, res_scale: float = 1.0,
                 upsampler: str = "standard"):
        super().__init__()
        check_scale(scale)
        self.head = conv(3, channels)
        self.body = nn.Sequential(*[ResBlock(channels, res_scale) for _ in range(blocks)],
                                  conv(channels, channels))
        if upsampler == "standard":
            self.tail = standard_upsampler(channels, scale)
        elif upsampler == "light":
            self.tail = light_upsampler(channels, scale)
        else:
            raise ValueError(f"upsampler must be 'standard' or 'light', got {upsampler!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(x)
        res = self.body(x) + x
        return self.tail(res)
