"""The record a compressed model carries in ``gm.meta["fxprune"]``: what was done to it.

It is plain data (JSON-ready), so reports and the CLI can describe a model without re-analysis.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch.fx as fx

from .graph import ChannelGraph
from .spec import Spec


def group_rows(graph: ChannelGraph, keep: Mapping[int, np.ndarray] | None = None) -> list[dict[str, Any]]:
    """One row per group: id, kind, units, unit size, prunable, kept units and producers."""
    keep = keep or {}
    return [
        {
            "id": g.id,
            "kind": g.kind,
            "units": g.channels,
            "unit": g.unit,
            "prunable": g.prunable,
            "kept": int(np.asarray(keep[g.id]).sum()) if g.id in keep else g.channels,
            "producers": list(g.producers),
        }
        for g in graph.groups
    ]


def stamp(gm: fx.GraphModule, graph: ChannelGraph, keep: Mapping[int, np.ndarray], spec: Spec, **extra: Any) -> fx.GraphModule:
    """Attach the conversion record to ``gm`` and return it."""
    gm.meta["fxprune"] = {
        "stage": "converted",
        "method": spec.method,
        "spec": spec.to_dict(),
        "groups": group_rows(graph, keep),
        "keep": {int(gid): np.flatnonzero(units).tolist() for gid, units in keep.items()},
        **extra,
    }
    return gm


def keep_of(record: dict[str, Any], graph: ChannelGraph) -> dict[int, np.ndarray]:
    """The keep-set (bool per unit) stored in a record, for the graph it was made on."""
    keep = {}
    for gid, kept in record.get("keep", {}).items():
        units = np.zeros(graph.groups[int(gid)].channels, bool)
        units[kept] = True
        keep[int(gid)] = units
    return keep


def record_of(gm: fx.GraphModule) -> dict[str, Any] | None:
    """The conversion record of a model fxprune compressed, or None."""
    meta = getattr(gm, "meta", None)
    record = meta.get("fxprune") if isinstance(meta, dict) else None
    return record if isinstance(record, dict) and record.get("stage") == "converted" else None
