"""The last line of defence: a compressed model is run against its masked reference before it is returned.

Every public path that hands back a sliced model (``compress``, ``convert``) calls
:func:`verify_sliced`. It runs the result and the reference (the analyzed graph with the dropped
channels zeroed) in eval mode on clones of the example input, and once more at another batch and
H/W where the capture is dynamic. Only on a failure are both graphs re-run node by node, to name
the first op whose (kept) channels diverge, so the error points at a node and a group instead of
at the model's output.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.fx as fx
from torch import nn
from torch.utils import _pytree as pytree

from .errors import VerificationError
from .eval_mode import eval_mode
from .graph import ChannelGraph
from .graph_mode import copy_graph_module
from .masking import insert_channel_masks, is_channel_mask
from .selection import kept_indices
from .record import group_rows
from .trace import as_inputs

# Allowed error relative to the peak magnitude of the compared tensor: sliced and masked graphs
# differ only in summation order (float32 on CPU: ~1e-6 relative); TF32/half on GPUs need more.
RELATIVE_TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-8, torch.float16: 1e-2, torch.bfloat16: 3e-2}
CUDA_FLOAT32_TOLERANCE = 5e-3


@dataclass(frozen=True)
class _Divergence:
    node: str
    op: str
    max_error: float
    tolerance: float
    failure: str | None = None  # the exception, when the node raised instead


def verify_sliced(
    result: fx.GraphModule,
    reference: fx.GraphModule,
    graph: ChannelGraph,
    keep: Mapping[int, np.ndarray],
    example_inputs: Any = None,
    *,
    where: str = "compress",
) -> None:
    """Raise :class:`~fxprune.VerificationError` unless ``result`` computes what ``reference`` masked by ``keep`` does.

    ``reference`` is a graph with ``graph``'s node names (the analyzed model, or ASSL's gated
    model); when it carries no channel masks yet, a masked copy is made. Without
    ``example_inputs``, seeded random inputs of the captured shapes are used. Both models are run
    in eval mode and left in the mode they came in.

    >>> import torch, fxprune
    >>> from fxprune.models import build
    >>> from fxprune.passes.slice_channels import slice_channels
    >>> from fxprune.selection import plan_keep
    >>> x = torch.randn(1, 3, 16, 16)
    >>> graph = fxprune.analyze(build("edsr", blocks=2, channels=16), x)
    >>> keep = plan_keep(graph, fxprune.Spec(ratio=0.5, round_to=1))
    >>> small = slice_channels(graph, keep)
    >>> verify_sliced(small, graph.gm, graph, keep, (x,))           # passes silently
    >>> with torch.no_grad():
    ...     _ = small.get_parameter("head.weight").mul_(1.5)
    >>> verify_sliced(small, graph.gm, graph, keep, (x,))
    Traceback (most recent call last):
    ...
    fxprune.errors.VerificationError: fxprune.compress: ... node 'conv2d' (aten.conv2d.default) in group 0 differs by ...
    """
    if keep and not _has_masks(reference):
        reference = insert_channel_masks(copy_graph_module(reference), graph, keep, activations_only=True)
    inputs = as_inputs(example_inputs) if example_inputs is not None else _random_inputs(graph.gm)
    if inputs is None:
        warnings.warn(f"fxprune.{where}: the model takes non-tensor inputs, so the result could not be checked "
                      "against its masked reference; call fxprune.verify.verify_sliced with an example input",
                      stacklevel=3)
        return
    sizes, fallback = _other_sizes(graph.gm, inputs)
    with eval_mode(result, reference), torch.no_grad():
        _check_first_running(result, reference, graph, keep, [inputs], where, required=True)
        checked = [_check_first_running(result, reference, graph, keep, [other], where) for other in sizes]
        if fallback and not any(checked):
            _check_first_running(result, reference, graph, keep, fallback, where)


def _check_first_running(result: fx.GraphModule, reference: fx.GraphModule, graph: ChannelGraph,
                         keep: Mapping[int, np.ndarray], alternatives: list[tuple[Any, ...]], where: str,
                         required: bool = False) -> bool:
    """Compare result and reference on the first of ``alternatives`` the reference runs on; False
    when it runs on none (a size the model does not support). ``required``: the reference must run."""
    for batch in alternatives:
        try:
            expected = _leaves(reference(*_clones(batch)))
        except Exception as error:  # noqa: BLE001 - reported below, or the size is not supported
            if required:
                _fail_reference(reference, graph, keep, batch, where, error)
            continue
        try:
            actual = _leaves(result(*_clones(batch)))
            worst = _worst(actual, expected)
        except Exception as error:  # noqa: BLE001 - localized below
            worst = (math.inf, 0.0, error)
        if worst[2] is not None or worst[0] > worst[1]:
            _fail(result, reference, graph, keep, batch, where, worst)
        return True
    return False


def verify_sizes(original: nn.Module, model: nn.Module, example_inputs: Any, *, where: str = "prepare") -> None:
    """Raise :class:`~fxprune.VerificationError` naming the first size where ``original`` runs and
    ``model`` (its captured, prepared or compressed graph) does not, or gives outputs of another
    shape, or other values where the two agree on the example.

    The sizes are the example, the example + (5, 3), 37×41 (prime) and 48×48 (a multiple of every
    usual window): a graph that baked a size into a guard (a padding multiple, a window) fails at
    one of them. Only the example is checked
    when the graph's height and width are static. Both models run in eval mode and are left in
    the mode they came in. Called before training, so that a run never trains and then dies.

    >>> import torch
    >>> class Crops(torch.nn.Module):
    ...     def forward(self, x):
    ...         return x[..., :32, :32] * 2      # runs at any size of at least 32×32
    >>> class Graph(Crops):
    ...     meta = {}
    ...     def forward(self, x):
    ...         if x.shape[-1] != 32:
    ...             raise AssertionError("Guard failed: x.size()[3] == 32")
    ...         return super().forward(x)
    >>> verify_sizes(Crops(), Crops(), torch.randn(1, 3, 32, 32))        # passes silently
    >>> verify_sizes(Crops(), Graph(), torch.randn(1, 3, 32, 32))
    Traceback (most recent call last):
    ...
    fxprune.errors.VerificationError: fxprune.prepare: the model runs on inputs of shape 1×3×37×35 but the graph ...
    """
    inputs = as_inputs(example_inputs)
    if not all(isinstance(t, torch.Tensor) for t in inputs):
        return
    static = isinstance(model, fx.GraphModule) and not any(d & {2, 3} for d in _dynamic_dims(model))
    generator = torch.Generator().manual_seed(2)
    others = [] if static else [tuple(_resized(t, {0, 2, 3}, size, 0, generator) for t in inputs) for size in (_odd, _prime, _composite)]
    with eval_mode(original, model), torch.no_grad():
        same = True
        for run, batch in enumerate([inputs, *others]):
            try:
                expected = _leaves(original(*_clones(batch)))
            except Exception:  # noqa: BLE001 - the original does not run at this size: nothing to hold the graph to
                continue
            try:
                error, tolerance, _ = _worst(_leaves(model(*_clones(batch))), expected)
            except Exception as failure:  # noqa: BLE001 - reported with the size and the failing node
                _fail_size(model, batch, where, failure)
            if run == 0:
                same = error <= tolerance
            elif error > tolerance and (same or math.isinf(error)):
                what = "outputs of another shape" if math.isinf(error) else f"outputs that differ by {error:.3g}"
                _fail_size(model, batch, where, None, f"{what} (tolerance {tolerance:.3g}); at the example they agree"
                           if same else what)


def _fail_size(model: nn.Module, inputs: tuple[Any, ...], where: str, failure: Exception | None,
               what: str | None = None) -> None:
    node = _failing_node(model, inputs) if failure is not None and isinstance(model, fx.GraphModule) else None
    shapes = _shapes(inputs)
    if failure is not None:
        what = f"raises{_at(node)} {type(failure).__name__}: {_first_line(failure)}"
    raise VerificationError(
        f"fxprune.{where}: the model runs on inputs of shape {_shape_text(shapes)} but the graph {what}; stopped "
        "before any training\nhint: the capture baked a size into the graph (a Python branch on a size, or a size "
        "turned into a number); keep sizes symbolic in the forward (x.shape[-1] without int(), crops as "
        "x[..., :h, :w]), or pass an example of the size you will run",
        node=None if node is None else node.name, op=None if node is None else _op_name(node),
        max_error=math.inf if failure is not None else None, input_shapes=shapes,
    ) from failure


def _has_masks(gm: fx.GraphModule) -> bool:
    return any(is_channel_mask(n) for n in gm.graph.nodes)


def _clones(inputs: Sequence[Any]) -> tuple[Any, ...]:
    """Fresh copies: a forward that writes its input in place must not change the next run's input."""
    return tuple(t.clone() if isinstance(t, torch.Tensor) else t for t in inputs)


