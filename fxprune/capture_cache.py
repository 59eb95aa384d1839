"""A per-process cache of captured graphs, keyed on a module's structure and the input spec.

``torch.export`` dominates the time of :func:`fxprune.analyze`, ``compress`` and ``count_macs``,
and the CLI, tests and benchmarks capture the same model again and again. A captured graph only
depends on what the forward does, not on the weights' values, so the graph is stored with its
weights replaced by meta tensors and every hit returns a deep copy bound to clones of the caller's
*current* weights. A model whose structure cannot be described safely (hooks, attributes of
unknown types, non-tensor inputs) is never cached. The key holds the code, defaults and closures
of the functions the model's classes define, not module-level globals those functions read:
call :func:`clear` after changing such a global in place.
"""
from __future__ import annotations

import copy
import dataclasses
import enum
import types
from collections import OrderedDict
from typing import Any, Hashable

import torch
import torch.fx as fx
from torch import nn

from .graph_mode import copy_graph_module

_MAX_ENTRIES = 8
_ENTRIES: OrderedDict[Hashable, fx.GraphModule] = OrderedDict()
# Attributes every nn.Module has; what they hold is keyed separately (or makes the model uncacheable).
_MODULE_INTERNALS = {"training", "_parameters", "_buffers", "_non_persistent_buffers_set", "_modules"}
_HOOK_DICTS = (
    "_backward_pre_hooks", "_backward_hooks", "_forward_hooks", "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called", "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_state_dict_hooks",
    "_state_dict_pre_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks",
)
_PLAIN = (bool, int, float, complex, str, bytes, type(None), torch.dtype, torch.device, torch.Size)


class _Uncacheable(Exception):
    """The model holds something whose effect on the forward the key cannot describe."""


def clear() -> None:
    """Forget every cached capture (e.g. after monkeypatching a forward in place)."""
    _ENTRIES.clear()


def key_of(model: nn.Module, inputs: tuple[Any, ...], options: tuple[Any, ...]) -> Hashable | None:
    """The cache key of capturing ``model`` on ``inputs`` with ``options``; None when uncacheable.

    >>> import torch
    >>> conv, x = torch.nn.Conv2d(3, 4, 3), torch.randn(1, 3, 8, 8)
    >>> key_of(conv, (x,), ()) == key_of(torch.nn.Conv2d(3, 4, 3), (x,), ())  # weights do not count
    True
    >>> key_of(conv, (x,), ()) == key_of(torch.nn.Conv2d(3, 4, 5), (x,), ())
    False
    """
    if not all(isinstance(t, torch.Tensor) for t in inputs):
        return None
    try:
        return (_structure(model), tuple(_tensor_spec(t) for t in inputs), options, torch.is_grad_enabled())
    except _Uncacheable:
        return None


def holds(key: Hashable | None) -> bool:
    """Whether a capture is cached under ``key`` (no copy made)."""
    return key is not None and key in _ENTRIES


def lookup(key: Hashable | None, model: nn.Module) -> fx.GraphModule | None:
    """A copy of the cached graph bound to clones of ``model``'s current weights, or None."""
    if key is None or key not in _ENTRIES:
        return None
    _ENTRIES.move_to_end(key)
    cached = _ENTRIES[key]
    memo: dict[int, object] = {}
    for name, stored in _named_tensors(cached):
        source = _resolve(model, name)
        if source is None and stored.is_meta:
            return None  # cannot bind this weight: capture afresh
        value = (source if source is not None else stored).detach().clone()
        memo[id(stored)] = nn.Parameter(value, requires_grad=stored.requires_grad) if isinstance(stored, nn.Parameter) else value
    return copy_graph_module(cached, memo)


def store(key: Hashable | None, gm: fx.GraphModule, model: nn.Module) -> None:
    """Keep a copy of ``gm`` whose weights that come from ``model`` are meta tensors (no memory)."""
    if key is None:
        return
    memo: dict[int, object] = {}
    for name, tensor in _named_tensors(gm):
        if _resolve(model, name) is not None:
            meta = tensor.detach().to("meta")
            memo[id(tensor)] = nn.Parameter(meta, requires_grad=tensor.requires_grad) if isinstance(tensor, nn.Parameter) else meta
    _ENTRIES[key] = copy_graph_module(gm, memo)
    while len(_ENTRIES) > _MAX_ENTRIES:
        _ENTRIES.popitem(last=False)


