"""IMDN: Information Multi-Distillation Network for lightweight super-resolution (Hui et al., 2019)."""
from __future__ import annotations

import torch
from torch import nn

from .common import ChannelAttention, conv, light_upsampler


class IMDB(nn.Module):
    """Information multi-distillation block.

    ``conv1`` (C -> C), split into d distilled + C - d remaining channels; ``conv2``/``conv3``
    (C - d -> C) on the remaining part, split again; ``conv4`` (C - d -> d) on the last remaining
    part; the four distilled parts (4d channels) go through contrast-aware channel attention
    ``cca`` and ``fuse`` (conv1x1 4d -> C), added to the block input. LeakyReLU(0.05) after
    conv1..conv3.
    """

    def __init__(self, channels: int, distill_ratio: float = 0.25, reduction: int = 4):
        super().__init__()
        self.distilled = d = int(channels * distill_ratio)
        self.remaining = r = channels - d
        if not 0 < d < channels:
            raise ValueError(f"distill_ratio {distill_ratio} leaves no distilled or remaining channels")
        self.conv1 = conv(channels, channels)
        self.conv2 = conv(r, channels)
        self.conv3 = conv(r, channels)
        self.conv4 = conv(r, d)
        self.act = nn.LeakyReLU(0.05)
        self.cca = ChannelAttention(4 * d, reduction, stat="contrast")
        self.fuse = conv(4 * d, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        split = [self.distilled, self.remaining]
        d1, r1 = torch.split(self.act(self.conv1(x)), split, dim=1)
        d2, r2 = torch.split(self.act(self.conv2(r1)), split, dim=1)
        d3, r3 = torch.split(self.act(self.conv3(r2)), split, dim=1)
        d4 = self.conv4(r3)
        out = self.cca(torch.cat([d1, d2, d3, d4], dim=1))
        return self.fuse(out) + x


class IMDN(nn.Module):
    """IMDN super-resolution network.

    ``head`` conv3x3 (3 -> C); ``blocks`` IMDBs; ``fuse`` conv1x1 over the concatenation of all
    block outputs (blocks·C -> C) + LeakyReLU(0.05); ``body_conv`` conv3x3, added to the head
    output; ``tail`` = light upsampler (conv C -> 3·s² + PixelShuffle).

    Args:
        scale: upscaling factor (any integer >= 1; the paper uses 2, 3, 4).
        blocks: number of IMDBs (paper: 6).
        channels: feature width C (paper: 64).
        distill_ratio: fraction d / C of channels distilled at each step (paper: 0.25).
        reduction: reduction ratio of the contrast-aware channel attention on 4d channels.
    """

    def __init__(self, scale: int = 2, blocks: int = 2, channels: int = 32,
                 distill_ratio: float = 0.25, reduction: int = 4):
        super().__init__()
        self.head = conv(3, channels)
        self.blocks = nn.ModuleList(IMDB(channels, distill_ratio, reduction) for _ in range(blocks))
        self.fuse = conv(blocks * channels, channels, 1)
        self.act = nn.LeakyReLU(0.05)
        self.body_conv = conv(channels, channels)
        self.tail = light_upsampler(channels, scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(x)
        outs = []
        y = x
        for block in self.blocks:
            y = block(y)
            outs.append(y)
        y = self.body_conv(self.act(self.fuse(torch.cat(outs, dim=1))))
        return self.tail(y + x)
