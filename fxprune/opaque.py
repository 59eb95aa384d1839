"""Opaque leaves: a submodule torch.export cannot capture runs as one custom op instead.

When capture fails inside a submodule that maps one tensor to one tensor, :func:`fxprune.trace`
can retry with that submodule hidden behind ``torch.ops.fxprune.opaque``: the graph calls the
real submodule at run time, export only sees the output shape recorded on the example input
(so the retry is static in height and width), and the coupling analysis fixes every channel the
op touches and names the module in a diagnostic (the rule is
:func:`fxprune.coupling.rules_elementwise.opaque_leaf`). Nothing is guessed about its insides.
"""
from __future__ import annotations

import copy
import itertools
from typing import Any

import torch
from torch import nn

_MODULES: dict[str, nn.Module] = {}
_KEYS = itertools.count()


@torch.library.custom_op("fxprune::opaque", mutates_args=())
def opaque(x: torch.Tensor, key: str, out_shape: list[int]) -> torch.Tensor:
    """Run the registered submodule ``key`` on ``x``."""
    return _MODULES[key](x).clone()


@opaque.register_fake
def _opaque_shape(x: torch.Tensor, key: str, out_shape: list[int]) -> torch.Tensor:
    return x.new_empty(out_shape)


class OpaqueLeaf(nn.Module):
    """Stands in for a submodule during capture; ``name`` is its qualified name in the model."""

    def __init__(self, module: nn.Module, name: str, out_shape: torch.Size):
        super().__init__()
        self.key = f"{name}#{next(_KEYS)}"
        self.name = name
        self.out_shape = list(out_shape)
        _MODULES[self.key] = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.fxprune.opaque(x, self.key, self.out_shape)


def record_io(model: nn.Module, name: str, inputs: tuple[Any, ...]) -> torch.Size | None:
    """Output shape of submodule ``name`` on the example inputs, if it maps one tensor to one tensor."""
    model = copy.deepcopy(model)  # the capture copy shares weights with the user's model
    module = model.get_submodule(name)
    seen: list[torch.Size | None] = []

    def hook(_, args, output):
        single = len(args) == 1 and isinstance(args[0], torch.Tensor) and isinstance(output, torch.Tensor)
        seen.append(output.shape if single else None)

    handle = module.register_forward_hook(hook)
    try:
        with torch.no_grad():
            model(*[t.clone() if isinstance(t, torch.Tensor) else t for t in inputs])
    except Exception:  # noqa: BLE001 - the eager forward itself fails: no fallback possible
        return None
    finally:
        handle.remove()
    return seen[0] if len(seen) == 1 else None  # a module called twice may see other shapes


def replace_with_leaf(model: nn.Module, name: str, out_shape: torch.Size) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, OpaqueLeaf(getattr(parent, child), name, out_shape))
