"""The latency planner's greedy order, its give-back step and its measured correction, with pinned
timings (numbers chosen here) so every plan can be worked out by hand."""
from __future__ import annotations

from typing import Mapping

import pytest
import torch
from torch import nn

import fxprune
from fxprune.latency import LatencyModel, LatencyTable, choose_counts
from fxprune.latency import choose as choose_module

# ---------------------------------------------------------------------------------------- greedy order
# Additive latency per group. C saves nothing by shrinking (a conv shared with another group); D
# loses the least importance of all but saves only 0.1 ms for it.
TIMES = {"A": {8: 10.0, 4: 6.0, 2: 5.0}, "B": {8: 10.0, 4: 9.0, 2: 3.0}, "C": {8: 5.0, 4: 5.0}, "D": {8: 4.0, 4: 3.9}}
LOSS = {"A": {8: 0.0, 4: 2.0, 2: 6.0}, "B": {8: 0.0, 4: 0.4, 2: 3.5}, "C": {8: 0.0, 4: 0.0}, "D": {8: 0.0, 4: 0.1}}
OPTIONS = {"A": [8, 4, 2], "B": [8, 4, 2], "C": [8, 4], "D": [8, 4]}


def _latency(counts: Mapping[str, int]) -> float:
    return sum(TIMES[g][c] for g, c in counts.items())


# Worked by hand (dense 29 ms). Loss per ms saved of each group's next step:
#   1. A 8→4: 2/4 = .5;  B 8→4: .4/1 = .4;     D 8→4: .1/.1 = 1;  C saves nothing (last)  → B4  (28 ms)
#   2. A 8→4: .5;        B 4→2: 3.1/6 = .517;  D: 1                                     → A4  (24 ms)
#   3. A 4→2: 4/1 = 4;   B 4→2: .517;          D: 1                                     → B2  (18 ms)
#   4. A 4→2: 4;         D: 1                                                           → D4  (17.9 ms)
#   5. A 4→2: 4                                                                         → A2  (16.9 ms)
#   6. only C is left and it saves nothing: nothing is below 16.9 ms
# then the give-back: any step whose undoing still fits the target, most loss regained first.
PLANS = [
    (29.0, {"A": 8, "B": 8, "C": 8, "D": 8}),
    (28.0, {"A": 8, "B": 4, "C": 8, "D": 8}),
    (24.0, {"A": 4, "B": 4, "C": 8, "D": 8}),
    (23.0, {"A": 8, "B": 2, "C": 8, "D": 8}),   # after step 3 (18 ms) A back to 8 fits (22 ms), regains 2
    (20.0, {"A": 4, "B": 2, "C": 8, "D": 8}),   # after step 3: A back would be 22 ms, B back 24 ms
    (17.95, {"A": 4, "B": 2, "C": 8, "D": 4}),
    (17.0, {"A": 2, "B": 2, "C": 8, "D": 8}),   # after step 5 (16.9 ms) D back to 8 fits exactly (17 ms)
]


@pytest.mark.parametrize("target, expected", PLANS)
def test_greedy_order_and_give_back_match_the_hand_worked_plan(target, expected):
    got = choose_counts(OPTIONS, lambda g, c: LOSS[g][c], _latency, target)
    assert got == expected


def test_a_target_below_every_plan_names_the_smallest_latency():
    with pytest.raises(fxprune.SpecError, match=r"target of 16\.500 ms cannot be met.*predicted latency is 16\.900 ms"):
        choose_counts(OPTIONS, lambda g, c: LOSS[g][c], _latency, 16.5)


def test_one_large_step_goes_before_several_cheaper_small_ones():
    """Per ms saved, not per step: E loses 3 for 10 ms (.3/ms), F 1 for 2 ms (.5/ms), G 1.5 for 2 ms
    (.75/ms). To save 4 of 18 ms, E alone (loss 3) is taken, not F and G (loss 2.5)."""
    times = {"E": {8: 12.0, 4: 2.0}, "F": {8: 3.0, 4: 1.0}, "G": {8: 3.0, 4: 1.0}}
    loss = {"E": {8: 0.0, 4: 3.0}, "F": {8: 0.0, 4: 1.0}, "G": {8: 0.0, 4: 1.5}}
    got = choose_counts({g: [8, 4] for g in times}, lambda g, c: loss[g][c],
                        lambda counts: sum(times[g][c] for g, c in counts.items()), 14.0)
    assert got == {"E": 4, "F": 8, "G": 8}


def test_a_step_is_judged_by_the_loss_it_adds():
    """H's first step loses 3 for 6 ms, its second only 0.2 more for 1 ms (.2/ms, though H's total
    is then 3.2); K's step loses 1 for 1 ms. From 9 ms (H at 4) to the 8.5 ms target: H's second step."""
    times = {"H": {8: 10.0, 4: 4.0, 2: 3.0}, "K": {8: 5.0, 4: 4.0}}
    loss = {"H": {8: 0.0, 4: 3.0, 2: 3.2}, "K": {8: 0.0, 4: 1.0}}
    got = choose_counts({"H": [8, 4, 2], "K": [8, 4]}, lambda g, c: loss[g][c],
                        lambda counts: sum(times[g][c] for g, c in counts.items()), 8.5)
    assert got == {"H": 2, "K": 8}


