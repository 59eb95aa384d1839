"""FSRCNN: Fast Super-Resolution CNN (Dong et al., 2016)."""
from __future__ import annotations

import torch
from torch import nn

from .common import conv


class FSRCNN(nn.Module):
    """FSRCNN: ``feature`` conv5x5 (3 -> d) + PReLU, ``shrink`` conv1x1 (d -> s) + PReLU, ``mapping``
    = m × (conv3x3 s -> s + PReLU), ``expand`` conv1x1 (s -> d) + PReLU, ``deconv``
    ConvTranspose2d(d, 3, 9, stride=scale, padding=4, output_padding=scale - 1). Every PReLU has
    one slope per channel.

    Args:
        scale: upscaling factor (any integer >= 1).
        d: feature width (paper: 56).
        s: shrunk width (paper: 12).
        m: number of mapping layers (paper: 4).
    """

    def __init__(self, scale: int = 2, d: int = 32, s: int = 12, m: int = 2):
        super().__init__()
        if scale < 1:
            raise ValueError(f"unsupported scale {scale!r}")
        self.feature = nn.Sequential(conv(3, d, 5), nn.PReLU(d))
        self.shrink = nn.Sequential(conv(d, s, 1), nn.PReLU(s))
        self.mapping = nn.Sequential(*[nn.Sequential(conv(s, s), nn.PReLU(s)) for _ in range(m)])
        self.expand = nn.Sequential(conv(s, d, 1), nn.PReLU(d))
        self.deconv = nn.ConvTranspose2d(d, 3, 9, stride=scale, padding=4, output_padding=scale - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.expand(self.mapping(self.shrink(self.feature(x))))
        return self.deconv(x)
