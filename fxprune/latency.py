"""Pruning to a measured ONNX Runtime latency budget (``Spec(latency=f)``).

The latency of a keep plan is predicted without slicing, the way :class:`~fxprune.budget.MacModel`
prices MACs: every 2-D convolution of the captured graph gets an op signature (in/out channels,
kernel, stride, padding, dilation, groups, input H×W, threads); its time at those channel counts
comes from a table of single-conv ONNX models timed in ONNX Runtime (built with the ``onnx``
helper API, cached on disk per machine). Everything that is not a conv (the input/output copies,
pixel shuffle, elementwise ops, norms) is the *remainder*: the dense model's measured latency
minus the dense convs' table times. One more measured plan (half of every group dropped) splits it
into a fixed part and a part proportional to the element count of the non-conv ops
(:class:`LatencyModel`). The prediction is checked against the sliced model's measured latency by
``benchmarks/bench_latency.py --section latency``.

The table is filled lazily, one entry per signature the chooser asks for, each measured: bilinear
interpolation between multiples of 8 channels was tried and under-predicted a 3×3 conv at 64×64 by
7–54% off those multiples (ORT's kernels pad channels; e.g. 36→36 channels took 0.70 ms against
0.33 ms interpolated from 32/40), so counts in ``round_to`` steps are timed as they are. Convs
that share a signature (EDSR's body) share one entry; ``round_to`` ≥ 8 keeps the table small.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.fx as fx

from .budget import record_shapes
from .errors import SpecError
from .graph import ChannelGraph
from .passes.slice_channels import kept_indices, slice_channels
from .selection import group_settings, kept_count, l1_scores, plan_keep
from .spec import Spec
from .trace import as_inputs

CACHE_ENV = "FXPRUNE_LATENCY_CACHE"
THREADS_ENV = "FXPRUNE_LATENCY_THREADS"
_CONV_OPS = {"conv2d", "convolution", "_convolution"}


# ---------------------------------------------------------------------------- machine and threads
def default_threads() -> int:
    """Intra-op threads the latency is measured with: ``$FXPRUNE_LATENCY_THREADS`` or one per CPU.

    ONNX Runtime's default session (``fxprune run`` without ``--threads``) uses one thread per core,
    so the budget is measured the way the model is run unless the user says otherwise.
    """
    value = os.environ.get(THREADS_ENV)
    if value is None:
        return os.cpu_count() or 1
    if not value.isdigit() or int(value) < 1:
        raise SpecError("latency", f"${THREADS_ENV} must be a positive integer, got {value!r}")
    return int(value)


def machine_fingerprint() -> str:
    """CPU model, core count, machine type and ONNX Runtime version: table times hold for these only."""
    import onnxruntime as ort

    model = platform.processor() or "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}|{os.cpu_count()} cpus|{platform.machine()}|onnxruntime {ort.__version__}"


def cache_dir() -> Path:
    """``$FXPRUNE_LATENCY_CACHE`` or ``~/.cache/fxprune/latency``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "fxprune" / "latency")


# ---------------------------------------------------------------------------- one conv in ORT
@dataclass(frozen=True)
class ConvSig:
    """Everything a single conv's ORT time depends on (batch included)."""

    in_channels: int
    out_channels: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    batch: int
    height: int
    width: int
    threads: int

    def key(self) -> str:
        """A stable text key, e.g. ``conv 64>64 k3x3 s1x1 p1x1 d1x1 g1 1x3@32x32 t2``."""
        k, s, p, d = ("x".join(map(str, v)) for v in (self.kernel, self.stride, self.padding, self.dilation))
        return (f"conv {self.in_channels}>{self.out_channels} k{k} s{s} p{p} d{d} g{self.groups} "
                f"b{self.batch}@{self.height}x{self.width} t{self.threads}")


