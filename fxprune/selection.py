"""Which units to keep: importance scores and per-group keep-sets from a spec."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.fx as fx

from .errors import SpecError
from .graph import ChannelGraph, Group
from .spec import Spec


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
    graph: ChannelGraph, spec: Spec, ratio: float | None = None, scores: Scorer = l1_scores
) -> dict[int, np.ndarray]:
    """Keep-sets for every prunable group: the units with the highest ``scores`` survive.

    ``ratio`` replaces the spec's global ratio (used when searching for a MAC target). Groups
    that keep everything (ratio 0, rounding, a skipped producer) are left out.
    """
    unmatched = spec.unmatched_keys({m: graph.module_types.get(m) for g in graph.groups for m in g.producers})
    if unmatched:
        raise SpecError(f"overrides[{unmatched[0]!r}]", "matches no prunable layer's name or type in this model")
    keep: dict[int, np.ndarray] = {}
    for group in graph.groups:
        if group.prunable == 0:
            continue
        settings = group_settings(graph, spec, group)
        if settings is None:
            continue
        override, round_to = settings
        group_ratio = override if override is not None else (spec.ratio if ratio is None else ratio)
        count = kept_count(group.channels, group.prunable, group_ratio, round_to)
        if count >= group.channels:
            continue
        prunable = graph.prunable_units(group)
        unit_scores = np.where(prunable, scores(graph, group), np.inf)  # fixed units always stay
        units = np.zeros(group.channels, bool)
        units[np.argsort(-unit_scores, kind="stable")[:count]] = True
        keep[group.id] = _every_member_keeps_one(graph, group, units, unit_scores)
    return keep
