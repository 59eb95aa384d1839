"""Gathering windows, the per-window choice and the stitching shared by :class:`RoutedModel` and its reference.

The windows are those of :func:`fxprune.tiling.tile_windows` (the tiler of ``run_tiled``) with
``tile = patch + 2·context`` and ``overlap = context``, as the index tensors of
:func:`fxprune.tiling.axis_geometry`: the cores partition each axis and windows never cross the
image border, so with a context at least the model's receptive-field radius every output pixel
sees what it sees in a whole-image run.
"""
from __future__ import annotations

import torch

from ..tiling import AxisGeometry

__all__ = ["gather_windows", "stitch_windows", "choose_routes"]


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
