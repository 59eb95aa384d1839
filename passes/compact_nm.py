"""Store N:M weights compactly: the kept values plus small integer offsets, rebuilt in the graph.

Each N:M weight ``[Cout, Cin, *k]`` (groups of M input channels) becomes a module holding
``values`` (``[Cout, *k, Cin/M, N]``, the weight's dtype) and ``offsets`` (the position of each
value inside its group, ``int8``); its forward scatters the values into zeros and restores the
layout, so the graph computes exactly the same weight (bit for bit). ``torch.export`` keeps the
values and offsets as the stored tensors, so a saved model file holds about N/M of the weight
bytes plus one byte per kept weight (0.31 of dense float32 at 8:32).

>>> import torch
>>> from fxprune.passes.insert_nm_masks import NMMask
>>> w = torch.randn(4, 8, 3, 3); mask = NMMask(w, 4); mask.freeze(2)
>>> sparse = mask(w).detach()
>>> packed = NMPacked(sparse, m=4, n=2)
>>> torch.equal(packed(), sparse), packed.values.numel() == sparse.numel() // 2
(True, True)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
import torch.fx as fx
from torch import nn

from fxprune.pass_infra import PassBase, PassResult, PreconditionError

from .insert_nm_masks import grouped, ungrouped
from .insert_weight_modules import module_path, parameter_reads

PACKED = "fxprune_nm_packed"


class NMPacked(nn.Module):
    """``forward() -> weight``: the dense weight rebuilt from N values and offsets per group."""

    def __init__(self, weight: torch.Tensor, m: int, n: int):
        super().__init__()
        groups = grouped(weight.detach(), m)
        if bool(((groups != 0).sum(-1) > n).any()):
            raise ValueError(f"the weight has groups with more than {n} non-zeros of {m}")
        offsets = (groups == 0).to(torch.uint8).argsort(dim=-1, stable=True)[..., :n]
        self.shape = tuple(weight.shape)
        self.m = m
        self.values = nn.Parameter(torch.gather(groups, -1, offsets).contiguous(), requires_grad=False)
        self.register_buffer("offsets", offsets.to(torch.int8).contiguous())

    def forward(self) -> torch.Tensor:
        zeros = self.values.new_zeros((*self.values.shape[:-1], self.m))
        # contiguous: a strided weight can take another conv kernel and round differently
        return ungrouped(zeros.scatter(-1, self.offsets.long(), self.values), torch.Size(self.shape)).contiguous()

    def extra_repr(self) -> str:
        return f"shape={self.shape}, n={self.values.shape[-1]}, m={self.m}"


@dataclass(frozen=True)
class CompactBytes:
    """The bytes of the replaced weights, dense and compact (values + offsets)."""

    dense_bytes: int
    compact_bytes: int


class CompactNM(PassBase[CompactBytes]):
    """Replace each named N:M weight (``param -> (n, m)``) by an :class:`NMPacked` module, in place;
    produces the :class:`CompactBytes` of the replaced weights."""

    name = "compact_nm"
    in_place = True

    def __init__(self, layers: Mapping[str, tuple[int, int]]):
        super().__init__()
        self.layers = dict(layers)

    def requires(self, gm: fx.GraphModule) -> None:
        params = dict(gm.named_parameters())
        missing = [p for p in self.layers if p not in params]
        if missing:
            raise PreconditionError(f"{self.name}: no parameter {missing[0]!r} in the model", self.name)

    def call(self, gm: fx.GraphModule) -> PassResult[CompactBytes]:
        if not hasattr(gm, PACKED):
            gm.add_module(PACKED, nn.Module())
        reads = parameter_reads(gm)
        dense = compact = 0
        for param, (n, m) in self.layers.items():
            node = reads.get(param)
            if node is None:
                continue
            weight = gm.get_parameter(param)
            packed = NMPacked(weight, m, n)
            path = module_path(PACKED, param)
            gm.add_submodule(path, packed)
            with gm.graph.inserting_after(node):
                rebuilt = gm.graph.call_module(path, ())
            node.replace_all_uses_with(rebuilt)
            rebuilt.meta = dict(node.meta)
            gm.graph.erase_node(node)
            owner, _, leaf = param.rpartition(".")
            delattr(gm.get_submodule(owner) if owner else gm, leaf)
            dense += weight.numel() * weight.element_size()
            compact += packed.values.numel() * packed.values.element_size() + packed.offsets.numel()
        return PassResult(gm, compact > 0, CompactBytes(dense, compact))
