"""Per-window error estimators: a small CNN (shared trunk, one head per route) and the training-free
mean-|Laplacian| lookup of ARM; both map ``[N, C, T, T]`` windows to ``[N, K]`` predicted log MSE."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .variants import RoutingError

__all__ = ["ErrorEstimator", "LaplacianEstimator", "PickedEstimator", "laplacian_energy"]

EDGE_FLOOR = 1e-4  # flat windows: log of the edge score stays finite


class ErrorEstimator(nn.Module):
    """Three stride-2 3x3 convs and a global average pool (the trunk), then one small MLP head per route.

    Each head also reads the window's log edge score (:func:`laplacian_energy`), ARM's predictor:
    an error that spans orders of magnitude follows the log of the edge energy, which ReLU convs and
    a mean pool approximate poorly (without it the CNN ranked windows worse than the lookup, held-out
    Spearman ρ 0.3-0.6 against 0.7-0.86 in ``bench_routing.py``), so the CNN starts from the lookup's
    information and learns what it misses.

    >>> ErrorEstimator(3)(torch.rand(5, 3, 40, 40)).shape
    torch.Size([5, 3])
    """

    def __init__(self, routes: int, width: int = 16, channels: int = 3) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
        )
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(2 * width + 1, 2 * width), nn.ReLU(), nn.Linear(2 * width, 1))
            for _ in range(routes)
        )

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        edges = laplacian_energy(windows).clamp_min(EDGE_FLOOR).log().unsqueeze(1)
        features = torch.cat([self.trunk(windows).mean(dim=(2, 3)), edges], dim=1)
        return torch.cat([head(features) for head in self.heads], dim=1)


def laplacian_energy(windows: torch.Tensor) -> torch.Tensor:
    """Mean |4-neighbour Laplacian| of each window's channel mean (ARM's edge score), ``[N]``.

    >>> laplacian_energy(torch.ones(2, 3, 8, 8)).tolist()
    [0.0, 0.0]
    """
    gray = windows.mean(dim=1, keepdim=True)
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=windows.dtype,
                          device=windows.device).reshape(1, 1, 3, 3)
    return F.conv2d(gray, kernel).abs().mean(dim=(1, 2, 3))


class LaplacianEstimator(nn.Module):
    """ARM-style training-free estimator: edge score -> bin -> per-route mean log MSE of the fitting windows.

    ``edges`` are the inner bin edges ``[B-1]`` (quantiles of the edge score), ``table`` the
    ``[B, K]`` mean log error of each route in each bin.

    >>> est = LaplacianEstimator(torch.tensor([0.5]), torch.tensor([[-9.0, -8.0], [-6.0, -4.0]]))
    >>> est(torch.ones(1, 3, 8, 8)).tolist()
    [[-9.0, -8.0]]
    """

    def __init__(self, edges: torch.Tensor, table: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("edges", edges.float())
        self.register_buffer("table", table.float())

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        score = laplacian_energy(windows)
        bins = (score[:, None] > self.edges[None, :]).to(torch.int64).sum(dim=1)
        return self.table.index_select(0, bins)

    @classmethod
    def fit(cls, windows: torch.Tensor, log_errors: torch.Tensor, bins: int = 16) -> "LaplacianEstimator":
        """Fit the lookup on validation windows ``[N, C, T, T]`` with their true log errors ``[N, K]``."""
        score = laplacian_energy(windows)
        bins = max(1, min(bins, score.numel()))
        edges = torch.quantile(score, torch.linspace(0, 1, bins + 1, dtype=score.dtype)[1:-1])
        index = (score[:, None] > edges[None, :]).sum(dim=1)
        table = torch.stack([
            log_errors[index == b].mean(dim=0) if (index == b).any() else log_errors.mean(dim=0) for b in range(bins)
        ])
        return cls(edges, table)


class PickedEstimator(nn.Module):
    """Column ``k`` (route ``k``'s prediction) taken from ``estimators[pick[k]]``: the better estimator per route.

    Every estimator runs on every window (its MACs count); the pick is a constant of the graph.

    >>> a = LaplacianEstimator(torch.tensor([0.5]), torch.tensor([[1.0, 2.0], [1.0, 2.0]]))
    >>> b = LaplacianEstimator(torch.tensor([0.5]), torch.tensor([[7.0, 8.0], [7.0, 8.0]]))
    >>> PickedEstimator([a, b], [1, 0])(torch.ones(1, 3, 8, 8)).tolist()
    [[7.0, 2.0]]
    """

    def __init__(self, estimators: Sequence[nn.Module], pick: Sequence[int]) -> None:
        super().__init__()
        pick = [int(k) for k in pick]
        if not estimators or not pick or any(not 0 <= k < len(estimators) for k in pick):
            raise RoutingError(f"PickedEstimator: pick {pick} must name one of the {len(estimators)} estimators "
                               "(0-based) for each route")
        self.estimators = nn.ModuleList(estimators)
        self.pick = list(pick)
        self.register_buffer("index", torch.tensor(pick, dtype=torch.int64).reshape(1, 1, -1))

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        stack = torch.stack([e(windows) for e in self.estimators])
        if stack.shape[2] != self.index.shape[2]:
            raise RoutingError(f"PickedEstimator: the estimators predict {stack.shape[2]} routes, pick names "
                               f"{self.index.shape[2]}")
        return stack.gather(0, self.index.expand(1, stack.shape[1], -1))[0]
