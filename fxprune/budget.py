"""A global MAC budget turned into one pruning ratio (groups with an override keep theirs).

MACs depend only on how many channels every tensor keeps, so a keep plan is priced without
slicing or running the model: :class:`MacModel` records the concrete shape of every node in one
dense forward, and prices a plan by putting the kept channel counts into those shapes and calling
the same per-op pricing as :func:`fxprune.count_macs` on shape-only (``meta``) tensors.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.fx as fx

from .counting import _Pricer
from .errors import SpecError
from .graph import ChannelGraph
from .selection import kept_indices, l1_scores, plan_keep
from .spec import Spec
from .trace import as_inputs

Shapes = tuple[int, ...] | tuple[tuple[int, ...] | None, ...]


class _ShapeRecorder(fx.Interpreter):
    """One real forward that remembers the concrete output shape(s) of every node."""

    def __init__(self, gm: fx.GraphModule):
        super().__init__(gm, garbage_collect_values=True)
        self.shapes: dict[str, Shapes] = {}
        self.multi: set[str] = set()  # nodes whose result is a tuple of tensors (split, native norms)

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        if isinstance(result, torch.Tensor):
            self.shapes[n.name] = tuple(result.shape)
        elif isinstance(result, (tuple, list)):
            self.shapes[n.name] = tuple(tuple(r.shape) if isinstance(r, torch.Tensor) else None for r in result)
            self.multi.add(n.name)
        return result


def record_shapes(gm: fx.GraphModule, example_inputs: Any) -> tuple[dict[str, Shapes], set[str]]:
    """Concrete output shape(s) of every node from one forward, and the nodes returning tuples;
    the module's buffers are left as they were (a training-mode forward updates BN stats)."""
    recorder = _ShapeRecorder(gm)
    inputs = [t.detach().clone() if isinstance(t, torch.Tensor) else t for t in as_inputs(example_inputs)]
    saved = [(b, b.detach().clone()) for b in gm.buffers()]
    try:
        with torch.no_grad():
            recorder.run(*inputs)
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)
    return recorder.shapes, recorder.multi


class MacModel:
    """MACs of any keep plan of ``graph`` at ``example_inputs``, without slicing the model.

    ``MacModel(graph, x).macs(keep)`` equals ``count_macs(slice_channels(graph, keep), x)``.

    >>> import torch, fxprune
    >>> from fxprune.models import build
    >>> from fxprune.passes.slice_channels import slice_channels
    >>> from fxprune.selection import plan_keep
    >>> x = torch.randn(1, 3, 12, 12)
    >>> graph = fxprune.analyze(build("edsr", blocks=2, channels=16), x)
    >>> keep = plan_keep(graph, fxprune.Spec(ratio=0.5, round_to=4))
    >>> MacModel(graph, x).macs(keep) == fxprune.count_macs(slice_channels(graph, keep), x)
    True
    """

    def __init__(self, graph: ChannelGraph, example_inputs: Any):
        self.graph = graph
        self._shapes, self._multi = record_shapes(graph.gm, example_inputs)
        self.dense = self.macs({})

    def _meta(self, name: str, kept: Mapping[tuple[str, int, int], np.ndarray]) -> Any:
        shapes = self._shapes[name]
        if name in self._multi:
            return tuple(None if s is None else _resized(name, i, s, kept) for i, s in enumerate(shapes))
        return _resized(name, 0, shapes, kept)

    def macs(self, keep: Mapping[int, np.ndarray]) -> int:
        """Total MACs of the model with every group keeping the units ``keep`` says."""
        kept = kept_indices(self.graph, keep)
        gm = self.graph.gm
        pricer = _Pricer(gm, {})
        env: dict[str, Any] = {}
        for node in gm.graph.nodes:
            if node.op == "output":
                break
            if node.name not in self._shapes:
                continue
            env[node.name] = self._meta(node.name, kept)
            if node.op != "call_function":
                continue
            args = fx.node.map_arg(node.args, lambda a: env.get(a.name))
            kwargs = fx.node.map_arg(node.kwargs, lambda a: env.get(a.name))
            pricer._price(node, args, kwargs, env[node.name])
        return sum(layer.macs for layer in pricer.layers)


def _resized(name: str, index: int, shape: tuple[int, ...], kept: Mapping[tuple[str, int, int], np.ndarray]) -> torch.Tensor:
    sizes = [len(kept[(name, index, d)]) if (name, index, d) in kept else s for d, s in enumerate(shape)]
    return torch.empty(sizes, device="meta")


def ratio_for_macs(graph: ChannelGraph, spec: Spec, example_inputs: Any, steps: int = 12) -> float:
    """The smallest global ratio (to ``steps`` bisections) whose sliced model keeps ≤ ``spec.macs``.

    MACs depend on how many units each group keeps, not on which, so the answer holds for any
    importance score (L1 now, ASSL's gates later).
    """
    model = MacModel(graph, example_inputs)
    cache: dict[int, np.ndarray] = {}

    def cached_scores(g: ChannelGraph, group) -> np.ndarray:
        if group.id not in cache:
            cache[group.id] = l1_scores(g, group)
        return cache[group.id]

    def fraction(ratio: float) -> float:
        return model.macs(plan_keep(graph, spec, ratio=ratio, scores=cached_scores)) / model.dense

    smallest = fraction(HIGHEST_RATIO)
    if smallest > spec.macs:
        raise SpecError("macs", f"cannot reach {spec.macs:.3f} of the MACs: even pruning every prunable unit "
                        f"keeps {smallest:.3f} (fixed groups and rounding)")
    return bisect_ratio(fraction, spec.macs, steps)


HIGHEST_RATIO = 0.999  # a ratio of 1 would ask to drop every unit


def bisect_ratio(fraction: Callable[[float], float], target: float, steps: int) -> float:
    """The smallest ratio in [0, HIGHEST_RATIO], to ``steps`` bisections, whose ``fraction`` is at
    most ``target``; ``fraction`` must not grow with the ratio.

    >>> round(bisect_ratio(lambda ratio: 1 - ratio, 0.25, steps=20), 4)
    0.75
    """
    low, high = 0.0, HIGHEST_RATIO
    for _ in range(steps):
        middle = (low + high) / 2
        if fraction(middle) <= target:
            high = middle
        else:
            low = middle
    return high
