"""SwinIR with the published window helpers (batch recovered from the window count) and shifts."""
from __future__ import annotations

import torch
from torch import nn

from .common import check_scale, conv, crop, pad_to_multiple, standard_upsampler
from .windows import WindowBlock, to_image, to_tokens


class SwinIRWindows(nn.Module):
    """SwinIR-like super-resolution with shifted windows, written as SwinIR writes its windows.

    ``head`` conv3x3 (3 -> C); ``body`` = ``depth`` WindowBlocks (every second one shifted) on
    the tokens; ``body_conv`` conv3x3 on the image, plus the head output; ``tail`` = standard
    upsampler. Unlike :class:`~fxprune.models.SwinIR`, the window reverse computes the batch from
    the number of windows, so a captured graph runs at the batch it was captured with.

    Args:
        scale: upscaling factor, 2, 3 or 4.
        channels: embedding width C.
        depth: number of window blocks.
        heads: attention heads (C must be divisible by it).
        window: window size.
        mlp_ratio: MLP hidden width / C.
    """

    def __init__(self, scale: int = 2, channels: int = 8, depth: int = 2, heads: int = 2,
                 window: int = 4, mlp_ratio: float = 2.0):
        super().__init__()
        self.scale = check_scale(scale)
        self.window = window
        self.head = conv(3, channels)
        self.body = nn.ModuleList(WindowBlock(channels, heads, window, shift=i % 2 == 1, mlp_ratio=mlp_ratio)
                                  for i in range(depth))
        self.body_conv = conv(channels, channels)
        self.tail = standard_upsampler(channels, scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = self.head(pad_to_multiple(x, self.window))
        hp, wp = x.shape[-2:]
        tokens = to_tokens(x)
        for block in self.body:
            tokens = block(tokens, hp, wp)
        y = self.body_conv(to_image(tokens, hp, wp)) + x
        return crop(self.tail(y), h * self.scale, w * self.scale)
