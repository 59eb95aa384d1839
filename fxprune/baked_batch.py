"""Stop a capture at a doubled batch as soon as the forward turns the batch into a Python number.

The capture exports at a batch of 2 to make the batch dynamic (:func:`fxprune.trace`). A forward
that computes an ``int`` from the batch (SwinIR's ``window_reverse``:
``int(windows.shape[0] / (H * W / ws**2))``) pins the batch to 2 with a guard, and that graph is
thrown away for the one captured at the caller's batch. Inside :func:`refusing_baked_batch` the
first such ``int`` raises :class:`BakedBatch` instead, so the doomed export stops where it meets
it rather than running to the end (a spandrel SwinIR's capture paid two full exports).
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import sympy
from torch.fx.experimental.sym_node import SymNode

from .layout_guards import size_dims


class BakedBatch(Exception):
    """The forward made a Python number that differs between batches 1, 2 and 3."""


def _pins_the_batch(node: SymNode) -> bool:
    """Whether ``int(node)`` at the example's values would differ at batch 1 or 3 (the other sizes
    and symbols at their example values). False where this torch's shape environment is laid out
    otherwise: the export then runs to its end, as it did before this check."""
    env = node.shape_env
    values_of = getattr(env, "backed_var_to_val", None)
    if env is None or node.hint is None or values_of is None or not hasattr(env, "var_to_sources"):
        return False
    batch, others = [], {}
    for symbol in node.expr.free_symbols:
        hint = values_of.get(symbol)
        if hint is None:
            return False
        if 0 in size_dims(env, symbol):
            batch.append(symbol)
        else:
            others[symbol] = int(hint)
    if not batch:
        return False
    here = node.expr.xreplace(others)
    values = [here.xreplace({symbol: size for symbol in batch}) for size in (1, 3)]
    if not all(isinstance(v, (sympy.Integer, sympy.Float, sympy.Rational)) for v in values):
        return False  # not a number at the other batches: let the export decide, as before this check
    return any(int(v) != int(node.hint) for v in values)


@contextlib.contextmanager
def refusing_baked_batch() -> Iterator[None]:
    """Within the block, converting a symbolic value that depends on the batch to a Python ``int``
    raises :class:`BakedBatch` (see the module docstring). Outside it nothing changes.

    >>> import torch
    >>> class Windows(torch.nn.Module):
    ...     def forward(self, x):
    ...         return x.view(-1, 4)[: int(x.shape[0] * 3 / 2)]
    >>> with refusing_baked_batch():
    ...     torch.export.export(Windows(), (torch.randn(2, 4),), dynamic_shapes=({0: torch.export.Dim.AUTO},))
    Traceback (most recent call last):
    ...
    fxprune.baked_batch.BakedBatch: the forward turns the batch into a Python number (3)
    """
    original = SymNode.guard_int

    def guard_int(node: SymNode, *args: Any, **kwargs: Any) -> int:
        if _pins_the_batch(node):
            raise BakedBatch(f"the forward turns the batch into a Python number ({node.hint})")
        return original(node, *args, **kwargs)

    SymNode.guard_int = guard_int  # type: ignore[method-assign]
    try:
        yield
    finally:
        SymNode.guard_int = original  # type: ignore[method-assign]
