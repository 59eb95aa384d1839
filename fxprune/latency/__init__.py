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
from .choose import LatencyPlan, choose_counts, plan_for_latency
from .model import LatencyModel
from .table import (CACHE_ENV, THREADS_ENV, ConvSig, LatencyTable, TimedModel, _session, cache_dir, conv_onnx,
                    default_threads, machine_fingerprint, measure_latencies, measure_latency, time_conv, time_session)

__all__ = ["CACHE_ENV", "THREADS_ENV", "ConvSig", "LatencyModel", "LatencyPlan", "LatencyTable", "TimedModel",
           "cache_dir", "choose_counts", "conv_onnx", "default_threads", "machine_fingerprint", "measure_latencies",
           "measure_latency", "plan_for_latency", "time_conv", "time_session"]
