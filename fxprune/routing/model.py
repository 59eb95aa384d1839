"""The routed model: windows -> error estimator -> per-window route -> each route once on its batch -> stitch.

:class:`RoutedModel` is one ``nn.Module`` that ``torch.export`` and the dynamo ONNX exporter turn
into one graph: per route ``nonzero → index_select → route → index_copy``, so every route runs
once on the batch of windows sent to it and an empty batch costs nothing (ONNX Runtime runs
batches of 0). :func:`route_reference` computes the same thing window by window in plain Python
with the tiler of :mod:`fxprune.runtime`; tests compare the two.
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..runtime import ROUTED_INPUTS, ROUTED_OUTPUTS
from ..tiling import Tile, axis_geometry, tile_windows
from .variants import RoutingError, Variant, check_window
from .windows import choose_routes, gather_windows, stitch_windows

__all__ = ["RoutedModel", "route_reference", "routed_macs"]


def _count(module: nn.Module, tile: int, channels: int, device: torch.device) -> int:
    from ..counting import count_macs

    return int(count_macs(module, (torch.zeros(1, channels, tile, tile, device=device),)))


class RoutedModel(nn.Module):
    """Route each ``patch`` x ``patch`` window (plus ``context`` px each side) to one of ``variants``.

    ``forward(image, beta)`` takes an ``[B, C, H, W]`` image of any size and a 0-d β and returns
    ``(restored, route_map)``: the restored image and ``[B, rows, cols]`` route indices in the
    order of ``variants`` (the fallback, if any, is last). ``estimator`` maps ``[N, C, T, T]``
    windows (T = patch + 2·context) to ``[N, K]`` predicted log errors, one per route; the choice
    rule is :func:`~fxprune.routing.windows.choose_routes` with C the MACs of one window on each
    route (``self.costs``, from :func:`fxprune.count_macs`). ``onnx_metadata()`` is written into the
    ONNX file by :func:`fxprune.export_onnx`.
    """

    def __init__(self, variants: Sequence[Variant], estimator: nn.Module, patch: int = 48, context: int = 4,
                 channels: int = 3) -> None:
        super().__init__()
        for name, value, low in (("patch", patch, 1), ("context", context, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise RoutingError(f"{name} must be an int >= {low}, got {value!r}")
        variants = list(variants)
        if not variants or not all(isinstance(v, Variant) for v in variants):
            raise RoutingError("variants must be a non-empty list of fxprune.routing.Variant (see build_variants)")
        self.patch, self.context, self.tile = patch, context, patch + 2 * context
        self.names = [v.name for v in variants]
        self.specs = [v.spec for v in variants]
        self.routes = nn.ModuleList([v.module for v in variants])
        self.estimator = estimator
        self.out_channels, self.scale = check_window(variants, self.tile, channels)
        self.routes_channels = channels
        device = next(iter(list(estimator.parameters()) + [torch.zeros(())])).device
        with torch.no_grad():
            guess = estimator(torch.zeros(2, channels, self.tile, self.tile, device=device))
        if guess.shape != (2, len(variants)):
            raise RoutingError(f"the estimator maps 2 windows to shape {tuple(guess.shape)}; it must predict one "
                               f"log error per route: (2, {len(variants)}) for routes {self.names}")
        costs = [_count(v.module, self.tile, channels, device) for v in variants]
        self.window_costs = costs
        self.estimator_cost = _count(estimator, self.tile, channels, device)
        self.register_buffer("costs", torch.tensor(costs, dtype=torch.float32))

    def forward(self, image: torch.Tensor, beta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.route(image, beta)

    def route(self, image: torch.Tensor, beta: torch.Tensor,
              log_errors: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The forward pass; ``log_errors`` ``[B, rows, cols, K]`` replaces the estimator (the oracle)."""
        batch, height, width = image.shape[0], image.shape[2], image.shape[3]
        rows = axis_geometry(height, self.patch, self.context, self.scale, image.device)
        cols = axis_geometry(width, self.patch, self.context, self.scale, image.device)
        windows = gather_windows(image, rows, cols, self.tile)
        scores = self.estimator(windows) if log_errors is None else log_errors.reshape(-1, len(self.routes))
        choice = choose_routes(scores, self.costs, beta)
        out = windows.new_zeros(windows.shape[0], self.out_channels, self.tile * self.scale, self.tile * self.scale)
        for k, route in enumerate(self.routes):
            index = torch.nonzero(choice == k).reshape(-1)
            out = out.index_copy(0, index, route(windows.index_select(0, index)))
        return stitch_windows(out, batch, rows, cols), choice.reshape(batch, rows.count, cols.count)

    def with_estimator(self, estimator: nn.Module) -> "RoutedModel":
        """The same routes (shared, not copied) with another estimator, e.g. the Laplacian lookup."""
        other = copy.copy(self)
        other._modules = dict(self._modules)
        other._buffers = dict(self._buffers)
        other._modules["estimator"] = estimator
        device = self.costs.device
        other.estimator_cost = _count(estimator, self.tile, self.routes_channels, device)
        return other

    def onnx_names(self) -> dict[str, list[str]]:
        """The ONNX file's input and output names (read by :func:`fxprune.export_onnx`)."""
        return {"input": list(ROUTED_INPUTS), "output": list(ROUTED_OUTPUTS)}

    def onnx_metadata(self) -> dict[str, str]:
        """What :class:`fxprune.runtime.RoutedSession` needs to report statistics, as ONNX metadata."""
        import json

        return {"fxprune.routing": json.dumps({
            "routes": self.names, "window_macs": self.window_costs, "estimator_macs": self.estimator_cost,
            "patch": self.patch, "context": self.context, "scale": self.scale, "specs": self.specs,
        })}


