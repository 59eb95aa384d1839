"""The Reading of bench_sls.py's section: sentences made from its table rows only, comparing rows
at equal cost only (a pure function of the rows; no I/O, no torch).

A row is one model setting over its seeds: its MAC fraction and Y-PSNR per seed. Two rows are
compared only when their mean MAC fractions differ by at most ``tolerance`` (a fraction of the
dense MACs); a row "uses" its budget only when its MAC fraction is within ``tolerance`` of it.

>>> rows = [Row("sls", "SLS", 0.25, [0.248, 0.246], [33.80, 33.82]),
...         Row("nm_matched", "one-shot N:M, N per layer", 0.25, [0.247, 0.245], [33.77, 33.79])]
>>> print("\\n".join(reading(rows, tolerance=0.005)))    # doctest: +NORMALIZE_WHITESPACE
- Budget 0.25: SLS 33.810 ± 0.014 dB vs one-shot N:M, N per layer 33.780 ± 0.014 dB at equal MACs (0.247 vs 0.246 of dense): +0.030 dB (paired over 2 seeds: +0.030 ± 0.000); the paper's direction (SLS ≥ one-shot, +0.01 to +0.24 dB on Urban100 ×4): holds here.
- Budget 0.25, MACs: every N:M row uses the budget (MAC fraction within 0.005 of 0.25).
- MAC fraction 0.246–0.247 (rows within 0.005 of each other), measured order (dB): SLS 33.81 > one-shot N:M, N per layer 33.78.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Sequence

NM_METHODS = ("sls", "nm_matched", "nm")
PAPER = "the paper's direction (SLS ≥ one-shot, +0.01 to +0.24 dB on Urban100 ×4)"


@dataclass(frozen=True)
class Row:
    """One table row: ``method`` (``sls``, ``nm_matched``, ``nm``, or another name), the budget it
    was asked for, and per seed its MAC fraction of the dense model and its Y-PSNR."""

    method: str
    label: str
    budget: float
    macs: Sequence[float]
    psnr: Sequence[float]
    seeds: Sequence[int] = field(default=())

    @property
    def mac_mean(self) -> float:
        return statistics.fmean(self.macs)

    @property
    def psnr_mean(self) -> float:
        return statistics.fmean(self.psnr)


def spread(values: Sequence[float]) -> float:
    """Sample standard deviation (0 for a single value).

    >>> spread([1.0, 3.0]), spread([2.0])
    (1.4142135623730951, 0.0)
    """
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _db(row: Row) -> str:
    return f"{row.psnr_mean:.3f}" + (f" ± {spread(row.psnr):.3f}" if len(row.psnr) > 1 else "") + " dB"


def equal_cost(a: Row, b: Row, tolerance: float) -> bool:
    """Whether the two rows' mean MAC fractions differ by at most ``tolerance``."""
    return abs(a.mac_mean - b.mac_mean) <= tolerance + 1e-12


def _versus(a: Row, b: Row, budget: float, tolerance: float) -> str:
    head = f"- Budget {budget:g}: SLS {_db(a)} vs {b.label} {_db(b)}"
    if not equal_cost(a, b, tolerance):
        return (f"- Budget {budget:g}, {b.label}: not compared with SLS: it keeps {b.mac_mean:.3f} of the dense MACs, "
                f"SLS {a.mac_mean:.3f} (a gap of {abs(a.mac_mean - b.mac_mean):.4f} > {tolerance:g}).")
    diff = a.psnr_mean - b.psnr_mean
    paired = [x - y for (sa, x), (sb, y) in zip(zip(a.seeds or range(len(a.psnr)), a.psnr),
                                                zip(b.seeds or range(len(b.psnr)), b.psnr)) if sa == sb]
    pairs = (f" (paired over {len(paired)} seeds: {statistics.fmean(paired):+.3f} ± {spread(paired):.3f})"
             if len(paired) > 1 else "")
    if len(paired) > 1 and abs(statistics.fmean(paired)) <= spread(paired):
        verdict = "within the seed spread, no direction shown"
    else:
        verdict = "holds here" if diff >= 0 else "does NOT hold here"
    return (f"{head} at equal MACs ({a.mac_mean:.3f} vs {b.mac_mean:.3f} of dense): {diff:+.3f} dB{pairs}; "
            f"{PAPER}: {verdict}.")


def _budget_use(rows: Sequence[Row], budget: float, tolerance: float) -> str | None:
    nm = [r for r in rows if r.method in NM_METHODS]
    if not nm:
        return None
    below = [r for r in nm if budget - r.mac_mean > tolerance]
    if not below:
        return (f"- Budget {budget:g}, MACs: every N:M row uses the budget (MAC fraction within {tolerance:g} of "
                f"{budget:g}).")
    text = ", ".join(f"{r.label} keeps {r.mac_mean:.3f}" for r in below)
    return (f"- Budget {budget:g}, MACs: {text} of the dense MACs, more than {tolerance:g} below the budget "
            f"(what it gives is not compared with a row that uses the budget).")


def cost_clusters(rows: Sequence[Row], tolerance: float) -> list[list[Row]]:
    """Rows sorted by MAC fraction, cut into runs whose members are all within ``tolerance`` of
    each other (each run spans at most ``tolerance``).

    >>> r = lambda name, macs: Row(name, name, 0.25, [macs], [30.0])
    >>> [[x.label for x in c] for c in cost_clusters([r("a", 0.10), r("b", 0.104), r("c", 0.108)], 0.005)]
    [['a', 'b'], ['c']]
    """
    clusters: list[list[Row]] = []
    for row in sorted(rows, key=lambda r: r.mac_mean):
        if clusters and row.mac_mean - clusters[-1][0].mac_mean <= tolerance + 1e-12:
            clusters[-1].append(row)
        else:
            clusters.append([row])
    return clusters


def reading(rows: Sequence[Row], tolerance: float) -> list[str]:
    """The Reading's lines: per budget, SLS against each one-shot row (compared only at equal
    MACs) and which N:M rows use the budget; then the measured order within each set of rows of
    equal cost (never across costs)."""
    out: list[str] = []
    for budget in sorted({r.budget for r in rows if r.method in NM_METHODS}, reverse=True):
        at = [r for r in rows if r.budget == budget]
        sls = next((r for r in at if r.method == "sls"), None)
        if sls:
            out += [_versus(sls, r, budget, tolerance) for method in ("nm_matched", "nm")
                    for r in at if r.method == method]
        use = _budget_use(at, budget, tolerance)
        if use:
            out.append(use)
    for cluster in cost_clusters(rows, tolerance):
        if len(cluster) < 2:
            continue
        low, high = cluster[0].mac_mean, cluster[-1].mac_mean
        mixed = len({r.budget for r in cluster}) > 1
        order = " > ".join(f"{r.label}{f' (budget {r.budget:g})' if mixed else ''} {r.psnr_mean:.2f}"
                           for r in sorted(cluster, key=lambda r: -r.psnr_mean))
        out.append(f"- MAC fraction {low:.3f}–{high:.3f} (rows within {tolerance:g} of each other), measured order "
                   f"(dB): {order}.")
    return out
