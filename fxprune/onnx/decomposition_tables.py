"""The decomposition bookkeeping torch's ONNX export redoes on every file, done once per process.

Each ``torch.onnx.export(..., dynamo=True)`` runs ``run_decompositions``, which first (on one core,
for a small EDSR whose whole export takes ~1.0 s):

- builds the table of ATen decompositions for the ops ONNX has no translation of (0.07 s);
- collects the CompositeImplicitAutograd ops it may keep whole, walking the C++ dispatcher's
  ~1000 registrations with a ``getattr`` each into ``torch.ops`` once per op namespace, ~50
  walks (0.1 s);
- splits the table into those ops and the rest (0.07 s).

All three depend only on the installed torch, the registered ops and the table's contents.
:func:`reused_decomposition_tables` keeps each result for the process: the walk only creates
``torch.ops`` entries (which stay) and is repeated when the dispatcher lists an op not walked yet
(a custom op library loaded since); the table and the split are keyed by what they are computed
from, and every export gets its own copies.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import torch

_WALKED: set[str] = set()
_TABLES: dict[frozenset, dict] = {}
_SPLITS: dict[tuple[frozenset, frozenset], tuple[dict, dict]] = {}


def _registrations() -> list[str]:
    return torch._C._dispatch_get_registrations_for_dispatch_key("CompositeImplicitAutograd")


def _walked_once(walk: Callable[[], None]) -> Callable[[], None]:
    def materialize() -> None:
        names = _registrations()
        if not _WALKED.issuperset(names):
            walk()
            _WALKED.update(names)

    return materialize


def _table_once(build: Callable[[set], dict]) -> Callable[[set], dict]:
    def table(onnx_ops: set) -> dict:
        key = frozenset(onnx_ops)
        if key not in _TABLES:
            _TABLES[key] = build(onnx_ops)
        return dict(_TABLES[key])

    return table


def _split_once(split: Callable[[dict], tuple[dict, dict]]) -> Callable[[dict], tuple[dict, dict]]:
    def split_table(table: dict) -> tuple[dict, dict]:
        try:
            key = (frozenset(table.items()), frozenset(_registrations()))
        except TypeError:  # a decomposition that cannot be a key: split this table afresh
            return split(table)
        if key not in _SPLITS:
            _SPLITS[key] = split(dict(table))
        cia, rest = _SPLITS[key]
        return dict(cia), dict(rest)

    return split_table


def _patch_points() -> list[tuple[Any, str, Callable[[Callable], Callable]]] | None:
    """(module, function name, wrapper) for each piece; None where this torch lays them out otherwise."""
    try:
        from torch._export import utils
        from torch.export import exported_program
        from torch.onnx._internal.exporter import _decomp
    except ImportError:
        return None
    points = [(utils, "_materialize_cpp_cia_ops", _walked_once),
              (_decomp, "create_onnx_friendly_decomposition_table", _table_once),
              (exported_program, "_split_decomp_table_to_cia_and_python_decomp", _split_once)]
    return points if all(callable(getattr(module, name, None)) for module, name, _ in points) else None


@contextlib.contextmanager
def reused_decomposition_tables() -> Iterator[None]:
    """Within the block, torch's decomposition table, its CompositeImplicitAutograd walk and its
    split of the table are computed once per process (see the module docstring). Outside it, and
    on a torch laid out otherwise, nothing changes.

    >>> import torch
    >>> from torch._export import utils
    >>> with reused_decomposition_tables():
    ...     utils._materialize_cpp_cia_ops()
    ...     walked = set(_WALKED)
    >>> walked.issuperset(_registrations()), utils._materialize_cpp_cia_ops.__name__
    (True, '_materialize_cpp_cia_ops')
    """
    points = _patch_points()
    if points is None:
        yield
        return
    originals = [getattr(module, name) for module, name, _ in points]
    for (module, name, once), original in zip(points, originals):
        setattr(module, name, once(original))
    try:
        yield
    finally:
        for (module, name, _), original in zip(points, originals):
            setattr(module, name, original)
