"""Capture without guards on memory layout: a graph of a pad-and-crop forward runs at every size.

Restoration nets pad the input to a multiple and crop the output back (``y[..., :h, :w]``, the
NAFNet / Restormer / U-Net pattern). Under ``torch.export`` with symbolic height and width, the
crop is a strided view whose contiguity is "true only where the padding was zero"; whatever asks
for it during capture turns the answer at the example size into a guard, and the graph refuses
every size of the other kind (captured at 32×32 it fails at 37×51 with ``Guard failed:
(x.size()[3] + (4 + -1 * (x.size()[3] % 4)) % 4) ...``, and the other way round). Two askers:

- the tracer, recording each node's ``tensor_meta`` (its memory format): metadata only, so it is
  computed at the example's sizes without a guard (:func:`_unguarded_metadata`);
- the ops after the crop (an add, ``.contiguous()``, ``reshape``), which decide their output
  layout from it. A crop whose end is provably inside the tensor is therefore captured as
  ``F.pad`` with negative sizes (:class:`_CropsAsPads`), a new tensor of the same values with
  no view to ask about (the zoo's ``crop`` is written that way by hand).

A Python branch on the height or width (:func:`generic_size_branches`) is the third source: the
"skip the pad when there is nothing to pad" ``if pad_h or pad_w:`` of spandrel's
``pad_to_multiple``, or SwinIR's ``if self.input_resolution == x_size:`` (the attention mask kept
for the training size, else computed), guard on the example being a multiple of the window, or
being the training size. Where the example is such a special case, the capture takes the side a
generic size takes, which computes the same values at the special sizes too (a pad of zero, a
mask computed for the size). Other branches keep their guard; verification checks the result at
the example and at other sizes and names the one that fails.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import sys
from typing import Any, Iterator

import sympy
import torch
import torch.nn.functional as F
from torch.fx.experimental import proxy_tensor
from torch.fx.experimental.sym_node import SymNode
from torch.fx.experimental.symbolic_shapes import statically_known_true
from torch import nn
from torch.overrides import TorchFunctionMode

logger = logging.getLogger("fxprune.capture")


@contextlib.contextmanager
def without_layout_guards(model: nn.Module) -> Iterator[None]:
    """Inside, ``torch.export`` of ``model`` bakes no guard on the layout of a cropped tensor.

    ``torch.export`` sets aside the torch-function modes active when it is called, so the crop
    rewrite is entered inside ``model``'s forward (an instance attribute, removed on the way out).

    >>> import torch
    >>> class PadCrop(torch.nn.Module):
    ...     def forward(self, x):
    ...         h, w = x.shape[-2:]
    ...         padded = torch.nn.functional.pad(x, (0, (4 - w % 4) % 4, 0, (4 - h % 4) % 4))
    ...         return (padded * 2)[..., :h, :w] + x
    >>> net, shapes = PadCrop(), ({2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO},)
    >>> with without_layout_guards(net):
    ...     program = torch.export.export(net, (torch.randn(1, 3, 8, 8),), dynamic_shapes=shapes, strict=False)
    >>> x = torch.randn(1, 3, 37, 41)
    >>> torch.testing.assert_close(program.module()(x), net(x))
    """
    own = model.__dict__.get("forward")
    forward = model.forward

    @functools.wraps(forward)
    def cropping_as_padding(*args: Any, **kwargs: Any) -> Any:
        with _CropsAsPads():
            return forward(*args, **kwargs)

    model.forward = cropping_as_padding  # type: ignore[method-assign]
    try:
        with _unguarded_metadata():
            yield
    finally:
        if own is None:
            del model.forward
        else:
            model.forward = own  # type: ignore[method-assign]


@contextlib.contextmanager
def _unguarded_metadata() -> Iterator[None]:
    original = proxy_tensor._extract_tensor_metadata
    if getattr(original, "_fxprune_unguarded", False):  # nested: already in place
        yield
        return

    def unguarded(value: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        shape_env = getattr(getattr(value, "fake_mode", None), "shape_env", None)
        if shape_env is None:
            return original(value, *args, **kwargs)
        with shape_env.suppress_guards():
            return original(value, *args, **kwargs)

    unguarded._fxprune_unguarded = True  # type: ignore[attr-defined]
    proxy_tensor._extract_tensor_metadata = unguarded
    try:
        yield
    finally:
        proxy_tensor._extract_tensor_metadata = original


class _CropsAsPads(TorchFunctionMode):
    """``x[..., :h, :w]`` with a symbolic end becomes ``F.pad(x, (0, w - W, 0, h - H))``, and a pad
    to a multiple is given its amount in the form :func:`padded_to_multiple` writes."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.Tensor.__getitem__ and len(args) == 2 and not kwargs:
            pads = crop_pads(args[0], args[1])
            if pads is not None:
                return F.pad(args[0], pads)
        if func is F.pad and len(args) >= 2 and isinstance(args[0], torch.Tensor):
            args = (args[0], padded_to_multiple(args[0], args[1]), *args[2:])
        return func(*args, **kwargs)


