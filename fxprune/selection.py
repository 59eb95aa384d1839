"""Which units to keep: importance scores and per-group keep-sets from a spec."""
from __future__ import annotations

import math
import warnings
from typing import Callable, Iterator, Mapping

import numpy as np
import torch
import torch.fx as fx

from .errors import RequestUndoneWarning, SpecError
from .graph import ChannelGraph, Group
from .spec import Spec

# the Spec fields channel selection reads (a channel-pruning method owns them)
CHANNEL_FIELDS = ("ratio", "round_to", "latency", "norm")

SizeKey = tuple[str, int, int]  # (node name, output index, dim)


def _tensor(gm: fx.GraphModule, name: str) -> torch.Tensor:
    try:
        return gm.get_parameter(name)
    except AttributeError:
        return gm.get_buffer(name)


def l1_scores(graph: ChannelGraph, group: Group) -> np.ndarray:
    """Per unit: the L1 norm of its filters, summed over every producer of the group."""
    scores = np.zeros(group.channels)
    members = {(m.param, m.dim): m for m in group.members if m.param is not None}
    for name, dim in group.producer_weights:
        weight = _tensor(graph.gm, name).detach().float()
        per_channel = weight.abs().transpose(0, dim).reshape(weight.shape[dim], -1).sum(1).cpu().numpy()
        np.add.at(scores, graph.unit_index(group, members[(name, dim)]), per_channel)
    return scores


def group_settings(graph: ChannelGraph, spec: Spec, group: Group) -> tuple[float | None, int] | None:
    """(overridden ratio or None, round_to) for a group; None when any producer is skipped.

    Producers of one group may carry different overrides; the group takes the smallest ratio and
    the largest rounding among them (the most conservative choice).
    """
    ratios: list[float] = []
    rounds: list[int] = []
    for module in group.producers:
        settings = spec.settings_for(module, graph.module_types.get(module))
        if settings is None:
            return None
        if "ratio" in settings:
            ratios.append(settings["ratio"])
        rounds.append(settings.get("round_to", spec.round_to))
    return (min(ratios) if ratios else None, max(rounds) if rounds else spec.round_to)


def prunable_groups(graph: ChannelGraph, spec: Spec) -> Iterator[tuple[Group, float | None, int]]:
    """(group, overridden ratio or None, round_to) for every group with prunable units that no
    producer's override skips."""
    for group in graph.groups:
        if group.prunable == 0:
            continue
        settings = group_settings(graph, spec, group)
        if settings is not None:
            yield group, *settings


def kept_count(channels: int, prunable: int, ratio: float, round_to: int) -> int:
    """Units kept in a group: drop ``ratio`` of the prunable ones, round the rest up to ``round_to``."""
    keep = channels - math.floor(ratio * prunable + 1e-9)
    keep = min(channels, math.ceil(keep / round_to) * round_to)
    return max(keep, channels - prunable, 1)


