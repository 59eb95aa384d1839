"""A small Restormer (Zamir et al., 2022): transposed (channel) attention for image restoration."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import conv


class ChannelLayerNorm(nn.Module):
    """nn.LayerNorm over the channels of an N×C×H×W tensor (permute to NHWC and back)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class MDTA(nn.Module):
    """Multi-Dconv-head transposed attention: attention across channels within each head.

    ``qkv`` conv1x1 (C -> 3C), ``qkv_dw`` depthwise conv3x3, q/k L2-normalised over pixels,
    ``softmax(q @ kᵀ * temperature) @ v`` per head, ``proj`` conv1x1 (C -> C).
    """

    def __init__(self, channels: int, heads: int):
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = conv(channels, 3 * channels, 1)
        self.qkv_dw = conv(3 * channels, 3 * channels, 3, groups=3 * channels)
        self.proj = conv(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv_dw(self.qkv(x)).chunk(3, dim=1)
        q = F.normalize(q.reshape(b, self.heads, c // self.heads, h * w), dim=-1)
        k = F.normalize(k.reshape(b, self.heads, c // self.heads, h * w), dim=-1)
        v = v.reshape(b, self.heads, c // self.heads, h * w)
        attn = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1)
        return self.proj((attn @ v).reshape(b, c, h, w))


class GDFN(nn.Module):
    """Gated-Dconv feed-forward network: ``project_out(gelu(x1) * x2)`` where
    ``x1, x2 = dwconv(project_in(x)).chunk(2)``; project_in is C -> 2·hidden."""

    def __init__(self, channels: int, expansion: float):
        super().__init__()
        hidden = int(channels * expansion)
        self.project_in = conv(channels, 2 * hidden, 1)
        self.dwconv = conv(2 * hidden, 2 * hidden, 3, groups=2 * hidden)
        self.project_out = conv(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)


class TransformerBlock(nn.Module):
    """``x + attention(norm1(x))``, then ``x + ffn(norm2(x))``."""

    def __init__(self, channels: int, heads: int, ffn_expansion: float):
        super().__init__()
        self.norm1 = ChannelLayerNorm(channels)
        self.attention = MDTA(channels, heads)
        self.norm2 = ChannelLayerNorm(channels)
        self.ffn = GDFN(channels, ffn_expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class Restormer(nn.Module):
    """Single-level Restormer-like restoration network; output has the input's size.

    ``head`` conv3x3 patch embedding (3 -> C); ``body`` = ``blocks`` TransformerBlocks; ``tail``
    conv3x3 (C -> 3) plus the input image.

    Args:
        channels: embedding width C (Restormer: 48).
        blocks: number of transformer blocks.
        heads: attention heads (C must be divisible by it).
        ffn_expansion: GDFN hidden width / C (Restormer: 2.66).
    """

    def __init__(self, channels: int = 16, blocks: int = 2, heads: int = 2, ffn_expansion: float = 2.0):
        super().__init__()
        self.head = conv(3, channels)
        self.body = nn.Sequential(*[TransformerBlock(channels, heads, ffn_expansion)
                                    for _ in range(blocks)])
        self.tail = conv(channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.body(self.head(x))) + x
