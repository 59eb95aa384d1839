"""Plain same-size restoration CNNs: DnCNN (Zhang et al., 2017) and VDSR (Kim et al., 2016)."""
from __future__ import annotations

import torch
from torch import nn

from .common import conv


def _plain_stack(depth: int, channels: int, batch_norm: bool) -> nn.Sequential:
    """conv3x3 (3 -> C) + ReLU, (depth - 2) middle layers, conv3x3 (C -> 3)."""
    if depth < 3:
        raise ValueError(f"depth must be at least 3, got {depth}")
    layers: list[nn.Module] = [conv(3, channels), nn.ReLU()]
    for _ in range(depth - 2):
        middle = [conv(channels, channels, bias=False), nn.BatchNorm2d(channels)] if batch_norm else [conv(channels, channels)]
        layers += [*middle, nn.ReLU()]
    layers.append(conv(channels, 3))
    return nn.Sequential(*layers)


class DnCNN(nn.Module):
    """DnCNN denoiser with residual learning: returns ``x - body(x)`` (the predicted noise removed).

    ``body`` = conv3x3 (3 -> C) + ReLU, (depth - 2) × (conv3x3 without bias + BatchNorm2d + ReLU),
    conv3x3 (C -> 3).

    Args:
        depth: total number of conv layers (paper: 17).
        channels: feature width C (paper: 64).
    """

    def __init__(self, depth: int = 5, channels: int = 32):
        super().__init__()
        self.body = _plain_stack(depth, channels, batch_norm=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.body(x)


class VDSR(nn.Module):
    """VDSR: very deep residual CNN on an already-upscaled image; returns ``x + body(x)``.

    ``body`` = conv3x3 (3 -> C) + ReLU, (depth - 2) × (conv3x3 + ReLU), conv3x3 (C -> 3).

    Args:
        depth: total number of conv layers (paper: 20).
        channels: feature width C (paper: 64).
    """

    def __init__(self, depth: int = 5, channels: int = 32):
        super().__init__()
        self.body = _plain_stack(depth, channels, batch_norm=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)
