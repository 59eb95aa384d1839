"""One-shot L1 channel pruning, as a registered method (``Spec(method="l1")``, the default).

Every prunable group loses the fraction ``ratio`` of its units with the smallest L1 filter norm
(summed over the group's producers), rounded to ``round_to``. With ``macs=m`` (alias ``budget``)
one global ratio is searched so the result keeps at most ``m`` of the MACs; with ``latency=f``
per-group counts are chosen so the predicted ONNX Runtime latency is at most ``f`` of the dense
model's measured one (:func:`fxprune.latency.plan_for_latency`; the prediction goes into
``small.meta["fxprune"]["latency"]``).

A one-shot method: :func:`compress_l1` slices at once and checks the result against the masked
original; ``fxprune.compress`` then fine-tunes it when ``TrainConfig.steps`` (or ``Spec.steps``)
asks for it. There is no pruner, so ``fxprune.prepare`` refuses it.

>>> import torch, fxprune
>>> from fxprune.models import build
>>> small = compress_l1(build("edsr", blocks=2, channels=32), fxprune.Spec(ratio=0.5), torch.randn(1, 3, 16, 16))
>>> small.get_parameter("head.weight").shape, small.meta["fxprune"]["method"]
(torch.Size([16, 3, 3, 3]), 'l1')
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch.fx as fx
from torch import nn

from ..analysis import analyze
from ..budget import ratio_for_macs
from ..graph import ChannelGraph
from ..latency import LatencyModel, LatencyPlan, plan_for_latency
from ..passes.slice_channels import slice_channels
from ..record import stamp
from ..selection import CHANNEL_FIELDS, plan_keep, request_outcome, warn_undone
from ..spec import Spec
from ..verify import verify_sliced
from .base import Method, register_method


def plan_l1(graph: ChannelGraph, spec: Spec, example_inputs: Any,
            latency_model: LatencyModel | None = None) -> tuple[dict[int, np.ndarray], float | None, LatencyPlan | None]:
    """The units L1 keeps under ``spec``'s ratio, MAC or latency budget: ``(keep, ratio, latency_plan)``
    (``keep``: group id -> boolean mask over the group's units).

    ``ratio`` is the global ratio a MAC budget found (else None), ``latency_plan`` the latency
    budget's plan (else None); ``latency_model`` reuses a built latency model across calls.

    >>> import torch, fxprune
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 3))
    >>> x = torch.randn(1, 3, 16, 16)
    >>> keep, ratio, _ = plan_l1(fxprune.analyze(net, (x,)), fxprune.Spec(macs=0.6, round_to=2), (x,))
    >>> [int(kept.sum()) for kept in keep.values()], round(ratio, 2)   # boolean masks over each group's units
    ([4], 0.5)
    """
    ratio = ratio_for_macs(graph, spec, example_inputs) if spec.macs is not None else None
    budget = plan_for_latency(graph, spec, example_inputs, model=latency_model) if spec.latency is not None else None
    return (budget.keep if budget is not None else plan_keep(graph, spec, ratio=ratio)), ratio, budget


def compress_l1(model: nn.Module, spec: Spec, example_inputs: Any) -> fx.GraphModule:
    """Pick the units by L1 norm (under the ratio, MAC or latency budget), slice, stamp and verify."""
    graph = analyze(model, example_inputs, norm=spec.norm)
    keep, ratio, budget = plan_l1(graph, spec, example_inputs)
    warn_undone("fxprune.compress", graph, spec, keep, ratio, stacklevel=5)  # 5: the caller of fxprune.compress
    small = stamp(slice_channels(graph, keep), graph, keep, spec, outcome=request_outcome(graph, spec, keep, ratio))
    if budget is not None:
        small.meta["fxprune"]["latency"] = budget.summary()
    verify_sliced(small, graph.gm, graph, keep, example_inputs)
    return small


L1_FIELDS_DOC = """``method="l1"`` (the default): one-shot pruning by the L1 norm of each unit's producer
filters, under ``ratio``, ``macs`` or ``latency``; ``steps`` is the optional fine-tuning of the
sliced model. Overrides take ``ratio`` and ``round_to``.
"""

L1 = register_method(Method("l1", trains=False, one_shot=compress_l1,
                            summary="one-shot channel pruning by L1 filter norm (ratio, MAC or latency budget)",
                            owns=(*CHANNEL_FIELDS, "steps"), family="channel", fields_doc=L1_FIELDS_DOC))