def conv_onnx(sig: ConvSig) -> bytes:
    """A one-node ONNX model (input → Conv with random weight and bias → output) for ``sig``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = rng.standard_normal((sig.out_channels, sig.in_channels // sig.groups, *sig.kernel)).astype(np.float32)
    bias = rng.standard_normal(sig.out_channels).astype(np.float32)
    node = helper.make_node("Conv", ["input", "weight", "bias"], ["output"], kernel_shape=list(sig.kernel),
                            strides=list(sig.stride), dilations=list(sig.dilation), group=sig.groups,
                            pads=[sig.padding[0], sig.padding[1], sig.padding[0], sig.padding[1]])
    graph = helper.make_graph(
        [node], "conv",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [sig.batch, sig.in_channels, sig.height, sig.width])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(weight, "weight"), numpy_helper.from_array(bias, "bias")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return onnx._serialize(model) if hasattr(onnx, "_serialize") else model.SerializeToString()


def _session(model: bytes | str, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle workers would steal a core
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def time_session(session: Any, feed: Mapping[str, np.ndarray], min_runs: int = 3, max_runs: int = 30,
                 min_seconds: float = 0.05) -> float:
    """Fastest of repeated runs in ms (after one warm-up run); the minimum is the least disturbed
    by other processes on a shared machine, and the table and whole-model figures use it alike."""
    session.run(None, feed)
    best, runs, start = math.inf, 0, time.perf_counter()
    while runs < min_runs or (runs < max_runs and time.perf_counter() - start < min_seconds):
        t0 = time.perf_counter()
        session.run(None, feed)
        best = min(best, (time.perf_counter() - t0) * 1000)
        runs += 1
    return best


def time_conv(sig: ConvSig) -> float:
    """ORT time of one conv in ms (see :func:`time_session`)."""
    feed = {"input": np.random.default_rng(1).standard_normal(
        (sig.batch, sig.in_channels, sig.height, sig.width)).astype(np.float32)}
    # 0.3 s per signature: entries timed in a busy moment would skew the ratios the chooser relies on
    return time_session(_session(conv_onnx(sig), sig.threads), feed, min_runs=5, max_runs=100, min_seconds=0.3)


class LatencyTable:
    """Conv times by signature, persisted as JSON per machine fingerprint.

    >>> import tempfile
    >>> table = LatencyTable(tempfile.mkdtemp())
    >>> sig = ConvSig(4, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1, 1, 8, 8, 1)
    >>> ms = table.time(sig); table.save(); table.measured
    1
    >>> again = LatencyTable(table.path.parent); again.time(sig) == ms, again.measured
    (True, 0)
    """

    def __init__(self, folder: str | os.PathLike | None = None, fingerprint: str | None = None,
                 timer: Callable[[ConvSig], float] = time_conv):
        self.fingerprint = fingerprint or machine_fingerprint()
        digest = hashlib.sha256(self.fingerprint.encode()).hexdigest()[:16]
        self.path = Path(folder if folder is not None else cache_dir()) / f"{digest}.json"
        self.timer = timer
        self.entries: dict[str, float] = {}
        self.measured = 0  # signatures timed by this instance (not found in the cache)
        self.seconds = 0.0  # time spent timing them
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
                if data.get("fingerprint") == self.fingerprint:
                    self.entries = {str(k): float(v) for k, v in data.get("entries", {}).items()}
            except (OSError, ValueError, AttributeError):
                self.entries = {}  # a corrupt cache is rebuilt, never trusted

    def time(self, sig: ConvSig) -> float:
        key = sig.key()
        if key not in self.entries:
            start = time.perf_counter()
            self.entries[key] = float(self.timer(sig))
            self.seconds += time.perf_counter() - start
            self.measured += 1
        return self.entries[key]

    def save(self) -> None:
        """Write the table atomically (a concurrent reader never sees half a file)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
        with os.fdopen(handle, "w") as stream:
            json.dump({"fingerprint": self.fingerprint, "entries": self.entries}, stream, indent=0, sort_keys=True)
        os.replace(temporary, self.path)


# ---------------------------------------------------------------------------- whole models
def measure_latency(model: torch.nn.Module, example_inputs: Any, threads: int | None = None) -> float:
    """ORT latency in ms of ``model`` exported at the example's size (see :func:`measure_latencies`)."""
    return measure_latencies([model], example_inputs, threads)[0]


