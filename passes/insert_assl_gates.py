"""ASSL gates: weight normalization with one learnable scale per output channel.

Every producer weight of a pruned group becomes ``W = γ · V / ‖V‖`` (norm over all dims but the
output-channel dim), with ``γ`` starting at ``‖V‖`` so the gated model computes what the
original did. ``V`` stays the original parameter under its original name; the gate is a small
module called on it (:mod:`fxprune.passes.insert_weight_modules`), so folding the gate back
(:mod:`fxprune.passes.fold_weight_modules`) restores a graph whose nodes and parameters carry the
original names.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
import torch.fx as fx
from torch import nn

from fxprune.pass_infra import PassBase, PassResult, PostconditionError

from .insert_weight_modules import InsertWeightModules, parameter_reads

GATES = "fxprune_gates"


def _filter_norms(weight: torch.Tensor, dim: int) -> torch.Tensor:
    other = [d for d in range(weight.dim()) if d != dim]
    return torch.linalg.vector_norm(weight, dim=other) if other else weight.abs()


class WeightNormGate(nn.Module):
    """``forward(V) = γ · V / ‖V‖`` with one ``γ`` per channel of ``dim``.

    >>> v = torch.randn(4, 3, 3, 3)
    >>> gate = WeightNormGate(v, dim=0)
    >>> torch.equal(gate(v), v)
    True
    """

    def __init__(self, weight: torch.Tensor, dim: int, eps: float = 1e-12):
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.gamma = nn.Parameter(_filter_norms(weight.detach(), dim).clone())

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        shape = [1] * v.dim()
        shape[self.dim] = -1
        factor = self.gamma / _filter_norms(v, self.dim).clamp_min(self.eps)
        return v * factor.reshape(shape)

    def extra_repr(self) -> str:
        return f"channels={self.gamma.numel()}, dim={self.dim}"


@dataclass(frozen=True)
class GateSite:
    """One gated weight: its parameter, the gate module's path, and the bias of its layer."""

    param: str
    dim: int
    gate: str
    bias: str | None


def _bias_of(weight_node: fx.Node) -> str | None:
    """The bias parameter of the op that uses this weight (conv/linear), if it has one."""
    for user in weight_node.users:
        schema = getattr(user.target, "_schema", None)
        if schema is None:
            continue
        names = [a.name for a in schema.arguments]
        if "bias" in names and "weight" in names and user.args[names.index("weight")] is weight_node:
            position = names.index("bias")
            bias = user.args[position] if position < len(user.args) else user.kwargs.get("bias")
            if isinstance(bias, fx.Node) and bias.op == "get_attr":
                return str(bias.target)
    return None


class InsertAsslGates(PassBase[tuple[GateSite, ...]]):
    """Gate the given ``(parameter, output dim)`` weights of a GraphModule, in place (a thin use of
    :class:`~fxprune.passes.insert_weight_modules.InsertWeightModules`); produces one
    :class:`GateSite` per gated weight.

    >>> import torch, fxprune
    >>> gm = fxprune.trace(torch.nn.Conv2d(3, 4, 3), torch.randn(1, 3, 8, 8))
    >>> InsertAsslGates([("weight", 0)])(gm).produced
    (GateSite(param='weight', dim=0, gate='fxprune_gates.weight', bias='bias'),)
    """

    name = "insert_assl_gates"
    in_place = True

    def __init__(self, weights: Iterable[tuple[str, int]]):
        super().__init__()
        self.weights = dict(weights)

    def call(self, gm: fx.GraphModule) -> PassResult[tuple[GateSite, ...]]:
        reads = parameter_reads(gm)
        # a weight that is not read directly (e.g. through a lifted constant) stays ungated
        read = {p: dim for p, dim in self.weights.items() if p in reads}
        biases = {p: _bias_of(reads[p]) for p in read}  # before the insertion: then the conv reads the gate
        gates = {p: WeightNormGate(gm.get_parameter(p), dim) for p, dim in read.items()}
        inserted = InsertWeightModules(gates, GATES)(gm)
        sites = tuple(GateSite(p, read[p], path, biases[p]) for p, path in inserted.produced.items())
        return PassResult(gm, inserted.modified, sites)

    def ensures(self, result: PassResult[tuple[GateSite, ...]]) -> None:
        for site in result.produced:
            gate = result.gm.get_submodule(site.gate)
            if gate.gamma.numel() != result.gm.get_parameter(site.param).shape[site.dim]:
                raise PostconditionError(f"{self.name}: gate of {site.param} has the wrong number of channels",
                                         self.name)
