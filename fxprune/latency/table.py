"""The ORT timing side of latency budgets: threads, machine fingerprint, single-conv ONNX models,
the on-disk conv table and whole-model measurements."""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import shutil
import tempfile
import time
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from ..errors import SpecError
from ..trace import as_inputs

CACHE_ENV = "FXPRUNE_LATENCY_CACHE"
THREADS_ENV = "FXPRUNE_LATENCY_THREADS"


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


def _timing_inputs(example_inputs: Any) -> tuple[torch.Tensor, ...]:
    return tuple(t.detach().cpu() for t in as_inputs(example_inputs) if isinstance(t, torch.Tensor))


def _export_for_timing(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], path: Path) -> Path:
    """``model`` in an ONNX file at ``path`` as :func:`measure_latencies` times it: the inputs'
    static size, no parity check."""
    from ..onnx import export_onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_onnx(model, path, inputs, dynamic_hw=False, check=False)
    return path


class TimedModel:
    """A model :func:`measure_latencies` times more than once (the dense model, against every plan
    of a latency budget): exported on its first measurement at a size, that file serves the next
    ones (the file is removed with the object)."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self._files: dict[tuple, Path] = {}
        self._folder: Path | None = None

    def file(self, example_inputs: Any) -> Path:
        inputs = _timing_inputs(example_inputs)
        key = tuple((tuple(t.shape), t.dtype) for t in inputs)
        if key not in self._files:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="fxprune-latency-"))
                weakref.finalize(self, shutil.rmtree, str(self._folder), True)
            self._files[key] = _export_for_timing(self.model, inputs, self._folder / f"model{len(self._files)}.onnx")
        return self._files[key]


def measure_latencies(models: list[torch.nn.Module | TimedModel], example_inputs: Any, threads: int | None = None,
                      rounds: int = 5, seconds: float = 1.0) -> list[float]:
    """ORT latency in ms of each model, exported at the example's size with :func:`fxprune.export_onnx`
    (static shape, no parity check: timing only) and timed in interleaved rounds (at least
    ``rounds``, and ``seconds`` per model), so a busy phase of the machine hits all alike; each
    figure is the model's fastest run (see :func:`time_session`). A :class:`TimedModel` is exported
    once for all the measurements that time it.
    """
    inputs = _timing_inputs(example_inputs)
    with tempfile.TemporaryDirectory() as folder:
        sessions = []
        for k, model in enumerate(models):
            path = (model.file(inputs) if isinstance(model, TimedModel)
                    else _export_for_timing(model, inputs, Path(folder) / f"model{k}.onnx"))
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
