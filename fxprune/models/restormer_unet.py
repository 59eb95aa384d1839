"""A small multi-level Restormer: transposed attention in a U-Net that downsamples with
PixelUnshuffle and upsamples with PixelShuffle, with a gating branch at the decoder."""
from __future__ import annotations

import torch
from torch import nn

from .common import conv, crop, pad_to_multiple
from .restormer import TransformerBlock


class Downsample(nn.Module):
    """Restormer's downsampling: conv3x3 (C -> C/2), then PixelUnshuffle(2) (-> 2C at half size)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv(channels, channels // 2), nn.PixelUnshuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Upsample(nn.Module):
    """Restormer's upsampling: conv3x3 (C -> 2C), then PixelShuffle(2) (-> C/2 at double size)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv(channels, channels * 2), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Gate(nn.Module):
    """An extra attention branch: ``x * sigmoid(conv1x1(relu(dwconv(g))))`` with g another feature."""

    def __init__(self, channels: int, guide: int):
        super().__init__()
        self.dw = conv(guide, guide, 3, groups=guide)
        self.act = nn.ReLU()
        self.mix = conv(guide, channels, 1)

    def forward(self, x: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.mix(self.act(self.dw(guide))))


class RestormerUNet(nn.Module):
    """Restormer with three levels; output has the input's size.

    ``head`` conv3x3 (3 -> C); level 1 at C, ``down1`` to 2C, level 2 at 2C, ``down2`` to 4C,
    ``latent`` at 4C; ``up2`` (4C -> 2C), concat with level 2 (4C), ``reduce2`` conv1x1 (4C -> 2C),
    decoder 2; ``up1`` (2C -> C), concat with level 1 (2C, no reduction, as in Restormer),
    decoder 1 at 2C, gated by ``gate`` from the upsampled latent (4C -> C after PixelShuffle);
    ``refine`` at 2C; ``tail`` conv3x3 (2C -> 3) plus the input. Input padded to a multiple of 4.

    Args:
        channels: width C of the first level (Restormer: 48); must be even.
        heads: attention heads per level (each level's width must be divisible by them).
        ffn_expansion: GDFN hidden width / width.
        blocks: transformer blocks at level 1 (encoder and decoder each), level 2 (each) and the
            latent level, as Restormer's ``num_blocks`` (Restormer: 4, 6, 6 and 8 at a 4th level);
            0 leaves a level's blocks out.
        refinement: transformer blocks after the gate (Restormer's ``num_refinement_blocks``: 4).
    """

    def __init__(self, channels: int = 8, heads: tuple[int, int, int] = (1, 2, 4), ffn_expansion: float = 2.0,
                 blocks: tuple[int, int, int] = (1, 1, 1), refinement: int = 1):
        super().__init__()
        if len(blocks) != 3 or any(int(n) != n or n < 0 for n in (*blocks, refinement)):
            raise ValueError(f"blocks must be three counts >= 0 and refinement a count >= 0, got {blocks}, {refinement}")
        c = channels

        def stage(width: int, level_heads: int, count: int) -> nn.Sequential:
            return nn.Sequential(*[TransformerBlock(width, level_heads, ffn_expansion) for _ in range(count)])

        self.head = conv(3, c)
        self.encoder1 = stage(c, heads[0], blocks[0])
        self.down1 = Downsample(c)
        self.encoder2 = stage(2 * c, heads[1], blocks[1])
        self.down2 = Downsample(2 * c)
        self.latent = stage(4 * c, heads[2], blocks[2])
        self.up2 = Upsample(4 * c)
        self.reduce2 = conv(4 * c, 2 * c, 1)
        self.decoder2 = stage(2 * c, heads[1], blocks[1])
        self.up1 = Upsample(2 * c)
        self.decoder1 = stage(2 * c, heads[0], blocks[0])
        self.guide_up = nn.Sequential(conv(4 * c, 4 * c * 4 * 4 // 4, 1), nn.PixelShuffle(4))
        self.gate = Gate(2 * c, c)
        self.refine = stage(2 * c, heads[0], refinement)
        self.tail = conv(2 * c, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        padded = pad_to_multiple(x, 4)
        e1 = self.encoder1(self.head(padded))
        e2 = self.encoder2(self.down1(e1))
        latent = self.latent(self.down2(e2))
        d2 = self.decoder2(self.reduce2(torch.cat([self.up2(latent), e2], dim=1)))
        d1 = self.decoder1(torch.cat([self.up1(d2), e1], dim=1))
        d1 = self.gate(d1, self.guide_up(latent))
        return crop(self.tail(self.refine(d1)) + padded, h, w)
