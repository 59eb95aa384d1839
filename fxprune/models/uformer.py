"""A small Uformer (Wang et al., 2022): a U-Net of window-attention blocks for restoration."""
from __future__ import annotations

import torch
from torch import nn

from .common import conv, crop, pad_to_multiple
from .windows import WindowBlock, to_image, to_tokens


class Stage(nn.Module):
    """``blocks`` LeWin blocks (window attention + an MLP with a depthwise conv) on an image."""

    def __init__(self, channels: int, heads: int, window: int, blocks: int):
        super().__init__()
        self.blocks = nn.ModuleList(WindowBlock(channels, heads, window, shift=i % 2 == 1, leff=True)
                                    for i in range(blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        tokens = to_tokens(x)
        for block in self.blocks:
            tokens = block(tokens, h, w)
        return to_image(tokens, h, w)


class Uformer(nn.Module):
    """Uformer-like restoration network; output has the input's size.

    ``head`` conv3x3 (3 -> C); encoder stage at C; ``down`` conv4x4 stride 2 (C -> 2C);
    bottleneck stage at 2C; ``up`` transposed conv 2x2 stride 2 (2C -> C); concat with the encoder
    output (2C); decoder stage at 2C; ``tail`` conv3x3 (2C -> 3) plus the input. The window helpers
    recover the batch from the window count, as Uformer's do. The input is padded to a multiple of
    2·window and the output cropped.

    Args:
        channels: width C of the first level (Uformer: 32).
        heads: attention heads of the first level (doubled below it).
        window: window size (Uformer: 8).
        blocks: LeWin blocks per stage.
    """

    def __init__(self, channels: int = 8, heads: int = 1, window: int = 4, blocks: int = 1):
        super().__init__()
        self.multiple = 2 * window
        self.head = conv(3, channels)
        self.encoder = Stage(channels, heads, window, blocks)
        self.down = nn.Conv2d(channels, 2 * channels, 4, stride=2, padding=1)
        self.bottleneck = Stage(2 * channels, 2 * heads, window, blocks)
        self.up = nn.ConvTranspose2d(2 * channels, channels, 2, stride=2)
        self.decoder = Stage(2 * channels, 2 * heads, window, blocks)
        self.tail = conv(2 * channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        padded = pad_to_multiple(x, self.multiple)
        skip = self.encoder(self.head(padded))
        y = self.up(self.bottleneck(self.down(skip)))
        y = self.decoder(torch.cat([y, skip], dim=1))
        return crop(self.tail(y) + padded, h, w)
