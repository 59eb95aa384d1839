"""The public entry points: thin orchestration of trace, analysis, selection and passes."""
from __future__ import annotations

from typing import Any

import torch.fx as fx
from torch import nn

from .analysis import analyze
from .errors import SpecError
from .passes.slice_channels import slice_channels
from .selection import plan_keep
from .spec import Spec


def compress(model: nn.Module, spec: Spec | dict, example_inputs: Any) -> fx.GraphModule:
    """Compress ``model`` as ``spec`` says and return a plain, smaller GraphModule.

    With ``Spec(method="l1", ratio=r)`` every prunable group loses the fraction ``r`` of its units
    with the smallest L1 filter norm (summed over the group's producers), rounded to ``round_to``.

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
    if spec.macs is not None:
        raise SpecError("macs", "a MAC target is not implemented yet; use ratio")
    graph = analyze(model, example_inputs)
    keep = plan_keep(graph, spec)
    return slice_channels(graph, keep)
