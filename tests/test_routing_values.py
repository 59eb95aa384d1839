"""Routing's figures against hand-computed answers: the oracle's per-window errors, composition,
the sweep's PSNR/MACs rows, the route-choice rule and the estimator's training target.

Every expectation here is written out from the geometry and the formulas (METHODS.md), not
obtained by calling the code under test. The window geometry used throughout: patch 4, context 2
(tile 8), so an axis of 12 LR px has the cores [0, 6) and [6, 12), an axis of 10 px the cores
[0, 6) and [6, 10), and an axis of 5 px (shorter than a tile) one core [0, 5).
"""
from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

from fxprune.metrics import psnr
from fxprune.routing import LaplacianEstimator, RoutedModel, Variant, choose_routes
from fxprune.routing.evaluate import compose, oracle_log_errors, route_outputs, sweep
from fxprune.routing.training import window_set

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SCALE, PATCH, CONTEXT = 2, 4, 2
CORES = {12: [(0, 6), (6, 12)], 10: [(0, 6), (6, 10)], 5: [(0, 5)]}  # LR cores per axis length, by hand
FLOOR = 1e-10  # the documented MSE floor under the log (routing/training.py, routing/evaluate.py)


def upscaler(gain: float, depthwise: bool) -> nn.Module:
    """``gain`` × nearest-neighbour ×2 upscaling as a 1x1 conv + PixelShuffle (exact: weights 0 and ``gain``).

    Dense (3 -> 12 channels, 36 MACs per LR px) or depthwise (groups=3, 12 MACs per LR px)."""
    conv = nn.Conv2d(3, 12, 1, groups=3 if depthwise else 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        for c in range(3):
            conv.weight[4 * c:4 * c + 4, 0 if depthwise else c] = gain
    return nn.Sequential(conv, nn.PixelShuffle(2)).eval()


def constant_route(value: float) -> nn.Module:
    """Every output pixel ``value`` (×2 size): zero weights, bias ``value``."""
    conv = nn.Conv2d(3, 12, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.fill_(value)
    return nn.Sequential(conv, nn.PixelShuffle(2)).eval()


def nearest(x: torch.Tensor) -> torch.Tensor:
    return x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


@pytest.fixture(scope="module")
def routed() -> RoutedModel:
    """Route 0: nearest ×2 (dense 1x1 conv); route 1: half of it (depthwise, 3x cheaper)."""
    lookup = LaplacianEstimator(torch.tensor([0.05]), torch.log(torch.tensor([[1e-4, 1e-4], [1e-4, 4e-3]])))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = RoutedModel([Variant("full", upscaler(1.0, False)), Variant("half", upscaler(0.5, True))],
                            lookup, patch=PATCH, context=CONTEXT)
    return model.eval()


def test_window_costs_are_the_hand_counted_macs(routed):
    tile = PATCH + 2 * CONTEXT
    assert routed.window_costs == [3 * 12 * tile * tile, 12 * tile * tile]  # dense 1x1 3->12, depthwise 1x1


# ---------------------------------------------------------------------------------------- oracle
def _hr_by_region(values: list[list[list[float]]], height: int, width: int) -> torch.Tensor:
    """HR ``[B, 3, 2H, 2W]``: channel c of core (i, j) of image b holds ``values[b][i][j] + 0.1·c``."""
    hr = torch.full((len(values), 3, height * SCALE, width * SCALE), float("nan"))
    for b, grid in enumerate(values):
        for i, (r0, r1) in enumerate(CORES[height]):
            for j, (c0, c1) in enumerate(CORES[width]):
                for c in range(3):
                    hr[b, c, r0 * SCALE:r1 * SCALE, c0 * SCALE:c1 * SCALE] = grid[i][j] + 0.1 * c
    assert not torch.isnan(hr).any()
    return hr


@pytest.mark.parametrize("height, width, values", [
    (12, 10, [[[0.1, 0.3], [0.6, 0.8]], [[0.0, 0.5], [0.2, 0.7]]]),
    (5, 12, [[[0.4, 0.05]]]),                       # a short axis: one window, extended by padding
])
def test_oracle_errors_are_each_routes_mse_on_each_core(routed, height, width, values):
    hr = _hr_by_region(values, height, width)
    lr = torch.zeros(len(values), 3, height, width)
    shape = hr.shape
    # constant outputs: 0, 0.5 and 2.0 (the last is clamped to 1 before the error is taken)
    outputs = [torch.zeros(shape), torch.full(shape, 0.5), torch.full(shape, 2.0)]
    got = oracle_log_errors(routed, lr, hr, outputs)
    assert got.shape == (len(values), len(CORES[height]), len(CORES[width]), 3)
    for b, grid in enumerate(values):
        for i, row in enumerate(grid):
            for j, v in enumerate(row):
                for k, out in enumerate((0.0, 0.5, 1.0)):
                    mse = sum((v + 0.1 * c - out) ** 2 for c in range(3)) / 3
                    torch.testing.assert_close(got[b, i, j, k], torch.tensor(math.log(mse + FLOOR)),
                                               rtol=1e-5, atol=1e-5)  # float32 means of ≤ 36·3 values


# ---------------------------------------------------------------------------------------- compose
def test_compose_takes_every_pixel_from_its_windows_route(routed):
    g = torch.Generator().manual_seed(0)
    outputs = [torch.rand(2, 3, 24, 20, generator=g) for _ in range(3)]
    route_map = torch.tensor([[[0, 1], [2, 0]], [[1, 1], [0, 2]]])
    expected = torch.empty(2, 3, 24, 20)
    for b in range(2):
        for i, (r0, r1) in enumerate(CORES[12]):
            for j, (c0, c1) in enumerate(CORES[10]):
                rows, cols = slice(2 * r0, 2 * r1), slice(2 * c0, 2 * c1)
                expected[b, :, rows, cols] = outputs[int(route_map[b, i, j])][b, :, rows, cols]
    torch.testing.assert_close(compose(outputs, route_map, routed), expected, rtol=0, atol=0)  # a pure selection


def test_route_outputs_are_each_route_on_the_whole_image(routed):
    lr = torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(1))
    full, half = route_outputs(routed, lr)
    torch.testing.assert_close(full, nearest(lr), rtol=0, atol=1e-7)  # 1x1 convs with weights 0/1 and 0/0.5
    torch.testing.assert_close(half, 0.5 * nearest(lr), rtol=0, atol=1e-7)


# ---------------------------------------------------------------------------------------- sweep
def test_sweep_rows_give_the_hand_computed_psnr_macs_and_fractions(routed):
    """HR is the full route's output on the diagonal windows and the half route's elsewhere, plus
    small noise: the oracle at β = 0 must pick exactly that map, at β = 1e6 the cheap route everywhere."""
    g = torch.Generator().manual_seed(2)
    lr = 0.2 + 0.6 * torch.rand(3, 12, 10, generator=g)
    want_map = torch.tensor([[0, 1], [1, 0]])
    clean = torch.empty(3, 24, 20)
    for i, (r0, r1) in enumerate(CORES[12]):
        for j, (c0, c1) in enumerate(CORES[10]):
            gain = 1.0 if want_map[i, j] == 0 else 0.5
            clean[:, 2 * r0:2 * r1, 2 * c0:2 * c1] = gain * nearest(lr)[:, 2 * r0:2 * r1, 2 * c0:2 * c1]
    hr = (clean + 0.01 * torch.randn(clean.shape, generator=g)).clamp(0, 1)
    rows = {(r.method, r.beta): r for r in sweep(routed, [(lr, hr)], betas=[0.0, 1e6])}
    pixels, windows, (full_cost, half_cost) = 12 * 10, 4, routed.window_costs

    full = rows[("route:full", None)]
    assert full.psnr == pytest.approx(psnr(nearest(lr)[None].clamp(0, 1), hr[None], shave=SCALE), abs=1e-6)
    assert full.macs_per_pixel == pytest.approx(windows * full_cost / pixels)
    assert full.fractions == {"full": 1.0, "half": 0.0}
    half = rows[("route:half", None)]
    assert half.macs_per_pixel == pytest.approx(windows * half_cost / pixels)

    oracle = rows[("oracle", 0.0)]
    assert oracle.fractions == {"full": 0.5, "half": 0.5}
    assert oracle.macs_per_pixel == pytest.approx((2 * full_cost + 2 * half_cost) / pixels)  # true errors cost 0
    assert oracle.psnr == pytest.approx(psnr(clean[None].clamp(0, 1), hr[None], shave=SCALE), abs=1e-6)
    cheap = rows[("oracle", 1e6)]
    assert cheap.fractions == {"full": 0.0, "half": 1.0}
    assert cheap.psnr == pytest.approx(half.psnr, abs=1e-6)

    estimated = rows[("routed", 1e6)]  # the estimator runs on every window: its MACs are added
    assert estimated.macs_per_pixel == pytest.approx((windows * half_cost + windows * routed.estimator_cost) / pixels)


# ---------------------------------------------------------------------------------------- choice rule
def _choose(errors: list[list[float]], costs: list[float], beta: float) -> list[int]:
    return choose_routes(torch.log(torch.tensor(errors)), torch.tensor(costs), torch.tensor(beta)).tolist()


# score_i = β·(C₁ − Cᵢ)/C₁ + (fₙ − fᵢ)/fₙ, C₁ the largest cost, n the cheapest route; worked by hand:
CHOICES = [
    # costs [100, 50, 1]: saving [0, .5, .99]; f [1e-3, 2e-3, 8e-3]: (fₙ − f)/fₙ = [.875, .75, 0]
    ([[1e-3, 2e-3, 8e-3]], [100.0, 50.0, 1.0], 0.0, [0]),      # [.875, .75, 0]: smallest error
    ([[1e-3, 2e-3, 8e-3]], [100.0, 50.0, 1.0], 0.2, [0]),      # [.875, .85, .198]
    ([[1e-3, 2e-3, 8e-3]], [100.0, 50.0, 1.0], 0.3, [1]),      # [.875, .90, .297]
    ([[1e-3, 2e-3, 8e-3]], [100.0, 50.0, 1.0], 1.0, [1]),      # [.875, 1.25, .99]
    ([[1e-3, 2e-3, 8e-3]], [100.0, 50.0, 1.0], 10.0, [2]),     # [.875, 5.75, 9.9]: large β, the cheapest
    ([[1e-3, 2e-3, 8e-3]], [100.0, 50.0, 1.0], -1.0, [0]),     # [.875, .25, -.99]
    # the largest cost is route 1, the cheapest route 0: saving [.75, 0, .5]; fₙ = 4e-3: [0, .75, .5]
    ([[4e-3, 1e-3, 2e-3]], [10.0, 40.0, 20.0], 0.0, [1]),      # [0, .75, .5]
    ([[4e-3, 1e-3, 2e-3]], [10.0, 40.0, 20.0], 0.8, [2]),      # [.6, .75, .9]
    ([[4e-3, 1e-3, 2e-3]], [10.0, 40.0, 20.0], 3.0, [0]),      # [2.25, .75, 2.0]
    ([[4e-3, 1e-3, 2e-3]], [10.0, 40.0, 20.0], -5.0, [1]),     # [-3.75, .75, -2.0]: the most expensive
    # ties go to the lower index: equal errors at β = 0; routes 1 and 2 equal in cost and error
    ([[3e-3, 3e-3, 3e-3]], [4.0, 2.0, 1.0], 0.0, [0]),
    ([[1e-3, 2e-3, 2e-3]], [8.0, 4.0, 4.0], 1e3, [1]),
    # one decision per window, each against its own cheapest-route error
    ([[1e-3, 2e-3, 8e-3], [8e-3, 8e-3, 8e-3], [1e-2, 1e-3, 1e-2]], [100.0, 50.0, 1.0], 0.3, [1, 2, 1]),
]


@pytest.mark.parametrize("errors, costs, beta, expected", CHOICES)
def test_choose_routes_matches_the_hand_table(errors, costs, beta, expected):
    assert _choose(errors, costs, beta) == expected


# ---------------------------------------------------------------------------------------- estimator target
def test_the_estimators_target_is_each_routes_log_mse_on_the_window_core():
    """Windows 8x8 LR (context 2): the core is HR rows/cols [4, 12); the border holds 9.0, which
    would dominate any error that read it."""
    values = [[0.2, 0.5, 0.9], [0.0, 0.4, 1.0], [0.7, 0.7, 0.1]]  # per window, per channel, in the core
    pairs = []
    for v in values:
        hr = torch.full((3, 16, 16), 9.0)
        for c in range(3):
            hr[c, 4:12, 4:12] = v[c]
        pairs.append((torch.zeros(3, 8, 8), hr))
    routes = [Variant("zero", constant_route(0.0)), Variant("half", constant_route(0.5)),
              Variant("clamped", constant_route(1.7))]  # 1.7 is clamped to 1 before the error
    got = window_set(routes, pairs, range(3), context=2, device=torch.device("cpu"), chunk=2)
    expected = torch.tensor([[math.log(sum((x - out) ** 2 for x in v) / 3 + FLOOR) for out in (0.0, 0.5, 1.0)]
                             for v in values])
    torch.testing.assert_close(got.log_errors, expected, rtol=1e-5, atol=1e-5)  # float32 means of 192 values
    torch.testing.assert_close(got.windows, torch.zeros(3, 3, 8, 8), rtol=0, atol=0)
