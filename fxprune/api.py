"""The public entry points: thin orchestration of trace, analysis, selection and passes."""
from __future__ import annotations

from typing import Any

import torch.fx as fx
from torch import nn

from .analysis import analyze
from .counting import count_macs
from .errors import SpecError
from .graph import ChannelGraph
from .passes.slice_channels import slice_channels
from .selection import plan_keep
from .spec import Spec


def compress(model: nn.Module, spec: Spec | dict, example_inputs: Any) -> fx.GraphModule:
    """Compress ``model`` as ``spec`` says and return a plain, smaller GraphModule.

    With ``Spec(method="l1", ratio=r)`` every prunable group loses the fraction ``r`` of its units
    with the smallest L1 filter norm (summed over the group's producers), rounded to ``round_to``.
    With ``macs=m`` one global ratio is searched so the result keeps at most ``m`` of the MACs.

    >>> import torch, fxprune
    >>> from fxprune.models import build
    >>> small = fxprune.compress(build("edsr", blocks=2, channels=32), fxprune.Spec(ratio=0.5), (torch.randn(1, 3, 16, 16),))
    >>> small.get_parameter("head.weight").shape
    torch.Size([16, 3, 3, 3])
    """
    if isinstance(spec, dict):
        spec = Spec.from_dict(spec)
    if not isinstance(spec, Spec):
        raise SpecError("<root>", f"expected fxprune.Spec or a dict, got {type(spec).__name__}")
    graph = analyze(model, example_inputs)
    if spec.macs is not None:
        return _meet_mac_target(graph, spec, example_inputs)
    return slice_channels(graph, plan_keep(graph, spec))


def _meet_mac_target(graph: ChannelGraph, spec: Spec, example_inputs: Any, steps: int = 12) -> fx.GraphModule:
    """Bisect one global ratio (groups with an override keep theirs) until MACs ≤ ``spec.macs``."""
    dense = count_macs(graph.gm, example_inputs)
    low, high = 0.0, 0.999
    best = slice_channels(graph, plan_keep(graph, spec, ratio=high))
    if count_macs(best, example_inputs) > spec.macs * dense:
        raise SpecError("macs", f"cannot reach {spec.macs:.3f} of the MACs: even pruning every prunable unit "
                        f"keeps {count_macs(best, example_inputs) / dense:.3f} (fixed groups and rounding)")
    for _ in range(steps):
        middle = (low + high) / 2
        candidate = slice_channels(graph, plan_keep(graph, spec, ratio=middle))
        if count_macs(candidate, example_inputs) <= spec.macs * dense:
            best, high = candidate, middle
        else:
            low = middle
    return best
