"""Window attention as the published Swin-family restoration networks write it.

``window_partition`` / ``window_reverse`` follow SwinIR and Uformer: the reverse recovers the
batch from the number of windows through Python floats (``int(windows.shape[0] / (H * W / ws²))``),
which torch.export can only capture for one batch size. The zoo's :mod:`swinir` model passes the
batch explicitly; the models built from this module exercise the published form.
"""
from __future__ import annotations

import torch
from torch import nn


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """[B, H, W, C] -> [B·(H/ws)·(W/ws), ws, ws, C]."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, ws, ws, c)


def window_reverse(windows: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    """[B·(H/ws)·(W/ws), ws, ws, C] -> [B, H, W, C], the batch recovered from the window count."""
    b = int(windows.shape[0] / (h * w / ws / ws))
    x = windows.view(b, h // ws, w // ws, ws, ws, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(b, h, w, -1)


class WindowAttention(nn.Module):
    """Multi-head self-attention among the ws² tokens of each window, with a learned position bias."""

    def __init__(self, channels: int, heads: int, window: int):
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.heads = heads
        self.scale = (channels // heads) ** -0.5
        self.qkv = nn.Linear(channels, 3 * channels)
        self.bias = nn.Parameter(torch.randn(heads, window * window, window * window) * 0.02)
        self.proj = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q * self.scale) @ k.transpose(-2, -1) + self.bias).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class WindowBlock(nn.Module):
    """A Swin block on [B, H·W, C] tokens: ``x + reverse(attn(partition(shift(norm(x)))))``, then
    ``x + mlp(norm(x))``. ``shift`` rolls the image by half a window (without SwinIR's boundary
    mask, which changes no channel logic). ``leff`` puts a depthwise conv in the MLP (Uformer)."""

    def __init__(self, channels: int, heads: int, window: int, shift: bool = False,
                 mlp_ratio: float = 2.0, leff: bool = False):
        super().__init__()
        self.window, self.shift = window, window // 2 if shift else 0
        hidden = int(channels * mlp_ratio)
        self.norm1 = nn.LayerNorm(channels)
        self.attention = WindowAttention(channels, heads, window)
        self.norm2 = nn.LayerNorm(channels)
        self.fc1 = nn.Linear(channels, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden) if leff else None
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, _, c = x.shape
        ws = self.window
        y = self.norm1(x).view(b, h, w, c)
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = self.attention(window_partition(y, ws).view(-1, ws * ws, c))
        y = window_reverse(windows.view(-1, ws, ws, c), ws, h, w)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + y.reshape(b, h * w, c)
        return x + self._mlp(self.norm2(x), h, w)

    def _mlp(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        y = self.act(self.fc1(x))
        if self.dwconv is not None:
            b, n, c = y.shape
            y = self.act(self.dwconv(y.transpose(1, 2).reshape(b, c, h, w))).flatten(2).transpose(1, 2)
        return self.fc2(y)


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, H·W, C]."""
    return x.flatten(2).transpose(1, 2)


def to_image(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """[B, H·W, C] -> [B, C, H, W]."""
    b, _, c = tokens.shape
    return tokens.transpose(1, 2).reshape(b, c, h, w)