def test_the_give_back_regains_the_most_loss_first():
    """X (1 lost for 6 ms), Y (2 for 5), Z (4 for 8) are all taken: 11 ms, under the 17 ms target.
    X alone (17 ms) or Y alone (16 ms) fits back, not both: Y regains more."""
    times = {"X": {8: 10.0, 4: 4.0}, "Y": {8: 10.0, 4: 5.0}, "Z": {8: 10.0, 4: 2.0}}
    loss = {"X": {8: 0.0, 4: 1.0}, "Y": {8: 0.0, 4: 2.0}, "Z": {8: 0.0, 4: 4.0}}
    got = choose_counts({g: [8, 4] for g in times}, lambda g, c: loss[g][c],
                        lambda counts: sum(times[g][c] for g, c in counts.items()), 17.0)
    assert got == {"X": 4, "Y": 8, "Z": 4}


# ---------------------------------------------------------------------------------------- correction
class _Two(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)))


X = torch.randn(1, 3, 8, 8)


@pytest.fixture(scope="module")
def graph():
    return fxprune.analyze(_Two().eval(), X)


def _pinned_model(graph, tmp_path) -> LatencyModel:
    """A conv costs 0.001·Cin·Cout ms; the dense model 0.1 ms. With one free group of 16 (``a``'s
    outputs, round_to 4) a plan keeping c channels is predicted at 0.004 + 0.006·c ms:
    c = 16, 12, 8, 4 → 0.100, 0.076, 0.052, 0.028 ms."""
    table = LatencyTable(tmp_path, fingerprint="pinned", timer=lambda sig: 0.001 * sig.in_channels * sig.out_channels)
    return LatencyModel(graph, X, threads=1, table=table, dense_ms=0.1, calibrate=False)


def _pin_measurements(monkeypatch, fractions: dict[int, float]) -> list[int]:
    """Whole-model timings: the plan keeping c channels measures ``fractions[c]`` of the dense model."""
    timed: list[int] = []

    def measure(models, example_inputs, threads=None):
        kept = models[1].get_parameter("a.weight").shape[0]
        timed.append(kept)
        return [1.0, fractions[kept]]

    monkeypatch.setattr(choose_module, "measure_latencies", measure)
    return timed


def test_the_prediction_is_corrected_by_the_measured_ratio(graph, tmp_path, monkeypatch):
    """Target 0.7. Predicted: 8 channels (0.052 ms ≤ 0.07), measured 0.45, off by more than 5%.
    Corrected goal 0.7 · 0.052 / 0.45 = 0.0809 ms → 12 channels (0.076 ms), measured 0.70: kept."""
    timed = _pin_measurements(monkeypatch, {16: 1.0, 12: 0.70, 8: 0.45, 4: 0.25})
    plan = choose_module.plan_for_latency(graph, fxprune.Spec(latency=0.7, round_to=4), X,
                                          model=_pinned_model(graph, tmp_path))
    assert timed == [8, 12]
    assert plan.counts == {0: 12} and plan.measured_plans == 2
    assert plan.measured_fraction == pytest.approx(0.70)
    assert plan.predicted_ms == pytest.approx(0.076)


def test_a_slow_plan_is_corrected_downwards_and_the_largest_under_the_target_is_kept(graph, tmp_path, monkeypatch):
    """Target 0.6. Predicted: 8 channels (0.052 ms ≤ 0.06), measured 0.65. Corrected goal
    0.6 · 0.052 / 0.65 = 0.048 ms → 4 channels (0.028), measured 0.40. Corrected again:
    0.6 · 0.028 / 0.40 = 0.042 ms → 4 channels, already timed: stop. Neither is within 5%
    of 0.6; the largest under the target is 4 channels."""
    timed = _pin_measurements(monkeypatch, {16: 1.0, 12: 0.85, 8: 0.65, 4: 0.40})
    plan = choose_module.plan_for_latency(graph, fxprune.Spec(latency=0.6, round_to=4), X,
                                          model=_pinned_model(graph, tmp_path))
    assert timed == [8, 4]
    assert plan.counts == {0: 4} and plan.measured_fraction == pytest.approx(0.40)


def test_without_measure_rounds_the_prediction_is_trusted(graph, tmp_path, monkeypatch):
    timed = _pin_measurements(monkeypatch, {})
    plan = choose_module.plan_for_latency(graph, fxprune.Spec(latency=0.7, round_to=4), X,
                                          model=_pinned_model(graph, tmp_path), measure_rounds=0)
    assert timed == [] and plan.counts == {0: 8} and plan.measured_fraction is None


def test_of_two_plans_under_the_target_the_larger_is_kept(graph, tmp_path, monkeypatch):
    """Target 0.7. 8 channels measure 0.40 → goal 0.7 · 0.052 / 0.40 = 0.091 ms → 12 channels
    (0.076), measure 0.55 → goal 0.7 · 0.076 / 0.55 = 0.0967 ms → 12 again: stop. Neither is
    within 5% of 0.7; both are under it, and 12 channels is the larger."""
    timed = _pin_measurements(monkeypatch, {16: 1.0, 12: 0.55, 8: 0.40, 4: 0.2})
    plan = choose_module.plan_for_latency(graph, fxprune.Spec(latency=0.7, round_to=4), X,
                                          model=_pinned_model(graph, tmp_path))
    assert timed == [8, 12]
    assert plan.counts == {0: 12} and plan.measured_fraction == pytest.approx(0.55)
