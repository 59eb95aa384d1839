"""Fold ASSL gates back into plain weights: ``V ← γ · V / ‖V‖`` and the gate nodes disappear.

The folded graph has the nodes and parameter names of the graph before gating, so the channel
analysis made on that graph (and the slicing pass) applies to it unchanged.
"""
from __future__ import annotations

import torch
import torch.fx as fx

from fxprune.pass_infra import PassBase, PassResult, PostconditionError

from .insert_assl_gates import GATES, WeightNormGate


class FoldWeightNorm(PassBase):
    """Replace every gate call by its input and write the gated weight into the parameter, in place."""

    def call(self, gm: fx.GraphModule) -> PassResult:
        folded = 0
        for node in list(gm.graph.nodes):
            if node.op != "call_module" or not str(node.target).startswith(GATES + "."):
                continue
            gate = gm.get_submodule(node.target)
            if not isinstance(gate, WeightNormGate):
                continue
            source = node.args[0]
            weight = gm.get_parameter(source.target)
            with torch.no_grad():
                weight.copy_(gate(weight))
            node.replace_all_uses_with(source)
            gm.graph.erase_node(node)
            folded += 1
        if hasattr(gm, GATES):
            delattr(gm, GATES)
        return PassResult(gm, folded > 0, {"folded": folded})

    def ensures(self, gm: fx.GraphModule) -> None:
        if any(n.op == "call_module" and str(n.target).startswith(GATES) for n in gm.graph.nodes):
            raise PostconditionError(f"{self.name}: gate calls remain in the graph")