def _every_member_keeps_one(graph: ChannelGraph, group: Group, units: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """A concat group can lose every unit of one input; keep that input's best unit instead."""
    for member in group.members:
        of_member = np.unique(graph.unit_index(group, member))
        if not units[of_member].any():
            units[of_member[np.argmax(scores[of_member])]] = True
    return units


Scorer = Callable[[ChannelGraph, Group], np.ndarray]


def plan_keep(
    graph: ChannelGraph, spec: Spec, ratio: float | None = None, scores: Scorer = l1_scores,
    counts: Mapping[int, int] | None = None,
) -> dict[int, np.ndarray]:
    """Keep-sets for every prunable group: the units with the highest ``scores`` survive.

    ``ratio`` replaces the spec's global ratio (used when searching for a MAC target). ``counts``
    gives the number of units to keep per group id instead (a latency budget's per-group choice;
    groups not in it keep all). Groups that keep everything (ratio 0, rounding, a skipped
    producer) are left out.
    """
    unmatched = spec.unmatched_keys({m: graph.module_types.get(m) for g in graph.groups for m in g.producers})
    if unmatched:
        raise SpecError(f"overrides[{unmatched[0]!r}]", "matches no prunable layer's name or type in this model")
    keep: dict[int, np.ndarray] = {}
    for group, override, round_to in prunable_groups(graph, spec):
        group_ratio = override if override is not None else (spec.ratio if ratio is None else ratio)
        if counts is not None:
            count = max(int(counts.get(group.id, group.channels)), group.channels - group.prunable, 1)
        else:
            count = kept_count(group.channels, group.prunable, group_ratio, round_to)
        if count >= group.channels:
            continue
        prunable = graph.prunable_units(group)
        unit_scores = np.where(prunable, scores(graph, group), np.inf)  # fixed units always stay
        units = np.zeros(group.channels, bool)
        units[np.argsort(-unit_scores, kind="stable")[:count]] = True
        keep[group.id] = _every_member_keeps_one(graph, group, units, unit_scores)
    return keep


def _skipping_override(graph: ChannelGraph, spec: Spec, group: Group) -> str | None:
    """The override key that skips a producer of ``group`` (None when none does)."""
    for module in group.producers:
        for key, value in spec._matching(module, graph.module_types.get(module)):
            if value is None:
                return f"overrides[{key!r}] skips {module}"
    return None


NO_RULE = "no coupling rule for "  # how the analysis words a fix for an op without a rule


def _no_rule_fixes(graph: ChannelGraph, group: Group) -> str | None:
    """What fixed units of ``group`` for want of a coupling rule, with how to register one; else None."""
    ops = [reason[len(NO_RULE):] for reason in group.fixed_reasons if reason.startswith(NO_RULE)]
    if not ops or {"model input", "model output"} & set(group.fixed_reasons):  # fixed anyway: a rule frees nothing
        return None
    nodes = {op: [d.node for d in graph.diagnostics if d.target == op] for op in ops}
    where = "; ".join(f"{op} (node {', '.join(nodes[op]) or '?'})" for op in ops)
    return (f"{group.channels - group.prunable} of its {group.channels} units are fixed because no coupling rule "
            f"covers {where}; teach fxprune with fxprune.register_coupling({ops[0]!r}, rule) "
            f"(rules in fxprune.coupling, e.g. rules_elementwise.identity for an elementwise op) to prune them")


def explain_group(graph: ChannelGraph, spec: Spec, group: Group, ratio: float | None = None) -> str | None:
    """Why ``group`` keeps every unit under ``spec`` (None when it does lose some).

    The causes, in the order they are checked: the group is fixed (the analysis' reasons), an
    override skips one of its producers, the ratio drops less than one unit, or ``round_to``
    rounds the kept units back up to all of them (then the largest power-of-two ``round_to`` that
    would prune is suggested).
    """
    head = f"group {group.id} ({group.channels} units: {', '.join(group.producers) or 'no producer'})"
    if group.prunable == 0:
        no_rule = _no_rule_fixes(graph, group)
        return f"{head}: fixed ({no_rule or '; '.join(group.fixed_reasons) or 'no unit may be dropped'})"
    settings = group_settings(graph, spec, group)
    if settings is None:
        return f"{head}: {_skipping_override(graph, spec, group) or 'skipped by an override'}"
    override, round_to = settings
    group_ratio = override if override is not None else (spec.ratio if ratio is None else ratio)
    if kept_count(group.channels, group.prunable, group_ratio, round_to) < group.channels:
        return None
    dropped = math.floor(group_ratio * group.prunable + 1e-9)
    if dropped == 0:
        return (f"{head}: ratio {group_ratio:g} of its {group.prunable} prunable units drops none "
                f"(it needs a ratio of at least {1 / group.prunable:.3g})")
    powers_of_two = [2**k for k in range(round_to.bit_length() - 1, -1, -1) if 2**k < round_to]  # what hardware likes
    working = next((r for r in powers_of_two
                    if kept_count(group.channels, group.prunable, group_ratio, r) < group.channels), None)
    text = (f"{head}: round_to={round_to} rounds the {group.channels - dropped} kept units back up to "
            f"{group.channels}")
    return text + (f"; round_to={working} would prune it" if working else "")


def explain_no_pruning(graph: ChannelGraph, spec: Spec, ratio: float | None = None) -> list[str]:
    """One line per group saying why it keeps every unit under ``spec``.

    >>> import torch, fxprune
    >>> from fxprune.models import build
    >>> graph = fxprune.analyze(build("edsr", blocks=1, channels=16), torch.randn(1, 3, 8, 8))
    >>> for line in explain_no_pruning(graph, fxprune.Spec(ratio=0.5))[:2]:
    ...     print(line)
    group 0 (16 units: head, body.0.conv2, body.1): round_to=16 rounds the 8 kept units back up to 16; round_to=8 would prune it
    group 1 (16 units: body.0.conv1): round_to=16 rounds the 8 kept units back up to 16; round_to=8 would prune it
    """
    lines = (explain_group(graph, spec, group, ratio) for group in graph.groups)
    return [line for line in lines if line is not None]


def nothing_pruned(where: str, graph: ChannelGraph, spec: Spec, ratio: float | None = None) -> str:
    """The warning for a spec that prunes nothing: one line per group with the cause that applied."""
    return f"{where}: no group loses any channel with this spec:\n  " + "\n  ".join(explain_no_pruning(graph, spec, ratio))


def _requested_ratio(graph: ChannelGraph, spec: Spec, group: Group, ratio: float | None) -> float:
    """The ratio ``spec`` asks of ``group`` (0 where an override skips it)."""
    settings = group_settings(graph, spec, group)
    if settings is None:
        return 0.0
    return settings[0] if settings[0] is not None else (spec.ratio if ratio is None else ratio)


def _dropped(keep: Mapping[int, np.ndarray], group: Group) -> int:
    return int((~np.asarray(keep[group.id], bool)).sum()) if group.id in keep else 0


def _asking_override(graph: ChannelGraph, spec: Spec, group: Group) -> str | None:
    """The override key that sets the ratio of a producer of ``group`` (None when none does)."""
    for module in group.producers:
        for key, value in spec._matching(module, graph.module_types.get(module)):
            if value is not None and "ratio" in value:
                return key
    return None


def undone_groups(graph: ChannelGraph, spec: Spec, keep: Mapping[int, np.ndarray],
                  ratio: float | None = None) -> dict[int, str]:
    """Group id -> why: the groups whose pruning request ``keep`` does not carry out.

    A group is undone when the spec asks it for a ratio above 0 and it keeps every unit anyway
    (rounding, a ratio below one unit, an override whose ratio rounds away), or when units of it
    are fixed only because an op has no coupling rule. Groups an override skips, groups fixed by
    the model's input or output, and (with a latency budget, which picks counts itself) groups
    kept whole by the plan are not requests undone. ``ratio``: the global ratio a MAC budget found.

    >>> import torch, fxprune
    >>> from fxprune.models import build
    >>> graph = fxprune.analyze(build("edsr", blocks=1, channels=16), torch.randn(1, 3, 8, 8))
    >>> spec = fxprune.Spec(ratio=0.5, round_to=8, overrides={"body.0.conv1": {"ratio": 0.3}})
    >>> for gid, why in undone_groups(graph, spec, plan_keep(graph, spec)).items():
    ...     print(gid, why)
    1 group 1 (16 units: body.0.conv1): overrides['body.0.conv1'] asks for ratio 0.3, but round_to=8 rounds the 12 kept units back up to 16; round_to=4 would prune it
    """
    undone: dict[int, str] = {}
    for group in graph.groups:
        if _requested_ratio(graph, spec, group, ratio) <= 0:
            continue
        no_rule = _no_rule_fixes(graph, group)
        head = f"group {group.id} ({group.channels} units: {', '.join(group.producers) or 'no producer'})"
        if no_rule is not None:
            undone[group.id] = f"{head}: {no_rule}"
        elif group.prunable and not _dropped(keep, group) and spec.latency is None:
            why = explain_group(graph, spec, group, ratio) or f"{head}: keeps every unit"
            key = _asking_override(graph, spec, group)
            if key is not None:
                requested = _requested_ratio(graph, spec, group, ratio)
                why = why.replace(f"{head}: ", f"{head}: overrides[{key!r}] asks for ratio {requested:g}, but ", 1)
            undone[group.id] = why
    return undone


def request_outcome(graph: ChannelGraph, spec: Spec, keep: Mapping[int, np.ndarray],
                    ratio: float | None = None) -> dict[str, object]:
    """Requested vs achieved pruning of a keep plan, for the stage record.

    ``requested_ratio`` and ``achieved_ratio`` are averages over the units the spec could ask for
    (prunable units, and units fixed only for want of a coupling rule), weighted by units: the
    ratio each group was asked for, and the fraction it dropped. ``requested_ratio`` is None with
    a latency budget (it asks for counts, not ratios); ``undone`` lists :func:`undone_groups`.
    """
    askable = requested = dropped = 0.0
    for group in graph.groups:
        units = group.channels if _no_rule_fixes(graph, group) else group.prunable
        askable += units
        requested += units * _requested_ratio(graph, spec, group, ratio)
        dropped += _dropped(keep, group)
    return {
        "requested_ratio": None if spec.latency is not None else (requested / askable if askable else 0.0),
        "achieved_ratio": dropped / askable if askable else 0.0,
        "macs_budget": spec.macs,
        "latency_budget": spec.latency,
        "undone": list(undone_groups(graph, spec, keep, ratio).values()),
    }


def warn_undone(where: str, graph: ChannelGraph, spec: Spec, keep: Mapping[int, np.ndarray],
                ratio: float | None = None, *, note: str = "", stacklevel: int = 2) -> None:
    """Warn (:class:`~fxprune.errors.RequestUndoneWarning`) about requests ``keep`` does not carry
    out: one warning naming every group's cause when nothing is pruned, else one per undone group
    (:func:`undone_groups`). ``stacklevel`` counts from the caller of this function."""
    if not any(_dropped(keep, g) for g in graph.groups):
        text = nothing_pruned(where, graph, spec, ratio)
        warnings.warn(text + (f"\n{note}" if note else ""), RequestUndoneWarning, stacklevel=stacklevel + 1)
        return
    for why in undone_groups(graph, spec, keep, ratio).values():
        warnings.warn(f"{where}: {why}", RequestUndoneWarning, stacklevel=stacklevel + 1)


def kept_indices(graph: ChannelGraph, keep: Mapping[int, np.ndarray]) -> dict[SizeKey, np.ndarray]:
    """Sorted kept indices of every member space whose size changes."""
    out: dict[SizeKey, np.ndarray] = {}
    for gid, units in keep.items():
        group = graph.groups[gid]
        for member in group.members:
            kept = np.nonzero(units[graph.unit_index(group, member)])[0]
            if len(kept) < member.size:
                out[(member.node, member.index, member.dim)] = kept
    return out
