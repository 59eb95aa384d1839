"""The latency of a keep plan predicted from the conv table and a calibrated remainder."""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import torch.fx as fx

from ..budget import record_shapes
from ..graph import ChannelGraph
from ..passes.slice_channels import slice_channels
from ..selection import kept_indices
from .table import ConvSig, LatencyTable, TimedModel, default_threads, measure_latencies

_CONV_OPS = {"conv2d", "convolution", "_convolution"}


def _pair(value: Any) -> tuple[int, int]:
    return (int(value[0]), int(value[-1])) if isinstance(value, (list, tuple)) else (int(value), int(value))


@dataclass
class _Conv:
    node: str
    source: str  # the input node
    in_channels: int
    out_channels: int
    groups: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    batch: int
    height: int
    width: int
    # per group id: channels removed from (input, output) per unit the group drops
    per_unit: dict[int, tuple[float, float]] = field(default_factory=dict)


def _conv_of(node: fx.Node, shapes: Mapping[str, Any]) -> _Conv | None:
    """The conv's static description, or None when it is not a plain 2-D convolution."""
    name = getattr(getattr(node.target, "_overloadpacket", None), "__name__", None)
    if node.op != "call_function" or name not in _CONV_OPS:
        return None
    args = list(node.args) + [None] * 9
    source, weight = args[0], args[1]
    if not isinstance(source, fx.Node) or not isinstance(weight, fx.Node) or source.name not in shapes:
        return None
    if name == "conv2d":
        stride, padding, dilation, groups = (node.kwargs.get(k, args[i]) for i, k in
                                             ((3, "stride"), (4, "padding"), (5, "dilation"), (6, "groups")))
    else:
        if args[6]:
            return None  # transposed: left in the remainder
        stride, padding, dilation, groups = args[3], args[4], args[5], args[8]
    shape, out = shapes[source.name], shapes.get(node.name)
    if not isinstance(shape, tuple) or len(shape) != 4 or not isinstance(out, tuple) or len(out) != 4:
        return None
    w = shapes.get(weight.name)
    if w is None:
        return None
    kernel = _pair(w[2:])
    dilation = _pair(dilation if dilation is not None else 1)
    if isinstance(padding, str):
        padding = (0, 0) if padding == "valid" else tuple(d * (k - 1) // 2 for d, k in zip(dilation, kernel))
    return _Conv(node.name, source.name, shape[1], out[1], int(groups or 1), kernel, _pair(stride or 1),
                 _pair(padding if padding is not None else 0), dilation, shape[0], shape[2], shape[3])


class LatencyModel:
    """Predicted ORT latency of any keep plan of ``graph``: the convs' table times plus the remainder.

    ``dense_ms`` is measured once (export + ORT); ``conv_ms`` is the table's time of the dense
    convs and ``remainder_ms = dense_ms - conv_ms`` what the table does not cover. With
    ``calibrate`` one more plan (half of every group's prunable units dropped) is sliced and
    measured, and the remainder is split into a fixed part and a part proportional to the element
    count of the non-conv ops (elementwise, norms, activations, resampling shrink with the
    channels; session overhead and the input/output do not). Without it the remainder is held
    constant, which over-predicts pruned plans.
    """

    def __init__(self, graph: ChannelGraph, example_inputs: Any, threads: int | None = None,
                 table: LatencyTable | None = None, dense_ms: float | None = None, calibrate: bool = True):
        self.graph = graph
        self.dense = TimedModel(graph.gm)  # exported once: every timed plan is measured against it
        self.threads = threads or default_threads()
        self.table = table if table is not None else LatencyTable()
        recorded, multi = record_shapes(graph.gm, example_inputs)
        shapes = {name: s for name, s in recorded.items() if name not in multi}
        self.convs = [c for c in (_conv_of(n, shapes) for n in graph.gm.graph.nodes) if c is not None]
        conv_names = {c.node for c in self.convs}
        self._others = {n.name: shapes[n.name] for n in graph.gm.graph.nodes
                        if n.op == "call_function" and n.name in shapes and n.name not in conv_names}
        self.dense_elements = float(sum(math.prod(s) for s in self._others.values()))
        self._elements_per_unit: dict[int, float] = {}
        self._probe()
        self.conv_scale = 1.0  # < 1 only when the table and the whole model disagree (see below)
        start = time.perf_counter()
        self.conv_ms = self._convs_ms({c.node: (c.in_channels, c.out_channels) for c in self.convs})
        half = self._half_plan() if calibrate and dense_ms is None else {}
        measured_half = None
        if dense_ms is None:  # the half plan is timed interleaved with the dense model: same machine state
            models = [self.dense] + ([slice_channels(graph, half)] if half else [])
            dense_ms, *rest = measure_latencies(models, example_inputs, self.threads)
            measured_half = rest[0] if rest else None
        self.dense_ms = dense_ms
        if self.conv_ms > self.dense_ms:  # each isolated conv pays one ORT run's overhead, or the machine was busy
            if self.conv_ms > 1.2 * self.dense_ms:
                warnings.warn(f"the conv table sums to {self.conv_ms:.2f} ms, more than the whole model's measured "
                              f"{self.dense_ms:.2f} ms (was the machine busy?); its times are scaled down to fit",
                              stacklevel=2)
            self.conv_scale = self.dense_ms / self.conv_ms
            self.conv_ms = self.dense_ms
        self.remainder_ms = self.dense_ms - self.conv_ms
        self.fixed_ms, self.scaling_ms = self.remainder_ms, 0.0
        if measured_half is not None:
            self._calibrate(half, measured_half)
        self.table.save()
        self.build_seconds = time.perf_counter() - start

    def _half_plan(self) -> dict[int, np.ndarray]:
        """The calibration plan: half of every group's prunable units dropped (empty if that changes
        too few elements to separate the remainder's parts)."""
        keep = {}
        for group in self.graph.groups:
            prunable = np.flatnonzero(self.graph.prunable_units(group))
            if len(prunable) >= 2:
                keep[group.id] = np.ones(group.channels, bool)
                keep[group.id][prunable[: len(prunable) // 2]] = False
        if not self.dense_elements or self._elements(keep) / self.dense_elements >= 0.99:
            return {}
        return keep

    def _calibrate(self, keep: Mapping[int, np.ndarray], measured: float) -> None:
        """Split the remainder using the measured latency of the half plan ``keep``."""
        fraction = self._elements(keep) / self.dense_elements
        remainder = measured - self._convs_ms(self._exact_sizes(kept_indices(self.graph, keep)))
        scaling = (self.remainder_ms - remainder) / (1 - fraction)
        self.scaling_ms = min(max(scaling, 0.0), max(self.remainder_ms, 0.0))  # noise must not flip its sign
        self.fixed_ms = self.remainder_ms - self.scaling_ms

    def _elements(self, keep: Mapping[int, np.ndarray]) -> float:
        kept = kept_indices(self.graph, keep)
        return float(sum(math.prod(len(kept[(name, 0, d)]) if (name, 0, d) in kept else size
                                   for d, size in enumerate(shape)) for name, shape in self._others.items()))

    def _remainder(self, elements: float) -> float:
        return self.fixed_ms + (self.scaling_ms * elements / self.dense_elements if self.dense_elements else 0.0)

    def _probe(self) -> None:
        """Channels each conv, and elements the other ops, lose per unit each group drops (from one
        plan dropping half a group; exact when a tensor's size is linear in the kept units)."""
        for group in self.graph.groups:
            if group.prunable == 0:
                continue
            prunable = np.flatnonzero(self.graph.prunable_units(group))
            dropped = prunable[: max(1, len(prunable) // 2)]
            units = np.ones(group.channels, bool)
            units[dropped] = False
            kept = kept_indices(self.graph, {group.id: units})
            self._elements_per_unit[group.id] = (self.dense_elements - self._elements({group.id: units})) / len(dropped)
            for conv in self.convs:
                lost_in = conv.in_channels - len(kept.get((conv.source, 0, 1), range(conv.in_channels)))
                lost_out = conv.out_channels - len(kept.get((conv.node, 0, 1), range(conv.out_channels)))
                if lost_in or lost_out:
                    conv.per_unit[group.id] = (lost_in / len(dropped), lost_out / len(dropped))

    def _sig(self, conv: _Conv, cin: int, cout: int) -> ConvSig:
        depthwise = conv.groups == conv.in_channels and conv.groups > 1
        groups = cin if depthwise else conv.groups
        return ConvSig(cin, cout, conv.kernel, conv.stride, conv.padding, conv.dilation, groups,
                       conv.batch, conv.height, conv.width, self.threads)

    def _conv_ms(self, conv: _Conv, cin: float, cout: float) -> float:
        """Table time at the given channel counts, each measured exactly (see the module docstring)."""
        return self.table.time(self._sig(conv, max(1, round(cin)), max(1, round(cout))))

    def _convs_ms(self, sizes: Mapping[str, tuple[float, float]]) -> float:
        return self.conv_scale * sum(self._conv_ms(c, *sizes[c.node]) for c in self.convs)

    def predict_counts(self, counts: Mapping[int, int]) -> float:
        """Predicted ms when group ``gid`` keeps ``counts[gid]`` units (the others keep all)."""
        sizes = {}
        for conv in self.convs:
            cin, cout = float(conv.in_channels), float(conv.out_channels)
            for gid, (per_in, per_out) in conv.per_unit.items():
                if gid in counts:
                    dropped = self.graph.groups[gid].channels - counts[gid]
                    cin, cout = cin - per_in * dropped, cout - per_out * dropped
            sizes[conv.node] = (max(cin, 1.0), max(cout, 1.0))
        elements = self.dense_elements - sum(self._elements_per_unit.get(gid, 0.0) * (self.graph.groups[gid].channels - c)
                                             for gid, c in counts.items())
        return self._remainder(elements) + self._convs_ms(sizes)

    def predict(self, keep: Mapping[int, np.ndarray]) -> float:
        """Predicted ms of the model sliced by ``keep`` (exact channel counts of every conv)."""
        return self._remainder(self._elements(keep)) + self._convs_ms(self._exact_sizes(kept_indices(self.graph, keep)))

    def _exact_sizes(self, kept: Mapping[tuple[str, int, int], np.ndarray]) -> dict[str, tuple[float, float]]:
        return {c.node: (len(kept.get((c.source, 0, 1), range(c.in_channels))),
                         len(kept.get((c.node, 0, 1), range(c.out_channels)))) for c in self.convs}
