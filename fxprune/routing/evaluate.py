"""Judging a routed model against ground truth: per-window true errors (the oracle), PSNR and MACs."""
from __future__ import annotations

import torch

from ..runtime import tile_windows
from .model import RoutedModel
from .windows import axis_geometry, gather_windows, stitch_windows

__all__ = ["route_outputs", "oracle_log_errors"]


@torch.no_grad()
def route_outputs(routed: RoutedModel, image: torch.Tensor, chunk: int = 64) -> list[torch.Tensor]:
    """Each route run on every window of ``image`` and stitched: what β = ±∞ would give, one image per route."""
    rows = axis_geometry(image.shape[2], routed.patch, routed.context, routed.scale, image.device)
    cols = axis_geometry(image.shape[3], routed.patch, routed.context, routed.scale, image.device)
    windows = gather_windows(image, rows, cols, routed.tile)
    results = []
    for route in routed.routes:
        out = torch.cat([route(windows[i:i + chunk]) for i in range(0, windows.shape[0], chunk)])
        results.append(stitch_windows(out, image.shape[0], rows, cols))
    return results


@torch.no_grad()
def oracle_log_errors(routed: RoutedModel, lr: torch.Tensor, hr: torch.Tensor,
                      outputs: list[torch.Tensor] | None = None) -> torch.Tensor:
    """True log MSE of every route on every window's core, ``[B, rows, cols, K]`` (outputs clamped to [0, 1]).

    Feed it to ``routed.route(lr, beta, log_errors=...)`` to get the oracle's routing.
    """
    outputs = route_outputs(routed, lr) if outputs is None else outputs
    s, tile, height, width = routed.scale, routed.tile, lr.shape[2], lr.shape[3]
    rows = tile_windows(max(height, tile), tile, routed.context)
    cols = tile_windows(max(width, tile), tile, routed.context)
    errors = torch.empty(lr.shape[0], len(rows), len(cols), len(outputs), device=lr.device)
    for k, out in enumerate(outputs):
        sq = (out.clamp(0, 1) - hr).pow(2).mean(dim=1)
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                core = sq[:, r.core_start * s:min(r.core_stop, height) * s, c.core_start * s:min(c.core_stop, width) * s]
                errors[:, i, j, k] = core.mean(dim=(1, 2))
    return torch.log(errors + 1e-10)
