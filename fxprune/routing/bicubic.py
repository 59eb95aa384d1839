"""Cheap fallback routes: bicubic upscaling written as a grouped conv, and the identity.

ONNX Runtime's ``Resize(cubic)`` is 12-21x slower than the same bicubic x2 written as a grouped
5x5 conv after a replicate pad of 2 followed by ``DepthToSpace`` (METHODS.md), so the bicubic
route uses the conv form. For an integer scale ``s`` with ``align_corners=False`` output pixel
``s·i + r`` samples the input at ``i + (r + 0.5)/s - 0.5``, an offset in (-0.5, 0.5), so its four
cubic taps always lie in ``i-2 .. i+2``: one 5x5 kernel per sub-pixel ``(r, q)`` (the outer
product of two 1-D weight rows), ``s²`` kernels per channel, then ``pixel_shuffle``. PyTorch clamps
source indices at the border, which is what the replicate pad does.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BicubicConv", "IdentityRoute", "bicubic_weights"]

_A = -0.75  # PyTorch's cubic convolution coefficient


def _cubic(t: float) -> float:
    t = abs(t)
    if t <= 1:
        return ((_A + 2) * t - (_A + 3)) * t * t + 1
    if t < 2:
        return ((_A * t - 5 * _A) * t + 8 * _A) * t - 4 * _A
    return 0.0


def bicubic_weights(scale: int) -> torch.Tensor:
    """The ``[scale, 5]`` 1-D weights: row ``r`` holds the taps ``i-2 .. i+2`` of output ``s·i + r``.

    >>> bicubic_weights(2).sum(dim=1)
    tensor([1., 1.], dtype=torch.float64)
    """
    rows = torch.zeros(scale, 5, dtype=torch.float64)
    for r in range(scale):
        offset = (r + 0.5) / scale - 0.5
        for k in range(-2, 3):
            rows[r, k + 2] = _cubic(k - offset)
    return rows


class BicubicConv(nn.Module):
    """Bicubic upscaling by an integer ``scale`` (2, 3, 4, ...) as replicate pad + grouped conv + pixel shuffle.

    Equals ``F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)``.

    >>> x = torch.rand(1, 3, 7, 9)
    >>> y = BicubicConv(3, channels=3)(x)
    >>> bool((y - F.interpolate(x, scale_factor=3, mode="bicubic", align_corners=False)).abs().max() < 1e-5)
    True
    """

    def __init__(self, scale: int, channels: int = 3) -> None:
        super().__init__()
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 2:
            raise ValueError(f"BicubicConv needs an integer scale >= 2, got {scale!r}")
        self.scale, self.channels = scale, channels
        rows = bicubic_weights(scale)
        kernels = torch.einsum("ra,qb->rqab", rows, rows).reshape(scale * scale, 1, 5, 5)
        # group c produces the s² sub-pixels of channel c in pixel_shuffle's channel order
        self.register_buffer("weight", kernels.repeat(channels, 1, 1, 1).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x, (2, 2, 2, 2), mode="replicate")
        return F.pixel_shuffle(F.conv2d(padded, self.weight, groups=self.channels), self.scale)


class IdentityRoute(nn.Module):
    """The fallback of restoration tasks (scale 1): the input unchanged, at zero cost.

    >>> IdentityRoute()(torch.ones(1, 3, 2, 2)).sum().item()
    12.0
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()  # a fresh tensor: index_copy never aliases the input
