"""Shared helpers for tests: random keep-sets and parameter perturbation."""
from __future__ import annotations

import numpy as np
import torch
import torch.fx as fx

from fxprune.graph import ChannelGraph


def random_keep(graph: ChannelGraph, rng: np.random.Generator, drop_probability: float = 0.5) -> dict[int, np.ndarray]:
    """Drop each prunable unit with the given probability, always keeping at least one unit per group."""
    keep = {}
    for g in graph.groups:
        prunable = graph.prunable_units(g)
        if not prunable.any():
            continue
        units = ~((rng.random(g.channels) < drop_probability) & prunable)
        if not units.any():
            units[rng.integers(g.channels)] = True
        keep[g.id] = units
    return keep


def perturb_dropped(gm: fx.GraphModule, graph: ChannelGraph, keep: dict[int, np.ndarray], seed: int = 0) -> int:
    """Add noise to every parameter/buffer element that belongs to a dropped unit; returns how many."""
    generator = torch.Generator().manual_seed(seed)
    touched = 0
    with torch.no_grad():
        for gid, units in keep.items():
            group = graph.groups[gid]
            for member in group.members:
                if member.param is None:
                    continue
                dropped = torch.from_numpy(~units[graph.unit_index(group, member)])
                if not dropped.any():
                    continue
                tensor = _tensor(gm, member.param)
                if not tensor.is_floating_point():
                    continue
                index = [slice(None)] * tensor.dim()
                index[member.dim] = dropped
                region = tensor[tuple(index)]
                tensor[tuple(index)] = region + 2.0 * torch.rand(region.shape, generator=generator) + 0.5
                touched += int(region.numel())
    return touched


def _tensor(gm: fx.GraphModule, name: str) -> torch.Tensor:
    try:
        return gm.get_parameter(name)
    except AttributeError:
        return gm.get_buffer(name)
