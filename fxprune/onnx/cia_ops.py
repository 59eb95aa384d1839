"""torch's list of CompositeImplicitAutograd ops, made into ``torch.ops`` entries once per process.

Each ``run_decompositions`` (the ONNX export runs one per file) collects the ops it may keep
whole, and for that walks the C++ dispatcher's ~1000 CompositeImplicitAutograd registrations
with a ``getattr`` each into ``torch.ops``, once per op namespace: ~50 walks per export, 0.1 s
of the 1.0 s export of a small EDSR. The walk only creates the ``torch.ops`` entries, which stay,
so :func:`materialized_cia_ops_once` repeats it only when the dispatcher lists an op it has not
walked yet (a custom op library loaded since).
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import torch

_WALKED: set[str] = set()


def _utils_module() -> Any | None:
    """torch's export utilities holding the walk; None where this torch lays it out otherwise."""
    try:
        from torch._export import utils
    except ImportError:
        return None
    return utils if callable(getattr(utils, "_materialize_cpp_cia_ops", None)) else None


def _registrations() -> list[str]:
    return torch._C._dispatch_get_registrations_for_dispatch_key("CompositeImplicitAutograd")


def _once(walk: Callable[[], None]) -> Callable[[], None]:
    def materialize() -> None:
        names = _registrations()
        if not _WALKED.issuperset(names):
            walk()
            _WALKED.update(names)

    return materialize


@contextlib.contextmanager
def materialized_cia_ops_once() -> Iterator[None]:
    """Within the block, torch walks its CompositeImplicitAutograd registrations into ``torch.ops``
    only while one of them has not been walked in this process. Outside it nothing changes.

    >>> import torch
    >>> from torch._export import utils
    >>> with materialized_cia_ops_once():
    ...     utils._materialize_cpp_cia_ops()
    ...     walked = set(_WALKED)
    >>> walked.issuperset(_registrations()), utils._materialize_cpp_cia_ops.__name__
    (True, '_materialize_cpp_cia_ops')
    """
    utils = _utils_module()
    if utils is None:
        yield
        return
    original = utils._materialize_cpp_cia_ops
    utils._materialize_cpp_cia_ops = _once(original)
    try:
        yield
    finally:
        utils._materialize_cpp_cia_ops = original
