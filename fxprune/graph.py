"""ChannelGraph: the result of channel analysis, with the groups users and passes work on."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Iterator, Literal

import networkx as nx
import numpy as np
import torch
import torch.fx as fx

from .coupling.context import CouplingContext, Diagnostic, Space
from .solve import RawGroup, Solution

GroupKind = Literal["free", "coupled", "fixed"]


@dataclass(frozen=True)
class Member:
    """One channel space of a group: a tensor dim in the graph, maybe a parameter's dim."""

    node: str
    index: int
    dim: int
    size: int
    param: str | None


@dataclass(frozen=True)
class Group:
    """Channels that must be kept or dropped together, in ``channels`` units of ``unit`` channels.

    ``kind`` is ``"free"`` (one producer, e.g. the first conv of a residual block), ``"coupled"``
    (producers tied by an elementwise op: a residual trunk, an attention multiply, a gate) or
    ``"fixed"`` (touches the model input/output or an op without a rule: nothing can be dropped).
    ``prunable`` counts the units that may be dropped; in a partly fixed group (a concat of the
    input image and features) it is less than ``channels``.
    """

    id: int
    kind: GroupKind
    channels: int
    unit: int
    prunable: int
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    params: tuple[tuple[str, int], ...]
    producer_weights: tuple[tuple[str, int], ...]
    members: tuple[Member, ...] = field(repr=False)
    fixed_reasons: tuple[str, ...] = field(default=(), repr=False)

    def __str__(self) -> str:
        return f"group {self.id} [{self.kind}] {self.channels}×{self.unit}: {', '.join(self.producers)}"


