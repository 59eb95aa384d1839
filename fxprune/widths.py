"""The channel widths of every conv and linear layer of a model: what a pruned state dict needs
beside its tensors to be rebuilt (pruned layers no longer have the architecture's uniform widths).

For a GraphModule the layers are read from the graph's conv/linear calls, so grouped and
transposed convs get their real in/out channels; for a plain module, from its ``Conv*d`` and
``Linear`` submodules.
"""
from __future__ import annotations

import functools
from typing import Any

import torch
import torch.fx as fx
from torch import nn

__all__ = ["layer_widths"]

aten = torch.ops.aten


def _conv_args(node: fx.Node) -> tuple[Any, bool, int] | None:
    """(weight node, transposed, groups) of a conv call, None for any other node."""
    target, args = node.target, node.args
    if target in (aten.conv1d.default, aten.conv2d.default, aten.conv3d.default):
        return args[1], False, int(args[6]) if len(args) > 6 else int(node.kwargs.get("groups", 1))
    if target == aten.convolution.default:
        return args[1], bool(args[6]), int(args[8])
    if target in (aten.conv_transpose1d.default, aten.conv_transpose2d.input, aten.conv_transpose3d.input):
        return args[1], True, int(args[6]) if len(args) > 6 else int(node.kwargs.get("groups", 1))
    return None


def _row(kind: str, weight: torch.Tensor, transposed: bool, groups: int) -> dict[str, Any]:
    if kind == "linear":
        return {"kind": "linear", "out_channels": int(weight.shape[0]), "in_channels": int(weight.shape[1])}
    if transposed:
        out, cin = int(weight.shape[1]) * groups, int(weight.shape[0])
    else:
        out, cin = int(weight.shape[0]), int(weight.shape[1]) * groups
    return {"kind": "conv_transpose" if transposed else "conv", "out_channels": out, "in_channels": cin,
            "groups": groups, "kernel_size": [int(k) for k in weight.shape[2:]]}


def layer_widths(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Per conv/linear layer (by the name of its weight without ``.weight``): kind, out/in channels,
    and for convs the groups and kernel size.

    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3, groups=8), nn.Flatten(), nn.Linear(8, 2))
    >>> widths = layer_widths(net)
    >>> widths["1"]["in_channels"], widths["1"]["groups"], widths["3"]
    (8, 8, {'kind': 'linear', 'out_channels': 2, 'in_channels': 8})
    """
    rows: dict[str, dict[str, Any]] = {}
    if isinstance(model, fx.GraphModule):
        for node in model.graph.nodes:
            if node.op != "call_function":
                continue
            conv = _conv_args(node)
            kind = "conv" if conv is not None else "linear" if node.target == aten.linear.default else None
            weight_node, transposed, groups = conv if conv is not None else (node.args[1] if kind else None, False, 1)
            if kind is None or not isinstance(weight_node, fx.Node) or weight_node.op != "get_attr":
                continue
            name = str(weight_node.target)
            weight = functools.reduce(getattr, name.split("."), model)  # a parameter, buffer or constant
            rows[name.removesuffix(".weight")] = _row(kind, weight, transposed, groups)
        return rows
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            rows[name] = _row("linear", module.weight, False, 1)
        elif isinstance(module, nn.modules.conv._ConvNd):
            rows[name] = _row("conv", module.weight, module.transposed, module.groups)
    return rows

