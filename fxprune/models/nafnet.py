"""NAFNet: Nonlinear Activation Free Network for image restoration (Chen et al., 2022)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .common import conv, crop, pad_to_multiple


class LayerNorm2d(nn.Module):
    """Layer norm over the channel dimension of an N×C×H×W tensor, with per-channel affine."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        y = (x - mu) / (var + self.eps).sqrt()
        return self.weight.view(1, -1, 1, 1) * y + self.bias.view(1, -1, 1, 1)


class SimpleGate(nn.Module):
    """Split the channels in two halves and multiply them."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.chunk(2, dim=1)
        return x1 * x2


class NAFBlock(nn.Module):
    """NAFNet block.

    Spatial part: ``norm1``, ``conv1`` (1x1 C -> 2C), ``conv2`` (depthwise 3x3 on 2C), SimpleGate,
    simplified channel attention ``sca`` (avg pool + conv1x1 C -> C, multiplied in), ``conv3``
    (1x1 C -> C), ``y = inp + x * beta``. FFN: ``norm2``, ``conv4`` (1x1 C -> 2C), SimpleGate,
    ``conv5`` (1x1 C -> C), ``y + x * gamma``. ``beta``/``gamma`` are [1, C, 1, 1] layer scales
    initialised to ``layer_scale_init`` (NAFNet uses 0; the zoo default of 1 keeps every block
    active in an untrained model).
    """

    def __init__(self, channels: int, layer_scale_init: float = 1.0):
        super().__init__()
        self.norm1 = LayerNorm2d(channels)
        self.conv1 = conv(channels, 2 * channels, 1)
        self.conv2 = conv(2 * channels, 2 * channels, 3, groups=2 * channels)
        self.gate = SimpleGate()
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), conv(channels, channels, 1))
        self.conv3 = conv(channels, channels, 1)
        self.norm2 = LayerNorm2d(channels)
        self.conv4 = conv(channels, 2 * channels, 1)
        self.conv5 = conv(channels, channels, 1)
        self.beta = nn.Parameter(torch.full((1, channels, 1, 1), layer_scale_init))
        self.gamma = nn.Parameter(torch.full((1, channels, 1, 1), layer_scale_init))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.gate(self.conv2(self.conv1(self.norm1(inp))))
        x = self.conv3(x * self.sca(x))
        y = inp + x * self.beta
        x = self.conv5(self.gate(self.conv4(self.norm2(y))))
        return y + x * self.gamma


class NAFNet(nn.Module):
    """NAFNet U-shaped restoration network; output has the input's size.

    ``intro`` conv3x3 (3 -> width); per level an encoder (NAFBlocks) then ``downs`` (2x2 stride-2
    conv C -> 2C); ``middle`` NAFBlocks; per level ``ups`` (conv1x1 C -> 2C + PixelShuffle(2),
    halving C), an added skip from the matching encoder, a decoder; ``ending`` conv3x3 (-> 3) plus
    the input image. The input is zero-padded to a multiple of 2**levels and the output cropped.

    Args:
        width: channels at the first level (paper: 32 or 64).
        enc_blocks: NAFBlocks per encoder level (paper: (2, 2, 4, 8)).
        middle_blocks: NAFBlocks at the bottleneck (paper: 12).
        dec_blocks: NAFBlocks per decoder level, same length as enc_blocks (paper: (2, 2, 2, 2)).
        layer_scale_init: initial value of every block's beta and gamma.
    """

    def __init__(self, width: int = 16, enc_blocks: Sequence[int] = (1, 1), middle_blocks: int = 1,
                 dec_blocks: Sequence[int] = (1, 1), layer_scale_init: float = 1.0):
        super().__init__()
        if len(enc_blocks) != len(dec_blocks):
            raise ValueError("enc_blocks and dec_blocks must have the same length")

        def stage(n: int, c: int) -> nn.Sequential:
            return nn.Sequential(*[NAFBlock(c, layer_scale_init) for _ in range(n)])

        self.intro = conv(3, width)
        self.encoders, self.downs = nn.ModuleList(), nn.ModuleList()
        c = width
        for n in enc_blocks:
            self.encoders.append(stage(n, c))
            self.downs.append(nn.Conv2d(c, 2 * c, 2, stride=2))
            c *= 2
        self.middle = stage(middle_blocks, c)
        self.ups, self.decoders = nn.ModuleList(), nn.ModuleList()
        for n in dec_blocks:
            self.ups.append(nn.Sequential(conv(c, 2 * c, 1, bias=False), nn.PixelShuffle(2)))
            c //= 2
            self.decoders.append(stage(n, c))
        self.ending = conv(width, 3)
        self.multiple = 2 ** len(enc_blocks)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        h, w = inp.shape[-2:]
        inp = pad_to_multiple(inp, self.multiple)
        x = self.intro(inp)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle(x)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = decoder(up(x) + skip)
        x = self.ending(x) + inp
        return crop(x, h, w)
