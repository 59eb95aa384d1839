"""Run the coupling rules over a traced graph and solve for groups."""
from __future__ import annotations

from typing import Any

import torch.fx as fx
from torch import nn

from .coupling import CouplingRegistry, registry as user_registry
from .coupling.context import CouplingContext, flat_nodes, output_indices, target_name, tensor_inputs
from .coupling.rules_elementwise import fix_everything
from .errors import UnsupportedOpError
from .graph import ChannelGraph
from .solve import revise_choices, solve
from .shapes import STALE
from .trace import paused_gc, trace

_REGISTER_HINT = (
    "if the op keeps channels apart, teach fxprune with "
    "fxprune.register_coupling({target!r}, rule), e.g. rule=fxprune.coupling.rules_elementwise.identity "
    "for an elementwise op; until then its channels stay fixed"
)
_MAX_ROUNDS = 6


def _skipped(node: fx.Node) -> bool:
    """Nodes that carry no channel information: export's input guards and size arithmetic."""
    if node.op == "call_module" and str(node.target).startswith("_guards"):
        return True
    return not tensor_inputs(node) and not output_indices(node)


def run_rules(gm: fx.GraphModule, rules: CouplingRegistry, *, strict: bool, choices: dict[str, int]) -> CouplingContext:
    """Apply the rule of every node; anything a rule cannot account for is fixed and reported."""
    ctx = CouplingContext(gm, choices)
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            ctx.fix_tensor(node, "model input")
            continue
        if node.op == "output":
            for out in flat_nodes(node.args):
                ctx.fix_tensor(out, "model output")
            continue
        if node.op == "get_attr" or _skipped(node):
            continue
        ctx.start_node()
        rule = rules.lookup(node)
        name = target_name(node)
        if rule is None:
            if strict:
                raise UnsupportedOpError(node.name, name, _REGISTER_HINT.format(target=name))
            fix_everything(node, ctx, f"no coupling rule for {name}")
            ctx.diagnose(node, "no coupling rule: its channels are fixed", _REGISTER_HINT.format(target=name))
            continue
        try:
            rule(node, ctx)
        except Exception as error:  # noqa: BLE001 - a failing rule must not produce a wrong group
            if strict:
                raise
            fix_everything(node, ctx, f"coupling rule failed for {name}")
            ctx.diagnose(node, f"coupling rule raised {type(error).__name__}: {error}; its channels are fixed")
            continue
        missing = ctx.uncovered(node)
        for sid in missing:
            ctx.fix(sid, f"rule for {name} left this dim unaccounted for")
        if missing:
            dims = ", ".join(f"{ctx.spaces[s].node}[dim {ctx.spaces[s].dim}]" for s in missing)
            ctx.diagnose(node, f"rule did not account for {dims}; fixed to stay safe")
    return ctx


def build_channel_graph(gm: fx.GraphModule, *, rules: CouplingRegistry | None = None, strict: bool = False) -> ChannelGraph:
    """Channel analysis of an already traced graph (see :func:`fxprune.trace`)."""
    with paused_gc():
        return _build_channel_graph(gm, rules or user_registry(), strict)


def _build_channel_graph(gm: fx.GraphModule, rules: CouplingRegistry, strict: bool) -> ChannelGraph:
    choices: dict[str, int] = {}
    for _ in range(_MAX_ROUNDS):
        ctx = run_rules(gm, rules, strict=strict, choices=choices)
        solution = solve(ctx)
        revised = revise_choices(ctx, solution)
        if revised == {k: c.selected for k, c in ctx.choices.items()}:
            break
        choices = revised
    return ChannelGraph(gm, ctx, solution)


def analyze(
    model: nn.Module | fx.GraphModule,
    example_inputs: Any = None,
    *,
    strict: bool = False,
    dynamic_hw: bool = True,
    rules: CouplingRegistry | None = None,
) -> ChannelGraph:
    """Find every group of channels that must be pruned together.

    ``model`` is an ``nn.Module`` (captured with :func:`fxprune.trace` on ``example_inputs``) or a
    ``GraphModule`` that :func:`fxprune.trace` or a compression returned. With ``strict`` an op without a coupling
    rule raises :class:`fxprune.UnsupportedOpError` instead of being fixed with a diagnostic.

    >>> import torch, fxprune
    >>> from fxprune.models import build
    >>> graph = fxprune.analyze(build("rcan", groups=1, blocks=2, channels=16), torch.randn(1, 3, 16, 16))
    >>> graph.groups[0].kind, len(graph.groups[0].producers)
    ('coupled', 7)
    """
    if isinstance(model, fx.GraphModule) and "fxprune_capture" in model.meta and STALE not in model.meta:
        gm = model  # a capture, or a rewrite of one with refreshed shapes (fxprune.shapes)
    else:
        if example_inputs is None:
            raise TypeError("analyze needs example_inputs to capture the model, e.g. (torch.randn(1, 3, 64, 64),)")
        gm = trace(model, example_inputs, dynamic_hw=dynamic_hw)
    return build_channel_graph(gm, rules=rules, strict=strict)