def _named_tensors(gm: nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [*gm.named_parameters(remove_duplicate=False), *gm.named_buffers(remove_duplicate=False)]


def _resolve(model: nn.Module, name: str) -> torch.Tensor | None:
    """The tensor at dotted ``name`` in ``model`` (parameter, buffer or plain tensor attribute)."""
    prefix, _, attr = name.rpartition(".")
    try:
        module = model.get_submodule(prefix) if prefix else model
    except AttributeError:
        return None
    value = getattr(module, attr, None)
    return value if isinstance(value, torch.Tensor) else None


def _tensor_spec(t: torch.Tensor) -> tuple[Any, ...]:
    return (type(t), tuple(t.shape), t.dtype, t.device, t.requires_grad, t.is_contiguous())


def _structure(model: nn.Module) -> tuple[Any, ...]:
    """Classes, code, settings and tensor specs of every submodule, and which tensors are shared."""
    first_name: dict[int, str] = {}
    class_keys: dict[type, tuple[Any, ...]] = {}
    parts: list[Any] = []
    for name, module in model.named_modules(remove_duplicate=False):
        if any(getattr(module, hooks, None) for hooks in _HOOK_DICTS):
            raise _Uncacheable(f"{name} has hooks")
        tensors = []
        for attr, value in sorted(vars(module).items()):
            if attr in _MODULE_INTERNALS or attr in _HOOK_DICTS:
                continue
            tensors.append((attr, _value_key(value)))
        for attr, t in [*module._parameters.items(), *module._buffers.items()]:
            if t is not None:
                first_name.setdefault(id(t), f"{name}.{attr}")
            tensors.append((attr, None if t is None else (_tensor_spec(t), first_name[id(t)])))
        cls = type(module)
        if cls not in class_keys:
            class_keys[cls] = _class_key(cls)
        parts.append((name, class_keys[cls], module.training, tuple(sorted(module._non_persistent_buffers_set)),
                      tuple(tensors)))
    return tuple(parts)


def _class_key(cls: type) -> tuple[Any, ...]:
    """The class and every function it defines (below nn.Module): an edited forward misses."""
    functions = []
    for klass in cls.__mro__:
        if klass is nn.Module or klass is object:
            break
        for attr, value in sorted(vars(klass).items()):
            value = getattr(value, "__func__", value)  # staticmethod / classmethod
            if isinstance(value, types.FunctionType):
                functions.append((klass.__qualname__, attr, _function_key(value)))
    return (cls.__module__, cls.__qualname__, tuple(functions))


def _function_key(fn: types.FunctionType) -> tuple[Any, ...]:
    """Code, defaults and closure: two classes made by one factory differ only in their closures."""
    cells = tuple(_cell_key(cell) for cell in fn.__closure__ or ())
    return (fn.__code__, _value_key(fn.__defaults__), _value_key(fn.__kwdefaults__), cells)


def _cell_key(cell: types.CellType) -> Hashable:
    try:
        return _value_key(cell.cell_contents)
    except ValueError:  # a cell not filled yet
        return "empty"


def _value_key(value: Any) -> Hashable:
    """A hashable description of a non-parameter module attribute, or _Uncacheable."""
    if isinstance(value, _PLAIN):
        return (type(value), value)
    if isinstance(value, torch.Tensor):
        return ("tensor", _tensor_spec(value))
    if isinstance(value, (tuple, list)):
        return (type(value), tuple(_value_key(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((_value_key(k), _value_key(v)) for k, v in value.items()))
    if isinstance(value, (set, frozenset)):
        return (type(value), frozenset(_value_key(v) for v in value))
    if isinstance(value, types.FunctionType):
        return ("function", _function_key(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # a config object
        return (type(value), tuple((f.name, _value_key(getattr(value, f.name))) for f in dataclasses.fields(value)))
    if isinstance(value, (enum.Enum, types.BuiltinFunctionType, types.ModuleType, type)):
        return ("object", value)
    raise _Uncacheable(f"attribute of type {type(value).__name__}")
