"""Reading op arguments by position or keyword, as export records them."""
from __future__ import annotations

from typing import Any

import torch.fx as fx


def arg(node: fx.Node, position: int, name: str, default: Any = None) -> Any:
    """Argument ``name`` of ``node``, given positionally at ``position`` or as a keyword."""
    if position < len(node.args):
        return node.args[position]
    return node.kwargs.get(name, default)


def dims_arg(value: Any, ndim: int) -> list[int] | None:
    """A dim / list of dims argument normalized to non-negative ints (None means all dims)."""
    if value is None:
        return None
    if isinstance(value, int):
        value = [value]
    dims = [int(d) % ndim if ndim else 0 for d in value]
    return dims if dims else None
