"""Pieces shared by several models of the zoo: a conv helper, upsamplers, channel attention, padding."""
from __future__ import annotations

import math
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn


def conv(in_channels: int, out_channels: int, kernel_size: int = 3, *, stride: int = 1,
         groups: int = 1, bias: bool = True) -> nn.Conv2d:
    """A 2D convolution with "same" padding (``kernel_size // 2``)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                     padding=kernel_size // 2, groups=groups, bias=bias)


def check_scale(scale: int, allowed: Iterable[int] = (2, 3, 4)) -> int:
    """Return ``scale`` if it is one of ``allowed``, else raise ValueError."""
    allowed = tuple(allowed)
    if scale not in allowed:
        raise ValueError(f"unsupported scale {scale!r}; supported scales: {list(allowed)}")
    return scale


def standard_upsampler(channels: int, scale: int, out_channels: int = 3, *,
                       act: Callable[[], nn.Module] | None = None,
                       final_kernel: int = 3) -> nn.Sequential:
    """The EDSR-style tail: sub-pixel stages, then a final conv to ``out_channels``.

    Scale 3 is one stage conv(C -> 9C) + PixelShuffle(3); a power of two 2**k is k stages of
    conv(C -> 4C) + PixelShuffle(2). ``act`` (a module factory) is appended after every shuffle.
    """
    if scale == 3:
        factors = [3]
    elif scale >= 2 and scale & (scale - 1) == 0:
        factors = [2] * int(math.log2(scale))
    else:
        raise ValueError(f"unsupported scale {scale!r}; use 3 or a power of two")
    layers: list[nn.Module] = []
    for f in factors:
        layers += [conv(channels, channels * f * f), nn.PixelShuffle(f)]
        if act is not None:
            layers.append(act())
    layers.append(conv(channels, out_channels, final_kernel))
    return nn.Sequential(*layers)


def light_upsampler(channels: int, scale: int, out_channels: int = 3) -> nn.Sequential:
    """The lightweight tail: one conv(C -> out·s²) + PixelShuffle(s)."""
    if scale < 1:
        raise ValueError(f"unsupported scale {scale!r}")
    return nn.Sequential(conv(channels, out_channels * scale * scale), nn.PixelShuffle(scale))


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation channel attention: x * sigmoid(conv1x1(relu(conv1x1(stat(x))))).

    ``stat="avg"`` is RCAN's global average pool; ``stat="contrast"`` is IMDN's contrast-aware
    statistic (per-channel standard deviation + mean over H, W). The hidden width is
    ``max(1, channels // reduction)``.
    """

    def __init__(self, channels: int, reduction: int = 16, stat: str = "avg"):
        super().__init__()
        if stat not in ("avg", "contrast"):
            raise ValueError(f"stat must be 'avg' or 'contrast', got {stat!r}")
        hidden = max(1, channels // reduction)
        self.stat = stat
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.act = nn.ReLU()
        self.expand = nn.Conv2d(hidden, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stat == "avg":
            y = self.pool(x)
        else:
            mean = x.mean(dim=(2, 3), keepdim=True)
            std = (x - mean).pow(2).mean(dim=(2, 3), keepdim=True).sqrt()
            y = std + mean
        return x * self.gate(self.expand(self.act(self.reduce(y))))


def pad_to_multiple(x: torch.Tensor, multiple: int, mode: str = "constant") -> torch.Tensor:
    """Pad the bottom and right of an N×C×H×W tensor so H and W are multiples of ``multiple``."""
    h, w = x.shape[-2:]
    pad_h = (multiple - h % multiple) % multiple
    pad_w = (multiple - w % multiple) % multiple
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def crop(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Keep the top-left h×w of an N×C×H'×W' tensor (H' >= h, W' >= w), undoing pad_to_multiple.

    Written as F.pad with negative sizes rather than a slice: under torch.export with dynamic
    shapes a slice makes the graph guard on whether the padding was zero (via a contiguity check
    of the sliced view), so a program captured on one size would reject sizes of the other kind.
    """
    return F.pad(x, (0, w - x.shape[-1], 0, h - x.shape[-2]))