def measure_latencies(models: list[torch.nn.Module], example_inputs: Any, threads: int | None = None,
                      rounds: int = 5, seconds: float = 1.0) -> list[float]:
    """ORT latency in ms of each model, exported at the example's size with :func:`fxprune.export_onnx`
    (static shape, no parity check: timing only) and timed in interleaved rounds (at least
    ``rounds``, and ``seconds`` per model), so a busy phase of the machine hits all alike; each
    figure is the model's fastest run (see :func:`time_session`).
    """
    from .passes.export_onnx import export_onnx

    inputs = tuple(t.detach().cpu() for t in as_inputs(example_inputs) if isinstance(t, torch.Tensor))
    with tempfile.TemporaryDirectory() as folder:
        sessions = []
        for k, model in enumerate(models):
            path = Path(folder) / f"model{k}.onnx"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                export_onnx(model, path, inputs, dynamic_hw=False, check=False)
            sessions.append(_session(str(path), threads or default_threads()))
        feeds = [{i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs)} for session in sessions]
        for session, feed in zip(sessions, feeds):
            session.run(None, feed)  # warm-up
        best = [math.inf] * len(sessions)
        start, done = time.perf_counter(), 0
        while done < rounds or (done < 100 and time.perf_counter() - start < seconds * len(sessions)):
            for k, (session, feed) in enumerate(zip(sessions, feeds)):
                t0 = time.perf_counter()
                session.run(None, feed)
                best[k] = min(best[k], (time.perf_counter() - t0) * 1000)
            done += 1
        return best


# ---------------------------------------------------------------------------- the model of a plan
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
            models = [graph.gm] + ([slice_channels(graph, half)] if half else [])
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


# ---------------------------------------------------------------------------- the choice
def choose_counts(
    candidates: Mapping[int, list[int]],
    loss: Callable[[int, int], float],
    latency: Callable[[Mapping[int, int]], float],
    target: float,
) -> dict[int, int]:
    """Kept count per group meeting ``latency(counts) <= target``, greedily.

    ``candidates[g]`` lists the counts group ``g`` may keep, largest (dense) first; ``loss(g, c)``
    is the importance lost when ``g`` keeps ``c``. Each step moves the group whose next step
    loses the least importance per ms saved; steps that save nothing are taken last (they may
    enable later savings, e.g. a conv shared by two groups). Steps that fit back under the target
    are then given back, most importance first. Raises :class:`SpecError` when even
    the smallest counts miss the target.

    >>> times = {0: {4: 3.0, 2: 1.0}, 1: {4: 2.0, 2: 1.5}}
    >>> choose_counts({0: [4, 2], 1: [4, 2]}, lambda g, c: 4 - c, lambda k: sum(times[g][k[g]] for g in k), 3.6)
    {0: 2, 1: 4}
    """
    counts = {g: options[0] for g, options in candidates.items()}
    step = {g: 0 for g in candidates}
    current = latency(counts)
    while current > target:
        best: tuple[float, float, int] | None = None
        for g, options in candidates.items():
            if step[g] + 1 >= len(options):
                continue
            trial = {**counts, g: options[step[g] + 1]}
            saved = current - latency(trial)
            lost = loss(g, options[step[g] + 1]) - loss(g, counts[g])
            rank = (0.0, lost / saved) if saved > 1e-9 else (1.0, lost)
            if best is None or rank < best[:2]:
                best = (*rank, g)
        if best is None:
            raise SpecError("latency", f"the target of {target:.3f} ms cannot be met: with every group at its "
                            f"smallest count the predicted latency is {current:.3f} ms")
        g = best[2]
        step[g] += 1
        counts[g] = candidates[g][step[g]]
        current = latency(counts)
    return _refill(candidates, loss, latency, target, counts, step)


