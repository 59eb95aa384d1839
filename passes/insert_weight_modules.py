"""The generic half of "a module applied to a weight": insert a module call on a parameter read.

For every named parameter, the ``get_attr`` node that reads it gets a ``call_module`` right after
it, and every other user of the parameter reads the module's output instead. The parameter keeps
its name and stays the thing the optimizer trains; the module (an ASSL gate, an N:M mask, ...)
holds whatever it needs of its own. The modules live in a :class:`WeightModules` container under
``prefix``; :mod:`fxprune.passes.fold_weight_modules` folds them back.

>>> import torch, fxprune
>>> gm = fxprune.trace(torch.nn.Conv2d(2, 2, 1), torch.randn(1, 2, 4, 4))
>>> class Half(torch.nn.Module):
...     def forward(self, w): return w / 2
>>> result = InsertWeightModules({"weight": Half()}, prefix="halves")(gm)
>>> result.produced, result.gm is gm
({'weight': 'halves.weight'}, True)
"""
from __future__ import annotations

from typing import Mapping

import torch.fx as fx
from torch import nn

from fxprune.pass_infra import PassBase, PassResult, PostconditionError, PreconditionError


class WeightModules(nn.Module):
    """The container of the modules one :class:`InsertWeightModules` put on weights (the fold
    pass finds them by this type)."""


def module_path(prefix: str, param: str) -> str:
    """Where the module for ``param`` lives under ``prefix`` (dots in the name become ``__``).

    >>> module_path("fxprune_gates", "body.0.conv.weight")
    'fxprune_gates.body__0__conv__weight'
    """
    return f"{prefix}.{param.replace('.', '__')}"


def parameter_reads(gm: fx.GraphModule) -> dict[str, fx.Node]:
    """Attribute name -> the ``get_attr`` node reading it (parameters, buffers and constants).

    >>> import torch, fxprune
    >>> gm = fxprune.trace(torch.nn.Conv2d(2, 2, 1), torch.randn(1, 2, 4, 4))
    >>> sorted(parameter_reads(gm))
    ['bias', 'weight']
    """
    return {str(n.target): n for n in gm.graph.nodes if n.op == "get_attr"}


def calls_under(gm: fx.GraphModule, prefix: str) -> list[fx.Node]:
    """The ``call_module`` nodes of modules under ``prefix``."""
    return [n for n in gm.graph.nodes if n.op == "call_module" and str(n.target).startswith(prefix + ".")]


class InsertWeightModules(PassBase[dict[str, str]]):
    """Call ``modules[param]`` on each named parameter, in place; produces param -> module path.

    A parameter that no ``get_attr`` node reads directly is skipped (and absent from the result).
    """

    name = "insert_weight_modules"
    in_place = True

    def __init__(self, modules: Mapping[str, nn.Module], prefix: str):
        super().__init__()
        if not prefix or "." in prefix:
            raise ValueError(f"prefix must be a plain attribute name, got {prefix!r}")
        self.modules = dict(modules)
        self.prefix = prefix

    def requires(self, gm: fx.GraphModule) -> None:
        container = getattr(gm, self.prefix, None)
        if container is not None and not isinstance(container, WeightModules):
            raise PreconditionError(f"{self.name}: the model has an attribute '{self.prefix}' of its own", self.name)
        if calls_under(gm, self.prefix):
            raise PreconditionError(f"{self.name}: the graph already has modules under '{self.prefix}'", self.name)

    def call(self, gm: fx.GraphModule) -> PassResult[dict[str, str]]:
        if not hasattr(gm, self.prefix):
            gm.add_module(self.prefix, WeightModules())
        reads = parameter_reads(gm)
        sites: dict[str, str] = {}
        for param, module in self.modules.items():
            node = reads.get(param)
            if node is None:
                continue
            path = module_path(self.prefix, param)
            gm.add_submodule(path, module)
            with gm.graph.inserting_after(node):
                applied = gm.graph.call_module(path, (node,))
            node.replace_all_uses_with(applied, delete_user_cb=lambda user: user is not applied)
            applied.meta = dict(node.meta)
            sites[param] = path
        return PassResult(gm, bool(sites), sites)

    def ensures(self, result: PassResult[dict[str, str]]) -> None:
        for node in result.gm.graph.nodes:
            if node.op == "get_attr" and node.target in result.produced and any(
                    u.op != "call_module" or not str(u.target).startswith(self.prefix + ".") for u in node.users):
                raise PostconditionError(f"{self.name}: {node.target} is still read around its module", self.name)
