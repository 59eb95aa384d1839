"""A global MAC budget turned into one pruning ratio (groups with an override keep theirs)."""
from __future__ import annotations

from typing import Any

from .counting import count_macs
from .errors import SpecError
from .graph import ChannelGraph
from .passes.slice_channels import slice_channels
from .selection import plan_keep
from .spec import Spec


def ratio_for_macs(graph: ChannelGraph, spec: Spec, example_inputs: Any, steps: int = 12) -> float:
    """The smallest global ratio (to ``steps`` bisections) whose sliced model keeps ≤ ``spec.macs``.

    MACs depend on how many units each group keeps, not on which, so the answer holds for any
    importance score (L1 now, ASSL's gates later).
    """
    dense = count_macs(graph.gm, example_inputs)

    def fraction(ratio: float) -> float:
        return count_macs(slice_channels(graph, plan_keep(graph, spec, ratio=ratio)), example_inputs) / dense

    low, high = 0.0, 0.999
    smallest = fraction(high)
    if smallest > spec.macs:
        raise SpecError("macs", f"cannot reach {spec.macs:.3f} of the MACs: even pruning every prunable unit "
                        f"keeps {smallest:.3f} (fixed groups and rounding)")
    for _ in range(steps):
        middle = (low + high) / 2
        if fraction(middle) <= spec.macs:
            high = middle
        else:
            low = middle
    return high