def _leaves(output: Any) -> list[torch.Tensor]:
    return [t for t in pytree.tree_leaves(output) if isinstance(t, torch.Tensor)]


def _tolerance(expected: torch.Tensor) -> float:
    if not expected.is_floating_point():
        return 0.0
    relative = RELATIVE_TOLERANCE.get(expected.dtype, 1e-4)
    if expected.is_cuda and expected.dtype == torch.float32:
        relative = CUDA_FLOAT32_TOLERANCE
    finite = expected[torch.isfinite(expected)]
    peak = float(finite.abs().max()) if finite.numel() else 0.0
    return relative * max(peak, 1e-6)


def _error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    if actual.shape != expected.shape:
        return math.inf
    a, b = actual.double(), expected.double()
    diff = torch.where(a == b, torch.zeros((), dtype=a.dtype, device=a.device), (a - b).abs())
    both_nan = torch.isnan(a) & torch.isnan(b)
    diff = torch.where(both_nan, torch.zeros_like(diff), torch.nan_to_num(diff, nan=math.inf))
    return float(diff.max()) if diff.numel() else 0.0


def _worst(actual: list[torch.Tensor], expected: list[torch.Tensor]) -> tuple[float, float, Exception | None]:
    """(largest error, its tolerance, None) over the outputs, picking the output most over its tolerance."""
    if len(actual) != len(expected):
        return math.inf, 0.0, None
    worst = (0.0, 1.0, None)
    for a, b in zip(actual, expected):
        error, tol = _error(a, b), _tolerance(b)
        if error - tol > worst[0] - worst[1]:
            worst = (error, tol, None)
    return worst


