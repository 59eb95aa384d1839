"""bench_sls.py's Reading follows its table: budgets used only when the rows' MACs say so, and
PSNR compared only between rows of equal cost (benchmarks/sls_reading.py, a pure function)."""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "sls_reading.py"


def _load():
    if "sls_reading" not in sys.modules:
        spec = importlib.util.spec_from_file_location("sls_reading", _PATH)
        module = importlib.util.module_from_spec(spec)
        sys.modules["sls_reading"] = module   # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules["sls_reading"]


@pytest.fixture(scope="module")
def sr():
    return _load()


TOL = 0.005


def _rows(sr, sls, matched, uniform, channels=None, psnr=(33.8, 33.7, 33.6)):
    rows = [sr.Row("sls", "SLS", 0.25, sls, [psnr[0] + 0.01 * i for i in range(len(sls))], seeds=range(len(sls))),
            sr.Row("nm_matched", "one-shot N:M, N per layer", 0.25, matched,
                   [psnr[1] + 0.01 * i for i in range(len(matched))], seeds=range(len(matched))),
            sr.Row("nm", "one-shot N:M, uniform N", 0.25, uniform, [psnr[2]] * len(uniform), seeds=range(len(uniform)))]
    if channels:
        rows.append(sr.Row("l1", "L1 channels", 0.125, [channels], [33.3], seeds=[0]))
    return rows


def _orders(lines):
    return [line for line in lines if "measured order" in line]


def test_rows_below_the_budget_are_named_and_never_compared_across_costs(sr):
    """The issue's table: SLS 0.243, uniform one-shot 0.199 and channels 0.065 of the MACs at budget 0.25."""
    lines = sr.reading(_rows(sr, [0.243, 0.244, 0.242], [0.242, 0.2435, 0.2415], [0.199] * 3, channels=0.065), TOL)
    text = "\n".join(lines)
    assert "use it fully" not in text and "every N:M row uses the budget" not in text
    use = next(line for line in lines if line.startswith("- Budget 0.25, MACs:"))
    assert "one-shot N:M, uniform N keeps 0.199" in use and "SLS keeps 0.243" in use
    assert any(line.startswith("- Budget 0.25, one-shot N:M, uniform N: not compared with SLS") and "0.0440 > 0.005" in line
               for line in lines)
    headline = [line for line in lines if line.startswith("- Budget 0.25: SLS ")]
    assert len(headline) == 1 and "N per layer" in headline[0] and "at equal MACs (0.243 vs 0.242" in headline[0]
    assert "+0.100 dB" in headline[0] and "holds here" in headline[0]
    orders = _orders(lines)
    assert len(orders) == 1 and "SLS 33.81 > one-shot N:M, N per layer 33.71" in orders[0]
    assert "uniform" not in orders[0] and "L1" not in orders[0]


def test_rows_that_use_the_budget_say_so_and_are_all_compared(sr):
    lines = sr.reading(_rows(sr, [0.249, 0.248], [0.248, 0.2475], [0.2465, 0.2465], psnr=(33.6, 33.7, 33.8)), TOL)
    assert "- Budget 0.25, MACs: every N:M row uses the budget (MAC fraction within 0.005 of 0.25)." in lines
    versus = [line for line in lines if line.startswith("- Budget 0.25: SLS ")]
    assert len(versus) == 2 and all("at equal MACs" in line and "does NOT hold here" in line for line in versus)
    assert not any("not compared" in line for line in lines)
    orders = _orders(lines)
    assert len(orders) == 1
    assert re.search(r"uniform N 33\.80 > one-shot N:M, N per layer 33\.7\d > SLS 33\.6\d", orders[0])


def test_a_difference_inside_the_seed_spread_claims_no_direction(sr):
    rows = [sr.Row("sls", "SLS", 0.125, [0.12, 0.12, 0.12], [33.0, 33.3, 33.1], seeds=[0, 1, 2]),
            sr.Row("nm_matched", "matched", 0.125, [0.12, 0.12, 0.12], [33.2, 33.0, 33.1], seeds=[0, 1, 2])]
    line = sr.reading(rows, TOL)[0]
    assert "paired over 3 seeds: +0.033 ± 0.252" in line and "within the seed spread, no direction shown" in line


def test_rows_of_other_budgets_at_the_same_cost_are_ordered_together(sr):
    rows = [sr.Row("sls", "SLS", 0.0625, [0.0620], [33.2]), sr.Row("l1", "L1 channels", 0.125, [0.0652], [33.3])]
    (order,) = _orders(sr.reading(rows, TOL))
    assert "L1 channels (budget 0.125) 33.30 > SLS (budget 0.0625) 33.20" in order


@given(st.lists(st.floats(0.01, 1.0), min_size=1, max_size=12), st.floats(0.001, 0.05))
def test_cost_clusters_span_at_most_the_tolerance_and_cover_every_row(fractions, tolerance):
    module = _load()
    rows = [module.Row("nm", f"r{i}", 0.25, [f], [30.0]) for i, f in enumerate(fractions)]
    clusters = module.cost_clusters(rows, tolerance)
    assert sorted(r.label for c in clusters for r in c) == sorted(r.label for r in rows)
    for cluster in clusters:
        assert cluster[-1].mac_mean - cluster[0].mac_mean <= tolerance + 1e-12
    for before, after in zip(clusters, clusters[1:]):   # a cut only where the next row is out of reach
        assert after[0].mac_mean - before[0].mac_mean > tolerance
