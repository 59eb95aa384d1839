"""Per-layer N for one-shot N:M under a MAC target: drop the cheapest units first.

A layer's units are its 1:M patterns in magnitude order (unit k = the (k+1)-th largest weight of
every group). Dropping unit k of a layer saves ``macs · (N/M)`` minus ``macs · ((N−1)/M)`` MACs
(integer, as :meth:`~fxprune.methods.nm_core.NMPrunerBase.macs` counts them) and loses that unit's
share of the layer's squared weight. Units are dropped, always the last kept one of a layer, by
the smallest loss per MAC saved until the target holds; then units are given back, the largest
loss per MAC first, while they still fit. So the result is at most the target and, unless every
layer is at its cap, less than one unit of some layer below it: the target is met up to one
layer's granularity.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from ..errors import SpecError
from ..passes.insert_nm_masks import NMMask


@dataclass(frozen=True)
class LayerUnits:
    """One masked layer for :func:`allocate_n`: its dense MACs, group size, the loss of dropping each
    unit (``loss[k]`` for unit k; unit 0 is never dropped) and the range of N it may take."""

    macs: int
    m: int
    loss: Sequence[float]
    floor: int = 1
    cap: int | None = None

    def top(self) -> int:
        return self.m if self.cap is None else self.cap

    def at(self, n: int) -> int:
        """MACs of the layer at N = ``n``."""
        return self.macs * n // self.m


def allocate_n(layers: Mapping[str, LayerUnits], target: float, other_macs: int = 0) -> dict[str, int]:
    """N per layer with ``other_macs + Σ layer.at(N)`` at most ``target`` and as close to it as one unit.

    ``other_macs``: the MACs of everything not masked. :class:`~fxprune.SpecError` (field
    ``budget``) when even every layer at its floor exceeds the target.

    Two layers of 1,600 MACs with M=4 (a unit is 400 MACs); ``a``'s small units cost less to drop
    (0.02 < 0.05 < 0.08 < 0.15), so ``a`` loses two and ``b`` one:

    >>> a = LayerUnits(1600, 4, (0.7, 0.2, 0.08, 0.02))
    >>> b = LayerUnits(1600, 4, (0.5, 0.3, 0.15, 0.05))
    >>> allocate_n({"a": a, "b": b}, target=2000)
    {'a': 2, 'b': 3}
    >>> allocate_n({"a": a, "b": b}, target=2399)    # 2,400 is over: the same three units go
    {'a': 2, 'b': 3}
    """
    ns = {name: layer.top() for name, layer in layers.items()}
    for name, layer in layers.items():
        if not 1 <= layer.floor <= layer.top() <= layer.m:
            raise SpecError("n", f"layer {name}: needs 1 ≤ floor ≤ cap ≤ m, got floor {layer.floor}, cap "
                            f"{layer.top()}, m {layer.m}", value=layer.floor)
        if len(layer.loss) < layer.top():
            raise SpecError("n", f"layer {name}: {len(layer.loss)} unit losses for N up to {layer.top()}")
    lowest = other_macs + sum(layer.at(layer.floor) for layer in layers.values())
    if lowest > target:
        raise SpecError("budget", f"a target of {target:,.0f} MACs is out of reach: with every masked layer at its "
                        f"smallest N the model keeps {lowest:,} MACs; raise the budget or mask more layers",
                        value=target)
    total = other_macs + sum(layer.at(ns[name]) for name, layer in layers.items())

    def drop_key(name: str) -> tuple[float, str]:
        layer, n = layers[name], ns[name]
        saved = layer.at(n) - layer.at(n - 1)
        return (layer.loss[n - 1] / saved if saved else float("inf"), name)

    heap = [drop_key(name) for name, layer in layers.items() if ns[name] > layer.floor]
    heapq.heapify(heap)
    while total > target:
        _, name = heapq.heappop(heap)
        layer = layers[name]
        total -= layer.at(ns[name]) - layer.at(ns[name] - 1)
        ns[name] -= 1
        if ns[name] > layer.floor:
            heapq.heappush(heap, drop_key(name))
    while True:
        fits = []
        for name, layer in layers.items():
            n = ns[name]
            if n < layer.top():
                added = layer.at(n + 1) - layer.at(n)
                if total + added <= target:
                    fits.append((layer.loss[n] / added if added else float("inf"), name, added))
        if not fits:
            return ns
        _, name, added = max(fits, key=lambda f: (f[0], f[1]))
        ns[name] += 1
        total += added


def unit_losses(weight: torch.Tensor, mask: NMMask) -> list[float]:
    """Each unit's share of ``weight``'s squared magnitude, in the mask's own rank order (so the
    2:4 order too): ``loss[k]`` = Σ w² over rank k / Σ w².

    >>> w = torch.tensor([[3.0, 1.0, 0.0, 2.0]]).reshape(1, 4, 1, 1)
    >>> [round(v, 3) for v in unit_losses(w, NMMask(w, m=4))]
    [0.643, 0.286, 0.071, 0.0]
    """
    squared = weight.detach().double().pow(2).flatten()
    per_unit = torch.zeros(mask.m, dtype=torch.float64, device=squared.device)
    per_unit.scatter_add_(0, mask.rank.flatten().long(), squared)
    return (per_unit / squared.sum().clamp_min(1e-30)).tolist()
