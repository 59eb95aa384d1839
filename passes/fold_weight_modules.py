"""The other half of :mod:`fxprune.passes.insert_weight_modules`: fold the modules back.

Each ``call_module`` under a :class:`~fxprune.passes.insert_weight_modules.WeightModules`
container whose input is a parameter read is evaluated once on that parameter; the result is
written into the parameter and the call disappears, so the graph has the nodes and parameter
names it had before the modules were inserted. This folds ASSL's gates (``V ← γ·V/‖V‖``) and
N:M masks alike.

>>> import torch, fxprune
>>> from fxprune.passes.insert_weight_modules import InsertWeightModules
>>> gm = fxprune.trace(torch.nn.Conv2d(2, 2, 1, bias=False), torch.randn(1, 2, 4, 4))
>>> class Half(torch.nn.Module):
...     def forward(self, w): return w / 2
>>> before = gm.weight.detach().clone()
>>> gm = InsertWeightModules({"weight": Half()}, prefix="halves")(gm).gm
>>> result = FoldWeightModules("halves")(gm)
>>> result.produced, torch.equal(result.gm.weight, before / 2), hasattr(result.gm, "halves")
(('weight',), True, False)
"""
from __future__ import annotations

import torch
import torch.fx as fx

from fxprune.pass_infra import PassBase, PassResult, PostconditionError

from .insert_weight_modules import WeightModules, calls_under


def _prefixes(gm: fx.GraphModule, prefix: str | None) -> list[str]:
    """The containers to fold: ``prefix``, or every :class:`WeightModules` child of ``gm``."""
    if prefix is not None:
        return [prefix]
    return [name for name, child in gm.named_children() if isinstance(child, WeightModules)]


class FoldWeightModules(PassBase[tuple[str, ...]]):
    """Replace every module call under ``prefix`` (default: under every weight-module container)
    by its value on the parameter, in place; produces the names of the folded parameters."""

    name = "fold_weight_modules"
    in_place = True

    def __init__(self, prefix: str | None = None):
        super().__init__()
        self.prefix = prefix

    def call(self, gm: fx.GraphModule) -> PassResult[tuple[str, ...]]:
        folded: list[str] = []
        for prefix in _prefixes(gm, self.prefix):
            for node in calls_under(gm, prefix):
                source = node.args[0]
                if not (isinstance(source, fx.Node) and source.op == "get_attr"):
                    continue
                weight = gm.get_parameter(source.target)
                with torch.no_grad():
                    weight.copy_(gm.get_submodule(node.target)(weight))
                node.replace_all_uses_with(source)
                gm.graph.erase_node(node)
                folded.append(str(source.target))
            if hasattr(gm, prefix) and not calls_under(gm, prefix):
                delattr(gm, prefix)
        return PassResult(gm, bool(folded), tuple(folded))

    def ensures(self, result: PassResult[tuple[str, ...]]) -> None:
        for prefix in _prefixes(result.gm, self.prefix):
            left = calls_under(result.gm, prefix)
            if left:
                raise PostconditionError(f"{self.name}: {left[0].target} is not applied to a parameter read and "
                                         "stays in the graph", self.name)