def routed_macs(window_costs: Sequence[int], estimator_cost: int, route_map: torch.Tensor) -> int:
    """MACs of a routed forward from its route map: each window's route cost plus the estimator on every window.

    >>> routed_macs([100, 10], 1, torch.tensor([[[0, 1], [1, 1]]]))
    134
    """
    counts = torch.bincount(route_map.reshape(-1).cpu(), minlength=len(window_costs)).tolist()
    return int(sum(c * n for c, n in zip(window_costs, counts)) + estimator_cost * route_map.numel())


@torch.no_grad()
def route_reference(model: RoutedModel, image: torch.Tensor, beta: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """:class:`RoutedModel`'s output computed one window at a time with :func:`fxprune.tiling.tile_windows`.

    Short axes are extended to one window by replicate padding; each window goes through the
    estimator, :func:`choose_routes` and its route alone, and its core is written into the result.
    """
    beta = torch.as_tensor(beta, dtype=torch.float32)
    tile, s = model.tile, model.scale
    batch, _, height, width = image.shape
    padded = F.pad(image, (0, max(tile - width, 0), 0, max(tile - height, 0)), mode="replicate")
    rows = tile_windows(padded.shape[2], tile, model.context)
    cols = tile_windows(padded.shape[3], tile, model.context)
    result = image.new_zeros(batch, model.out_channels, padded.shape[2] * s, padded.shape[3] * s)
    route_map = torch.zeros(batch, len(rows), len(cols), dtype=torch.long)
    for b in range(batch):
        for i, row in enumerate(rows):
            for j, col in enumerate(cols):
                piece = Tile(row, col)
                (ys, xs), (core_ys, core_xs), (crop_ys, crop_xs) = piece.window(), piece.core(s), piece.crop(s)
                window = padded[b:b + 1, :, ys, xs]
                k = int(choose_routes(model.estimator(window), model.costs, beta)[0])
                result[b, :, core_ys, core_xs] = model.routes[k](window)[0, :, crop_ys, crop_xs]
                route_map[b, i, j] = k
    return result[:, :, :height * s, :width * s], route_map
