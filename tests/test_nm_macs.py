"""One-shot N:M with N per layer chosen to land on a MAC target (``n_per_layer="magnitude"``)."""
from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, strategies as st

import fxprune
from fxprune.methods.nm_alloc import LayerUnits, allocate_n, unit_losses
from fxprune.models import build
from fxprune.passes.insert_nm_masks import NMMask

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _total(layers, ns, other=0):
    return other + sum(layer.at(ns[name]) for name, layer in layers.items())


def test_hand_checked_case_drops_the_cheapest_units_then_gives_back_what_fits():
    # a: 1,600 MACs in units of 400, losses per MAC 5e-5, 2e-4, 5e-4 for its last three units;
    # c: 400 MACs in units of 100, 1e-4 per MAC for each of its last three.
    # To reach 1,250: drop a's last (1,600), c's three (1,300), then a's next (900);
    # then c's three fit back (1,200); a's 400 does not.
    layers = {"a": LayerUnits(1600, 4, (0.7, 0.2, 0.08, 0.02)), "c": LayerUnits(400, 4, (0.97, 0.01, 0.01, 0.01))}
    ns = allocate_n(layers, 1250)
    assert ns == {"a": 2, "c": 4}
    assert _total(layers, ns) == 1200


def test_floor_cap_and_out_of_reach():
    layers = {"a": LayerUnits(800, 8, [0.125] * 8, floor=3, cap=5), "b": LayerUnits(800, 8, [0.125] * 8)}
    ns = allocate_n(layers, 400)   # the lowest reachable: every layer at its floor
    assert ns == {"a": 3, "b": 1}
    assert allocate_n(layers, 10**9) == {"a": 5, "b": 8}
    with pytest.raises(fxprune.SpecError, match="out of reach.*400 MACs") as error:
        allocate_n(layers, 399)
    assert error.value.field == "budget"
    with pytest.raises(fxprune.SpecError, match="layer a: needs 1 ≤ floor ≤ cap ≤ m"):
        allocate_n({"a": LayerUnits(800, 8, [0.1] * 8, floor=0)}, 800)


@st.composite
def _problems(draw):
    count = draw(st.integers(1, 4))
    layers = {}
    for i in range(count):
        m = draw(st.sampled_from([2, 4, 8]))
        macs = draw(st.integers(1, 50)) * m + draw(st.integers(0, m - 1))   # not always a multiple of m
        loss = draw(st.lists(st.floats(0, 1), min_size=m, max_size=m))
        floor = draw(st.integers(1, m))
        cap = draw(st.integers(floor, m))
        layers[f"l{i}"] = LayerUnits(macs, m, loss, floor=floor, cap=cap)
    other = draw(st.integers(0, 200))
    low = other + sum(layer.at(layer.floor) for layer in layers.values())
    high = other + sum(layer.at(layer.top()) for layer in layers.values())
    return layers, other, draw(st.integers(low, high + 50))


@given(_problems())
def test_meets_the_target_up_to_one_unit_with_n_in_range(problem):
    layers, other, target = problem
    ns = allocate_n(layers, target, other_macs=other)
    total = _total(layers, ns, other)
    assert total <= target
    for name, layer in layers.items():
        assert 1 <= layer.floor <= ns[name] <= layer.top() <= layer.m
        if ns[name] < layer.top():   # the next unit of any layer below its cap would pass the target
            assert total + layer.at(ns[name] + 1) - layer.at(ns[name]) > target


@given(st.lists(st.lists(st.floats(0, 1), min_size=4, max_size=4), min_size=1, max_size=3), st.integers(0, 12))
def test_equal_units_keep_the_largest_losses_like_brute_force(losses, drop):
    """With units of equal MACs and losses in magnitude order, the kept units are the best set."""
    losses = [sorted(loss, reverse=True) for loss in losses]
    layers = {f"l{i}": LayerUnits(400, 4, loss) for i, loss in enumerate(losses)}
    target = max(len(layers) * 100, 400 * len(layers) - 100 * drop)
    ns = allocate_n(layers, target)

    def kept(choice):
        return sum(sum(layers[name].loss[:n]) for name, n in choice.items())

    best = max(kept(dict(zip(layers, combo))) for combo in itertools.product(range(1, 5), repeat=len(layers))
               if _total(layers, dict(zip(layers, combo))) <= target)
    torch.testing.assert_close(kept(ns), best, rtol=0, atol=1e-9)


def test_unit_losses_follow_the_masks_rank_order_in_two_four_mode():
    w = torch.tensor([4.0, 3.0, 1.0, 0.5, 2.0, 0.1, 0.2, 0.3]).reshape(1, 8, 1, 1)
    # 2:4 order: the top two of each block of four first (4, 3 | 2, 0.3), then the rest (1, 0.5, 0.2, 0.1)
    expected = torch.tensor([16.0, 9.0, 4.0, 0.09, 1.0, 0.25, 0.04, 0.01], dtype=torch.float64) / 30.39   # Σ w²
    torch.testing.assert_close(torch.tensor(unit_losses(w, NMMask(w, 8, "2:4")), dtype=torch.float64), expected,
                               rtol=1e-6, atol=0)   # the weights are float32 (0.3 is not exact)


@pytest.mark.parametrize("budget", [0.6, 0.37])
def test_spec_n_per_layer_lands_on_the_budget_and_counts_agree(budget):
    torch.manual_seed(0)
    model, x = build("edsr", blocks=2, channels=16).eval(), torch.randn(1, 3, 12, 12)
    spec = fxprune.Spec(method="nm", budget=budget, m=8, n_per_layer="magnitude")
    pruner = fxprune.prepare(model, spec, x)
    uniform = fxprune.prepare(model, fxprune.Spec(method="nm", budget=budget, m=8), x)
    limit = budget * pruner.dense_macs
    unit = max(site.macs // site.m + 1 for site in pruner.sites.values())
    assert limit - unit < pruner.macs(pruner.frozen) <= limit
    assert pruner.macs(pruner.frozen) >= uniform.macs(uniform.frozen)
    assert all(1 <= n <= pruner.sites[p].m for p, n in pruner.frozen.items())
    assert len(set(pruner.frozen.values())) > 1   # not the uniform answer in disguise
    small = pruner.convert()
    assert fxprune.check_nm(small, x).ok
    assert fxprune.count_macs(small, (x,)) == pruner.macs(pruner.frozen)


def test_spec_errors_name_the_field():
    with pytest.raises(fxprune.SpecError, match="set budget=") as error:
        fxprune.Spec(method="nm", n=2, n_per_layer="magnitude")
    assert error.value.field == "n_per_layer"
    with pytest.raises(fxprune.SpecError, match="choose one of uniform, magnitude"):
        fxprune.Spec(method="nm", budget=0.5, n_per_layer="greedy")
    with pytest.raises(fxprune.SpecError, match="setting of method nm"):
        fxprune.Spec(method="sls", budget=0.5, n_per_layer="magnitude")
