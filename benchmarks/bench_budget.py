"""A MAC budget resolved to one global ratio: fxprune's MacModel against slicing and counting.

``fxprune.budget.ratio_for_macs`` bisects the global ratio whose plan keeps at most the budget.
It prices each plan with ``MacModel`` (per-layer MAC costs times kept channel counts); before
it, each bisection step sliced the whole model and counted its MACs. This script runs both on
the same analyzed model, checks that every step gives the same MAC count and the same ratio,
and times them::

    python benchmarks/bench_budget.py --out benchmarks/RESULTS.md   # ~3 min on an idle machine
    python benchmarks/bench_budget.py --quick                       # a small RCAN, seconds
"""
from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fxprune  # noqa: E402
from fxprune.budget import HIGHEST_RATIO, MacModel, bisect_ratio, ratio_for_macs  # noqa: E402
from fxprune.models import build  # noqa: E402
from fxprune.passes.slice_channels import slice_channels  # noqa: E402
from fxprune.selection import l1_scores, plan_keep  # noqa: E402

from bench_common import Clock, run_line  # noqa: E402
from results_file import replace_section  # noqa: E402

HEADING = "## MAC budgets without re-slicing (bench_budget.py)"
MODELS = {"rcan 10×20": ("rcan", dict(groups=10, blocks=20, channels=64, reduction=16)),
          "edsr 32×256": ("edsr", dict(blocks=32, channels=256, res_scale=0.1))}
QUICK = {"rcan 1×4": ("rcan", dict(groups=1, blocks=4, channels=32, reduction=4))}
BUDGET, STEPS, GOAL = 0.5, 12, 5.0


def by_slicing(graph, spec, x, steps: int) -> tuple[float, list[int]]:
    """The bisection as it was before MacModel: slice the plan and count its MACs at every step."""
    scores = {g.id: l1_scores(graph, g) for g in graph.groups}
    dense = fxprune.count_macs(graph.gm, x)
    counts = []

    def fraction(ratio: float) -> float:
        small = slice_channels(graph, plan_keep(graph, spec, ratio=ratio, scores=lambda g, group: scores[group.id]))
        counts.append(fxprune.count_macs(small, x))
        return counts[-1] / dense

    fraction(HIGHEST_RATIO)
    return bisect_ratio(fraction, spec.macs, steps), counts


def measure(label: str, name: str, kwargs: dict, x: torch.Tensor) -> dict:
    graph = fxprune.analyze(build(name, **kwargs).eval(), x)
    spec = fxprune.Spec(method="l1", budget=BUDGET, round_to=8)
    start = time.perf_counter()
    ratio = ratio_for_macs(graph, spec, (x,), steps=STEPS)
    fast_s = time.perf_counter() - start
    start = time.perf_counter()
    sliced_ratio, counts = by_slicing(graph, spec, x, STEPS)
    slow_s = time.perf_counter() - start
    model = MacModel(graph, (x,))
    scores = {g.id: l1_scores(graph, g) for g in graph.groups}
    priced = [model.macs(plan_keep(graph, spec, ratio=r, scores=lambda g, group: scores[group.id]))
              for r in _ratios(counts, model.dense, spec.macs, STEPS)]
    row = dict(label=label, convs=sum(1 for n in graph.gm.graph.nodes if n.op == "call_function" and "conv" in str(n.target)), fast_s=fast_s,
               slow_s=slow_s, ratio=ratio, sliced_ratio=sliced_ratio, same_counts=priced == counts)
    print(row, flush=True)
    return row


def _ratios(counts: list[int], dense: int, budget: float, steps: int) -> list[float]:
    """The ratios the slicing bisection visited, replayed from its counts."""
    low, high, visited = 0.0, HIGHEST_RATIO, [HIGHEST_RATIO]
    for count in counts[1:steps + 1]:
        middle = (low + high) / 2
        visited.append(middle)
        if count / dense <= budget:
            high = middle
        else:
            low = middle
    return visited


def section(rows: list[dict], clock: Clock) -> str:
    lines = [run_line(datetime.date.today().isoformat(), 1, clock),
             f"`Spec(method=\"l1\", budget={BUDGET}, round_to=8)` on a 1×3×32×32 example, {STEPS} bisection steps, one process. "
             "MacModel: `fxprune.budget.ratio_for_macs`. Slicing: the same bisection slicing the plan and "
             "counting the sliced model's MACs at every step (what the budget did before MacModel).", "",
             "| model | conv layers | MacModel s | slice + count s | speed-up | same MACs at every step | same ratio |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['convs']} | {r['fast_s']:.2f} | {r['slow_s']:.1f} | "
                     f"{r['slow_s'] / r['fast_s']:.1f}× | {'yes' if r['same_counts'] else '**no**'} | "
                     f"{'yes' if r['ratio'] == r['sliced_ratio'] else '**no**'} ({r['ratio']:.4f}) |")
    rcan = next((r for r in rows if r["label"].startswith("rcan 10")), None)
    if rcan:
        speedup = rcan["slow_s"] / rcan["fast_s"]
        lines += ["", "### Reading", "",
                  f"- Goal \"at least {GOAL:g}× faster than slicing on RCAN 10×20\": "
                  f"{'met' if speedup >= GOAL else '**not met**'} ({rcan['fast_s']:.2f} s vs {rcan['slow_s']:.1f} s, "
                  f"{speedup:.1f}×)."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small model (seconds); nothing written")
    parser.add_argument("--out", type=Path, help="write the section into this markdown file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    np.random.seed(0)
    clock = Clock()
    x = torch.randn(1, 3, 32, 32)
    rows = [measure(label, name, kwargs, x) for label, (name, kwargs) in (QUICK if args.quick else MODELS).items()]
    text = section(rows, clock)
    print(text)
    if args.out and not args.quick:
        replace_section(args.out, HEADING, text)


if __name__ == "__main__":
    main()
