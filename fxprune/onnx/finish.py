"""Finishing an exported ONNX file: readable names for the dynamic dims and the down-conversion
to the requested opset, with the rewrites ONNX's version converter leaves undone."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def finish_file(path: Path, inputs: tuple[torch.Tensor, ...], opset: int, external: bool) -> None:
    """Name the dynamic dims and, where the exporter stayed above the requested opset, retry the
    down-conversion on the optimized graph (the exporter converts before optimizing, and fails on
    ops such as Split and Pad that the optimizer may remove)."""
    import onnx
    import onnx.version_converter

    model = onnx.load(str(path), load_external_data=False)
    _rename_symbols(model, inputs)
    written = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), opset)
    if written < 18:
        _split_sizes_as_input(model)
    if written > opset and not external:
        try:
            converted = onnx.version_converter.convert_version(model, opset)
            _drop_default_noop_with_empty_axes(converted, opset)
            onnx.checker.check_model(converted)
        except Exception:  # noqa: BLE001 - no adapter for some op: keep the exporter's opset
            pass
        else:
            model = converted
    onnx.save(model, str(path))


def _split_sizes_as_input(model: Any) -> None:
    """Below opset 18, ``Split`` takes its sizes as an input; the exporter can still write the
    opset-18 ``num_outputs`` attribute, which the checker rejects. Where the outputs' sizes along
    the axis are known (channel splits always are), write them as the ``split`` input instead."""
    import onnx

    known = {v.name: v for v in list(model.graph.value_info) + list(model.graph.output)}
    for node in model.graph.node:
        if node.op_type != "Split" or node.domain not in ("", "ai.onnx"):
            continue
        attributes = {a.name: a for a in node.attribute}
        if "num_outputs" not in attributes or len(node.input) > 1:
            continue
        axis = attributes["axis"].i if "axis" in attributes else 0
        sizes = []
        for name in node.output:
            dims = known[name].type.tensor_type.shape.dim if name in known else []
            dim = dims[axis] if -len(dims) <= axis < len(dims) else None
            if dim is None or not dim.HasField("dim_value"):
                break
            sizes.append(dim.dim_value)
        if len(sizes) != len(node.output):
            continue  # left as written: the checker then names the node
        sizes_name = f"{node.name or node.output[0]}_sizes"
        model.graph.initializer.append(onnx.numpy_helper.from_array(np.asarray(sizes, np.int64), sizes_name))
        node.input.append(sizes_name)
        node.attribute.remove(attributes["num_outputs"])


def _drop_default_noop_with_empty_axes(model: Any, opset: int) -> None:
    """ONNX's 18 -> 17 adapter for Reduce* moves ``axes`` back to an attribute but keeps the
    opset-18 attribute ``noop_with_empty_axes``; at its default 0 it means what opset 17 does."""
    if opset >= 18:
        return
    for node in model.graph.node:
        if node.op_type.startswith("Reduce") and node.domain in ("", "ai.onnx"):
            for attribute in list(node.attribute):
                if attribute.name == "noop_with_empty_axes" and attribute.i == 0:
                    node.attribute.remove(attribute)


def _rename_symbols(model: Any, inputs: tuple[torch.Tensor, ...]) -> None:
    """Give the dynamic dims readable names: ``s77`` -> ``batch``, ``2*s53`` -> ``2*height``."""
    mapping: dict[str, str] = {}
    for k, value in enumerate(model.graph.input[: len(inputs)]):
        dims = value.type.tensor_type.shape.dim
        if len(dims) != 4:
            continue
        for axis, label in ((0, "batch"), (2, "height"), (3, "width")):
            symbol = dims[axis].dim_param
            if symbol and _SYMBOL.fullmatch(symbol) and symbol not in mapping:
                mapping[symbol] = label if k == 0 else f"{label}_{k}"
    if not mapping:
        return
    for value in list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info):
        if not value.type.HasField("tensor_type"):
            continue
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param:
                dim.dim_param = _SYMBOL.sub(lambda m: mapping.get(m.group(0), m.group(0)), dim.dim_param)
