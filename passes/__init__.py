"""fxprune's graph rewrites (shipped as ``fxprune.passes``): the built-in passes and pipelines, as data.

:data:`PASSES` maps a name to each built-in pass class (its ``name``); :data:`PIPELINES` names the
sequences the methods run, as tuples of pass names, and :func:`pipeline` builds one as a
:class:`~fxprune.pass_infra.PassManager`, each pass from its own keyword arguments. Nothing
depends on import order: a pass is built-in because it is listed here.

- ``insert_weight_modules`` / ``fold_weight_modules``: a module applied to a weight, and folded
  back by evaluating it; ``insert_assl_gates`` (ASSL's gates) and ``insert_nm_masks`` (N:M masks)
  are thin uses of the pair.
- ``slice_channels``: remove dropped channels (not in place: returns a smaller copy).
- ``compact_nm``: store N:M weights as values + offsets.

``fold_and_slice`` is what ASSL's ``convert`` runs on its gated model:

>>> import numpy as np, torch, fxprune
>>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 3))
>>> graph = fxprune.analyze(net, torch.randn(1, 3, 12, 12))
>>> group = graph.group_of("0")
>>> from fxprune.graph_mode import copy_graph_module
>>> gated = PASSES["insert_assl_gates"]([("0.weight", 0)])(copy_graph_module(graph.gm)).gm
>>> keep = {group.id: np.arange(group.channels) < 4}
>>> result = pipeline("fold_and_slice", slice_channels={"graph": graph, "keep": keep})(gated)
>>> PIPELINES["fold_and_slice"], result.produced["fold_weight_modules"], result.gm.get_parameter("0.weight").shape
(('fold_weight_modules', 'slice_channels'), ('0.weight',), torch.Size([4, 3, 3, 3]))
"""
from __future__ import annotations

from typing import Any, Mapping

from fxprune.pass_infra import PassBase, PassManager

from .compact_nm import CompactNM
from .fold_weight_modules import FoldWeightModules
from .insert_assl_gates import InsertAsslGates
from .insert_nm_masks import InsertNMMasks
from .insert_weight_modules import InsertWeightModules
from .slice_channels import SliceChannels

PASSES: dict[str, type[PassBase[Any]]] = {
    "insert_weight_modules": InsertWeightModules,
    "fold_weight_modules": FoldWeightModules,
    "insert_assl_gates": InsertAsslGates,
    "insert_nm_masks": InsertNMMasks,
    "slice_channels": SliceChannels,
    "compact_nm": CompactNM,
}

PIPELINES: dict[str, tuple[str, ...]] = {
    "fold_and_slice": ("fold_weight_modules", "slice_channels"),  # a gated model -> the plain, smaller one
}


def pipeline(name: str, **arguments: Mapping[str, Any]) -> PassManager:
    """The passes of ``PIPELINES[name]`` in a manager, each built with ``arguments[pass name]``
    (no arguments for a pass not named). A name that is no pipeline, or arguments for a pass
    that is not in it, raise ``ValueError``.

    >>> pipeline("fold_and_slice", compact_nm={})
    Traceback (most recent call last):
    ...
    ValueError: arguments for compact_nm, which is not in pipeline 'fold_and_slice' ('fold_weight_modules', 'slice_channels')
    """
    if name not in PIPELINES:
        raise ValueError(f"no pipeline {name!r}; the pipelines are {sorted(PIPELINES)}")
    names = PIPELINES[name]
    stray = [p for p in arguments if p not in names]
    if stray:
        raise ValueError(f"arguments for {stray[0]}, which is not in pipeline {name!r} {names}")
    return PassManager([PASSES[p](**arguments.get(p, {})) for p in names])


__all__ = ["PASSES", "PIPELINES", "pipeline"]
