"""A simplified SwinIR (Liang et al., 2021): window self-attention layers for super-resolution."""
from __future__ import annotations

import torch
from torch import nn

from .common import check_scale, conv, crop, pad_to_multiple, standard_upsampler


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows of N tokens, with a learned [heads, N, N] bias."""

    def __init__(self, channels: int, heads: int, tokens: int):
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.heads = heads
        self.scale = (channels // heads) ** -0.5
        self.qkv = nn.Linear(channels, 3 * channels)
        self.attn_bias = nn.Parameter(torch.zeros(heads, tokens, tokens))
        nn.init.trunc_normal_(self.attn_bias, std=0.02)
        self.softmax = nn.Softmax(dim=-1)
        self.proj = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1) + self.attn_bias
        out = self.softmax(attn) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """``fc2(gelu(fc1(x)))`` on tokens."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(channels, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwinLayer(nn.Module):
    """A (non-shifted) Swin transformer layer on [B, H·W, C] tokens with H, W multiples of window.

    ``x + window_reverse(attention(window_partition(norm1(x))))``, then ``x + mlp(norm2(x))``.
    """

    def __init__(self, channels: int, heads: int, window: int, mlp_ratio: float):
        super().__init__()
        self.window = window
        self.norm1 = nn.LayerNorm(channels)
        self.attention = WindowAttention(channels, heads, window * window)
        self.norm2 = nn.LayerNorm(channels)
        self.mlp = Mlp(channels, int(channels * mlp_ratio))

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, _, c = x.shape
        ws = self.window
        y = self.norm1(x).view(b, h // ws, ws, w // ws, ws, c)
        y = y.permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)
        y = self.attention(y)
        y = y.view(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h * w, c)
        x = x + y
        return x + self.mlp(self.norm2(x))


class SwinIR(nn.Module):
    """SwinIR-like super-resolution network (no shifted windows, no mean shift).

    ``head`` conv3x3 (3 -> C); ``body`` = ``depth`` SwinLayers on the flattened tokens;
    ``body_conv`` conv3x3 on the tokens folded back to [B, C, H, W], added to the head output;
    ``tail`` = standard upsampler + conv C -> 3. The input is zero-padded to a multiple of
    ``window`` and the output cropped to (H·s, W·s).

    Args:
        scale: upscaling factor, 2, 3 or 4.
        channels: embedding width C (SwinIR: 180, lightweight: 60).
        depth: number of Swin layers.
        heads: attention heads (C must be divisible by it).
        window: window size (SwinIR: 8).
        mlp_ratio: MLP hidden width / C.
    """

    def __init__(self, scale: int = 2, channels: int = 32, depth: int = 2, heads: int = 2,
                 window: int = 4, mlp_ratio: float = 2.0):
        super().__init__()
        check_scale(scale)
        self.scale = scale
        self.window = window
        self.head = conv(3, channels)
        self.body = nn.ModuleList(SwinLayer(channels, heads, window, mlp_ratio) for _ in range(depth))
        self.body_conv = conv(channels, channels)
        self.tail = standard_upsampler(channels, scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = self.head(pad_to_multiple(x, self.window))
        b, c, hp, wp = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        for layer in self.body:
            tokens = layer(tokens, hp, wp)
        y = self.body_conv(tokens.transpose(1, 2).reshape(b, c, hp, wp)) + x
        return crop(self.tail(y), h * self.scale, w * self.scale)
