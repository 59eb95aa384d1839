"""The other half of :mod:`fxprune.passes.insert_weight_modules`: fold the modules back.

Each ``call_module`` under ``prefix`` whose input is a parameter read is evaluated once on that
parameter; the result is written into the parameter and the call disappears, so the graph has the
nodes and parameter names it had before the modules were inserted.

>>> import torch, fxprune
>>> from fxprune.passes.insert_weight_modules import InsertWeightModules
>>> gm = fxprune.trace(torch.nn.Conv2d(2, 2, 1, bias=False), torch.randn(1, 2, 4, 4))
>>> class Half(torch.nn.Module):
...     def forward(self, w): return w / 2
>>> before = gm.weight.detach().clone()
>>> gm = InsertWeightModules({"weight": Half()}, prefix="halves")(gm).gm
>>> result = FoldWeightModules("halves")(gm)
>>> result.info["folded"], torch.equal(result.gm.weight, before / 2)
(['weight'], True)
"""
from __future__ import annotations

import torch
import torch.fx as fx

from fxprune.pass_infra import PassBase, PassResult, PostconditionError


class FoldWeightModules(PassBase):
    """Replace every module call under ``prefix`` by its value on the parameter, in place."""

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def call(self, gm: fx.GraphModule) -> PassResult:
        folded: list[str] = []
        for node in list(gm.graph.nodes):
            if node.op != "call_module" or not str(node.target).startswith(self.prefix + "."):
                continue
            source = node.args[0]
            if not (isinstance(source, fx.Node) and source.op == "get_attr"):
                continue
            weight = gm.get_parameter(source.target)
            with torch.no_grad():
                weight.copy_(gm.get_submodule(node.target)(weight))
            node.replace_all_uses_with(source)
            gm.graph.erase_node(node)
            folded.append(str(source.target))
        if hasattr(gm, self.prefix):
            delattr(gm, self.prefix)
        return PassResult(gm, bool(folded), {"folded": folded})

    def ensures(self, gm: fx.GraphModule) -> None:
        if any(n.op == "call_module" and str(n.target).startswith(self.prefix + ".") for n in gm.graph.nodes):
            raise PostconditionError(f"{self.name}: module calls under '{self.prefix}' remain in the graph")
