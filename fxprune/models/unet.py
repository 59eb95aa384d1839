"""A small U-Net (Ronneberger et al., 2015) used as a residual deblurring network."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import conv, crop, pad_to_multiple


class DoubleConv(nn.Module):
    """``relu(conv2(relu(conv1(x))))`` with 3x3 convs."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = conv(in_channels, out_channels)
        self.conv2 = conv(out_channels, out_channels)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.act(self.conv1(x))))


class UNet(nn.Module):
    """U-Net with a global residual; output has the input's size.

    ``encoders[i]`` = DoubleConv to C·2^i, each followed by MaxPool2d(2); ``bottleneck`` =
    DoubleConv to C·2^depth; ``decoders[i]`` (deepest first) = bilinear ×2 upsampling,
    concatenation with the matching encoder output, DoubleConv; ``tail`` = conv1x1 (C -> 3) plus
    the input image. The input is zero-padded to a multiple of 2**depth and the output cropped.

    Args:
        channels: width C of the first level.
        depth: number of pooling steps.
    """

    def __init__(self, channels: int = 16, depth: int = 2):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        widths = [channels * 2 ** i for i in range(depth + 1)]
        self.encoders = nn.ModuleList(
            DoubleConv(3 if i == 0 else widths[i - 1], widths[i]) for i in range(depth))
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = DoubleConv(widths[-2], widths[-1])
        self.decoders = nn.ModuleList(
            DoubleConv(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(depth)))
        self.tail = conv(channels, 3, 1)
        self.multiple = 2 ** depth

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        h, w = inp.shape[-2:]
        inp = pad_to_multiple(inp, self.multiple)
        x = inp
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for decoder, skip in zip(self.decoders, reversed(skips)):
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = decoder(torch.cat([x, skip], dim=1))
        x = self.tail(x) + inp
        return crop(x, h, w)