def padded_to_multiple(x: torch.Tensor, pads: Any) -> Any:
    """``pads`` (``F.pad``'s sizes, last dim first) with each symbolic ``(m - H % m) % m`` of a size H
    of ``x`` written as ``(H + m - 1) // m * m - H``: the same number, but the padded size becomes
    ``m * ((H + m - 1) // m)``, which the capture's symbolic algebra sees is a multiple of m. Left
    as ``H + (m - H % m) % m``, every window ``view`` after it costs a slow proof (a tiny SwinIR's
    capture took 19 s instead of 6 s).

    >>> import torch
    >>> padded_to_multiple(torch.randn(1, 3, 8, 8), (0, 3, 0, 1))  # plain numbers stay as they are
    (0, 3, 0, 1)
    """
    if not isinstance(pads, (tuple, list)) or not any(isinstance(p, torch.SymInt) for p in pads):
        return pads
    out = list(pads)
    for i, amount in enumerate(pads):
        dim = x.dim() - 1 - i // 2
        size = x.shape[dim] if dim >= 0 else None
        if isinstance(amount, torch.SymInt) and isinstance(size, torch.SymInt):
            multiple = _pad_multiple(amount.node.expr, size.node.expr)
            if multiple is not None:
                out[i] = (size + multiple - 1) // multiple * multiple - size
    return type(pads)(out)


def _pad_multiple(amount: sympy.Expr, size: sympy.Expr) -> int | None:
    """m where ``amount`` is ``Mod(m - Mod(size, m), m)``, else None."""
    if type(amount).__name__ not in ("Mod", "PythonMod") or len(amount.args) != 2:
        return None
    inner, multiple = amount.args
    if not isinstance(multiple, sympy.Integer) or multiple <= 1:
        return None
    expected = multiple - type(amount)(size, multiple)
    return int(multiple) if inner == expected or sympy.expand(inner - expected) == 0 else None


def crop_pads(x: Any, index: Any) -> list[Any] | None:
    """The ``F.pad`` sizes (last dim first) that compute ``x[index]``, when ``index`` crops the
    end of spatial dims (dims 2 and later) to a symbolic size provably within ``x``; else None.

    A slice with a symbolic end is the only kind whose layout depends on the input size; a plain
    integer crop keeps the view (None).

    >>> import torch
    >>> crop_pads(torch.randn(1, 3, 8, 8), (Ellipsis, slice(None, 4), slice(None, 5))) is None
    True
    """
    if not isinstance(x, torch.Tensor) or x.dim() < 3:
        return None
    parts = list(index) if isinstance(index, tuple) else [index]
    if any(p is Ellipsis for p in parts):
        at = parts.index(Ellipsis)
        if parts.count(Ellipsis) > 1:
            return None
        parts[at:at + 1] = [slice(None)] * (x.dim() - len(parts) + 1)
    if len(parts) > x.dim() or not all(isinstance(p, slice) for p in parts):
        return None
    stops = [None] * x.dim()
    for dim, part in enumerate(parts):
        if part.start not in (None, 0) or part.step not in (None, 1):
            return None
        if part.stop is not None:
            if dim < 2 or not isinstance(part.stop, (int, torch.SymInt)):
                return None
            stops[dim] = part.stop
    if not any(isinstance(s, torch.SymInt) for s in stops):
        return None
    pads: list[Any] = []
    for dim in reversed(range(2, x.dim())):
        stop, size = stops[dim], x.shape[dim]
        if stop is None:
            pads += [0, 0]
            continue
        if not statically_known_true(stop >= 0) or not _within(stop, size):
            return None
        pads += [0, stop - size]
    return pads


def _within(stop: Any, size: Any) -> bool:
    """Whether ``stop <= size``, made known to the capture.

    Proving it is often beyond sympy (``4 + 4 * ((w + (4 - w % 4) % 4 - 1) // 4) >= w`` after two
    stride-2 convs and two transposed convs); left unknown, the slice's own clamp would guard on
    the example's case (``end == size`` where nothing was padded). Where it holds at the example,
    it is checked instead: a guard true at every size that pads and crops."""
    if statically_known_true(stop <= size):
        return True
    hints = [v if isinstance(v, int) else getattr(v.node, "hint", None) for v in (stop, size)]
    if None in hints or hints[0] > hints[1]:
        return False
    torch._check(stop <= size)
    return True


