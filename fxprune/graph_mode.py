"""``train()`` / ``eval()`` for traced GraphModules.

torch.export bakes the module's mode into the graph (the ``training`` flag of ``batch_norm``, the
``train`` flag of ``dropout``) and its GraphModules refuse ``train()``. fxprune's graphs are
trained (ASSL fine-tunes them), so they get a ``train(mode)`` that rewrites those flags.
"""
from __future__ import annotations

import copy
import warnings
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.utils import _pytree as pytree

aten = torch.ops.aten
# op -> position of its "training" argument
MODE_ARGUMENT = {
    aten.batch_norm.default: 5,
    aten.dropout.default: 2,
    aten.feature_dropout.default: 2,
    aten.alpha_dropout.default: 2,
}


def set_training(gm: fx.GraphModule, mode: bool) -> fx.GraphModule:
    """Rewrite the mode flags of batch norm and dropout nodes and set ``gm.training``, in place."""
    changed = False
    for node in gm.graph.nodes:
        position = MODE_ARGUMENT.get(node.target)
        if position is not None and position < len(node.args) and node.args[position] != mode:
            args = list(node.args)
            args[position] = mode
            node.args = tuple(args)
            changed = True
    if changed:
        gm.recompile()
    nn.Module.train(gm, mode)
    return gm


def _train(self: fx.GraphModule, mode: bool = True) -> fx.GraphModule:
    return set_training(self, mode)


def _eval(self: fx.GraphModule) -> fx.GraphModule:
    return set_training(self, False)


class _PerSampleCall:
    """Runs a graph captured at a fixed batch on a multiple of that batch, one slice at a time.

    Some models compute the batch from other sizes in Python (SwinIR's ``window_reverse``:
    ``int(windows.shape[0] / (H * W / ws / ws))``); export must then fix the batch, and the graph
    would fail on any other. Samples of an image-restoration batch are independent in eval mode,
    so slicing the batch gives the same result (in train mode, batch norm statistics are per slice).
    ``GraphModule.recompile`` keeps a class's ``_wrapped_call`` once set, so this survives rewrites.
    """

    def __init__(self, inner: Any):
        self.inner = inner

    def __call__(self, obj: fx.GraphModule, *args: Any, **kwargs: Any) -> Any:
        fixed = fixed_batch(obj)
        images = [a for a in args if isinstance(a, torch.Tensor) and a.dim() == 4]
        if fixed is None or kwargs or not images:
            return self.inner(obj, *args, **kwargs)
        batch = images[0].shape[0]
        if batch == fixed or batch % fixed or any(a.shape[0] != batch for a in images):
            return self.inner(obj, *args, **kwargs)
        outputs = [
            self.inner(obj, *(a[start:start + fixed] if isinstance(a, torch.Tensor) and a.dim() == 4 else a
                              for a in args))
            for start in range(0, batch, fixed)
        ]
        return pytree.tree_map(lambda *parts: torch.cat(parts) if isinstance(parts[0], torch.Tensor) else parts[0],
                               outputs[0], *outputs[1:])


def fixed_batch(gm: nn.Module) -> int | None:
    """The batch a graph was captured at when export had to fix it and a multiple of it may run
    slice by slice (None when the batch is dynamic, or when slices would not give the model's result)."""
    info = getattr(gm, "meta", {}).get("fxprune_capture")
    if info is None or getattr(info, "dynamic_batch", True) or not getattr(info, "slices_match", True):
        return None
    shapes = [s for s in info.input_shapes if len(s) == 4]
    return shapes[0][0] if shapes else None


def _install(gm: fx.GraphModule) -> None:
    for name in ("train", "eval"):
        gm.__dict__.pop(name, None)  # torch.export's refusal lives on the instance
    cls = type(gm)
    if cls is not fx.GraphModule:  # every GraphModule instance has a class of its own
        cls.train, cls.eval = _train, _eval
        inner = vars(cls).get("_wrapped_call")
        if inner is not None and not isinstance(inner, _PerSampleCall):
            cls._wrapped_call = _PerSampleCall(inner)


def enable_train_eval(gm: fx.GraphModule, mode: bool | None = None) -> fx.GraphModule:
    """Give ``gm`` working ``train()`` / ``eval()`` (also on its deep copies), optionally set a mode.

    >>> import torch, fxprune
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).eval()
    >>> gm = fxprune.trace(net, torch.randn(1, 3, 8, 8))
    >>> gm.train().training, any(n.args[5] is True for n in gm.graph.nodes if "batch_norm" in str(n.target))
    (True, True)
    """
    _install(gm)
    hooks = gm.__dict__.setdefault("_deepcopy_hooks", [])
    if _install not in hooks:  # a deep copy gets a class of its own: install there too
        hooks.append(_install)
    if mode is not None:
        set_training(gm, mode)
    return gm


def copy_graph_module(gm: fx.GraphModule, memo: dict[int, Any] | None = None) -> fx.GraphModule:
    """A deep copy of ``gm`` (``memo`` as for :func:`copy.deepcopy`: objects to use instead of copies).

    Every deep copy of an exported graph goes through here: torch's ``Graph.__deepcopy__`` copies
    the graph's pytree calling convention without the memo, which rebuilds its ``LeafSpec`` through
    a constructor torch 2.13 deprecated, so each copy printed a ``FutureWarning`` the user cannot act
    on. Only that message is silenced, and only around the copy.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=r"`isinstance\(treespec, LeafSpec\)`")
        return copy.deepcopy(gm, {} if memo is None else memo)
