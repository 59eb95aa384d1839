"""ASSL's loss terms on the gates of one group: the sparsity-inducing L2 penalty and SSA (a loss,
not a graph rewrite: the gates are put in by :mod:`fxprune.passes.insert_assl_gates`).

A group's gates may have units of several channels (r² before a PixelShuffle, heads), and a
producer may cover only some of the group's units (one input of a concat); every function here
works on units through each gate's ``unit_of_channel`` map.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.fx as fx

from ..passes.insert_assl_gates import GateSite


@dataclass
class GatedGroup:
    """The gates of one pruned group, with the unit of every gated channel."""

    gid: int
    coupled: bool
    channels: int
    sites: list[GateSite]
    unit_of_channel: list[np.ndarray]
    _cache: dict = field(default_factory=dict, repr=False)

    def units_on(self, k: int, device: torch.device) -> torch.Tensor:
        key = (k, str(device))
        if key not in self._cache:
            self._cache[key] = torch.as_tensor(self.unit_of_channel[k], dtype=torch.long, device=device)
        return self._cache[key]


def gate_scores(gm: fx.GraphModule, group: GatedGroup) -> np.ndarray:
    """Per unit: |γ| summed over every gated channel of the unit in every producer of the group."""
    scores = np.zeros(group.channels)
    for site, units in zip(group.sites, group.unit_of_channel):
        gamma = gm.get_submodule(site.gate).gamma.detach().abs().float().cpu().numpy()
        np.add.at(scores, units, gamma)
    return scores


def si_penalty(gm: fx.GraphModule, group: GatedGroup, unimportant: torch.Tensor) -> torch.Tensor:
    """Σ over producers and unimportant channels of ½(γ² + b²); ``unimportant`` is a bool per unit."""
    total = None
    for k, site in enumerate(group.sites):
        gamma = gm.get_submodule(site.gate).gamma
        chosen = unimportant.to(gamma.device)[group.units_on(k, gamma.device)]
        term = gamma[chosen].pow(2).sum()
        if site.bias is not None:
            term = term + gm.get_parameter(site.bias)[chosen].pow(2).sum()
        total = term if total is None else total + term
    return 0.5 * total


def ssa_loss(gm: fx.GraphModule, group: GatedGroup, kept: int) -> torch.Tensor | None:
    """Sparsity structure alignment: −mean(M·Mᵀ) over the producers that cover every unit.

    Row l of M is sigmoid(s_l − t_l): s_l the unit scores |γ| of producer l, t_l its ``kept``-th
    largest score (the smallest score it would keep), not detached. None when fewer than two
    producers cover the whole group.
    """
    rows = []
    for k, site in enumerate(group.sites):
        if len(np.unique(group.unit_of_channel[k])) != group.channels:
            continue
        gamma = gm.get_submodule(site.gate).gamma
        scores = torch.zeros(group.channels, device=gamma.device, dtype=gamma.dtype)
        scores = scores.index_add(0, group.units_on(k, gamma.device), gamma.abs())
        threshold = torch.topk(scores, kept).values[-1]
        rows.append(torch.sigmoid(scores - threshold))
    if len(rows) < 2:
        return None
    masks = torch.stack(rows)
    return -(masks @ masks.T).mean()