# ---------------------------------------------------------------------------- inputs
def _random_inputs(gm: fx.GraphModule) -> tuple[torch.Tensor, ...] | None:
    """Seeded inputs of the captured shapes (``convert`` has no example input at hand); None when
    the graph takes inputs other than tensors, whose values the capture did not record."""
    shapes = gm.meta["fxprune_capture"].input_shapes
    vals = [n.meta.get("val") for n in gm.graph.nodes if n.op == "placeholder"]
    if len(vals) != len(shapes) or not all(isinstance(v, torch.Tensor) for v in vals):
        return None
    device = next((p.device for p in gm.parameters()), torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    return tuple(
        (torch.rand(shape, generator=generator, dtype=val.dtype) if val.is_floating_point()
         else torch.zeros(shape, dtype=val.dtype)).to(device)
        for shape, val in zip(shapes, vals)
    )


def _dynamic_dims(gm: fx.GraphModule) -> list[set[int]]:
    """Per tensor placeholder, the dims the capture left symbolic."""
    dims = []
    for node in gm.graph.nodes:
        val = node.meta.get("val")
        if node.op == "placeholder" and isinstance(val, torch.Tensor):
            dims.append({d for d, size in enumerate(val.shape) if not isinstance(size, int)})
    return dims


ODD_STEP = (5, 3)  # added to the example's height and width: an odd size that breaks "multiple of 2, 4, 8"
PRIME_SIZE = (37, 41)  # a prime height and width: no multiple of anything divides them
# a multiple of 2, 3, 4, 6, 8, 12, 16 and 24: a graph captured at a size that is no multiple of its
# window (its pad-to-multiple branch baked in as "pad > 0") fails here
COMPOSITE_SIZE = (48, 48)


def _fresh(x: torch.Tensor, shape: list[int], generator: torch.Generator) -> torch.Tensor:
    """New seeded values of ``shape`` with ``x``'s mean and spread (``x`` itself when nothing changes)."""
    if shape == list(x.shape) or not x.is_floating_point():
        return x
    noise = torch.randn(shape, generator=generator, dtype=x.dtype).to(x.device)
    return x.mean() + x.std().nan_to_num(1.0) * noise if x.numel() > 1 else noise


def _resized(x: torch.Tensor, dims: set[int], size: Callable[[int, int], tuple[int, int]], more_batch: int,
             generator: torch.Generator) -> torch.Tensor:
    """``x`` with ``more_batch`` more samples and height/width ``size(h, w)`` along its symbolic dims."""
    shape = list(x.shape)
    if x.dim() == 4:
        if 0 in dims:
            shape[0] += more_batch
        h, w = size(shape[2], shape[3])
        for d, new in ((2, h), (3, w)):
            if d in dims and new >= 2:
                shape[d] = new
    return _fresh(x, shape, generator)


def _scaled(factor: float) -> Callable[[int, int], tuple[int, int]]:
    def size(h: int, w: int) -> tuple[int, int]:
        return tuple(int(s * factor) if s * factor == int(s * factor) else s for s in (h, w))  # type: ignore[return-value]
    return size


def _odd(h: int, w: int) -> tuple[int, int]:
    return h + ODD_STEP[0], w + ODD_STEP[1]


def _prime(h: int, w: int) -> tuple[int, int]:
    return PRIME_SIZE


def _composite(h: int, w: int) -> tuple[int, int]:
    return COMPOSITE_SIZE


def _other_sizes(gm: fx.GraphModule, inputs: tuple[Any, ...]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Where the graph is dynamic, the inputs at the sizes that break a size baked into a guard:
    the example + (5, 3) at another batch, 37×41 (prime) and 48×48 (composite), each checked where the reference
    runs at it; and a fallback for when the reference runs at neither (a model that needs a
    multiple of its window and does not pad): half the height/width, or double it where half
    does not run (doubling keeps every divisibility: windows, pixel unshuffle, U-Net levels)."""
    dims = _dynamic_dims(gm)
    generator = torch.Generator().manual_seed(1)

    def at(size: Callable[[int, int], tuple[int, int]], more_batch: int) -> tuple[Any, ...] | None:
        position = iter(dims)
        other = tuple(_resized(t, next(position, set()), size, more_batch, generator) if isinstance(t, torch.Tensor)
                      else t for t in inputs)
        changed = any(isinstance(a, torch.Tensor) and a.shape != b.shape for a, b in zip(other, inputs))
        return other if changed else None

    # batch + 2: 1 becomes 3, neither the example's batch nor the batch of 2 used for capture
    sizes = [other for other in (at(_odd, 2), at(_prime, 0), at(_composite, 0)) if other is not None]
    fallback = [other for other in (at(_scaled(0.5), 2), at(_scaled(2.0), 2)) if other is not None]
    return sizes, fallback


# ---------------------------------------------------------------------------- localization
class _Recorder(fx.Interpreter):
    """Runs a graph and keeps every tensor activation by node name."""

    def __init__(self, gm: fx.GraphModule):
        super().__init__(gm, garbage_collect_values=False)
        self.values: dict[str, torch.Tensor] = {}
        self.failed: tuple[fx.Node, Exception] | None = None

    def run_node(self, n: fx.Node) -> Any:
        try:
            value = super().run_node(n)
        except Exception as error:
            self.failed = (n, error)
            raise
        if isinstance(value, torch.Tensor):
            # a mask node's value stands for the node it masks: a unit kept by the slicing but
            # dropped by the reference then shows where it was dropped, not where it is first read
            masked = is_channel_mask(n)
            self.values[n.args[0].name if masked else n.name] = value
        return value


class _Diverged(Exception):
    pass


class _Comparer(fx.Interpreter):
    """Runs the sliced graph and stops at the first node that disagrees with the reference's kept channels."""

    def __init__(self, gm: fx.GraphModule, reference: dict[str, torch.Tensor], kept: dict[tuple[str, int, int], np.ndarray]):
        super().__init__(gm)
        self.reference, self.kept = reference, kept
        self.found: _Divergence | None = None

    def run_node(self, n: fx.Node) -> Any:
        try:
            value = super().run_node(n)
        except Exception as error:
            self.found = _Divergence(n.name, _op_name(n), math.inf, 0.0, f"{type(error).__name__}: {error}")
            raise _Diverged() from error
        expected = self.reference.get(n.name)
        if n.op in ("call_function", "call_method", "call_module") and isinstance(value, torch.Tensor) and expected is not None:
            expected = self._gather(n.name, expected)
            if expected.shape == value.shape:
                error, tol = _error(value, expected), _tolerance(expected)
                if error > tol:
                    self.found = _Divergence(n.name, _op_name(n), error, tol)
                    raise _Diverged()
        return value

    def _gather(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        for (node, index, dim), indices in self.kept.items():
            if node == name and index == 0 and dim < tensor.dim() and tensor.shape[dim] > len(indices):
                tensor = tensor.index_select(dim, torch.as_tensor(indices, dtype=torch.long, device=tensor.device))
        return tensor


def _op_name(node: fx.Node) -> str:
    target = node.target
    if isinstance(target, str):
        return target
    return str(target) if isinstance(target, torch._ops.OpOverload) else getattr(target, "__name__", str(target))


def _placeholder_args(inputs: tuple[Any, ...]) -> list[Any]:
    return pytree.tree_leaves(_clones(inputs))


def _locate(result: fx.GraphModule, reference: fx.GraphModule, graph: ChannelGraph,
            keep: Mapping[int, np.ndarray], inputs: tuple[Any, ...]) -> _Divergence | None:
    recorder = _Recorder(reference)
    with contextlib.suppress(Exception):
        recorder.run(*_placeholder_args(inputs))
    comparer = _Comparer(result, recorder.values, kept_indices(graph, keep))
    with contextlib.suppress(Exception):
        comparer.run(*_placeholder_args(inputs))
    return comparer.found


def _groups_of(graph: ChannelGraph, gm: fx.GraphModule, name: str) -> tuple[int, ...]:
    """The groups a node's output channels belong to, else those of its inputs."""
    own = tuple(sorted({g.id for g in graph.groups for m in g.members if m.node == name}))
    if own:
        return own
    node = next((n for n in gm.graph.nodes if n.name == name), None)
    inputs = [i.name for i in node.all_input_nodes] if node is not None else []
    return tuple(sorted({g.id for g in graph.groups for m in g.members if m.node in inputs}))


def _shapes(inputs: tuple[Any, ...]) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(t.shape) for t in inputs if isinstance(t, torch.Tensor))


def _fail(result: fx.GraphModule, reference: fx.GraphModule, graph: ChannelGraph, keep: Mapping[int, np.ndarray],
          inputs: tuple[Any, ...], where: str, worst: tuple[float, float, Exception | None]) -> None:
    shapes = _shapes(inputs)
    found = _locate(result, reference, graph, keep, inputs)
    if found is None:  # every node agreed within its tolerance, only the outputs did not
        found = _Divergence("output", "output", worst[0], worst[1],
                            None if worst[2] is None else f"{type(worst[2]).__name__}: {worst[2]}")
    groups = _groups_of(graph, result, found.node)
    in_groups = f" in group{'s' if len(groups) > 1 else ''} {', '.join(map(str, groups))}" if groups else ""
    what = (f"raises {found.failure.splitlines()[0] if found.failure else ''}" if found.failure
            else f"differs by {found.max_error:.3g} (tolerance {found.tolerance:.3g})")
    producers = sorted({p for gid in groups for p in graph.groups[gid].producers})
    hint = (f"skip the group with Spec(overrides={{{producers[0]!r}: None}}) as a workaround, and please report "
            "the model" if producers else "please report the model")
    raise VerificationError(
        f"fxprune.{where}: the compressed model does not match its masked reference on inputs of shape "
        f"{_shape_text(shapes)}: node '{found.node}' ({found.op}){in_groups} {what}; the model is not returned\n"
        f"hint: {hint}",
        node=found.node, op=found.op, groups=groups, max_error=found.max_error, tolerance=found.tolerance,
        input_shapes=shapes, report=group_rows(graph, keep),
    ) from worst[2]


def _failing_node(gm: fx.GraphModule, inputs: tuple[Any, ...]) -> fx.Node | None:
    """The node of ``gm`` that raises on ``inputs`` (None when none does)."""
    recorder = _Recorder(gm)
    with contextlib.suppress(Exception):
        recorder.run(*_placeholder_args(inputs))
    return recorder.failed[0] if recorder.failed else None


def _at(node: fx.Node | None) -> str:
    return f" at node '{node.name}' ({_op_name(node)})" if node is not None else ""


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else ""


def _fail_reference(reference: fx.GraphModule, graph: ChannelGraph, keep: Mapping[int, np.ndarray],
                    inputs: tuple[Any, ...], where: str, error: Exception) -> None:
    node = _failing_node(reference, inputs)
    shapes = _shapes(inputs)
    raise VerificationError(
        f"fxprune.{where}: the captured graph itself fails on the example input of shape {_shape_text(shapes)}"
        f"{_at(node)}: {type(error).__name__}: {_first_line(error)}; the model is "
        "not returned\nhint: the capture baked a size into the graph; try another example batch or size",
        node=None if node is None else node.name, op=None if node is None else _op_name(node),
        max_error=math.inf, input_shapes=shapes, report=group_rows(graph, keep),
    ) from error


def _shape_text(shapes: tuple[tuple[int, ...], ...]) -> str:
    return ", ".join("×".join(map(str, s)) for s in shapes)