@contextlib.contextmanager
def generic_size_branches() -> Iterator[list[str]]:
    """Inside, a Python branch on an input's height or width takes the side that generic sizes take
    when the example is a special case of it; the list yielded names each such branch.

    "Generic" is two sizes per dim with no small factor (the 1st and 3rd primes above the example's
    height, the 2nd and 4th above its width), and the branch is switched only where both take one
    side and the example the other. The switched branch leaves no guard: the graph computes the
    generic side at every size, so the caller checks it against the model at the example (the
    special case). Only the model's own truth tests (``if``, ``and``/``or``, ``==`` of tuples)
    switch; ``int()`` of a size and torch's own checks (``torch._check``, the shape checks of
    ``view`` and the other ops, whose generic side is an error) keep their guards.

    >>> import torch
    >>> def pad_to_4(x):
    ...     pad = (4 - x.shape[-1] % 4) % 4
    ...     return torch.nn.functional.pad(x, (0, pad)) if pad else x
    >>> shapes = ({3: torch.export.Dim.AUTO},)
    >>> class Net(torch.nn.Module):
    ...     def forward(self, x):
    ...         return pad_to_4(x) * 2
    >>> with generic_size_branches() as switched:
    ...     program = torch.export.export(Net(), (torch.randn(1, 3, 8, 8),), dynamic_shapes=shapes, strict=False)
    >>> len(switched), program.module()(torch.randn(1, 3, 8, 7)).shape, program.module()(torch.randn(1, 3, 8, 8)).shape
    (1, torch.Size([1, 3, 8, 8]), torch.Size([1, 3, 8, 8]))
    """
    switched: list[str] = []
    original = SymNode.bool_
    if getattr(original, "_fxprune_generic", False):  # nested: the outer one records
        yield switched
        return

    def generic_bool(node: SymNode) -> bool:
        side = None if _asked_by_torch() else _generic_side(node)
        if side is None:
            return original(node)
        switched.append(str(node.expr))
        logger.debug("capture: the branch on %s takes the side generic sizes take (%s; the example's: %s)",
                     node.expr, side, not side)
        return side

    generic_bool._fxprune_generic = True  # type: ignore[attr-defined]
    SymNode.bool_ = generic_bool  # type: ignore[method-assign]
    try:
        yield switched
    finally:
        SymNode.bool_ = original  # type: ignore[method-assign]


_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
# the frames between a truth test and SymNode.bool_: SymBool.__bool__ and the sym-node plumbing
_SYMBOLIC_PLUMBING = (os.path.join(_TORCH_DIR, "__init__.py"), os.path.join(_TORCH_DIR, "fx", "experimental"))


def _asked_by_torch() -> bool:
    """Whether the truth test being made is torch's own (its Python op implementations and checks).

    A 2×2 window ``view`` at an even example size asks whether the size divides by the window;
    its generic side (a prime size) is the error branch, and a graph captured on it computes
    nothing the model computes (a window net was captured four times before this check)."""
    frame = sys._getframe(2)  # the caller of generic_bool
    while frame is not None and frame.f_code.co_filename.startswith(_SYMBOLIC_PLUMBING):
        frame = frame.f_back
    return frame is not None and frame.f_code.co_filename.startswith(_TORCH_DIR)


_SIZE_SOURCE = re.compile(r"\.size\(\)\[(\d+)\]$")


def size_dims(env: Any, symbol: Any) -> set[int]:
    """The input dims whose size ``symbol`` is, read from its sources (``L['x'].size()[2]`` gives 2)."""
    return {int(m.group(1)) for source in env.var_to_sources.get(symbol, ())
            if (m := _SIZE_SOURCE.search(source.name))}


def _generic_side(node: SymNode) -> bool | None:
    """The truth of ``node`` at both generic sizes where they agree and the example differs; else None."""
    env = node.shape_env
    if env is None or node.hint is None or env._suppress_guards_tls():
        return None
    points: list[dict[Any, int]] = [{}, {}]
    spatial = False
    for symbol in node.expr.free_symbols:
        hint = env.backed_var_to_val.get(symbol)
        if hint is None:  # unbacked (data-dependent): not a size of the input
            return None
        dims = size_dims(env, symbol) & {2, 3}
        if len(dims) == 1:
            spatial = True
            primes = _primes_above(int(hint))
            points[0][symbol], points[1][symbol] = (primes[0], primes[2]) if dims == {2} else (primes[1], primes[3])
        else:
            points[0][symbol] = points[1][symbol] = int(hint)
    if not spatial:
        return None
    sides = [node.expr.xreplace(point) for point in points]
    if not all(side in (sympy.true, sympy.false) for side in sides) or sides[0] != sides[1]:
        return None
    side = bool(sides[0])
    return side if side != bool(node.hint) else None


@functools.lru_cache(maxsize=256)
def _primes_above(size: int) -> tuple[int, int, int, int]:
    """The four smallest primes above ``size``.

    >>> _primes_above(16)
    (17, 19, 23, 29)
    """
    found: list[int] = []
    candidate = size + 1
    while len(found) < 4:
        if candidate > 1 and all(candidate % p for p in range(2, int(candidate ** 0.5) + 1)):
            found.append(candidate)
        candidate += 1
    return tuple(found)  # type: ignore[return-value]
