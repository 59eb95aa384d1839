"""The generic half of "a module applied to a weight": insert a module call on a parameter read.

For every named parameter, the ``get_attr`` node that reads it gets a ``call_module`` right after
it, and every other user of the parameter reads the module's output instead. The parameter keeps
its name and stays the thing the optimizer trains; the module (a gate, an N:M mask, ...) holds
whatever it needs of its own. :mod:`fxprune.passes.fold_weight_modules` folds them back.

>>> import torch, fxprune
>>> gm = fxprune.trace(torch.nn.Conv2d(2, 2, 1), torch.randn(1, 2, 4, 4))
>>> class Half(torch.nn.Module):
...     def forward(self, w): return w / 2
>>> result = InsertWeightModules({"weight": Half()}, prefix="halves")(gm)
>>> result.info["sites"]
{'weight': 'halves.weight'}
"""
from __future__ import annotations

from typing import Mapping

import torch.fx as fx
from torch import nn

from fxprune.pass_infra import PassBase, PassResult, PostconditionError, PreconditionError


def module_path(prefix: str, param: str) -> str:
    """Where the module for ``param`` lives under ``prefix`` (dots in the name become ``__``)."""
    return f"{prefix}.{param.replace('.', '__')}"


class InsertWeightModules(PassBase):
    """Call ``modules[param]`` on each named parameter, in place; ``info["sites"]`` maps param -> module path.

    A parameter that no ``get_attr`` node reads directly is skipped (and absent from the sites).
    """

    def __init__(self, modules: Mapping[str, nn.Module], prefix: str):
        super().__init__()
        if not prefix or "." in prefix:
            raise ValueError(f"prefix must be a plain attribute name, got {prefix!r}")
        self.modules = dict(modules)
        self.prefix = prefix

    def requires(self, gm: fx.GraphModule) -> None:
        if any(n.op == "call_module" and str(n.target).startswith(self.prefix + ".") for n in gm.graph.nodes):
            raise PreconditionError(f"{self.name}: the graph already has modules under '{self.prefix}'")

    def call(self, gm: fx.GraphModule) -> PassResult:
        if not hasattr(gm, self.prefix):
            gm.add_module(self.prefix, nn.Module())
        getattrs = {n.target: n for n in gm.graph.nodes if n.op == "get_attr"}
        sites: dict[str, str] = {}
        for param, module in self.modules.items():
            node = getattrs.get(param)
            if node is None:
                continue
            path = module_path(self.prefix, param)
            gm.add_submodule(path, module)
            with gm.graph.inserting_after(node):
                applied = gm.graph.call_module(path, (node,))
            node.replace_all_uses_with(applied, delete_user_cb=lambda user: user is not applied)
            applied.meta = dict(node.meta)
            sites[param] = path
        return PassResult(gm, bool(sites), {"sites": sites})

    def ensures(self, gm: fx.GraphModule) -> None:
        for node in gm.graph.nodes:
            if node.op == "get_attr" and node.target in self.modules and any(
                    u.op != "call_module" or not str(u.target).startswith(self.prefix + ".") for u in node.users):
                raise PostconditionError(f"{self.name}: {node.target} is still read around its module")
