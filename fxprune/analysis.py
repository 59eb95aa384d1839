"""Run the coupling rules over a traced graph and solve for groups."""
from __future__ import annotations

from typing import Any

import torch
import torch.fx as fx
from torch import nn

from .coupling import CouplingRegistry, registry as user_registry, registry_for
from .coupling.context import CouplingContext, flat_nodes, output_indices, target_name, tensor_inputs
from .coupling.rules_elementwise import fix_everything
from .errors import ExampleInputError, UnsupportedOpError
from .graph import ChannelGraph
from .solve import revise_choices, solve
from .shapes import STALE
from .trace import as_inputs, paused_gc, trace

_REGISTER_HINT = (
    "if the op keeps channels apart, teach fxprune with "
    "fxprune.register_coupling({target!r}, rule), e.g. rule=fxprune.coupling.rules_elementwise.identity "
    "for an elementwise op; until then its channels stay fixed"
)
_MAX_ROUNDS = 6


class _Reached(Exception):
    """Stops the probe forward at the first conv."""


def _first_conv_input(model: nn.Module, inputs: tuple[Any, ...]) -> tuple[str, nn.Module, torch.Size] | None:
    """(name, module, input shape) of the first conv the forward reaches, running only the ops
    before it; None when the forward fails first or reaches no conv module."""
    seen: list[tuple[str, nn.Module, torch.Size]] = []

    def hook(name: str):
        def stop(module: nn.Module, args: tuple[Any, ...]) -> None:
            if args and isinstance(args[0], torch.Tensor):
                seen.append((name, module, args[0].shape))
            raise _Reached

        return stop

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in model.named_modules()
               if isinstance(m, nn.modules.conv._ConvNd)]
    if not handles:
        return None
    try:
        with torch.no_grad():  # on copies: a forward that writes its input (x.sub_(mean)) must not write the caller's
            model(*(t.clone() if isinstance(t, torch.Tensor) else t for t in inputs))
    except _Reached:
        pass
    except Exception:  # the capture reports errors elsewhere in the forward with their context
        return None
    finally:
        for handle in handles:
            handle.remove()
    return seen[0] if seen else None


def check_example_inputs(model: nn.Module, example_inputs: Any) -> None:
    """Raise :class:`~fxprune.errors.ExampleInputError` when the example cannot be what the model
    takes: its first conv gets an input without a batch dim, or with other channels than the conv's.

    Only the ops before that conv run. The expected shape scales the example's channels by what the
    model does before the conv (e.g. a PixelUnshuffle in front of it).

    >>> import torch
    >>> from fxprune.models import build
    >>> check_example_inputs(build("edsr", blocks=1, channels=8), torch.rand(1, 1, 16, 16))
    Traceback (most recent call last):
    ...
    fxprune.errors.ExampleInputError: the example input has shape (1, 1, 16, 16), but the model's first conv 'head' takes 3 channels and gets 1: give an example of shape (1, 3, 16, 16)
    """
    inputs = as_inputs(example_inputs)
    if isinstance(model, fx.GraphModule) or not isinstance(inputs[0], torch.Tensor):
        return
    reached = _first_conv_input(model, inputs)
    if reached is None:
        return
    name, conv, got = reached
    example = tuple(inputs[0].shape)
    batched_rank = conv.weight.dim()
    if len(got) == batched_rank - 1:
        expected = (1, *example) if len(example) == len(got) else None
        fix = f"add a batch dim: an example of shape {expected}" if expected else "add a batch dim"
        raise ExampleInputError(
            f"the example input has shape {example}, but the model's first conv {name!r} gets a "
            f"{len(got)}-D tensor, which has no batch dim (it takes {batched_rank}-D: N, C, ...): {fix}",
            shape=example, expected=expected, module=name)
    if len(got) == batched_rank and got[1] != conv.in_channels:
        expected = None
        if len(example) > 1 and (conv.in_channels * example[1]) % got[1] == 0:
            expected = (example[0], conv.in_channels * example[1] // got[1], *example[2:])
        fix = f": give an example of shape {expected}" if expected else ""
        raise ExampleInputError(
            f"the example input has shape {example}, but the model's first conv {name!r} takes "
            f"{conv.in_channels} channels and gets {got[1]}{fix}", shape=example, expected=expected, module=name)


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
    norm: str = "exact",
) -> ChannelGraph:
    """Find every group of channels that must be pruned together.

    ``model`` is an ``nn.Module`` (captured with :func:`fxprune.trace` on ``example_inputs``) or a
    ``GraphModule`` that :func:`fxprune.trace` or a compression returned. With ``strict`` an op without a coupling
    rule raises :class:`fxprune.UnsupportedOpError` instead of being fixed with a diagnostic.
    ``norm`` is ``Spec.norm``: ``"exact"`` lets channels that LayerNorm, means, variances and
    softmax read be pruned (their statistics stay exact), ``"renormalize"`` too (with plain
    statistics over the kept channels), ``"fixed"`` keeps them (see
    :func:`fxprune.coupling.registry_for`); ``rules``, when given, decides instead.

    >>> import torch, fxprune
    >>> from fxprune.models import build
    >>> graph = fxprune.analyze(build("rcan", groups=1, blocks=2, channels=16), torch.randn(1, 3, 16, 16))
    >>> graph.groups[0].kind, len(graph.groups[0].producers)
    ('coupled', 7)
    """
    rules = rules or registry_for(norm)
    if isinstance(model, fx.GraphModule) and "fxprune_capture" in model.meta and STALE not in model.meta:
        gm = model  # a capture, or a rewrite of one with refreshed shapes (fxprune.shapes)
    else:
        if example_inputs is None:
            raise TypeError("analyze needs example_inputs to capture the model, e.g. (torch.randn(1, 3, 64, 64),)")
        check_example_inputs(model, example_inputs)
        gm = trace(model, example_inputs, dynamic_hw=dynamic_hw)
    graph = build_channel_graph(gm, rules=rules, strict=strict)
    graph.norm = norm
    return graph
