"""Window geometry, the per-window choice and the stitching shared by :class:`RoutedModel` and its reference.

The windows are those of :func:`fxprune.runtime.tile_windows` (the tiler of ``run_tiled``) with
``tile = patch + 2·context`` and ``overlap = context``: window ``k`` of an axis starts at
``min(k·patch, L - tile)``, its core at ``k·patch + context`` (``0`` for the first window), the cores
partition the axis, and windows never cross the image border, so with a context at least the
model's receptive-field radius every output pixel sees what it sees in a whole-image run. An
axis shorter than one window is extended to ``tile`` px by repeating its last row/column (the
extension is cropped from the output). :func:`axis_geometry` computes the same windows with
tensor arithmetic, so one exported graph serves every image size.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["AxisGeometry", "axis_geometry", "gather_windows", "stitch_windows", "choose_routes", "window_count"]


def window_count(length: int, patch: int, context: int) -> int:
    """Windows along an axis of ``length`` px: ``ceil((max(length, tile) - tile) / patch) + 1``.

    >>> from fxprune.runtime import tile_windows
    >>> window_count(100, 24, 8) == len(tile_windows(100, 40, 8))
    True
    """
    tile = patch + 2 * context
    return (max(length, tile) - tile + patch - 1) // patch + 1


class AxisGeometry(NamedTuple):
    """Index vectors of one axis: ``gather`` (windows x tile input positions, flattened) and
    ``stitch`` (for each output position, its index in the concatenated window outputs)."""

    count: int
    gather: torch.Tensor
    stitch: torch.Tensor


def axis_geometry(length: int, patch: int, context: int, scale: int, device: torch.device) -> AxisGeometry:
    """Windows of one axis as index tensors; ``length`` may be a symbolic size under ``torch.export``.

    >>> g = axis_geometry(10, 4, 1, 2, torch.device("cpu"))
    >>> g.count, g.gather.view(g.count, -1).tolist()
    (2, [[0, 1, 2, 3, 4, 5], [4, 5, 6, 7, 8, 9]])
    """
    tile = patch + 2 * context
    padded = torch.sym_max(length, tile)
    count = (padded - tile + patch - 1) // patch + 1
    starts = torch.clamp(torch.arange(count, device=device) * patch, max=padded - tile)
    offsets = torch.arange(tile, device=device)
    gather = torch.clamp(starts[:, None] + offsets[None, :], max=length - 1).reshape(-1)
    out = torch.arange(length * scale, device=device)
    window = torch.clamp(torch.div(torch.div(out, scale, rounding_mode="floor") - context, patch,
                                   rounding_mode="floor"), min=0, max=count - 1)
    stitch = window * (tile * scale) + out - starts.index_select(0, window) * scale
    return AxisGeometry(count, gather, stitch)


def gather_windows(x: torch.Tensor, rows: AxisGeometry, cols: AxisGeometry, tile: int) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B·rows·cols, C, tile, tile]``, windows in row-major order per image."""
    b, c = x.shape[0], x.shape[1]
    grid = x.index_select(2, rows.gather).index_select(3, cols.gather)
    grid = grid.reshape(b, c, rows.count, tile, cols.count, tile).permute(0, 2, 4, 1, 3, 5)
    return grid.reshape(b * rows.count * cols.count, c, tile, tile)


def stitch_windows(out: torch.Tensor, batch: int, rows: AxisGeometry, cols: AxisGeometry) -> torch.Tensor:
    """``[B·rows·cols, C, T·s, T·s]`` window outputs -> ``[B, C, H·s, W·s]``: each pixel from its window's core."""
    c, th, tw = out.shape[1], out.shape[2], out.shape[3]
    grid = out.reshape(batch, rows.count, cols.count, c, th, tw).permute(0, 3, 1, 4, 2, 5)
    grid = grid.reshape(batch, c, rows.count * th, cols.count * tw)
    return grid.index_select(2, rows.stitch).index_select(3, cols.stitch)


def choose_routes(log_errors: torch.Tensor, costs: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Per window, the route maximizing ``β·(C₁ − Cᵢ)/C₁ + (fₙ − fᵢ)/fₙ``.

    ``log_errors`` is ``[N, K]`` (predicted or true log MSE of each route on each window),
    ``costs`` the ``[K]`` MACs of one window on each route; C₁ is the largest cost, route n the
    cheapest, f = exp(log error). The first term is the fraction of the largest route's MACs
    saved, the second the error avoided relative to the cheapest route's error, so β is the
    worth of saving all of C₁ in units of "removing all of the cheap route's error" (the SLS
    rule). β = 0 picks the smallest predicted error, a large β the cheapest route, a large
    negative β the most expensive one. Ties go to the lower route index.

    >>> choose_routes(torch.log(torch.tensor([[1e-3, 2e-3, 8e-3]])), torch.tensor([100., 50., 1.]), torch.tensor(0.))
    tensor([0])
    >>> choose_routes(torch.log(torch.tensor([[1e-3, 2e-3, 8e-3]])), torch.tensor([100., 50., 1.]), torch.tensor(1.))
    tensor([1])
    """
    costs = costs.to(log_errors.dtype)
    saving = (costs.max() - costs) / costs.max()
    errors = torch.exp(log_errors)
    cheapest = errors.index_select(1, torch.argmin(costs).reshape(1))
    score = beta.to(log_errors.dtype) * saving[None, :] + (cheapest - errors) / cheapest
    return torch.argmax(score, dim=1)
