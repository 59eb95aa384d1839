"""The ``metadata_props`` fxprune writes into an ONNX file: what a runtime or converter needs to
know about the model without its Python code (architecture, scale, input channels and range, the
per-layer widths of a pruned model, the precision)."""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..checkpoint_files import checkpoint_info
from ..widths import layer_widths

__all__ = ["file_metadata"]


def _source(model: nn.Module) -> dict[str, Any] | None:
    """The checkpoint file's info: from the stage record of a compressed model, or from a module
    that :func:`fxprune.load_checkpoint` returned."""
    meta = getattr(model, "meta", None)
    record = meta.get("fxprune") if isinstance(meta, dict) else None
    source = record.get("source") if isinstance(record, Mapping) else None
    if isinstance(source, Mapping):
        return dict(source)
    info = checkpoint_info(model)
    return info.to_dict() if info is not None else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def file_metadata(model: nn.Module, inputs: tuple[torch.Tensor, ...], extra: Mapping[str, Any] | None = None
                  ) -> dict[str, str]:
    """The ONNX ``metadata_props`` of ``model`` as strings (JSON for lists and dicts); ``extra``
    (e.g. the precision) is added last and wins.

    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 3, 3))
    >>> props = file_metadata(net, (torch.zeros(1, 3, 8, 8),), {"precision": "float16"})
    >>> props["input_channels"], json.loads(props["widths"])["1"]["in_channels"], props["precision"]
    ('3', 8, 'float16')
    """
    props: dict[str, str] = {}
    first = next((t for t in inputs if t.dim() == 4), None)
    if first is not None:
        props["input_channels"] = str(first.shape[1])
    source = _source(model)
    if source is not None:
        for key in ("architecture", "scale", "input_channels", "output_channels", "input_range"):
            if source.get(key) is not None:
                props[key] = _text(source[key])
        props["source_file"] = str(source.get("path"))
    widths = layer_widths(model)
    if widths:
        props["widths"] = json.dumps(widths)
    for key, value in (extra or {}).items():
        props[str(key)] = _text(value)
    return props
