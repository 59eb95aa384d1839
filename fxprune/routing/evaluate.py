"""Judging a routed model against ground truth: per-window true errors (the oracle), PSNR and MACs."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import math

import torch
from torch import nn

from ..tiling import axis_geometry, tile_windows
from .estimator import LaplacianEstimator, PickedEstimator
from .model import RoutedModel, _count, routed_macs
from .windows import choose_routes, gather_windows, stitch_windows

__all__ = ["route_outputs", "oracle_log_errors", "compose", "SweepRow", "sweep", "pooled_psnr", "window_errors",
           "pick_estimator"]


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


def compose(outputs: list[torch.Tensor], route_map: torch.Tensor, routed: RoutedModel) -> torch.Tensor:
    """The routed image from per-route whole outputs (:func:`route_outputs`) and a ``[B, rows, cols]`` route map."""
    height, width = outputs[0].shape[2] // routed.scale, outputs[0].shape[3] // routed.scale
    device = outputs[0].device
    span = routed.tile * routed.scale
    pix_rows = axis_geometry(height, routed.patch, routed.context, routed.scale, device).stitch // span
    pix_cols = axis_geometry(width, routed.patch, routed.context, routed.scale, device).stitch // span
    pixel_route = route_map.to(device).index_select(1, pix_rows).index_select(2, pix_cols)
    stack = torch.stack(outputs)
    index = pixel_route[None, :, None].expand(1, stack.shape[1], stack.shape[2], -1, -1)
    return stack.gather(0, index)[0]


@dataclass
class SweepRow:
    """One point of a PSNR-vs-MACs curve: ``method`` at ``beta`` over a set of images."""

    method: str
    beta: float | None
    psnr: float
    macs_per_pixel: float
    fractions: dict[str, float]
    per_image: list[float] = field(default_factory=list)


@torch.no_grad()
def sweep(routed: RoutedModel, pairs: Sequence[tuple[torch.Tensor, torch.Tensor]], betas: Sequence[float],
          laplacian: nn.Module | None = None, oracle: bool = True) -> list[SweepRow]:
    """Y-PSNR (``scale`` px shaved) and MACs per LR pixel of every route alone (tiled as routed) and of
    the routed model at each β, with the CNN estimator, the ``laplacian`` lookup and the oracle.

    MACs are counted from the route maps (:func:`routed_macs`: each window's route plus the
    estimator on every window; the oracle's true errors cost nothing, it is an upper bound).
    """
    from ..metrics import psnr

    k_routes = len(routed.routes)
    device = routed.costs.device
    estimators: list[tuple[str, nn.Module | None, int]] = [("routed", routed.estimator, routed.estimator_cost)]
    if laplacian is not None:
        estimators.append(("laplacian", laplacian, _count(laplacian, routed.tile, routed.routes_channels, device)))
    if oracle:
        estimators.append(("oracle", None, 0))
    acc: dict[tuple[str, float | None], dict] = {}

    def add(method: str, beta: float | None, value: float, macs: int, pixels: int, counts: list[int]) -> None:
        entry = acc.setdefault((method, beta), {"psnr": [], "macs": 0, "pixels": 0, "counts": [0] * k_routes})
        entry["psnr"].append(value)
        entry["macs"] += macs
        entry["pixels"] += pixels
        entry["counts"] = [a + b for a, b in zip(entry["counts"], counts)]

    for lr, hr in pairs:
        lr, hr = lr[None].to(device), hr[None].to(device)
        pixels = lr.shape[2] * lr.shape[3]
        outputs = route_outputs(routed, lr)
        rows = axis_geometry(lr.shape[2], routed.patch, routed.context, routed.scale, device)
        cols = axis_geometry(lr.shape[3], routed.patch, routed.context, routed.scale, device)
        count = rows.count * cols.count
        for k, out in enumerate(outputs):
            counts = [count if i == k else 0 for i in range(k_routes)]
            add(f"route:{routed.names[k]}", None, psnr(out.clamp(0, 1), hr, shave=routed.scale),
                count * routed.window_costs[k], pixels, counts)
        windows = gather_windows(lr, rows, cols, routed.tile)
        for method, estimator, est_cost in estimators:
            scores = (oracle_log_errors(routed, lr, hr, outputs).reshape(-1, k_routes) if estimator is None
                      else torch.cat([estimator(windows[i:i + 256]) for i in range(0, windows.shape[0], 256)]))
            for beta in betas:
                choice = choose_routes(scores, routed.costs, torch.tensor(float(beta), device=device))
                route_map = choice.reshape(1, rows.count, cols.count)
                image = compose(outputs, route_map, routed)
                counts = torch.bincount(choice.cpu(), minlength=k_routes).tolist()
                macs = routed_macs(routed.window_costs, est_cost, route_map)
                add(method, float(beta), psnr(image.clamp(0, 1), hr, shave=routed.scale), macs, pixels, counts)
    result = []
    for (method, beta), entry in acc.items():
        total = max(1, sum(entry["counts"]))
        result.append(SweepRow(method, beta, sum(entry["psnr"]) / len(entry["psnr"]), entry["macs"] / entry["pixels"],
                               {n: c / total for n, c in zip(routed.names, entry["counts"])}, entry["psnr"]))
    return result


def pooled_psnr(psnrs: Sequence[float], pixels: Sequence[int]) -> float:
    """The PSNR of the MSE pooled over all pixels of several images, from each image's PSNR and pixel count
    (a large image weighs by its size, a low-error image does not dominate as a mean of dB would).

    >>> round(pooled_psnr([20.0, 40.0], [1, 1]), 3)
    22.967
    >>> pooled_psnr([math.inf, math.inf], [4, 9])
    inf
    """
    if len(psnrs) != len(pixels) or not psnrs:
        raise ValueError(f"pooled_psnr needs one pixel count per PSNR, got {len(psnrs)} PSNRs and {len(pixels)} counts")
    total = sum(pixels)
    mse = sum(0.0 if math.isinf(p) else 10 ** (-p / 10) * n for p, n in zip(psnrs, pixels)) / total
    return math.inf if mse == 0 else -10 * math.log10(mse)


@torch.no_grad()
def window_errors(routed: RoutedModel, pairs: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Every window of every ``(lr, hr)`` pair, ``[N, C, T, T]``, and each route's true log MSE on its core, ``[N, K]``."""
    device = routed.costs.device
    windows, errors = [], []
    for lr, hr in pairs:
        lr, hr = lr[None].to(device), hr[None].to(device)
        rows = axis_geometry(lr.shape[2], routed.patch, routed.context, routed.scale, device)
        cols = axis_geometry(lr.shape[3], routed.patch, routed.context, routed.scale, device)
        windows.append(gather_windows(lr, rows, cols, routed.tile))
        errors.append(oracle_log_errors(routed, lr, hr).reshape(-1, len(routed.routes)))
    return torch.cat(windows), torch.cat(errors)


@torch.no_grad()
def pick_estimator(cnn: nn.Module, windows: torch.Tensor, log_errors: torch.Tensor,
                   bins: int = 16) -> tuple[PickedEstimator, list[float], list[float]]:
    """Per route, the better ranker of ``cnn`` and a :class:`LaplacianEstimator` on validation windows.

    The lookup is fitted on the even windows and both are compared by Spearman ρ on the odd ones
    (so the lookup is not judged on its own table); the returned estimator holds the lookup refitted
    on all windows. Returns ``(estimator, cnn ρ per route, lookup ρ per route)``.
    """
    from .training import spearman

    if windows.shape[0] < 4:
        raise ValueError(f"pick_estimator needs at least 4 validation windows, got {windows.shape[0]}")
    half = LaplacianEstimator.fit(windows[0::2], log_errors[0::2], bins=bins).to(windows.device)
    odd, actual = windows[1::2], log_errors[1::2]
    cnn_rho = spearman(torch.cat([cnn(odd[i:i + 256]) for i in range(0, odd.shape[0], 256)]), actual)
    lookup_rho = spearman(half(odd), actual)
    pick = [1 if not c >= l else 0 for c, l in zip(cnn_rho, lookup_rho)]
    lookup = LaplacianEstimator.fit(windows, log_errors, bins=bins).to(windows.device)
    return PickedEstimator([cnn, lookup], pick), cnn_rho, lookup_rho