class ChannelGraph:
    """Channel spaces of a traced model and the groups they form.

    >>> import torch, fxprune
    >>> from fxprune.models import build
    >>> graph = fxprune.analyze(build("edsr", blocks=2, channels=16), torch.randn(1, 3, 16, 16))
    >>> [g.kind for g in graph.groups]
    ['coupled', 'free', 'free', 'free', 'fixed']
    """

    def __init__(self, gm: fx.GraphModule, ctx: CouplingContext, solution: Solution):
        self.gm = gm
        self.norm = "exact"  # Spec.norm it was analyzed for (fxprune.analyze sets it): how slicing and masking treat statistics
        self.spaces: list[Space] = ctx.spaces
        self.diagnostics: list[Diagnostic] = ctx.diagnostics
        self._raw: list[RawGroup] = solution.groups
        self._space_of: dict[tuple[int, str, int, int], int] | None = None
        producers = _by_space(ctx.producers)
        consumers = _by_space(ctx.consumers)
        self.module_types: dict[str, str] = _module_types(gm)
        weights = set(ctx.producer_weights)
        self.groups: list[Group] = [
            self._dress(i, raw, producers, consumers, ctx.fixed, weights) for i, raw in enumerate(solution.groups)
        ]

    def _dress(self, gid: int, raw: RawGroup, producers: dict, consumers: dict, fixed: dict, weights: set) -> Group:
        spaces = [self.spaces[s] for s in raw.spaces]
        prunable = int((~raw.unit_fixed).sum())
        kind: GroupKind = "fixed" if prunable == 0 else ("coupled" if raw.coupled else "free")
        return Group(
            id=gid,
            kind=kind,
            channels=len(raw.unit_fixed),
            unit=raw.unit,
            prunable=prunable,
            producers=_unique(m for s in raw.spaces for m in producers.get(int(s), ())),
            consumers=_unique(m for s in raw.spaces for m in consumers.get(int(s), ())),
            params=tuple((s.param, s.dim) for s in spaces if s.param is not None),
            producer_weights=tuple((s.param, s.dim) for s in spaces if s.id in weights and s.param is not None),
            members=tuple(Member(s.node, s.index, s.dim, s.size, s.param) for s in spaces),
            fixed_reasons=_unique(fixed[int(s)] for s in raw.spaces if int(s) in fixed),
        )

    def rebind(self, gm: fx.GraphModule) -> "ChannelGraph":
        """The same analysis attached to another GraphModule with the same node and parameter
        names (e.g. the traced model after its gates were folded)."""
        other = copy.copy(self)
        other.gm = gm
        return other

    # ------------------------------------------------------------------ queries
    def __iter__(self) -> Iterator[Group]:
        return iter(self.groups)

    def __len__(self) -> int:
        return len(self.groups)

    def by_kind(self, kind: GroupKind) -> list[Group]:
        return [g for g in self.groups if g.kind == kind]

    def group_of(self, module: str) -> Group:
        """The group holding the output channels of the module with this qualified name."""
        for g in self.groups:
            if module in g.producers:
                return g
        raise KeyError(f"no group has '{module}' as a producer")

    def unit_index(self, group: Group | int, member: Member) -> np.ndarray:
        """Unit number of every channel of ``member`` (a space of the group)."""
        gid = group.id if isinstance(group, Group) else group
        if self._space_of is None:  # built once: a linear search per call made budgets quadratic
            self._space_of = {(i, s.node, s.index, s.dim): int(sid)
                              for i, raw in enumerate(self._raw) for sid in raw.spaces for s in [self.spaces[int(sid)]]}
        sid = self._space_of.get((gid, member.node, member.index, member.dim))
        if sid is None:
            raise KeyError(f"{member} is not in group {group}")
        return self._raw[gid].unit_of_element[sid]

    def prunable_units(self, group: Group | int) -> np.ndarray:
        """Bool per unit: may it be dropped?"""
        return ~self._raw[group.id if isinstance(group, Group) else group].unit_fixed

    # ------------------------------------------------------------------ presentation
    def summary(self) -> str:
        """A readable table of the groups, then the diagnostics."""
        header = f"{'id':>3}  {'kind':<8} {'units':>6} {'unit':>4} {'prunable':>8}  producers"
        lines = [header, "-" * len(header)]
        for g in self.groups:
            names = ", ".join(p or "<root>" for p in g.producers)
            if len(names) > 90:
                names = f"{', '.join(g.producers[:3])}, … (+{len(g.producers) - 3} more)"
            lines.append(f"{g.id:>3}  {g.kind:<8} {g.channels:>6} {g.unit:>4} {g.prunable:>8}  {names}")
        counts = {k: len(self.by_kind(k)) for k in ("free", "coupled", "fixed")}
        lines.append(f"{len(self.groups)} groups: {counts['free']} free, {counts['coupled']} coupled, {counts['fixed']} fixed")
        if self.diagnostics:
            lines.append(f"{len(self.diagnostics)} diagnostics:")
            lines += [f"  - {d}" for d in self.diagnostics]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"ChannelGraph({len(self.groups)} groups, {len(self.diagnostics)} diagnostics)"

    def to_networkx(self) -> nx.DiGraph:
        """The data-flow graph of the traced model, each node annotated with its groups.

        Node attributes: ``op`` (FX opcode), ``target``, ``module`` (qualified name or ""),
        ``shape`` and ``groups`` (ids of the groups its output channels belong to). Graph
        attribute ``groups`` maps group id to the :class:`Group`.
        """
        node_groups: dict[str, set[int]] = {}
        for g in self.groups:
            for m in g.members:
                node_groups.setdefault(m.node, set()).add(g.id)
        graph = nx.DiGraph(groups={g.id: g for g in self.groups})
        for n in self.gm.graph.nodes:
            val = n.meta.get("val")
            stack = n.meta.get("nn_module_stack") or {}
            graph.add_node(
                n.name,
                op=n.op,
                target=str(n.target),
                module=str(list(stack.values())[-1][0]) if stack else "",
                shape=tuple(val.shape) if isinstance(val, torch.Tensor) else None,
                groups=sorted(node_groups.get(n.name, ())),
            )
            for src in n.all_input_nodes:
                graph.add_edge(src.name, n.name)
        return graph


def _module_types(gm: fx.GraphModule) -> dict[str, str]:
    """Qualified module name -> class name, from export's module stacks."""
    types: dict[str, str] = {}
    for n in gm.graph.nodes:
        for path, type_name in (n.meta.get("nn_module_stack") or {}).values():
            types.setdefault(str(path), str(type_name).rsplit(".", 1)[-1])
    return types


def _by_space(pairs: list[tuple[int, str]]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for sid, module in pairs:
        out.setdefault(sid, []).append(module)
    return out


def _unique(items) -> tuple:
    return tuple(dict.fromkeys(items))