def _refill(candidates: Mapping[int, list[int]], loss: Callable[[int, int], float],
            latency: Callable[[Mapping[int, int]], float], target: float,
            counts: dict[int, int], step: dict[int, int]) -> dict[int, int]:
    """Give back steps that still fit under the target, most importance regained first: the last
    greedy step often overshoots (one ``round_to`` step of a wide group saves a lot)."""
    while True:
        best: tuple[float, int] | None = None
        for g, options in candidates.items():
            if step[g] == 0:
                continue
            trial = {**counts, g: options[step[g] - 1]}
            if latency(trial) <= target:
                gained = loss(g, counts[g]) - loss(g, options[step[g] - 1])
                if best is None or gained > best[0]:
                    best = (gained, g)
        if best is None:
            return counts
        g = best[1]
        step[g] -= 1
        counts[g] = candidates[g][step[g]]


@dataclass
class LatencyPlan:
    """The outcome of :func:`plan_for_latency` (stored in the result's ``meta['fxprune']['latency']``)."""

    keep: dict[int, np.ndarray]
    counts: dict[int, int]
    target: float  # fraction of the dense latency
    dense_ms: float
    predicted_ms: float
    table_seconds: float  # spent timing convs not found in the cache
    threads: int
    measured_signatures: int

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("keep")
        data["counts"] = {int(k): int(v) for k, v in self.counts.items()}
        return data


def _candidates(graph: ChannelGraph, spec: Spec) -> tuple[dict[int, list[int]], dict[int, int]]:
    """Counts each group may keep (dense first), and the fixed counts of groups with a ratio override."""
    free: dict[int, list[int]] = {}
    fixed: dict[int, int] = {}
    for group in graph.groups:
        if group.prunable == 0:
            continue
        settings = group_settings(graph, spec, group)
        if settings is None:
            continue
        override, round_to = settings
        if override is not None:
            fixed[group.id] = kept_count(group.channels, group.prunable, override, round_to)
            continue
        options = {kept_count(group.channels, group.prunable, j / group.prunable, round_to)
                   for j in range(group.prunable)}
        if len(options) > 1:
            free[group.id] = sorted(options, reverse=True)
    return free, fixed


def plan_for_latency(graph: ChannelGraph, spec: Spec, example_inputs: Any, *, threads: int | None = None,
                     table: LatencyTable | None = None, model: LatencyModel | None = None) -> LatencyPlan:
    """Per-group kept counts (``round_to`` steps) predicted to keep at most ``spec.latency`` of the
    dense model's measured ORT latency, losing the least L1 importance per ms saved.

    A group's L1 scores are divided by their mean over its prunable units and multiplied by its
    number of producer weights: raw L1 norms are not comparable across layers of different fan-in,
    and a unit of a residual trunk (every block writes to it) costs every producer's filter.
    """
    if spec.latency is None:
        raise SpecError("latency", "plan_for_latency needs Spec(latency=...)")
    model = model or LatencyModel(graph, example_inputs, threads, table)
    free, fixed = _candidates(graph, spec)
    lost_prefix: dict[int, np.ndarray] = {}
    for gid in free:
        group = graph.groups[gid]
        scores = l1_scores(graph, group)[graph.prunable_units(group)]
        scores = np.sort(scores / (scores.mean() or 1.0) * max(1, len(group.producer_weights)))
        lost_prefix[gid] = np.concatenate([[0.0], np.cumsum(scores)])

    def loss(gid: int, count: int) -> float:
        return float(lost_prefix[gid][graph.groups[gid].channels - count])

    def latency(counts: Mapping[int, int]) -> float:
        return model.predict_counts({**fixed, **counts})

    target_ms = spec.latency * model.dense_ms
    goal = target_ms
    for _ in range(4):  # the per-unit probe is linear; the exact plan may differ by a unit per concat member
        counts = {**fixed, **choose_counts(free, loss, latency, goal)}
        keep = plan_keep(graph, spec, counts=counts)
        predicted = model.predict(keep)
        if predicted <= target_ms + 1e-9:
            break
        goal -= predicted - target_ms
    else:
        raise SpecError("latency", f"cannot reach {spec.latency:.3f} of the latency: the best plan found is "
                        f"predicted at {predicted / model.dense_ms:.3f}")
    model.table.save()
    return LatencyPlan(keep, counts, spec.latency, model.dense_ms, predicted, model.table.seconds,
                       model.threads, model.table.measured)
