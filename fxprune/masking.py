"""The masked reference model: dropped units zeroed in every tensor of their group.

This is the model a pruning decision *means*; the sliced model must equal it.
"""
from __future__ import annotations

import operator
from typing import Mapping

import numpy as np
import torch
import torch.fx as fx

from .graph import ChannelGraph
from .graph_mode import copy_graph_module
from .kept_statistics import renormalize_statistics, restore_statistics


def apply_channel_mask(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero the masked-out channels; ``where`` (not a multiply) so inf/nan in dropped channels vanish."""
    return torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device))


def keep_all(graph: ChannelGraph) -> dict[int, np.ndarray]:
    """A keep-set that keeps every unit of every group."""
    return {g.id: np.ones(g.channels, bool) for g in graph.groups}


def check_keep(graph: ChannelGraph, keep: Mapping[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Validate a keep-set: known groups, one bool per unit, no fixed unit dropped, one unit kept."""
    checked = {}
    for gid, units in keep.items():
        if not 0 <= gid < len(graph.groups):
            raise KeyError(f"no group {gid}; the graph has {len(graph.groups)} groups")
        units = np.asarray(units, bool)
        group = graph.groups[gid]
        if units.shape != (group.channels,):
            raise ValueError(f"group {gid} has {group.channels} units, keep-set has shape {units.shape}")
        if (~units & ~graph.prunable_units(group)).any():
            raise ValueError(f"group {gid}: the keep-set drops units that are fixed ({', '.join(group.fixed_reasons)})")
        if not units.any():
            raise ValueError(f"group {gid}: the keep-set drops every unit")
        for member in group.members:
            if not units[graph.unit_index(group, member)].any():
                raise ValueError(
                    f"group {gid}: the keep-set drops every channel of {member.node} (dim {member.dim}); keep at least one"
                )
        checked[gid] = units
    return checked


def _mask_tensors(graph: ChannelGraph, keep: Mapping[int, np.ndarray]) -> dict[tuple[str, int], torch.Tensor]:
    """For each (node, output index) a bool mask broadcastable to the tensor."""
    per_dim: dict[tuple[str, int], dict[int, np.ndarray]] = {}
    for gid, units in keep.items():
        group = graph.groups[gid]
        for member in group.members:
            kept = units[graph.unit_index(group, member)]
            if kept.all():
                continue
            per_dim.setdefault((member.node, member.index), {})[member.dim] = kept
    nodes = {n.name: n for n in graph.gm.graph.nodes}
    masks = {}
    for (name, index), dims in per_dim.items():
        val = nodes[name].meta["val"]
        rank = (val[index] if isinstance(val, (list, tuple)) else val).dim()
        mask = torch.ones([1] * rank, dtype=torch.bool)
        for dim, kept in dims.items():
            shape = [1] * rank
            shape[dim] = len(kept)
            mask = mask & torch.from_numpy(kept).reshape(shape)
        masks[(name, index)] = mask
    return masks


MASK_BUFFER = "_fxprune_mask_"


def insert_channel_masks(
    gm: fx.GraphModule, graph: ChannelGraph, keep: Mapping[int, np.ndarray], activations_only: bool = False
) -> fx.GraphModule:
    """Zero the dropped units of every member tensor of ``gm`` (a graph with ``graph``'s node names), in place.

    ``activations_only`` leaves parameter nodes alone: every parameter acts through an activation
    of the same group, so masking activations is enough, and it leaves weights free to be
    re-parametrized (ASSL's gates normalize whole filters). With ``graph.norm == "renormalize"``
    the statistic ops that read a masked dim then skip the masked channels
    (:func:`fxprune.kept_statistics.renormalize_statistics`), so the masked model means what that
    mode's sliced one computes.
    """
    masks = _mask_tensors(graph, check_keep(graph, keep))
    nodes = {n.name: n for n in gm.graph.nodes}
    for k, ((name, index), mask) in enumerate(masks.items()):
        node = nodes[name]
        if (activations_only and node.op == "get_attr") or _written_in_place(node):
            continue
        targets = [node]
        if isinstance(node.meta.get("val"), (list, tuple)):
            targets = [u for u in node.users if u.target is operator.getitem and u.args[1] == index]
        buffer = f"{MASK_BUFFER}{k}"
        gm.register_buffer(buffer, mask.to(_device_of(gm)))
        for target in targets:
            with gm.graph.inserting_after(target):
                mask_node = gm.graph.get_attr(buffer)
            with gm.graph.inserting_after(mask_node):
                masked = gm.graph.call_function(apply_channel_mask, (target, mask_node))
            target.replace_all_uses_with(masked, delete_user_cb=lambda user: user is not masked)
            masked.meta = dict(target.meta)
    if graph.norm == "renormalize":
        renormalize_statistics(gm, is_channel_mask)
    gm.graph.lint()
    gm.recompile()
    return gm


def is_channel_mask(node: fx.Node) -> bool:
    """Whether ``node`` applies a channel mask (its second argument) that :func:`insert_channel_masks` put there."""
    return node.op == "call_function" and node.target is apply_channel_mask


def _written_in_place(node: fx.Node) -> bool:
    """Whether ``node`` is a view that an op writes into (``x[:, :k].copy_(src)``). Its base is in
    the same group and masked already; a mask on the view would be a copy, and the write would
    miss the tensor the model reads afterwards."""
    returns = getattr(getattr(node.target, "_schema", None), "returns", ())
    if not any(r.alias_info is not None and not r.alias_info.is_write for r in returns):
        return False
    for user in node.users:
        schema = getattr(user.target, "_schema", None)
        if schema is None:
            continue
        for position, argument in enumerate(schema.arguments):
            given = user.args[position] if position < len(user.args) else user.kwargs.get(argument.name)
            if given is node and argument.alias_info is not None and argument.alias_info.is_write:
                return True
    return False


def remove_channel_masks(gm: fx.GraphModule) -> fx.GraphModule:
    """Undo :func:`insert_channel_masks`, in place."""
    restore_statistics(gm)
    for node in list(gm.graph.nodes):
        if is_channel_mask(node):
            mask_node = node.args[1]
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)
            if not mask_node.users:
                gm.graph.erase_node(mask_node)
    for name in [b for b, _ in gm.named_buffers() if b.startswith(MASK_BUFFER)]:
        delattr(gm, name)
    gm.graph.lint()
    gm.recompile()
    return gm


def _device_of(gm: fx.GraphModule) -> torch.device:
    tensor = next(iter(gm.parameters()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def masked_model(graph: ChannelGraph, keep: Mapping[int, np.ndarray]) -> fx.GraphModule:
    """A copy of the traced model in which every dropped unit is zero in every tensor of its group."""
    return insert_channel_masks(copy_graph_module(graph.gm), graph, keep)
